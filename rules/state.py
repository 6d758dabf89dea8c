"""Per-terminal rule state: one row per terminal slot, typed columns, and the samples held back.

The engine (:mod:`liftwatch.rules.engine`) reads and writes these columns in place, batch after
batch; the processor checkpoints some slots' rows (:meth:`State.rows`) and loads them back
(:meth:`State.load_rows`). Rows are saved under column *names* (``cond.trapped_passenger``,
``active.overspeed``), not positions, so a fault code added to the catalog leaves older
checkpoints readable; :data:`V3_NAMES` reads checkpoints of version 3 and before, which numbered
the rule columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from liftwatch.rules.batches import merge_all
from liftwatch.rules.catalog import CONDITIONS, SAMPLE_RULES
from liftwatch.rules.columns import I64, IP, B, Columns
from liftwatch.schema import FaultCode

NONE = np.int64(-(2**62))
"""'No value' for event-time state (older than any real timestamp)."""

RULES: tuple[FaultCode, ...] = tuple(spec.code for spec in SAMPLE_RULES)
"""Fault codes judged on samples, by rule index (the columns of the fault state ``active``)."""
RULE_INDEX: dict[FaultCode, int] = {code: rule for rule, code in enumerate(RULES)}
CONDITION_NAMES: tuple[str, ...] = tuple(hold.name for _spec, hold in CONDITIONS)
"""Tracked conditions, by condition index (the columns of the run state ``cond/since/count``).
Trapped passenger has two raise conditions (between floors, at a landing) and one to clear by."""
CONDITION_INDEX: dict[str, int] = {name: j for j, name in enumerate(CONDITION_NAMES)}

_PER_SLOT: dict[str, tuple[type[np.generic], Any]] = {
    # name: (dtype, fill value) of the columns that are one value per slot
    "valid": (np.bool_, False),
    "max_ts": (np.int64, NONE),
    "door_opened_since_stop": (np.bool_, False),
    "last_door": (np.int8, -1),
    "reversal_count": (np.int64, 0),
    "last_day": (np.int64, -1),
    "last_seen": (np.int64, NONE),
    "offline": (np.bool_, False),
    "offline_since": (np.int64, NONE),
    "seq_next": (np.int64, -1),
    "seq_bound": (np.int64, NONE),
    "hole_since": (np.int64, NONE),
    "seq_unseen_below": (np.int64, -1),
    "seq_unseen_newest": (np.int64, NONE),
}
# Run state is one array per condition and fault state one per rule: contiguous gathers are cheaper.
_PER_CONDITION: dict[str, tuple[type[np.generic], Any]] = {
    "cond": (np.bool_, False),
    "since": (np.int64, NONE),
    "count": (np.int64, 0),
}
_ACTIVE = (np.bool_, False)
_REVERSAL_TIMES = (np.int64, NONE)

_V3_RULES = (
    "trapped_passenger",
    "overspeed",
    "door_open_while_moving",
    "overtravel_top",
    "overtravel_bottom",
    "stopped_outside_door_zone",
    "safety_circuit_open",
    "door_reopen_loop",
    "door_held_open",
    "power_failure",
    "alarm_button",
)
"""The rule columns of checkpoints up to version 3, in their numbered order: written out, as it is what
those checkpoints hold whatever the catalog says now."""
_V3_CONDITIONS = ("trapped_passenger.between_floors", "trapped_passenger.at_landing", *_V3_RULES)
V3_NAMES: dict[str, str] = {
    "ons": "door_opened_since_stop",
    "hist": "reversal_times",
    "hist_n": "reversal_count",
    **{f"{kind}{j}": f"{kind}.{name}" for kind in _PER_CONDITION for j, name in enumerate(_V3_CONDITIONS)},
    **{f"active{r}": f"active.{code}" for r, code in enumerate(_V3_RULES)},
}
"""Row names of checkpoints up to version 3 -> today's names (the others did not change)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Held-back samples of one or more batches, sorted by (slot, ts, arrival).

    The chunks of ``State.chunks`` are in arrival order and *in order*: a terminal's samples in a
    later chunk are not older than its samples in an earlier one. So a terminal's samples that
    passed its watermark are a prefix of its samples across the chunks, and releasing whole
    chunks (or the passed part of each) keeps every terminal's (ts, arrival) order.
    """

    samples: Columns
    deferred: bool = False
    """Its release already waited once: a partly passed chunk is split now."""


class State:
    """Per-terminal state of every rule, one row per slot, plus the samples held back for lateness.

    Columns grow (:meth:`grow`) before a batch touches new slots; :meth:`reset` forgets slots whose
    partition moved away, :meth:`rows` / :meth:`load_rows` / :meth:`hold` checkpoint and restore them.
    """

    valid: B
    """The slot has carried state (its terminal's samples were evaluated before)."""
    max_ts: I64
    """Newest sample time seen of the terminal (the watermark without sequence numbers)."""
    cond: list[B]
    """Per condition: it held at the terminal's last evaluated sample."""
    since: list[I64]
    """Per condition: start of the run (true or false) the last evaluated sample belongs to."""
    count: list[I64]
    """Per condition: samples in the current true run."""
    active: list[B]
    """Per rule: the fault is raised and not cleared."""
    door_opened_since_stop: B
    """The door was not closed at some sample since the car last stopped (trapped at a landing)."""
    last_door: np.ndarray[Any, np.dtype[np.int8]]
    """Door state of the last evaluated sample (a reversal may span two batches)."""
    reversal_times: np.ndarray[Any, np.dtype[np.int64]]
    """Times of the last door reversals since the car last moved, right-aligned (slots x kept)."""
    reversal_count: I64
    """How many of ``reversal_times`` are real (at most ``reversals_kept``)."""
    last_day: I64
    """Site day of the last ``unregistered_terminal`` raise."""
    last_seen: I64
    """Gateway receive time of the newest accepted message (``terminal_offline``)."""
    offline: B
    """``terminal_offline`` is raised."""
    offline_since: I64
    """Receive time of the MQTT last will ``offline`` (NONE: online)."""
    seq_next: I64
    """The seq that continues the terminal's gap-free run of messages (-1: none seen). Message-sequence
    continuity (docs/rules.md, "In-order terminals do not wait"): every sample up to seq_bound belongs to
    a gap-free run of the terminal's messages and is released at once."""
    seq_bound: I64
    """Newest sample time of that run."""
    hole_since: I64
    """Receive time a hole opened in the run (NONE: no hole)."""
    seq_unseen_below: I64
    """The seq of the first message seen (-1: none before it, or already accounted for): the messages
    before it were never judged here, so they are late, not copies."""
    seq_unseen_newest: I64
    """Newest sample of that first message."""

    def __init__(self, reversals_kept: int) -> None:
        self.reversals_kept = reversals_kept
        """Width of ``reversal_times``: the most reversals any rule set needs."""
        self.capacity = 0
        self.chunks: list[Chunk] = []
        """Samples waiting for their terminal's watermark, in chunks (see :class:`Chunk`)."""
        self.waiting = False
        """Some held-back samples have passed their watermark but wait for the next batch (see
        ``watermark.DEFER_MIN_SAMPLES``); evaluating an empty batch releases them."""
        empty = {name: np.full(0, fill, dtype) for name, (dtype, fill) in _PER_SLOT.items()}
        for kind, (dtype, fill) in _PER_CONDITION.items():
            empty.update({f"{kind}.{name}": np.full(0, fill, dtype) for name in CONDITION_NAMES})
        empty.update({f"active.{code.value}": np.full(0, _ACTIVE[1], _ACTIVE[0]) for code in RULES})
        empty["reversal_times"] = np.full((0, reversals_kept), _REVERSAL_TIMES[1], _REVERSAL_TIMES[0])
        self._assign(empty)

    def _columns(self) -> Iterator[tuple[str, np.ndarray[Any, Any], Any]]:
        """Every column by name, with its fill value (``reversal_times`` last)."""
        for name, (_dtype, fill) in _PER_SLOT.items():
            yield name, getattr(self, name), fill
        for kind, (_dtype, fill) in _PER_CONDITION.items():
            for name, array in zip(CONDITION_NAMES, getattr(self, kind), strict=True):
                yield f"{kind}.{name}", array, fill
        for code, array in zip(RULES, self.active, strict=True):
            yield f"active.{code.value}", array, _ACTIVE[1]
        yield "reversal_times", self.reversal_times, _REVERSAL_TIMES[1]

    def _assign(self, arrays: dict[str, np.ndarray[Any, Any]]) -> None:
        """Set the columns from arrays by name."""
        for name in _PER_SLOT:
            setattr(self, name, arrays[name])
        for kind in _PER_CONDITION:
            setattr(self, kind, [arrays[f"{kind}.{name}"] for name in CONDITION_NAMES])
        self.active = [arrays[f"active.{code.value}"] for code in RULES]
        self.reversal_times = arrays["reversal_times"]

    def grow(self, capacity: int) -> None:
        """Make room for slots up to ``capacity`` (at least doubling, so growth is amortised)."""
        if capacity <= self.capacity:
            return
        capacity = max(capacity, 2 * self.capacity, 1024)
        bigger: dict[str, np.ndarray[Any, Any]] = {}
        for name, array, fill in self._columns():
            grown = np.full((capacity, *array.shape[1:]), fill, array.dtype)
            grown[: array.shape[0]] = array
            bigger[name] = grown
        self._assign(bigger)
        self.capacity = capacity

    @property
    def pending(self) -> Columns:
        """The held-back samples as one batch sorted by (slot, ts, arrival)."""
        return merge_all([c.samples for c in self.chunks])

    def held(self, slots: IP) -> Columns:
        """The held-back samples of some slots (for a checkpoint), sorted by (slot, ts, arrival)."""
        return merge_all([c.samples.take(np.isin(c.samples.slot, slots)) for c in self.chunks])

    def rows(self, slots: IP) -> dict[str, np.ndarray[Any, Any]]:
        """The state rows of some slots (for a checkpoint), by column name."""
        return {name: array[slots] for name, array, _fill in self._columns()}

    def reset(self, slots: IP) -> None:
        """Forget the state of some slots (their partition moved to another process)."""
        for _name, array, fill in self._columns():
            array[slots] = fill
        kept = []
        for chunk in self.chunks:
            gone = np.isin(chunk.samples.slot, slots)
            kept.append(Chunk(chunk.samples.take(~gone), chunk.deferred) if gone.any() else chunk)
        self.chunks = [c for c in kept if len(c.samples)]

    def hold(self, samples: Columns) -> None:
        """Add held-back samples of terminals that have none (a restored checkpoint), keeping them sorted."""
        if len(samples):
            ordered = samples.take(np.lexsort((samples.ts, samples.slot)))
            # Some may have passed their watermark and already waited a batch before the checkpoint:
            # they may not wait again, and the next (even empty) batch looks at them.
            self.chunks = [Chunk(merge_all([self.pending, ordered]), True)]
            self.waiting = True

    def load_rows(self, slots: IP, rows: dict[str, np.ndarray[Any, Any]]) -> None:
        """Write checkpointed rows (by column name) back into some slots.

        Columns missing from the rows keep their values; ``reversal_times`` is re-fitted to the
        current width (thresholds may have changed between the checkpoint and now).
        """
        for name, array, _fill in self._columns():
            if name not in rows:
                continue
            value = rows[name]
            if name == "reversal_times" and value.shape[1] != self.reversals_kept:
                fitted = np.full((len(slots), self.reversals_kept), NONE, np.int64)
                width = min(self.reversals_kept, value.shape[1])
                if width:
                    fitted[:, -width:] = value[:, -width:]
                value = fitted
            array[slots] = value
        if "reversal_count" in rows:
            self.reversal_count[slots] = np.minimum(self.reversal_count[slots], self.reversals_kept)
