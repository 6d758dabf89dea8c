"""The pure, vectorized rule engine: columnar samples and explicit state in, detections and new state out.

No I/O and no clock here. :func:`evaluate` takes a batch of samples of many terminals (in arrival
order), the per-terminal state arrays (:class:`State`, indexed by terminal *slot*) and the
per-slot thresholds (:class:`SlotParams`), and returns the raise/clear detections. It never
loops over samples in Python: per rule it computes a dense boolean condition, then works on the
sparse positions where the condition holds (runs, hold times, clear times) with sorted-array
operations, carrying each terminal's run state across batch boundaries.

Event time and order. A terminal's samples are evaluated in (ts, arrival) order once they have
passed its watermark; until then they wait in ``State.pending``. With message sequence numbers
(the live path) the watermark is the newest sample of the terminal's gap-free run of messages
(``seq_bound``, kept by :mod:`liftwatch.rules.continuity`), so in-order terminals wait for
nothing; without them (replay) it is the newest ts seen - the allowed lateness. A sample older
than what was already released when it arrives is *late*: counted, not evaluated here, and
returned in ``Detections.late_samples`` (the processor judges them in its late lane). With these
definitions the evaluated sequence, hence every detection, does not depend on how the stream is
cut into batches (see docs/rules.md for the argument).

Rule semantics, shared by every hold rule: a *run* is a maximal sequence of consecutive samples
where the condition holds; it starts at the ts of its first sample (``since``). A fault is raised
at the first sample of a run with ``ts - since >= hold`` (and at least ``min_samples`` samples),
if it is not already active. An active fault clears at the first sample where the condition has
been false for ``clear_after`` (measured from the first false sample).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from liftwatch.rules.catalog import CONDITIONS, SAMPLE_RULES
from liftwatch.rules.columns import (
    CLOSED,
    CLOSING,
    I64,
    INSPECTION,
    IP,
    MAINTENANCE,
    NORMAL,
    OPEN,
    OPENING,
    B,
    Columns,
)
from liftwatch.rules.thresholds import RuleSet, Thresholds
from liftwatch.schema import FaultCode

NONE = np.int64(-(2**62))
"""'No value' for event-time state (older than any real timestamp)."""
DAY_MS = 86_400_000

RULES: tuple[FaultCode, ...] = tuple(spec.code for spec in SAMPLE_RULES)
"""Fault codes judged on samples, by rule index (the columns of the fault state ``active``)."""
RULE_INDEX: dict[FaultCode, int] = {code: rule for rule, code in enumerate(RULES)}
CONDITION_INDEX: dict[str, int] = {hold.name: j for j, (_spec, hold) in enumerate(CONDITIONS)}
"""Tracked conditions by name, by condition index (the columns of the run state ``cond/since/count``).
Trapped passenger has two raise conditions (between floors, at a landing) and one to clear by."""
N_COND = len(CONDITIONS)


def _section(rs: RuleSet, code: FaultCode) -> Any:
    """A rule's thresholds in a rule set."""
    return getattr(rs, code.value)


def _rule_hold_ms(rs: RuleSet) -> list[int]:
    """Hold time of each condition column (ms); a clear-only condition never raises by itself."""
    return [
        round(getattr(_section(rs, spec.code), hold.hold_param) * 1000) if hold.hold_param else 0
        for spec, hold in CONDITIONS
    ]


def _rule_clear_ms(rs: RuleSet) -> list[int]:
    return [round(_section(rs, code).clear_after_s * 1000) for code in RULES]


def _rule_enabled(rs: RuleSet) -> list[bool]:
    return [bool(_section(rs, code).enabled) for code in RULES]


@dataclass(frozen=True, slots=True)
class TerminalInfo:
    """What the registry says about a terminal's elevator."""

    registration_code: str
    rated_speed: float
    bottom_floor: int
    top_floor: int
    model: str | None = None


