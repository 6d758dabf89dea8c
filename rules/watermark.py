"""Watermarks: which samples the rules may judge now, which wait, which are late.

A terminal's samples are evaluated in (ts, arrival) order once they have passed its watermark;
until then they wait in ``State.chunks``. With message sequence numbers (the live path) the
watermark is the newest sample of the terminal's gap-free run of messages (``seq_bound``, kept by
:mod:`liftwatch.rules.continuity`), so in-order terminals wait for nothing; without them (replay)
it is the newest ts seen - the allowed lateness. A sample older than what was already released
when it arrives is *late*: counted, not evaluated, and handed back for the processor's late lane.
With these definitions the evaluated sequence does not depend on how the stream is cut into
batches (docs/rules.md, "Semantics").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from liftwatch.rules.batches import bounds, group_key, merge_all, pull, row_group, slot_order, slot_rows
from liftwatch.rules.columns import I64, B, Columns
from liftwatch.rules.state import NONE, Chunk, State

DEFER_MIN_SAMPLES = 65_536
"""A held-back chunk this large that has only partly passed the watermark waits (once) for the rest.

Releasing a chunk whole hands its samples to the rules as they are; splitting it costs two copies
now and a merge with the rest of it later. Under load the rest passes by the next batch, so the
wait is one batch; an empty batch (the service evaluates one when a poll brings nothing) releases
what waits. Small chunks are split at once: light load adds no wait at all (docs/rules.md).
"""


MAX_CHUNKS = 16
"""Beyond this many held-back chunks (many small batches), the smallest neighbouring two are merged."""


def _admit(
    batch: Columns, st: State, lateness_ms: int, floor: I64 | None = None
) -> tuple[Columns, Columns, np.ndarray[Any, Any]]:
    """A new batch sorted by (slot, ts, arrival) without its late samples, and the late ones (same
    order); moves the watermarks.

    ``floor`` (arrival order, optional): per sample, the sequence bound of its terminal before its
    message arrived; a sample older than it is late too (samples up to it were already released).

    Also returns the terminals (slots, sorted) of the batch whose first sample is older than a
    sample of theirs that arrived before: their held-back samples must be merged with these.
    """
    order = slot_order(batch.slot)
    s = batch.slot[order]
    t = batch.ts[order]
    gstart, gend = bounds(s)
    gslot = s[gstart]
    carry_max = st.max_ts[gslot]
    step_ok = t[1:] >= t[:-1]
    step_ok[gstart[1:] - 1] = True  # a new terminal starts: no order to keep
    in_order = bool(step_ok.all())
    late: B | None = None
    newmax = np.maximum(carry_max, t[gend - 1])
    if not in_order:
        # Some terminals' samples arrived out of time order: only theirs are looked at row by row.
        bad = np.unique(np.searchsorted(gstart, np.flatnonzero(~step_ok) + 1, "right") - 1)
        lens = gend[bad] - gstart[bad]
        sub_end = np.cumsum(lens)
        rows = np.arange(int(sub_end[-1])) + np.repeat(gstart[bad] - (sub_end - lens), lens)  # their rows
        sub_gid = np.repeat(np.arange(bad.shape[0]), lens)
        key, tmin, span = group_key(sub_gid, t[rows])
        cm = np.maximum.accumulate(key)
        prev = np.empty(rows.shape[0], np.int64)
        prev[1:] = cm[:-1] - sub_gid[1:] * span + tmin  # the newest earlier arrival of the terminal
        prev[sub_end - lens] = NONE
        prev = np.maximum(prev, carry_max[bad][sub_gid])
        late = t < np.repeat(carry_max - lateness_ms, gend - gstart)
        late[rows] = t[rows] < prev - lateness_ms
        newmax[bad] = np.maximum(carry_max[bad], cm[sub_end - 1] - np.arange(bad.shape[0]) * span + tmin)
        # their samples in (ts, arrival) order, in place: a terminal's rows stay where they are
        moved = rows[np.argsort(key, kind="stable")]
        order[rows] = order[moved]
        t[rows] = t[moved]
        late[rows] = late[moved]
    else:
        # Each terminal's samples arrived in time order: only the carried watermark can make one late,
        # and only the first sample of a terminal can be older than what arrived before.
        older = t[gstart] < carry_max
        if older.any():
            late = t < np.repeat(carry_max - lateness_ms, gend - gstart)
        disordered = gslot[older]
    if floor is not None:
        # Sequence-tracked messages: late only when older than what was already released (the
        # allowed lateness plays no part; a hole's wait is bounded by the processor instead).
        below = t < floor[order]
        late = below if below.any() else None
    st.max_ts[gslot] = newmax
    n_late = 0 if late is None else int(np.count_nonzero(late))
    refused = Columns.empty()
    if late is not None and n_late:
        gone = np.flatnonzero(late)
        # in arrival order per terminal: the late lane's runs follow the order the samples came in
        by_arrival = gone[np.lexsort((order[gone], s[gone]))]
        refused = Columns(
            s[by_arrival],
            t[by_arrival],
            np.take(batch.speed, order[by_arrival]),
            np.take(batch.floor, order[by_arrival]),
            np.take(batch.code, order[by_arrival]),
        )
        keep = np.flatnonzero(~late)
        gid = row_group(gstart, gend)[keep]
        order, s, t = order[keep], s[keep], t[keep]
        first = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1]))) if len(t) else np.zeros(0, np.intp)
        disordered = s[first[t[first] < carry_max[gid[first]]]]
    elif not in_order:
        disordered = gslot[t[gstart] < carry_max]  # t is in (ts, arrival) order now
    fresh = Columns(s, t, np.take(batch.speed, order), np.take(batch.floor, order), np.take(batch.code, order))
    return fresh, refused, disordered


def release(
    batch: Columns, st: State, lateness_ms: int, flush: bool, floor: I64 | None = None
) -> tuple[Columns, Columns]:
    """The samples now past their terminal's watermark, sorted by (slot, ts), and the late ones.

    Only the new batch is sorted here; the held-back chunks are already sorted: each is released
    whole when all of it has passed, split when part of it has (or, when large, left for one more
    batch), and only the released parts are merged (see :class:`Chunk`).
    """
    late = Columns.empty()
    chunks = st.chunks
    if len(batch):
        fresh, late, disordered = _admit(batch, st, lateness_ms, floor)
        if disordered.shape[0] and chunks:
            chunks, fresh = _reorder_terminals(chunks, fresh, disordered)
        if len(fresh):
            chunks = [*chunks, Chunk(fresh)]
    if flush:
        st.chunks = []
        st.waiting = False
        return merge_all([c.samples for c in chunks]), late
    while len(chunks) > MAX_CHUNKS:
        # neighbours only: merging two chunks next to each other keeps the chunks in order
        pair = min(range(len(chunks) - 1), key=lambda i: len(chunks[i].samples) + len(chunks[i + 1].samples))
        first, second = chunks[pair], chunks[pair + 1]
        both = Chunk(merge_all([first.samples, second.samples]), first.deferred or second.deferred)
        chunks = [*chunks[:pair], both, *chunks[pair + 2 :]]
    passed = [_passed(c.samples, st, lateness_ms) for c in chunks]
    counts = [int(np.count_nonzero(mask)) for mask in passed]
    # A chunk may wait only if no later chunk that already waited has passed samples: those would
    # have to wait behind it a second time.
    # (And only while batches come: an empty one is the service's poll that found none.)
    may_wait = [False] * len(chunks)
    waited_behind = len(batch) == 0
    for i in range(len(chunks) - 1, -1, -1):
        may_wait[i] = not waited_behind and not chunks[i].deferred
        waited_behind = waited_behind or (chunks[i].deferred and counts[i] > 0)
    released: list[Columns] = []
    kept: list[Chunk] = []
    waiting = False
    for i, chunk in enumerate(chunks):
        samples, count = chunk.samples, counts[i]
        if count == 0:
            kept.append(chunk)
        elif waiting:
            # an earlier chunk waits: so do the samples of this one (they may be of the same terminals)
            kept.append(Chunk(samples, True))
        elif count == len(samples):
            released.append(samples)
        elif may_wait[i] and len(samples) >= DEFER_MIN_SAMPLES:
            kept.append(Chunk(samples, True))
            waiting = True
        else:
            out, rest = _split(samples, passed[i])
            released.append(out)
            kept.append(Chunk(rest, True))
    st.chunks = kept
    st.waiting = waiting
    return merge_all(released), late


def _passed(samples: Columns, st: State, lateness_ms: int) -> B:
    """Samples past their terminal's watermark: within its gap-free run of messages when its messages
    carry sequence numbers (the live path), else older than its newest sample - the allowed lateness."""
    slot = samples.slot
    mask: B = np.where(
        np.take(st.seq_next, slot) >= 0,
        samples.ts <= np.take(st.seq_bound, slot),
        samples.ts < np.take(st.max_ts, slot) - lateness_ms,
    )
    return mask


def _reorder_terminals(chunks: list[Chunk], fresh: Columns, slots: np.ndarray[Any, Any]) -> tuple[list[Chunk], Columns]:
    """Put new samples older than held ones of their terminals (``slots``) in order with those.

    From the first chunk holding a sample of such a terminal newer than its oldest new one, these
    terminals' held samples move, merged with their new ones, to a chunk of their own at that
    chunk's place: chunks before it hold only older samples of theirs, chunks after it none. Usually
    only the last chunk or two hold such samples, so only they are copied.
    """
    oldest_new = fresh.ts[slot_rows(fresh, slots)[0]]
    first = len(chunks)
    for i, chunk in enumerate(chunks):
        lo, hi = slot_rows(chunk.samples, slots)
        held = hi > lo
        # a terminal's newest sample in the chunk is the last of its rows (sorted by ts)
        if np.any(chunk.samples.ts[hi[held] - 1] > oldest_new[held]):
            first = i
            break
    pulled: list[Columns] = []
    moved: list[Chunk] = []
    deferred = False
    for chunk in chunks[first:]:
        rest, theirs = pull(chunk.samples, slots)
        if len(theirs):
            pulled.append(theirs)
            deferred = deferred or chunk.deferred
        if len(rest):
            moved.append(Chunk(rest, chunk.deferred) if len(theirs) else chunk)
    fresh, theirs = pull(fresh, slots)
    merged = Chunk(merge_all([*pulled, theirs]), deferred)
    return [*chunks[:first], merged, *moved], fresh


def _split(samples: Columns, mask: B) -> tuple[Columns, Columns]:
    """The rows where ``mask`` holds and the others."""
    return samples.take(mask), samples.take(~mask)
