"""Message-sequence continuity: which of a terminal's samples can be judged now (pure, no I/O).

Terminals number their messages ``seq`` = 0, 1, 2, ... (back to 0 after a reboot). When the
messages of a terminal have arrived without a hole, nothing older can still come, so every sample
up to the newest is released to the rules at once instead of waiting out the allowed lateness.
Only a real hole waits: the messages after it are held until it fills, or until it has been open
for the allowed lateness (in gateway receive time while the terminal speaks, in processing time
when it has gone silent, see :meth:`Continuity.expire`).

Per terminal slot the state is three columns of :class:`~liftwatch.rules.engine.State`
(checkpointed with the rest of it) and, only while a hole is open, the messages seen beyond it:

* ``seq_next``: the seq that continues the gap-free run (-1: no message seen yet);
* ``seq_bound``: the newest sample time of that run; samples up to it are released;
* ``hole_since``: when the open hole was first seen (``NONE``: no hole).

Transitions for a message (seq ``s``, newest sample ``m``) of a terminal:

* first message, or ``s == seq_next``: the run grows (``seq_bound = max(seq_bound, m)``) and takes
  in any held messages that now follow on;
* ``s > seq_next``: a hole; the message is held (``beyond``) and the clock of the hole starts;
* ``s < seq_next`` and ``m <= seq_bound``: a copy of a message already judged (a gateway
  re-delivered it after a restart): dropped, counted as a duplicate, never as late;
* ``s < seq_next`` and newer samples: the terminal rebooted and counts again: a new run starts;
* a hole open longer than the allowed lateness is given up: the run resumes at the oldest held
  message (the missing ones, should they come, are late).

Each message's samples are judged late when older than ``seq_bound`` as it was before the message
arrived (the engine's ``floor``): samples up to it have been released to the rules already.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from liftwatch.rules.engine import NONE, State

# Held messages beyond one terminal's hole at most; more gives the hole up (memory bound).
MAX_BEYOND = 1_000
# Given-up holes remembered per terminal, to tell a late message from a re-delivered copy.
MAX_SKIPPED = 8


@dataclass(slots=True)
class Admission:
    """What :meth:`Continuity.admit` decided for a batch of messages (arrays in arrival order)."""

    floor: np.ndarray[Any, np.dtype[np.int64]]
    """Per message: its terminal's ``seq_bound`` before it (samples older than that are late)."""
    keep: np.ndarray[Any, np.dtype[np.bool_]]
    """Per message: False for a duplicate of a message already judged."""

    @property
    def duplicates(self) -> int:
        return int(np.count_nonzero(~self.keep))