class SlotParams:
    """Per-slot registry facts and thresholds, as arrays the rules gather from.

    Rule sets (fleet-wide, then one per overridden elevator model) are small tables indexed by
    ``model_idx[slot]``; values needed densely (overspeed limit, floors) are precomputed per slot.
    """

    def __init__(self, thresholds: Thresholds, capacity: int = 0) -> None:
        self.thresholds = thresholds
        self.stopped_below = thresholds.notation.stopped_below_mps
        self.moving_from = thresholds.notation.moving_from_mps
        sets = [thresholds.default, *thresholds.models.values()]
        self.model_index = {name: i + 1 for i, name in enumerate(thresholds.models)}
        self.hold_ms = np.array([_rule_hold_ms(s) for s in sets], np.int64)
        self.min_count = np.array([s.overspeed.min_samples for s in sets], np.int64)
        self.clear_ms = np.array([_rule_clear_ms(s) for s in sets], np.int64)
        self.enabled = np.array([_rule_enabled(s) for s in sets], np.bool_)
        self.factor = np.array([s.overspeed.factor for s in sets], np.float64)
        self.dowm_speed_tab = np.array([s.door_open_while_moving.speed_mps for s in sets], np.float64)
        self.reversals = np.array([s.door_reopen_loop.reversals for s in sets], np.int64)
        self.window_ms = np.array([round(s.door_reopen_loop.window_s * 1000) for s in sets], np.int64)
        self.offline_ms = np.array([round(s.terminal_offline.after_s * 1000) for s in sets], np.int64)
        self.offline_enabled = np.array([s.terminal_offline.enabled for s in sets], np.bool_)
        self.hist_width = int(self.reversals.max())
        self.uniform = len(sets) == 1
        self.capacity = 0
        self.registered = np.zeros(0, np.bool_)
        self.model_idx = np.zeros(0, np.int32)
        self.os_limit = np.zeros(0, np.float64)
        self.top = np.zeros(0, np.int16)
        self.bottom = np.zeros(0, np.int16)
        self.dowm_speed = np.zeros(0, np.float64)
        self.registration: list[str | None] = []
        self.grow(capacity)

    def grow(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        extra = capacity - self.capacity
        self.registered = np.concatenate([self.registered, np.zeros(extra, np.bool_)])
        self.model_idx = np.concatenate([self.model_idx, np.zeros(extra, np.int32)])
        self.os_limit = np.concatenate([self.os_limit, np.full(extra, np.inf)])
        self.top = np.concatenate([self.top, np.full(extra, np.iinfo(np.int16).max, np.int16)])
        self.bottom = np.concatenate([self.bottom, np.full(extra, np.iinfo(np.int16).min, np.int16)])
        self.dowm_speed = np.concatenate([self.dowm_speed, np.full(extra, self.dowm_speed_tab[0])])
        self.registration.extend([None] * extra)
        self.capacity = capacity

    def assign(self, slot: int, info: TerminalInfo | None) -> None:
        """Set one slot's registry facts (None = unregistered terminal)."""
        if info is None:
            self.registered[slot] = False
            self.model_idx[slot] = 0
            self.os_limit[slot] = np.inf
            self.top[slot] = np.iinfo(np.int16).max
            self.bottom[slot] = np.iinfo(np.int16).min
            self.dowm_speed[slot] = self.dowm_speed_tab[0]
            self.registration[slot] = None
            return
        m = self.model_index.get(info.model or "", 0)
        self.registered[slot] = True
        self.model_idx[slot] = m
        self.os_limit[slot] = self.factor[m] * info.rated_speed
        self.top[slot] = info.top_floor
        self.bottom[slot] = info.bottom_floor
        self.dowm_speed[slot] = self.dowm_speed_tab[m]
        self.registration[slot] = info.registration_code


# --- state ------------------------------------------------------------------------------------

_STATE_FIELDS: dict[str, tuple[type[np.generic], Any]] = {
    # name: (dtype, fill value); one row per slot. Run state is one array per condition (cond<j>,
    # since<j>, count<j>) and fault state one per rule (active<r>): contiguous gathers are cheaper.
    "valid": (np.bool_, False),
    "max_ts": (np.int64, NONE),
    **{f"cond{j}": (np.bool_, False) for j in range(N_COND)},
    **{f"since{j}": (np.int64, NONE) for j in range(N_COND)},
    **{f"count{j}": (np.int64, 0) for j in range(N_COND)},
    **{f"active{r}": (np.bool_, False) for r in range(len(RULES))},
    "ons": (np.bool_, False),
    "last_door": (np.int8, -1),
    "hist_n": (np.int64, 0),
    "last_day": (np.int64, -1),
    "last_seen": (np.int64, NONE),
    "offline": (np.bool_, False),
    "offline_since": (np.int64, NONE),
    # Message-sequence continuity (docs/rules.md, "In-order terminals do not wait"): every sample
    # up to seq_bound belongs to a gap-free run of the terminal's messages and is released at once.
    "seq_next": (np.int64, -1),
    "seq_bound": (np.int64, NONE),
    "hole_since": (np.int64, NONE),
    # The seq of the first message seen (-1: none before it, or already accounted for) and its
    # newest sample: the messages before it were never judged here, so they are late, not copies.
    "seq_unseen_below": (np.int64, -1),
    "seq_unseen_newest": (np.int64, NONE),
}


@dataclass
class State:
    """Per-terminal state of every rule, one row per slot, plus the samples held back for lateness."""

    hist_width: int
    arrays: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)
    chunks: list[_Chunk] = field(default_factory=list)
    """Samples waiting for their terminal's watermark, in chunks (see :class:`_Chunk`)."""
    capacity: int = 0
    waiting: bool = False
    """Some held-back samples have passed their watermark but wait for the next batch (see
    ``DEFER_MIN_SAMPLES``); evaluating an empty batch releases them."""

    def __post_init__(self) -> None:
        if not self.arrays:
            for name, (dtype, fill) in _STATE_FIELDS.items():
                self.arrays[name] = np.full(0, fill, dtype)
            self.arrays["hist"] = np.full((0, self.hist_width), NONE, np.int64)

    def __getattr__(self, name: str) -> np.ndarray[Any, Any]:
        try:
            return self.__dict__["arrays"][name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(name) from None

    def cond(self, j: int) -> B:
        return self.arrays[f"cond{j}"]

    def since(self, j: int) -> I64:
        return self.arrays[f"since{j}"]

    def count(self, j: int) -> I64:
        return self.arrays[f"count{j}"]

    def active(self, rule: int) -> B:
        return self.arrays[f"active{rule}"]

    def grow(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        capacity = max(capacity, 2 * self.capacity, 1024)
        for name, array in self.arrays.items():
            dtype, fill = _STATE_FIELDS.get(name, (np.int64, NONE))
            bigger = np.full((capacity, *array.shape[1:]), fill, dtype)
            bigger[: array.shape[0]] = array
            self.arrays[name] = bigger
        self.capacity = capacity

    @property
    def pending(self) -> Columns:
        """The held-back samples as one batch sorted by (slot, ts, arrival)."""
        return _merge_all([c.samples for c in self.chunks])

    @pending.setter
    def pending(self, samples: Columns) -> None:
        self.chunks = [_Chunk(samples)] if len(samples) else []

    def held(self, slots: IP) -> Columns:
        """The held-back samples of some slots (for a checkpoint), sorted by (slot, ts, arrival)."""
        return _merge_all([c.samples.take(np.isin(c.samples.slot, slots)) for c in self.chunks])

    def copy(self) -> State:
        arrays = {k: v.copy() for k, v in self.arrays.items()}
        return State(self.hist_width, arrays, list(self.chunks), self.capacity, self.waiting)

    def rows(self, slots: IP) -> dict[str, np.ndarray[Any, Any]]:
        """The state rows of some slots (for a checkpoint)."""
        return {name: array[slots] for name, array in self.arrays.items()}

    def reset(self, slots: IP) -> None:
        """Forget the state of some slots (their partition moved to another process)."""
        for name, array in self.arrays.items():
            _dtype, fill = _STATE_FIELDS.get(name, (np.int64, NONE))
            array[slots] = fill
        kept = []
        for chunk in self.chunks:
            gone = np.isin(chunk.samples.slot, slots)
            kept.append(_Chunk(chunk.samples.take(~gone), chunk.deferred) if gone.any() else chunk)
        self.chunks = [c for c in kept if len(c.samples)]

    def hold(self, samples: Columns) -> None:
        """Add held-back samples of terminals that have none (a restored checkpoint), keeping them sorted."""
        if len(samples):
            ordered = samples.take(np.lexsort((samples.ts, samples.slot)))
            # Some may have passed their watermark and already waited a batch before the checkpoint:
            # they may not wait again, and the next (even empty) batch looks at them.
            self.chunks = [_Chunk(_merge_all([self.pending, ordered]), True)]
            self.waiting = True

    def load_rows(self, slots: IP, rows: dict[str, np.ndarray[Any, Any]]) -> None:
        """Write checkpointed rows back into some slots (hist is re-fitted to the current width)."""
        for name, array in self.arrays.items():
            if name not in rows:
                continue
            value = rows[name]
            if name == "hist" and value.shape[1] != self.hist_width:
                fitted = np.full((len(slots), self.hist_width), NONE, np.int64)
                width = min(self.hist_width, value.shape[1])
                if width:
                    fitted[:, -width:] = value[:, -width:]
                value = fitted
            array[slots] = value
        if "hist_n" in rows:
            self.arrays["hist_n"][slots] = np.minimum(self.arrays["hist_n"][slots], self.hist_width)


# --- results ----------------------------------------------------------------------------------


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


# --- helpers on sorted batches ------------------------------------------------------------------


@dataclass(slots=True)
class _Ctx:
    """A batch sorted by (slot, ts), with its per-terminal groups."""

    slot: np.ndarray[Any, np.dtype[np.int32]]
    ts: I64
    gstart: IP
    gend: IP
    gslot: IP
    key: I64
    tmin: int
    span: int
    fresh: B
    """Groups whose terminal has no carried state yet."""
    any_fresh: bool
    row_group: IP
    """Group index of every row."""
    marks: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)

    def prev(self, name: str, mask: B, true_pos: IP, pos: IP) -> IP:
        """For each position, the last position strictly before it where ``mask`` (true at ``true_pos``) holds, or -1.

        Few positions: a binary search each. Many (e.g. one per terminal): one running maximum over
        the batch, built once per mask and batch.
        """
        n = mask.shape[0]
        if true_pos.shape[0] == 0:
            return np.full(pos.shape[0], -1, np.intp)
        if pos.shape[0] * 16 <= n:
            return _prev_index(true_pos, pos)
        mark = self.marks.get(name)
        if mark is None:
            dtype = np.int32 if n < 2**31 - 1 else np.intp
            mark = np.full(n + 1, -1, dtype)
            mark[true_pos + 1] = true_pos
            np.maximum.accumulate(mark, out=mark)
            self.marks[name] = mark
        found: IP = mark[pos]
        return found

    def true_pos(self, name: str, mask: B) -> IP:
        """The positions where a mask holds (computed once per batch)."""
        key = f"{name}:pos"
        cached = self.marks.get(key)
        if cached is None:
            cached = self.marks[key] = np.flatnonzero(mask)
        return cached

    def per_row(self, values: np.ndarray[Any, Any]) -> Any:
        """A per-group value repeated for every row of its group (cheaper than a gather by row)."""
        return np.repeat(values, self.gend - self.gstart)

    def gid(self, pos: IP) -> IP:
        return self.row_group[pos]

    def search(self, gid: IP, ts: I64) -> IP:
        """First position in group ``gid`` with a ts >= the given one (may be past the group)."""
        target = gid * self.span + np.clip(ts - self.tmin, -1, self.span)
        return np.searchsorted(self.key, target, "left")


def _bounds(slot: np.ndarray[Any, Any]) -> tuple[IP, IP]:
    """Start and end of each run of equal slots."""
    n = slot.shape[0]
    new_group = np.empty(n, np.bool_)
    new_group[0] = True
    np.not_equal(slot[1:], slot[:-1], out=new_group[1:])
    gstart = np.flatnonzero(new_group)
    gend = np.append(gstart[1:], n)
    return gstart, gend


def _row_group(gstart: IP, gend: IP) -> IP:
    """The run index of every row."""
    return np.repeat(np.arange(gstart.shape[0], dtype=np.intp), gend - gstart)


def _groups(slot: np.ndarray[Any, Any]) -> tuple[IP, IP, IP]:
    """Start and end of each run of equal slots, and the run index of every row."""
    gstart, gend = _bounds(slot)
    return gstart, gend, _row_group(gstart, gend)


def _group_key(gid: IP, ts: I64) -> tuple[I64, int, int]:
    """A key increasing with (group, ts), for searchsorted."""
    tmin = int(ts.min())
    span = int(ts.max()) - tmin + 2
    key = gid * span
    key += ts
    key -= tmin
    return key, tmin, span


def _prev_index(sorted_pos: IP, pos: IP) -> IP:
    """For each position, the largest element of ``sorted_pos`` strictly below it (-1 if none)."""
    if sorted_pos.shape[0] == 0:
        return np.full(pos.shape[0], -1, np.intp)
    i = np.searchsorted(sorted_pos, pos, "left") - 1
    return np.where(i >= 0, sorted_pos[np.maximum(i, 0)], -1)


def _next_index(sorted_pos: IP, pos: IP, side: str, default: IP) -> IP:
    """For each position, the smallest element of ``sorted_pos`` >= (left) or > (right) it, else default."""
    i = np.searchsorted(sorted_pos, pos, side)  # type: ignore[call-overload]
    if sorted_pos.shape[0] == 0:
        return default.copy()
    found = i < sorted_pos.shape[0]
    return np.where(found, sorted_pos[np.minimum(i, sorted_pos.shape[0] - 1)], default)


@dataclass(slots=True)
class _Runs:
    pos: IP
    gid: IP
    since: I64
    count: I64
    anchor: IP
    end: B


def _runs(c: B, ctx: _Ctx, st: State, j: int) -> _Runs:
    """The true runs of condition ``c``: since and sample count at every true position."""
    pos = np.flatnonzero(c)
    if pos.shape[0] == 0:
        e = np.zeros(0, np.intp)
        return _Runs(e, e, np.zeros(0, np.int64), np.zeros(0, np.int64), e, np.zeros(0, np.bool_))
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
        carried = st.valid[fslots] & st.cond(j)[fslots]
        base_since[fk] = np.where(carried, st.since(j)[fslots], base_since[fk])
        base_count[fk] = np.where(carried, st.count(j)[fslots], 0)
    since = base_since[anchor]
    count = k - anchor + 1 + base_count[anchor]
    end = np.ones(pos.shape[0], np.bool_)
    end[:-1] = anchor_mask[1:]
    return _Runs(pos, gid, since, count, anchor, end)


def _first_ready(runs: _Runs, ts: I64, hold: I64 | int, min_count: I64 | int = 1) -> tuple[IP, I64]:
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


def _lead_since(groups: IP, ctx: _Ctx, st: State, j: int) -> I64:
    """Since of the false run each group starts with (from the carried state when it continues)."""
    slots = ctx.gslot[groups]
    carried = st.valid[slots] & ~st.cond(j)[slots]
    return np.where(carried, st.since(j)[slots], ctx.ts[ctx.gstart[groups]])


def _false_runs(c: B, runs: _Runs, ctx: _Ctx, st: State, j: int, want: B) -> tuple[IP, IP, I64, IP]:
    """Start position, group, since and exclusive end of the false runs of ``c`` in the ``want`` groups."""
    wg = np.flatnonzero(want)
    lg = wg[~c[ctx.gstart[wg]]]
    ls = ctx.gstart[lg]
    lsince = _lead_since(lg, ctx, st, j)
    lend = np.minimum(_next_index(runs.pos, ls, "left", ctx.gend[lg]), ctx.gend[lg])
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


def _first_clear(false_runs: tuple[IP, IP, I64, IP], ctx: _Ctx, clear_ms: I64 | int) -> tuple[IP, I64]:
    """Per false run, the first position where it has lasted ``clear_ms``."""
    start, gid, since, end = false_runs
    if start.shape[0] == 0:
        return start, since
    at = np.maximum(ctx.search(gid, since + clear_ms), start)
    ok = at < end
    return at[ok], since[ok]


def _carry(c: B, runs: _Runs, ctx: _Ctx, st: State, j: int) -> None:
    """Store the run state at the end of the batch of the terminals whose state changed.

    A terminal whose condition was false before and stayed false throughout keeps its state.
    """
    carried = st.cond(j)
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
    st.cond(j)[slots] = lc
    st.since(j)[slots] = since
    st.count(j)[slots] = count


@dataclass(slots=True)
class _Out:
    rule: list[np.ndarray[Any, Any]] = field(default_factory=list)
    raised: list[np.ndarray[Any, Any]] = field(default_factory=list)
    pos: list[np.ndarray[Any, Any]] = field(default_factory=list)
    since: list[np.ndarray[Any, Any]] = field(default_factory=list)


def _resolve(
    rule: int, raise_pos: IP, raise_since: I64, clear_pos: IP, clear_since: I64, ctx: _Ctx, st: State, out: _Out
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
    active = st.active(rule)
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


def _clear_wanted(rule: int, ctx: _Ctx, st: State, raise_pos: IP) -> B:
    """Groups where a clear may matter: the fault is active, or is raised in this batch."""
    active = st.active(rule)
    if raise_pos.shape[0] == 0 and not active.any():
        return np.zeros(ctx.gstart.shape[0], np.bool_)
    want = active[ctx.gslot]
    if raise_pos.shape[0]:
        want[ctx.gid(raise_pos)] = True
    return want


def _hold_rule(
    code: FaultCode,
    c: B,
    ctx: _Ctx,
    st: State,
    params: SlotParams,
    out: _Out,
    enabled: B,
    min_count: I64 | int = 1,
) -> None:
    """A rule with one condition: raised once it has held for the hold time, cleared once false for the clear time."""
    rule = RULE_INDEX[code]
    j = CONDITION_INDEX[code.value]
    runs = _runs(c, ctx, st, j)
    hold = _table(params.hold_ms[:, j], params, ctx.slot[runs.pos])
    rpos, rsince = _first_ready(runs, ctx.ts, hold, min_count)
    keep = enabled[ctx.slot[rpos]]
    rpos, rsince = rpos[keep], rsince[keep]
    fr = _false_runs(c, runs, ctx, st, j, _clear_wanted(rule, ctx, st, rpos))
    cpos, csince = _first_clear(fr, ctx, _table(params.clear_ms[:, rule], params, ctx.gslot[fr[1]]))
    _resolve(rule, rpos, rsince, cpos, csince, ctx, st, out)
    _carry(c, runs, ctx, st, j)


def _table(column: np.ndarray[Any, Any], params: SlotParams, slots: np.ndarray[Any, Any]) -> Any:
    """A per-rule-set parameter for some slots (a scalar when no model overrides exist)."""
    if params.uniform:
        return column[0].item()
    return column[params.model_idx[slots]]


# --- evaluation -------------------------------------------------------------------------------


def _slot_order(slot: np.ndarray[Any, Any]) -> IP:
    """A stable ordering by slot (arrival order kept within a terminal).

    Timsort is fast on the usual layouts (long ascending runs: a round of the fleet, a partition's
    records); a batch of short runs (shuffled terminals) is sorted by two 16-bit radix passes instead.
    """
    n = slot.shape[0]
    if n < 65_536 or int(np.count_nonzero(slot[1:] < slot[:-1])) < n // 256:
        return np.argsort(slot, kind="stable")
    low = np.argsort((slot & 0xFFFF).astype(np.uint16), kind="stable")
    high = np.argsort((slot[low] >> 16).astype(np.uint16), kind="stable")
    ordered: IP = low[high]
    return ordered


def _merge_all(parts: list[Columns]) -> Columns:
    """Batches sorted by (slot, ts), in arrival order, merged into one; on a tie the earlier arrival comes first."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Columns.empty()
    if len(parts) == 1:
        return parts[0]
    both = Columns.concat(parts)
    # Usually a terminal's later arrivals are also later in time: merging by slot alone is enough.
    merged = both.take(np.argsort(both.slot, kind="stable"))  # a few sorted runs: timsort merges them
    ts, slot = merged.ts, merged.slot
    if not bool(np.any((ts[1:] < ts[:-1]) & (slot[1:] == slot[:-1]))):
        return merged
    tmin = int(both.ts.min())
    span = int(both.ts.max()) - tmin + 1
    if (int(both.slot.max()) + 1) * span < 2**62:
        key = both.slot.astype(np.int64)
        key *= span
        key += both.ts
        key -= tmin
        order = np.argsort(key, kind="stable")
    else:  # a key would overflow (timestamps decades apart): sort by the two columns
        order = np.lexsort((both.ts, both.slot))
    return both.take(order)


DEFER_MIN_SAMPLES = 65_536
"""A held-back chunk this large that has only partly passed the watermark waits (once) for the rest.

Releasing a chunk whole hands its samples to the rules as they are; splitting it costs two copies
now and a merge with the rest of it later. Under load the rest passes by the next batch, so the
wait is one batch; an empty batch (the service evaluates one when a poll brings nothing) releases
what waits. Small chunks are split at once: light load adds no wait at all (docs/rules.md).
"""
MAX_CHUNKS = 16
"""Beyond this many held-back chunks (many small batches), the smallest neighbouring two are merged."""


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Held-back samples of one or more batches, sorted by (slot, ts, arrival).

    The chunks of ``State.chunks`` are in arrival order and *in order*: a terminal's samples in a
    later chunk are not older than its samples in an earlier one. So a terminal's samples that
    passed its watermark are a prefix of its samples across the chunks, and releasing whole
    chunks (or the passed part of each) keeps every terminal's (ts, arrival) order.
    """

    samples: Columns
    deferred: bool = False
    """Its release already waited once: a partly passed chunk is split now."""


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
    order = _slot_order(batch.slot)
    s = batch.slot[order]
    t = batch.ts[order]
    gstart, gend = _bounds(s)
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
        key, tmin, span = _group_key(sub_gid, t[rows])
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
        gid = _row_group(gstart, gend)[keep]
        order, s, t = order[keep], s[keep], t[keep]
        first = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1]))) if len(t) else np.zeros(0, np.intp)
        disordered = s[first[t[first] < carry_max[gid[first]]]]
    elif not in_order:
        disordered = gslot[t[gstart] < carry_max]  # t is in (ts, arrival) order now
    fresh = Columns(s, t, np.take(batch.speed, order), np.take(batch.floor, order), np.take(batch.code, order))
    return fresh, refused, disordered


