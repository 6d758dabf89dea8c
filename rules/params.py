"""Per-slot registry facts and thresholds, as arrays the rules gather from.

The registry says what each terminal's elevator is (:class:`TerminalInfo`); the thresholds give one
rule set fleet-wide and one per overridden elevator model. :class:`SlotParams` turns both into
tables indexed by rule set and arrays indexed by slot, with the rule and condition columns of
:mod:`liftwatch.rules.state` (derived from the catalog).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from liftwatch.rules.catalog import CONDITIONS
from liftwatch.rules.state import RULES
from liftwatch.rules.thresholds import RuleSet, Thresholds
from liftwatch.schema import FaultCode


def _section(rs: RuleSet, code: FaultCode) -> Any:
    """A rule's thresholds in a rule set."""
    return getattr(rs, code.value)


def _rule_hold_ms(rs: RuleSet) -> list[int]:
    """Hold time of each condition column (ms); a clear-only condition never raises by itself."""
    return [
        round(getattr(_section(rs, spec.code), hold.hold_param) * 1000) if hold.hold_param else 0
        for spec, hold in CONDITIONS
    ]


def _rule_min_samples(rs: RuleSet) -> list[int]:
    """Consecutive samples each condition column must also hold for (one unless its rule says)."""
    return [
        int(getattr(_section(rs, spec.code), hold.min_samples_param)) if hold.min_samples_param else 1
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
        self.min_samples = np.array([_rule_min_samples(s) for s in sets], np.int64)
        self.clear_ms = np.array([_rule_clear_ms(s) for s in sets], np.int64)
        self.enabled = np.array([_rule_enabled(s) for s in sets], np.bool_)
        self.factor = np.array([s.overspeed.factor for s in sets], np.float64)
        self.door_open_speed_by_set = np.array([s.door_open_while_moving.speed_mps for s in sets], np.float64)
        self.reversals = np.array([s.door_reopen_loop.reversals for s in sets], np.int64)
        self.window_ms = np.array([round(s.door_reopen_loop.window_s * 1000) for s in sets], np.int64)
        self.offline_ms = np.array([round(s.terminal_offline.after_s * 1000) for s in sets], np.int64)
        self.offline_enabled = np.array([s.terminal_offline.enabled for s in sets], np.bool_)
        self.reversals_kept = int(self.reversals.max())
        self.uniform = len(sets) == 1
        self.capacity = 0
        self.registered = np.zeros(0, np.bool_)
        self.model_idx = np.zeros(0, np.int32)
        self.overspeed_limit = np.zeros(0, np.float64)
        self.top = np.zeros(0, np.int16)
        self.bottom = np.zeros(0, np.int16)
        self.door_open_speed = np.zeros(0, np.float64)
        self.registration: list[str | None] = []
        self.grow(capacity)

    def grow(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        extra = capacity - self.capacity
        self.registered = np.concatenate([self.registered, np.zeros(extra, np.bool_)])
        self.model_idx = np.concatenate([self.model_idx, np.zeros(extra, np.int32)])
        self.overspeed_limit = np.concatenate([self.overspeed_limit, np.full(extra, np.inf)])
        self.top = np.concatenate([self.top, np.full(extra, np.iinfo(np.int16).max, np.int16)])
        self.bottom = np.concatenate([self.bottom, np.full(extra, np.iinfo(np.int16).min, np.int16)])
        self.door_open_speed = np.concatenate([self.door_open_speed, np.full(extra, self.door_open_speed_by_set[0])])
        self.registration.extend([None] * extra)
        self.capacity = capacity

    def assign(self, slot: int, info: TerminalInfo | None) -> None:
        """Set one slot's registry facts (None = unregistered terminal)."""
        if info is None:
            self.registered[slot] = False
            self.model_idx[slot] = 0
            self.overspeed_limit[slot] = np.inf
            self.top[slot] = np.iinfo(np.int16).max
            self.bottom[slot] = np.iinfo(np.int16).min
            self.door_open_speed[slot] = self.door_open_speed_by_set[0]
            self.registration[slot] = None
            return
        m = self.model_index.get(info.model or "", 0)
        self.registered[slot] = True
        self.model_idx[slot] = m
        self.overspeed_limit[slot] = self.factor[m] * info.rated_speed
        self.top[slot] = info.top_floor
        self.bottom[slot] = info.bottom_floor
        self.door_open_speed[slot] = self.door_open_speed_by_set[m]
        self.registration[slot] = info.registration_code


def by_rule_set(column: np.ndarray[Any, Any], params: SlotParams, slots: np.ndarray[Any, Any]) -> Any:
    """A per-rule-set parameter for some slots (a scalar when no model overrides exist)."""
    if params.uniform:
        return column[0].item()
    return column[params.model_idx[slots]]
