"""Runs and holds: the raise/clear state machine every rule shares, over sparse true positions.

A *run* is a maximal sequence of consecutive samples of a terminal where a condition holds; it
starts at the ts of its first sample (``since``) and may continue a run carried from the previous
batch. A fault is raised at the first sample of a run with ``ts - since >= hold`` (and at least
``min_samples`` samples), if it is not already active; an active fault clears at the first sample
where the condition has been false for ``clear_after`` (measured from the first false sample).
Each function works on the positions where a condition holds (sorted), never sample by sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from liftwatch.rules.batches import SortedBatch, next_index
from liftwatch.rules.catalog import FaultSpec
from liftwatch.rules.columns import I64, IP, B
from liftwatch.rules.params import SlotParams, by_rule_set
from liftwatch.rules.state import CONDITION_INDEX, RULE_INDEX, State


@dataclass(slots=True)
class Runs:
    pos: IP
    gid: IP
    since: I64
    count: I64
    anchor: IP
    end: B


def true_runs(c: B, ctx: SortedBatch, st: State, j: int) -> Runs:
    """The true runs of condition ``c``: since and sample count at every true position."""
    pos = np.flatnonzero(c)
    if pos.shape[0] == 0:
        e = np.zeros(0, np.intp)
        return Runs(e, e, np.zeros(0, np.int64), np.zeros(0, np.int64), e, np.zeros(0, np.bool_))
    gid = ctx.gid(pos)
    first = pos == ctx.gstart[gid]
    cont = np.zeros(pos.shape[0], np.bool_)
    cont[1:] = pos[1:] == pos[:-1] + 1
    cont &= ~first
    anchor_mask = ~cont
    k = np.arange(pos.shape[0])
    anchor = np.maximum.accumulate(np.where(anchor_mask, k, 0))
    base_since = ctx.ts[pos]
    base_count = np.zeros(pos.shape[0], np.int64)
    fk = np.flatnonzero(first)
    if fk.shape[0]:
        fslots = ctx.slot[pos[fk]]
        carried = st.valid[fslots] & st.cond[j][fslots]
        base_since[fk] = np.where(carried, st.since[j][fslots], base_since[fk])
        base_count[fk] = np.where(carried, st.count[j][fslots], 0)
    since = base_since[anchor]
    count = k - anchor + 1 + base_count[anchor]
    end = np.ones(pos.shape[0], np.bool_)
    end[:-1] = anchor_mask[1:]
    return Runs(pos, gid, since, count, anchor, end)


def first_ready(runs: Runs, ts: I64, hold: I64 | int, min_count: I64 | int = 1) -> tuple[IP, I64]:
    """Per run, the first position where the hold (and the sample count) is reached."""
    if runs.pos.shape[0] == 0:
        return runs.pos, runs.since
    ready = (ts[runs.pos] - runs.since >= hold) & (runs.count >= min_count)
    q = np.flatnonzero(ready)
    if q.shape[0] > 1:
        run = runs.anchor[q]
        keep = np.ones(q.shape[0], np.bool_)
        keep[1:] = run[1:] != run[:-1]
        q = q[keep]
    return runs.pos[q], runs.since[q]


def _lead_since(groups: IP, ctx: SortedBatch, st: State, j: int) -> I64:
    """Since of the false run each group starts with (from the carried state when it continues)."""
    slots = ctx.gslot[groups]
    carried = st.valid[slots] & ~st.cond[j][slots]
    return np.where(carried, st.since[j][slots], ctx.ts[ctx.gstart[groups]])


def false_runs(c: B, runs: Runs, ctx: SortedBatch, st: State, j: int, want: B) -> tuple[IP, IP, I64, IP]:
    """Start position, group, since and exclusive end of the false runs of ``c`` in the ``want`` groups."""
    wg = np.flatnonzero(want)
    lg = wg[~c[ctx.gstart[wg]]]
    ls = ctx.gstart[lg]
    lsince = _lead_since(lg, ctx, st, j)
    lend = np.minimum(next_index(runs.pos, ls, "left", ctx.gend[lg]), ctx.gend[lg])
    k_end = np.flatnonzero(runs.end)
    k_end = k_end[want[runs.gid[k_end]]]
    f = runs.pos[k_end] + 1
    fg = runs.gid[k_end]
    ok = f < ctx.gend[fg]
    k_end, f, fg = k_end[ok], f[ok], fg[ok]
    nxt = np.minimum(k_end + 1, max(runs.pos.shape[0] - 1, 0))
    same = (k_end + 1 < runs.pos.shape[0]) & (runs.gid[nxt] == fg) if runs.pos.shape[0] else np.zeros(0, np.bool_)
    fend = np.where(same, runs.pos[nxt] if runs.pos.shape[0] else nxt, ctx.gend[fg])
    return (
        np.concatenate([ls, f]),
        np.concatenate([lg, fg]),
        np.concatenate([lsince, ctx.ts[f]]),
        np.concatenate([lend, fend]),
    )


def first_clear(false_runs: tuple[IP, IP, I64, IP], ctx: SortedBatch, clear_ms: I64 | int) -> tuple[IP, I64]:
    """Per false run, the first position where it has lasted ``clear_ms``."""
    start, gid, since, end = false_runs
    if start.shape[0] == 0:
        return start, since
    at = np.maximum(ctx.search(gid, since + clear_ms), start)
    ok = at < end
    return at[ok], since[ok]


def carry_runs(c: B, runs: Runs, ctx: SortedBatch, st: State, j: int) -> None:
    """Store the run state at the end of the batch of the terminals whose state changed.

    A terminal whose condition was false before and stayed false throughout keeps its state.
    """
    carried = st.cond[j]
    if runs.pos.shape[0] == 0 and not ctx.any_fresh and not carried.any():
        return  # false before and throughout, everywhere (the usual case for most rules)
    touched = carried[ctx.gslot] | ctx.fresh
    touched[runs.gid] = True
    upd = np.flatnonzero(touched)
    if upd.shape[0] == 0:
        return
    last = ctx.gend[upd] - 1
    lc = c[last]
    since = np.empty(upd.shape[0], np.int64)
    count = np.zeros(upd.shape[0], np.int64)
    fg = upd[~lc]
    if runs.pos.shape[0]:
        k = np.searchsorted(runs.pos, last[lc])
        since[lc] = runs.since[k]
        count[lc] = runs.count[k]
        lastp = np.searchsorted(runs.pos, ctx.gend[fg], "left") - 1
        safe = np.maximum(lastp, 0)
        had = (lastp >= 0) & (runs.pos[safe] >= ctx.gstart[fg])
        # the false run at the end starts after the group's last true run, or (none) where it led in
        false_since = ctx.ts[np.minimum(runs.pos[safe] + 1, ctx.ts.shape[0] - 1)]
        led = np.flatnonzero(~had)
        false_since[led] = _lead_since(fg[led], ctx, st, j)
        since[~lc] = false_since
    else:
        since[~lc] = _lead_since(fg, ctx, st, j)
    slots = ctx.gslot[upd]
    st.cond[j][slots] = lc
    st.since[j][slots] = since
    st.count[j][slots] = count


@dataclass(slots=True)
class Decisions:
    rule: list[np.ndarray[Any, Any]] = field(default_factory=list)
    raised: list[np.ndarray[Any, Any]] = field(default_factory=list)
    pos: list[np.ndarray[Any, Any]] = field(default_factory=list)
    since: list[np.ndarray[Any, Any]] = field(default_factory=list)


def resolve(
    rule: int,
    raise_pos: IP,
    raise_since: I64,
    clear_pos: IP,
    clear_since: I64,
    ctx: SortedBatch,
    st: State,
    out: Decisions,
) -> None:
    """Run the raise/clear state machine of one rule over its candidate positions."""
    if raise_pos.shape[0] == 0 and clear_pos.shape[0] == 0:
        return
    pos = np.concatenate([raise_pos, clear_pos])
    typ = np.concatenate([np.ones(raise_pos.shape[0], np.bool_), np.zeros(clear_pos.shape[0], np.bool_)])
    since = np.concatenate([raise_since, clear_since])
    order = np.argsort(pos, kind="stable")
    pos, typ, since = pos[order], typ[order], since[order]
    slots = ctx.slot[pos]
    active = st.active[rule]
    prev = np.empty(pos.shape[0], np.bool_)
    prev[1:] = typ[:-1]
    first = np.ones(pos.shape[0], np.bool_)
    first[1:] = slots[1:] != slots[:-1]
    prev[first] = active[slots[first]]
    emit = typ != prev
    last = np.ones(pos.shape[0], np.bool_)
    last[:-1] = first[1:]
    active[slots[last]] = typ[last]
    if emit.any():
        out.rule.append(np.full(int(emit.sum()), rule, np.int64))
        out.raised.append(typ[emit])
        out.pos.append(pos[emit])
        out.since.append(since[emit])


def clear_wanted(rule: int, ctx: SortedBatch, st: State, raise_pos: IP) -> B:
    """Groups where a clear may matter: the fault is active, or is raised in this batch."""
    active = st.active[rule]
    if raise_pos.shape[0] == 0 and not active.any():
        return np.zeros(ctx.gstart.shape[0], np.bool_)
    want = active[ctx.gslot]
    if raise_pos.shape[0]:
        want[ctx.gid(raise_pos)] = True
    return want


def hold_rule(
    spec: FaultSpec, c: B, ctx: SortedBatch, st: State, params: SlotParams, out: Decisions, enabled: B
) -> None:
    """A rule with one condition: raised once it has held for the hold time (and the minimum number of
    samples), cleared once false for the clear time."""
    rule = RULE_INDEX[spec.code]
    (condition,) = spec.holds
    j = CONDITION_INDEX[condition.name]
    runs = true_runs(c, ctx, st, j)
    held_by = ctx.slot[runs.pos]
    hold = by_rule_set(params.hold_ms[:, j], params, held_by)
    min_count = by_rule_set(params.min_samples[:, j], params, held_by)
    rpos, rsince = first_ready(runs, ctx.ts, hold, min_count)
    keep = enabled[ctx.slot[rpos]]
    rpos, rsince = rpos[keep], rsince[keep]
    fr = false_runs(c, runs, ctx, st, j, clear_wanted(rule, ctx, st, rpos))
    cpos, csince = first_clear(fr, ctx, by_rule_set(params.clear_ms[:, rule], params, ctx.gslot[fr[1]]))
    resolve(rule, rpos, rsince, cpos, csince, ctx, st, out)
    carry_runs(c, runs, ctx, st, j)