def _slot_rows(samples: Columns, slots: np.ndarray[Any, Any]) -> tuple[IP, IP]:
    """Start and end of the rows of each of ``slots`` (sorted) in a batch sorted by slot (equal: none)."""
    return np.searchsorted(samples.slot, slots, "left"), np.searchsorted(samples.slot, slots, "right")


def _pull(samples: Columns, slots: np.ndarray[Any, Any]) -> tuple[Columns, Columns]:
    """The rows of the other slots and the rows of ``slots`` (sorted) of a batch sorted by slot."""
    lo, hi = _slot_rows(samples, slots)
    held = hi > lo
    if not held.any():
        return samples, Columns.empty()
    # slots are distinct, so their ranges are disjoint: +1 at each start, -1 at each end
    edges = np.zeros(len(samples) + 1, np.int8)
    edges[lo[held]] = 1
    edges[hi[held]] -= 1
    inside = np.cumsum(edges[:-1], dtype=np.int8) > 0
    return samples.take(~inside), samples.take(inside)


def _release(
    batch: Columns, st: State, lateness_ms: int, flush: bool, floor: I64 | None = None
) -> tuple[Columns, Columns]:
    """The samples now past their terminal's watermark, sorted by (slot, ts), and the late ones.

    Only the new batch is sorted here; the held-back chunks are already sorted: each is released
    whole when all of it has passed, split when part of it has (or, when large, left for one more
    batch), and only the released parts are merged (see :class:`_Chunk`).
    """
    late = Columns.empty()
    chunks = st.chunks
    if len(batch):
        fresh, late, disordered = _admit(batch, st, lateness_ms, floor)
        if disordered.shape[0] and chunks:
            chunks, fresh = _reorder_terminals(chunks, fresh, disordered)
        if len(fresh):
            chunks = [*chunks, _Chunk(fresh)]
    if flush:
        st.chunks = []
        st.waiting = False
        return _merge_all([c.samples for c in chunks]), late
    while len(chunks) > MAX_CHUNKS:
        # neighbours only: merging two chunks next to each other keeps the chunks in order
        pair = min(range(len(chunks) - 1), key=lambda i: len(chunks[i].samples) + len(chunks[i + 1].samples))
        first, second = chunks[pair], chunks[pair + 1]
        both = _Chunk(_merge_all([first.samples, second.samples]), first.deferred or second.deferred)
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
    kept: list[_Chunk] = []
    waiting = False
    for i, chunk in enumerate(chunks):
        samples, count = chunk.samples, counts[i]
        if count == 0:
            kept.append(chunk)
        elif waiting:
            # an earlier chunk waits: so do the samples of this one (they may be of the same terminals)
            kept.append(_Chunk(samples, True))
        elif count == len(samples):
            released.append(samples)
        elif may_wait[i] and len(samples) >= DEFER_MIN_SAMPLES:
            kept.append(_Chunk(samples, True))
            waiting = True
        else:
            out, rest = _split(samples, passed[i])
            released.append(out)
            kept.append(_Chunk(rest, True))
    st.chunks = kept
    st.waiting = waiting
    return _merge_all(released), late


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