@dataclass
class Continuity:
    """Sequence tracking of every terminal slot, over the columns of a rules :class:`State`."""

    lateness_ms: int
    beyond: dict[int, dict[int, int]] = field(default_factory=dict)
    """slot -> {seq: newest sample ts} of the messages held beyond an open hole."""
    skipped: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    """slot -> the seq ranges of holes given up lately (a message from one is late, not a copy)."""

    def admit(
        self,
        st: State,
        slot: np.ndarray[Any, Any],
        seq: np.ndarray[Any, Any],
        newest: np.ndarray[Any, Any],
        received: np.ndarray[Any, Any],
    ) -> Admission:
        """Decide a batch of messages (per message: slot, seq, newest sample ts, gateway receive time)."""
        n = slot.shape[0]
        floor = np.full(n, NONE, np.int64)
        keep = np.ones(n, np.bool_)
        if n == 0:
            return Admission(floor, keep)
        slot = slot.astype(np.intp, copy=False)
        order = np.argsort(slot, kind="stable")
        s_slot, s_seq, s_new = slot[order], seq[order], newest[order]
        first = np.flatnonzero(np.concatenate(([True], s_slot[1:] != s_slot[:-1])))
        ends = np.append(first[1:], n)
        gslot = s_slot[first]
        # The fast path: a terminal with no open hole whose messages continue its run one by one.
        step = np.ones(n, np.bool_)
        step[1:] = s_seq[1:] == s_seq[:-1] + 1
        step[first] = True
        contiguous = np.logical_and.reduceat(step, first)
        start_ok = (s_seq[first] == st.seq_next[gslot]) | (st.seq_next[gslot] < 0)
        no_hole = st.hole_since[gslot] == NONE
        fast = contiguous & start_ok & no_hole
        fast_rows = np.arange(n) if fast.all() else np.flatnonzero(np.repeat(fast, ends - first))
        if fast_rows.shape[0]:
            self._fast(st, s_slot, s_seq, s_new, first[fast], ends[fast], fast_rows, order, floor)
        for g in np.flatnonzero(~fast).tolist():
            for row in range(int(first[g]), int(ends[g])):
                i = int(order[row])
                floor[i], keep[i] = self._one(st, int(slot[i]), int(seq[i]), int(newest[i]), int(received[i]))
        return Admission(floor, keep)

    def _fast(
        self,
        st: State,
        s_slot: np.ndarray[Any, Any],
        s_seq: np.ndarray[Any, Any],
        s_new: np.ndarray[Any, Any],
        gfirst: np.ndarray[Any, Any],
        gend: np.ndarray[Any, Any],
        rows: np.ndarray[Any, Any],
        order: np.ndarray[Any, Any],
        floor: np.ndarray[Any, Any],
    ) -> None:
        """Terminals whose messages continue their run: floors are the running newest time."""
        gslot = s_slot[gfirst]
        lens = gend - gfirst
        gid = np.repeat(np.arange(gslot.shape[0]), lens)
        values = s_new[rows]
        # seeded with the bound before the batch; an unset bound (NONE) must not blow the key range
        start = np.repeat(np.maximum(st.seq_bound[gslot], int(values.min()) - 1), lens)
        # running maximum within each terminal's messages, seeded with its bound before the batch
        tmin = int(min(int(values.min()), int(start.min())))
        span = int(max(int(values.max()), int(start.max()))) - tmin + 1
        offset = gid.astype(np.int64) * span - tmin
        running = np.maximum.accumulate(np.maximum(values, start) + offset) - offset
        before = np.empty_like(running)
        before[1:] = running[:-1]
        group_start = np.concatenate(([0], np.cumsum(lens)[:-1]))
        before[group_start] = st.seq_bound[gslot]
        floor[order[rows]] = before
        last = group_start + lens - 1
        st.seq_bound[gslot] = running[last]
        st.seq_next[gslot] = s_seq[rows[last]] + 1

    def _one(self, st: State, slot: int, seq: int, newest: int, received: int) -> tuple[int, bool]:
        """One message on the slow path (a hole, a duplicate or a reboot); returns (floor, keep)."""
        since = int(st.hole_since[slot])
        if since != NONE and received - since > self.lateness_ms:
            self._give_up(st, slot, received)
        floor = int(st.seq_bound[slot])
        expected = int(st.seq_next[slot])
        held = self.beyond.get(slot)
        if expected < 0 or seq == expected:
            st.seq_next[slot] = seq + 1
            st.seq_bound[slot] = max(floor, newest)
            self._follow_on(st, slot)
            return floor, True
        if seq > expected:
            if held is not None and seq in held:
                return floor, False
            if held is None:
                held = self.beyond[slot] = {}
            held[seq] = newest
            if int(st.hole_since[slot]) == NONE:
                st.hole_since[slot] = received
            if len(held) > MAX_BEYOND:
                self._give_up(st, slot, received)
            return floor, True
        if newest <= floor:
            # Already judged, unless it is one of the messages a given-up hole was missing: late.
            return floor, any(lo <= seq <= hi for lo, hi in self.skipped.get(slot, ()))
        # Counting again with newer samples: a reboot. Whatever was held beyond an old hole is older.
        if held:
            floor_after = max(floor, max(held.values()))
            self.beyond.pop(slot, None)
        else:
            floor_after = floor
        st.hole_since[slot] = NONE
        st.seq_next[slot] = seq + 1
        st.seq_bound[slot] = max(floor_after, newest)
        return floor, True

    def _follow_on(self, st: State, slot: int) -> None:
        """Take in held messages that continue the run; the hole is closed when none is left."""
        held = self.beyond.get(slot)
        if held:
            nxt = int(st.seq_next[slot])
            bound = int(st.seq_bound[slot])
            while nxt in held:
                bound = max(bound, held.pop(nxt))
                nxt += 1
            st.seq_next[slot] = nxt
            st.seq_bound[slot] = bound
            if not held:
                del self.beyond[slot]
        if slot not in self.beyond:
            st.hole_since[slot] = NONE

    def _give_up(self, st: State, slot: int, now_ms: int) -> None:
        """The hole has waited long enough: resume the run at the oldest held message."""
        held = self.beyond.get(slot)
        if not held:
            st.hole_since[slot] = NONE
            return
        resume = min(held)
        ranges = self.skipped.setdefault(slot, [])
        ranges.append((int(st.seq_next[slot]), resume - 1))
        del ranges[:-MAX_SKIPPED]
        st.seq_next[slot] = resume
        self._follow_on(st, slot)
        if slot in self.beyond:  # another hole further on: its clock starts now
            st.hole_since[slot] = now_ms

    def expire(self, st: State, now_ms: int) -> bool:
        """Give up holes open for longer than the allowed lateness (a silent terminal); True if any."""
        due = [slot for slot in self.beyond if now_ms - int(st.hole_since[slot]) > self.lateness_ms]
        for slot in due:
            self._give_up(st, slot, now_ms)
        return bool(due)

    def forget(self, slots: np.ndarray[Any, Any]) -> None:
        for slot in slots.tolist():
            self.beyond.pop(int(slot), None)
            self.skipped.pop(int(slot), None)

    def held_rows(self, slots: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], ...]:
        """The held messages of some slots as (index into ``slots``, seq, newest) arrays (checkpoints)."""
        index, seqs, newest = [], [], []
        for i, slot in enumerate(slots.tolist()):
            for seq, ts in self.beyond.get(int(slot), {}).items():
                index.append(i)
                seqs.append(seq)
                newest.append(ts)
        return np.asarray(index, np.int64), np.asarray(seqs, np.int64), np.asarray(newest, np.int64)

    def load_rows(self, slots: np.ndarray[Any, Any], index: Any, seqs: Any, newest: Any) -> None:
        """Restore held messages saved by :meth:`held_rows`."""
        for i, seq, ts in zip(index.tolist(), seqs.tolist(), newest.tolist(), strict=True):
            self.beyond.setdefault(int(slots[i]), {})[int(seq)] = int(ts)
