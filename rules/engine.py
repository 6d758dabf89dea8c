"""The pure, vectorized rule engine: columnar samples and explicit state in, detections and new state out.

No I/O and no clock here. :func:`evaluate` takes a batch of samples of many terminals (in arrival
order), the per-terminal state (:class:`~liftwatch.rules.state.State`, indexed by terminal *slot*)
and the per-slot thresholds (:class:`~liftwatch.rules.params.SlotParams`), and returns the
raise/clear detections. It never loops over samples in Python: per rule it computes a dense
boolean condition over the columns, then works on the sparse positions where the condition holds.

The parts: :mod:`~liftwatch.rules.watermark` decides which samples are judged now (event time,
order, lateness), :mod:`~liftwatch.rules.runs` is the raise/clear state machine of every rule
(runs, holds, clears, carried across batches). The rules are declared in
:mod:`~liftwatch.rules.catalog`, each with its condition over a
:class:`~liftwatch.rules.conditions.Frame` (``when``) or the name of a composite judge of this
module (:data:`JUDGES`: rules with several raise conditions or a door history of their own);
:func:`evaluate` judges the catalog's rules in its order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from liftwatch.rules.batches import SortedBatch, group_key, groups, next_index
from liftwatch.rules.catalog import SAMPLE_RULES, FaultSpec
from liftwatch.rules.columns import (
    CLOSING,
    I64,
    IP,
    OPEN,
    OPENING,
    B,
    Columns,
)
from liftwatch.rules.conditions import Frame
from liftwatch.rules.params import SlotParams, by_rule_set
from liftwatch.rules.runs import (
    Decisions,
    carry_runs,
    clear_wanted,
    false_runs,
    first_clear,
    first_ready,
    hold_rule,
    resolve,
    true_runs,
)
from liftwatch.rules.state import CONDITION_INDEX, NONE, RULE_INDEX, State
from liftwatch.rules.watermark import release
from liftwatch.schema import FaultCode

DAY_MS = 86_400_000


@dataclass(slots=True)
class Detections:
    """Raise/clear decisions of one evaluation, positions into ``samples`` (sorted by slot, ts)."""

    samples: Columns
    rule: np.ndarray[Any, np.dtype[np.int64]]
    raised: B
    pos: IP
    since: I64
    unregistered: IP
    """Positions of the first evaluated sample of an unregistered terminal on a new (site) day."""
    late: int
    """Samples refused because they arrived older than the watermark."""
    duplicates: int = 0
    """Messages dropped as copies of messages already judged (set by the processor)."""
    late_samples: Columns = field(default_factory=Columns.empty)
    """The late samples themselves, sorted by (slot, arrival): the processor judges them apart."""

    @property
    def evaluated(self) -> int:
        return len(self.samples)


def evaluate(
    batch: Columns,
    st: State,
    params: SlotParams,
    *,
    lateness_ms: int,
    day_offset_ms: int = 0,
    flush: bool = False,
    floor: I64 | None = None,
) -> Detections:
    """Evaluate every rule on a batch (arrival order); updates ``st`` in place and returns the detections.

    ``flush`` evaluates the held-back samples too (end of a replay); never use it on a live stream.
    ``floor`` (per sample, arrival order) is the late bound from message-sequence continuity, set
    with ``st.seq_bound`` by the caller (:class:`liftwatch.rules.processor.RuleProcessor`).
    """
    st.grow(params.capacity)
    ev, late_samples = release(batch, st, lateness_ms, flush, floor)
    late = len(late_samples)
    empty_i = np.zeros(0, np.intp)
    if len(ev) == 0:
        return _no_detections(ev, empty_i, late_samples)
    gstart, gend, row_group = groups(ev.slot)
    key, tmin, span = group_key(row_group, ev.ts)
    gslot = ev.slot[gstart].astype(np.intp)
    fresh = ~st.valid[gslot]
    ctx = SortedBatch(ev.slot, ev.ts, gstart, gend, gslot, key, tmin, span, fresh, bool(fresh.any()), row_group)
    out = Decisions()
    enabled_rs = params.enabled  # (rule sets, rules)
    registered = params.registered

    def enabled(code: FaultCode) -> B:
        rule = RULE_INDEX[code]
        if params.uniform:
            return registered if bool(enabled_rs[0, rule]) else np.zeros_like(registered)
        mask: B = registered & enabled_rs[params.model_idx, rule]
        return mask

    frame = Frame(ev, ctx, params)
    for spec in SAMPLE_RULES:
        if spec.when is not None:
            hold_rule(spec, spec.when(frame), ctx, st, params, out, enabled(spec.code))
        elif spec.judge is not None:
            JUDGES[spec.judge](spec, frame, st, out, enabled(spec.code))

    unregistered = _unregistered(ctx, st, registered, day_offset_ms)
    st.valid[ctx.gslot] = True

    if out.pos:
        rule = np.concatenate(out.rule)
        pos = np.concatenate(out.pos)
        order = np.lexsort((rule, pos))
        return Detections(
            ev,
            rule[order],
            np.concatenate(out.raised)[order],
            pos[order],
            np.concatenate(out.since)[order],
            unregistered,
            late,
            late_samples=late_samples,
        )
    return _no_detections(ev, unregistered, late_samples)


def _no_detections(ev: Columns, unregistered: IP, late_samples: Columns) -> Detections:
    """The detections of a batch where no rule raised or cleared anything."""
    empty = np.zeros(0, np.int64)
    return Detections(
        ev,
        empty,
        np.zeros(0, np.bool_),
        np.zeros(0, np.intp),
        empty,
        unregistered,
        len(late_samples),
        late_samples=late_samples,
    )


def _opened_since_stop(pos: IP, ctx: SortedBatch, marks: tuple[B, B], st: State, *, inclusive: bool) -> B:
    """Whether the door was not closed at some sample of the current stop, up to ``pos``."""
    gs = ctx.gstart[ctx.gid(pos)]
    not_stopped, opened = marks
    upto = pos + 1 if inclusive else pos
    last_move = ctx.prev("not_stopped", not_stopped, ctx.true_pos("not_stopped", not_stopped), upto)
    last_open = ctx.prev("opened", opened, ctx.true_pos("opened", opened), upto)
    slots = ctx.slot[pos]
    in_batch = (last_open > last_move) & (last_open >= gs)
    carried = (last_move < gs) & (last_open < gs) & st.valid[slots] & st.door_opened_since_stop[slots]
    result: B = in_batch | carried
    return result


def _trapped(spec: FaultSpec, f: Frame, st: State, out: Decisions, enabled: B) -> None:
    """Trapped passenger: two raise conditions with their own timers (a, between floors; b, at a landing
    with the door not opened since the car stopped), one raise, cleared when neither has held for the
    clear time. Carries "door opened since the car stopped" to the next batch."""
    ctx, params = f.batch, f.params
    base = f.occupied & f.stopped & f.closed & f.normal
    trapped_between = base & ~f.door_zone
    trapped_at_landing = base & f.door_zone
    stop_marks = (~f.stopped, f.stopped & ~f.closed)
    at_landing_pos = np.flatnonzero(trapped_at_landing)
    if at_landing_pos.shape[0]:
        trapped_at_landing[at_landing_pos[_opened_since_stop(at_landing_pos, ctx, stop_marks, st, inclusive=False)]] = (
            False
        )
    rule = RULE_INDEX[spec.code]
    between_floors = CONDITION_INDEX["trapped_passenger.between_floors"]
    at_landing = CONDITION_INDEX["trapped_passenger.at_landing"]
    either = CONDITION_INDEX["trapped_passenger"]
    runs_a = true_runs(trapped_between, ctx, st, between_floors)
    runs_b = true_runs(trapped_at_landing, ctx, st, at_landing)
    cond = trapped_between | trapped_at_landing
    runs = true_runs(cond, ctx, st, either)
    ra, sa = first_ready(runs_a, ctx.ts, by_rule_set(params.hold_ms[:, between_floors], params, ctx.slot[runs_a.pos]))
    rb, sb = first_ready(runs_b, ctx.ts, by_rule_set(params.hold_ms[:, at_landing], params, ctx.slot[runs_b.pos]))
    rpos = np.concatenate([ra, rb])
    rsince = np.concatenate([sa, sb])
    keep = enabled[ctx.slot[rpos]]
    rpos, rsince = rpos[keep], rsince[keep]
    fr = false_runs(cond, runs, ctx, st, either, clear_wanted(rule, ctx, st, rpos))
    cpos, csince = first_clear(fr, ctx, by_rule_set(params.clear_ms[:, rule], params, ctx.gslot[fr[1]]))
    resolve(rule, rpos, rsince, cpos, csince, ctx, st, out)
    for c, r, j in (
        (trapped_between, runs_a, between_floors),
        (trapped_at_landing, runs_b, at_landing),
        (cond, runs, either),
    ):
        carry_runs(c, r, ctx, st, j)
    last = ctx.gend - 1
    opened = _opened_since_stop(last, ctx, stop_marks, st, inclusive=True)
    st.door_opened_since_stop[ctx.gslot] = f.stopped[last] & opened


def _reopen_loop(spec: FaultSpec, f: Frame, st: State, out: Decisions, enabled: B) -> None:
    """Door reopen loop: held while enough door reversals fall within the window; carries the reversal
    history and the last door state to the next batch."""
    hold_rule(spec, _reopen_condition(f, st, f.moving | ~f.normal), f.batch, st, f.params, out, enabled)
    st.last_door[f.batch.gslot] = f.door[f.batch.gend - 1]


Judge = Callable[[FaultSpec, Frame, State, Decisions, B], None]
"""A composite rule: its spec, the batch, the state, where its decisions go, and the rows it is enabled on."""

JUDGES: dict[str, Judge] = {"trapped": _trapped, "reopen_loop": _reopen_loop}
"""The composite judges the catalog names (``FaultSpec.judge``)."""


def _reopen_condition(f: Frame, st: State, reset: B) -> B:
    """True where the rule's number of door reversals (closing -> opening/open) fall within its window.

    ``reset`` marks the samples that start the count afresh: the car moving (a departure) or a mode
    other than normal (a technician working the door is not a reopen loop).
    """
    ctx, params = f.batch, f.params
    moving = reset
    n = len(f.samples)
    door = f.door
    width = st.reversals_kept
    opening = np.flatnonzero((door == OPENING) | (door == OPEN))
    moves = np.flatnonzero(moving)
    if opening.shape[0]:
        opening_group = ctx.gid(opening)
        first = opening == ctx.gstart[opening_group]
        prev_door = np.where(first, st.last_door[ctx.slot[opening]], door[np.maximum(opening - 1, 0)])
        reversal = opening[(prev_door == CLOSING) & ~moving[opening]]
    else:
        reversal = opening
    slots_all = ctx.gslot
    reversal_count = st.reversal_count[slots_all]
    reversal_times = st.reversal_times
    reversals_needed = by_rule_set(params.reversals, params, slots_all)
    reversals_needed = np.broadcast_to(np.asarray(reversals_needed, np.int64), slots_all.shape)
    group_count = ctx.gstart.shape[0]
    starts: list[IP] = []
    ends: list[IP] = []
    if reversal.shape[0]:
        reversal_group = ctx.gid(reversal)
        group_start_of = ctx.gstart[reversal_group]
        last_move = ctx.prev("reset", moving, moves, reversal)
        moved = last_move >= group_start_of
        epoch_start = np.where(moved, last_move + 1, group_start_of)
        index = np.arange(reversal.shape[0])
        epoch_index = np.searchsorted(reversal, epoch_start, "left")
        seen = index - epoch_index + 1
        needed = reversals_needed[reversal_group]
        window_start = np.full(reversal.shape[0], NONE, np.int64)
        in_batch = seen >= needed
        window_start[in_batch] = ctx.ts[reversal[(index - needed + 1)[in_batch]]]
        need = needed - seen
        from_carry = ~in_batch & ~moved & st.valid[ctx.slot[reversal]] & (reversal_count[reversal_group] >= need)
        window_start[from_carry] = reversal_times[slots_all[reversal_group[from_carry]], width - need[from_carry]]
        has = window_start != NONE
        start_pos = reversal[has]
        start_group = reversal_group[has]
        end = np.minimum(ctx.gend[start_group], next_index(reversal, start_pos, "right", ctx.gend[start_group]))
        end = np.minimum(end, next_index(moves, start_pos, "left", ctx.gend[start_group]))
        end = np.minimum(
            end,
            ctx.search(start_group, window_start[has] + by_rule_set(params.window_ms, params, ctx.gslot[start_group])),
        )
        starts.append(start_pos)
        ends.append(end)
    # group start: the carried reversals may already satisfy the rule
    carried_groups = np.flatnonzero(st.valid[slots_all] & (reversal_count >= reversals_needed))
    if carried_groups.shape[0]:
        group_start = ctx.gstart[carried_groups]
        carried_window_start = reversal_times[slots_all[carried_groups], width - reversals_needed[carried_groups]]
        end = np.minimum(ctx.gend[carried_groups], next_index(reversal, group_start, "left", ctx.gend[carried_groups]))
        end = np.minimum(end, next_index(moves, group_start, "left", ctx.gend[carried_groups]))
        end = np.minimum(
            end,
            ctx.search(
                carried_groups, carried_window_start + by_rule_set(params.window_ms, params, ctx.gslot[carried_groups])
            ),
        )
        starts.append(group_start)
        ends.append(end)
    _carry_reversals(reversal, moves, moving, ctx, st, reversal_count, group_count)
    cond = np.zeros(n, np.bool_)
    if starts:
        start_all = np.concatenate(starts)
        end_all = np.concatenate(ends)
        ok = start_all < end_all
        if ok.any():
            edges = np.bincount(start_all[ok], minlength=n + 1) - np.bincount(end_all[ok], minlength=n + 1)
            cond = (np.cumsum(edges[:n]) > 0) & f.normal
    return cond


def _carry_reversals(
    rev: IP, moves: IP, moving: B, ctx: SortedBatch, st: State, reversal_count: I64, group_count: int
) -> None:
    """Keep, per terminal, the last reversal times since the car last moved (right-aligned)."""
    width = st.reversals_kept
    gend = ctx.gend
    last_move = ctx.prev("reset", moving, moves, gend)
    moved = last_move >= ctx.gstart
    if rev.shape[0]:
        rg = ctx.gid(rev)
        tail = rev > last_move[rg]
        tr = rev[tail]
        tg = rg[tail]
    else:
        tr = rev
        tg = rev
    tail_n = np.bincount(tg, minlength=group_count)
    old_n = np.where(moved | ~st.valid[ctx.gslot], 0, reversal_count)
    new_n = np.minimum(width, old_n + tail_n)
    changed = np.flatnonzero(moved | (tail_n > 0))
    if changed.shape[0] == 0:
        return
    slots = ctx.gslot[changed]
    if tr.shape[0]:
        last_of_group = np.searchsorted(tg, tg, "right") - 1
        rank = last_of_group - np.arange(tr.shape[0])
        keep = rank < width
        tg, tr, rank = tg[keep], tr[keep], rank[keep]
        shift = np.minimum(tail_n[changed], width)
        row = np.searchsorted(changed, tg)
        # tails left-aligned after the old right-aligned rows: old + new are contiguous in ``ext``
        tail_mat = np.full((changed.shape[0], width), NONE, np.int64)
        tail_mat[row, shift[row] - 1 - rank] = ctx.ts[tr]
        ext = np.concatenate([st.reversal_times[slots], tail_mat], axis=1)
        st.reversal_times[slots] = ext[np.arange(changed.shape[0])[:, None], np.arange(width)[None, :] + shift[:, None]]
    st.reversal_count[slots] = new_n[changed]


def _unregistered(ctx: SortedBatch, st: State, registered: B, day_offset_ms: int) -> IP:
    """Positions of the first sample of each (site) day of every unregistered terminal."""
    unreg_groups = np.flatnonzero(~registered[ctx.gslot])
    if unreg_groups.shape[0] == 0:
        return np.zeros(0, np.intp)
    pos = np.flatnonzero(~registered[ctx.slot])
    day = (ctx.ts[pos] + day_offset_ms) // DAY_MS
    slots = ctx.slot[pos]
    first = np.ones(pos.shape[0], np.bool_)
    first[1:] = slots[1:] != slots[:-1]
    prev = np.empty(pos.shape[0], np.int64)
    prev[1:] = day[:-1]
    prev[first] = st.last_day[slots[first]]
    last = np.ones(pos.shape[0], np.bool_)
    last[:-1] = first[1:]
    st.last_day[slots[last]] = day[last]
    return pos[day > prev]