def _reorder_terminals(
    chunks: list[_Chunk], fresh: Columns, slots: np.ndarray[Any, Any]
) -> tuple[list[_Chunk], Columns]:
    """Put new samples older than held ones of their terminals (``slots``) in order with those.

    From the first chunk holding a sample of such a terminal newer than its oldest new one, these
    terminals' held samples move, merged with their new ones, to a chunk of their own at that
    chunk's place: chunks before it hold only older samples of theirs, chunks after it none. Usually
    only the last chunk or two hold such samples, so only they are copied.
    """
    oldest_new = fresh.ts[_slot_rows(fresh, slots)[0]]
    first = len(chunks)
    for i, chunk in enumerate(chunks):
        lo, hi = _slot_rows(chunk.samples, slots)
        held = hi > lo
        # a terminal's newest sample in the chunk is the last of its rows (sorted by ts)
        if np.any(chunk.samples.ts[hi[held] - 1] > oldest_new[held]):
            first = i
            break
    pulled: list[Columns] = []
    moved: list[_Chunk] = []
    deferred = False
    for chunk in chunks[first:]:
        rest, theirs = _pull(chunk.samples, slots)
        if len(theirs):
            pulled.append(theirs)
            deferred = deferred or chunk.deferred
        if len(rest):
            moved.append(_Chunk(rest, chunk.deferred) if len(theirs) else chunk)
    fresh, theirs = _pull(fresh, slots)
    merged = _Chunk(_merge_all([*pulled, theirs]), deferred)
    return [*chunks[:first], merged, *moved], fresh


def _split(samples: Columns, mask: B) -> tuple[Columns, Columns]:
    """The rows where ``mask`` holds and the others."""
    return samples.take(mask), samples.take(~mask)


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
    ev, late_samples = _release(batch, st, lateness_ms, flush, floor)
    late = len(late_samples)
    empty_i = np.zeros(0, np.intp)
    if len(ev) == 0:
        return _no_detections(ev, empty_i, late_samples)
    gstart, gend, row_group = _groups(ev.slot)
    key, tmin, span = _group_key(row_group, ev.ts)
    gslot = ev.slot[gstart].astype(np.intp)
    fresh = ~st.valid[gslot]
    ctx = _Ctx(ev.slot, ev.ts, gstart, gend, gslot, key, tmin, span, fresh, bool(fresh.any()), row_group)
    out = _Out()
    enabled_rs = params.enabled  # (rule sets, rules)
    registered = params.registered

    def enabled(code: FaultCode) -> B:
        rule = RULE_INDEX[code]
        if params.uniform:
            return registered if bool(enabled_rs[0, rule]) else np.zeros_like(registered)
        mask: B = registered & enabled_rs[params.model_idx, rule]
        return mask

    speed, door, mode, dz, occ = ev.speed, ev.door, ev.mode, ev.door_zone, ev.occupied
    stopped = speed < params.stopped_below
    moving = speed >= params.moving_from
    normal = mode == NORMAL
    closed = door == CLOSED

    # trapped passenger: between floors (A), at a landing with the door not opened since the stop (B)
    base = occ & stopped & closed & normal
    cond_a = base & ~dz
    cond_b = base & dz
    stop_marks = (~stopped, stopped & ~closed)
    pb = np.flatnonzero(cond_b)
    if pb.shape[0]:
        cond_b[pb[_opened_since_stop(pb, ctx, stop_marks, st, inclusive=False)]] = False
    _trapped(cond_a, cond_b, ctx, st, params, out, enabled(FaultCode.TRAPPED_PASSENGER))
    # carry "door opened since the car stopped" to the next batch
    last = gend - 1
    st.ons[ctx.gslot] = stopped[last] & _opened_since_stop(last, ctx, stop_marks, st, inclusive=True)

    os_limit = ctx.per_row(params.os_limit[gslot])
    min_count = _table(params.min_count, params, ev.slot[np.flatnonzero(speed > os_limit)])
    overspeed = FaultCode.OVERSPEED
    _hold_rule(overspeed, speed > os_limit, ctx, st, params, out, enabled(overspeed), min_count)

    dowm_speed = params.dowm_speed[0] if params.uniform else ctx.per_row(params.dowm_speed[gslot])
    cond = ~closed & ((speed >= dowm_speed) | (moving & ~dz)) & (mode != INSPECTION) & (mode != MAINTENANCE)
    door_open_while_moving = FaultCode.DOOR_OPEN_WHILE_MOVING
    _hold_rule(door_open_while_moving, cond, ctx, st, params, out, enabled(door_open_while_moving))

    _hold_rule(
        FaultCode.OVERTRAVEL_TOP,
        (ev.limit_up | (ev.floor > ctx.per_row(params.top[gslot]))) & normal,
        ctx,
        st,
        params,
        out,
        enabled(FaultCode.OVERTRAVEL_TOP),
    )
    _hold_rule(
        FaultCode.OVERTRAVEL_BOTTOM,
        (ev.limit_down | (ev.floor < ctx.per_row(params.bottom[gslot]))) & normal,
        ctx,
        st,
        params,
        out,
        enabled(FaultCode.OVERTRAVEL_BOTTOM),
    )
    stopped_outside = FaultCode.STOPPED_OUTSIDE_DOOR_ZONE
    _hold_rule(stopped_outside, stopped & ~dz & ~occ & normal, ctx, st, params, out, enabled(stopped_outside))
    safety = FaultCode.SAFETY_CIRCUIT_OPEN
    _hold_rule(safety, ~ev.safety & normal, ctx, st, params, out, enabled(safety))
    _hold_rule(
        FaultCode.DOOR_REOPEN_LOOP,
        _reopen_condition(ev, ctx, st, params, moving | ~normal, normal),
        ctx,
        st,
        params,
        out,
        enabled(FaultCode.DOOR_REOPEN_LOOP),
    )
    held_open = FaultCode.DOOR_HELD_OPEN
    _hold_rule(held_open, (door == OPEN) & stopped & normal, ctx, st, params, out, enabled(held_open))
    power = FaultCode.POWER_FAILURE
    _hold_rule(power, ~ev.power, ctx, st, params, out, enabled(power))
    alarm = FaultCode.ALARM_BUTTON
    _hold_rule(alarm, ev.alarm & normal, ctx, st, params, out, enabled(alarm))

    st.last_door[ctx.gslot] = door[last]
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


def _opened_since_stop(pos: IP, ctx: _Ctx, marks: tuple[B, B], st: State, *, inclusive: bool) -> B:
    """Whether the door was not closed at some sample of the current stop, up to ``pos``."""
    gs = ctx.gstart[ctx.gid(pos)]
    not_stopped, opened = marks
    upto = pos + 1 if inclusive else pos
    last_move = ctx.prev("not_stopped", not_stopped, ctx.true_pos("not_stopped", not_stopped), upto)
    last_open = ctx.prev("opened", opened, ctx.true_pos("opened", opened), upto)
    slots = ctx.slot[pos]
    in_batch = (last_open > last_move) & (last_open >= gs)
    carried = (last_move < gs) & (last_open < gs) & st.valid[slots] & st.ons[slots]
    result: B = in_batch | carried
    return result


def _trapped(cond_a: B, cond_b: B, ctx: _Ctx, st: State, params: SlotParams, out: _Out, enabled: B) -> None:
    """Trapped passenger: two raise conditions with their own timers (a, between floors; b, at a landing),
    one raise, cleared when neither has held for the clear time."""
    rule = RULE_INDEX[FaultCode.TRAPPED_PASSENGER]
    between_floors = CONDITION_INDEX["trapped_passenger.between_floors"]
    at_landing = CONDITION_INDEX["trapped_passenger.at_landing"]
    either = CONDITION_INDEX["trapped_passenger"]
    runs_a = _runs(cond_a, ctx, st, between_floors)
    runs_b = _runs(cond_b, ctx, st, at_landing)
    cond = cond_a | cond_b
    runs = _runs(cond, ctx, st, either)
    ra, sa = _first_ready(runs_a, ctx.ts, _table(params.hold_ms[:, between_floors], params, ctx.slot[runs_a.pos]))
    rb, sb = _first_ready(runs_b, ctx.ts, _table(params.hold_ms[:, at_landing], params, ctx.slot[runs_b.pos]))
    rpos = np.concatenate([ra, rb])
    rsince = np.concatenate([sa, sb])
    keep = enabled[ctx.slot[rpos]]
    rpos, rsince = rpos[keep], rsince[keep]
    fr = _false_runs(cond, runs, ctx, st, either, _clear_wanted(rule, ctx, st, rpos))
    cpos, csince = _first_clear(fr, ctx, _table(params.clear_ms[:, rule], params, ctx.gslot[fr[1]]))
    _resolve(rule, rpos, rsince, cpos, csince, ctx, st, out)
    for c, r, j in ((cond_a, runs_a, between_floors), (cond_b, runs_b, at_landing), (cond, runs, either)):
        _carry(c, r, ctx, st, j)


def _reopen_condition(ev: Columns, ctx: _Ctx, st: State, params: SlotParams, reset: B, normal: B) -> B:
    """True where >= k door reversals (closing -> opening/open) happened within the window, car not departed.

    ``reset`` marks the samples that start the count afresh: the car moving (a departure) or a mode
    other than normal (a technician working the door is not a reopen loop).
    """
    moving = reset
    n = len(ev)
    door = ev.door
    width = st.hist_width
    opening = np.flatnonzero((door == OPENING) | (door == OPEN))
    moves = np.flatnonzero(moving)
    if opening.shape[0]:
        og = ctx.gid(opening)
        first = opening == ctx.gstart[og]
        prev_door = np.where(first, st.last_door[ctx.slot[opening]], door[np.maximum(opening - 1, 0)])
        rev = opening[(prev_door == CLOSING) & ~moving[opening]]
    else:
        rev = opening
    slots_all = ctx.gslot
    hist_n = st.hist_n[slots_all]
    hist = st.hist
    k_g = _table(params.reversals, params, slots_all)
    k_g = np.broadcast_to(np.asarray(k_g, np.int64), slots_all.shape)
    g_count = ctx.gstart.shape[0]
    starts: list[IP] = []
    wts: list[I64] = []
    ends: list[IP] = []
    if rev.shape[0]:
        rg = ctx.gid(rev)
        gs = ctx.gstart[rg]
        last_move = ctx.prev("reset", moving, moves, rev)
        moved = last_move >= gs
        epoch_start = np.where(moved, last_move + 1, gs)
        t = np.arange(rev.shape[0])
        t0 = np.searchsorted(rev, epoch_start, "left")
        m = t - t0 + 1
        k = k_g[rg]
        w = np.full(rev.shape[0], NONE, np.int64)
        inb = m >= k
        w[inb] = ctx.ts[rev[(t - k + 1)[inb]]]
        need = k - m
        from_carry = ~inb & ~moved & st.valid[ctx.slot[rev]] & (hist_n[rg] >= need)
        w[from_carry] = hist[slots_all[rg[from_carry]], width - need[from_carry]]
        has = w != NONE
        s_r = rev[has]
        g_r = rg[has]
        e = np.minimum(ctx.gend[g_r], _next_index(rev, s_r, "right", ctx.gend[g_r]))
        e = np.minimum(e, _next_index(moves, s_r, "left", ctx.gend[g_r]))
        e = np.minimum(e, ctx.search(g_r, w[has] + _arr(params.window_ms, params, ctx.gslot[g_r])))
        starts.append(s_r)
        wts.append(w[has])
        ends.append(e)
    # group start: the carried reversals may already satisfy the rule
    pg = np.flatnonzero(st.valid[slots_all] & (hist_n >= k_g))
    if pg.shape[0]:
        s_p = ctx.gstart[pg]
        w_p = hist[slots_all[pg], width - k_g[pg]]
        e = np.minimum(ctx.gend[pg], _next_index(rev, s_p, "left", ctx.gend[pg]))
        e = np.minimum(e, _next_index(moves, s_p, "left", ctx.gend[pg]))
        e = np.minimum(e, ctx.search(pg, w_p + _arr(params.window_ms, params, ctx.gslot[pg])))
        starts.append(s_p)
        wts.append(w_p)
        ends.append(e)
    _carry_reversals(rev, moves, moving, ctx, st, hist_n, g_count)
    cond = np.zeros(n, np.bool_)
    if starts:
        s_all = np.concatenate(starts)
        e_all = np.concatenate(ends)
        ok = s_all < e_all
        if ok.any():
            d = np.bincount(s_all[ok], minlength=n + 1) - np.bincount(e_all[ok], minlength=n + 1)
            cond = (np.cumsum(d[:n]) > 0) & normal
    return cond


def _arr(column: np.ndarray[Any, Any], params: SlotParams, slots: np.ndarray[Any, Any]) -> Any:
    return column[0] if params.uniform else column[params.model_idx[slots]]


def _carry_reversals(rev: IP, moves: IP, moving: B, ctx: _Ctx, st: State, hist_n: I64, g_count: int) -> None:
    """Keep, per terminal, the last reversal times since the car last moved (right-aligned)."""
    width = st.hist_width
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
    tail_n = np.bincount(tg, minlength=g_count)
    old_n = np.where(moved | ~st.valid[ctx.gslot], 0, hist_n)
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
        ext = np.concatenate([st.hist[slots], tail_mat], axis=1)
        st.hist[slots] = ext[np.arange(changed.shape[0])[:, None], np.arange(width)[None, :] + shift[:, None]]
    st.hist_n[slots] = new_n[changed]


def _unregistered(ctx: _Ctx, st: State, registered: B, day_offset_ms: int) -> IP:
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
