"""Rule thresholds: the catalog defaults, per-rule overrides and per-elevator-model overrides.

A thresholds file (YAML or JSON, ``LIFTWATCH_RULES_OVERRIDES``) looks like::

    rules:                       # applies to every elevator
      trapped_passenger: {between_floors_hold_s: 25}
      door_held_open: {enabled: false}
    models:                      # applies to elevators whose registry ``model`` matches
      "GeN2-MR":
        overspeed: {factor: 1.2}

Every key is checked (unknown rule, unknown parameter, wrong type, out-of-range value): a bad
file stops the process at start with a message naming the offending key. ``replay --set
rule.param=value`` edits the same structure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from liftwatch.rules.errors import RulesConfigError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

_STRICT = ConfigDict(extra="forbid", frozen=True)


class _Rule(BaseModel):
    model_config = _STRICT
    enabled: bool = True
    clear_after_s: float = Field(default=10.0, ge=0, le=3600, description="Condition false this long -> cleared.")


class Notation(BaseModel):
    """The catalog's notation: what counts as stopped and moving."""

    model_config = _STRICT
    stopped_below_mps: float = Field(default=0.05, gt=0, le=1)
    moving_from_mps: float = Field(default=0.1, gt=0, le=2)


class TrappedPassenger(_Rule):
    between_floors_hold_s: float = Field(default=20.0, ge=0, le=3600)
    at_landing_hold_s: float = Field(default=60.0, ge=0, le=3600)


class Overspeed(_Rule):
    factor: float = Field(default=1.15, gt=1, le=3, description="Raise above factor x rated speed.")
    hold_s: float = Field(default=0.5, ge=0, le=60)
    min_samples: int = Field(default=2, ge=1, le=100)


class DoorOpenWhileMoving(_Rule):
    speed_mps: float = Field(default=0.3, gt=0, le=5, description="Door not closed at this speed, anywhere.")


class Overtravel(_Rule):
    clear_after_s: float = Field(default=0.0, ge=0, le=3600)


class HoldRule(_Rule):
    hold_s: float = Field(ge=0, le=86400)


class StoppedOutsideDoorZone(HoldRule):
    hold_s: float = Field(default=45.0, ge=0, le=86400)


class SafetyCircuitOpen(HoldRule):
    hold_s: float = Field(default=1.0, ge=0, le=86400)


class DoorHeldOpen(HoldRule):
    hold_s: float = Field(default=120.0, ge=0, le=86400)


class PowerFailure(HoldRule):
    hold_s: float = Field(default=5.0, ge=0, le=86400)


class AlarmButton(HoldRule):
    hold_s: float = Field(default=3.0, ge=0, le=86400)


class DoorReopenLoop(_Rule):
    reversals: int = Field(default=5, ge=2, le=20)
    window_s: float = Field(default=60.0, gt=0, le=3600)


class TerminalOffline(_Rule):
    after_s: float = Field(default=120.0, gt=0, le=86400)


class RuleSet(BaseModel):
    """Thresholds of every rule (the catalog defaults unless overridden)."""

    model_config = _STRICT
    trapped_passenger: TrappedPassenger = TrappedPassenger()
    overspeed: Overspeed = Overspeed()
    door_open_while_moving: DoorOpenWhileMoving = DoorOpenWhileMoving()
    overtravel_top: Overtravel = Overtravel()
    overtravel_bottom: Overtravel = Overtravel()
    stopped_outside_door_zone: StoppedOutsideDoorZone = StoppedOutsideDoorZone()
    safety_circuit_open: SafetyCircuitOpen = SafetyCircuitOpen()
    door_reopen_loop: DoorReopenLoop = DoorReopenLoop()
    door_held_open: DoorHeldOpen = DoorHeldOpen()
    power_failure: PowerFailure = PowerFailure()
    alarm_button: AlarmButton = AlarmButton()
    terminal_offline: TerminalOffline = TerminalOffline()


class _File(BaseModel):
    model_config = _STRICT
    notation: dict[str, Any] = {}
    rules: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, dict[str, Any]]] = {}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The effective configuration: notation, fleet-wide rules, per-model rule sets."""

    notation: Notation
    default: RuleSet
    models: dict[str, RuleSet]

    def for_model(self, model: str | None) -> RuleSet:
        """Rule set of an elevator model (the fleet-wide one if the model has no overrides)."""
        if model is None:
            return self.default
        return self.models.get(model, self.default)


def _merge(base: RuleSet, patch: dict[str, dict[str, Any]], where: str) -> RuleSet:
    data = base.model_dump()
    for rule, params in patch.items():
        if rule not in data:
            raise RulesConfigError(f"{where}: unknown rule {rule!r} (known: {', '.join(sorted(data))})")
        if not isinstance(params, dict):
            raise RulesConfigError(f"{where}.{rule}: expected a mapping of parameters")
        data[rule] = {**data[rule], **params}
    try:
        return RuleSet.model_validate(data)
    except ValidationError as error:
        raise RulesConfigError(f"{where}: {_describe(error)}") from error


def _describe(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())


def build(raw: dict[str, Any] | None = None, *, source: str = "thresholds") -> Thresholds:
    """Validate a thresholds document (the parsed file) and apply it over the catalog defaults."""
    try:
        doc = _File.model_validate(raw or {})
    except ValidationError as error:
        raise RulesConfigError(f"{source}: {_describe(error)}") from error
    try:
        notation = Notation.model_validate(doc.notation)
    except ValidationError as error:
        raise RulesConfigError(f"{source}: notation: {_describe(error)}") from error
    if notation.moving_from_mps < notation.stopped_below_mps:
        raise RulesConfigError(f"{source}: notation: moving_from_mps must be >= stopped_below_mps")
    default = _merge(RuleSet(), doc.rules, f"{source}: rules")
    models = {name: _merge(default, patch, f"{source}: models.{name}") for name, patch in doc.models.items()}
    return Thresholds(notation, default, models)


def load(path: Path | None) -> Thresholds:
    """Read and validate a YAML/JSON thresholds file (None = the catalog defaults)."""
    if path is None:
        return build()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RulesConfigError(f"cannot read rules overrides {path}: {error}") from error
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise RulesConfigError(
            f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {error}"
        ) from error
    if raw is not None and not isinstance(raw, dict):
        raise RulesConfigError(f"{path}: expected a mapping with keys notation/rules/models")
    return build(raw, source=str(path))


def with_settings(thresholds: Thresholds, assignments: list[str]) -> Thresholds:
    """Apply ``rule.param=value`` assignments (``replay --set``) to the fleet-wide rules and every model."""
    patch: dict[str, dict[str, Any]] = {}
    notation_patch: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value_text = assignment.partition("=")
        rule, dot, param = key.strip().partition(".")
        if not sep or not dot or not param:
            raise RulesConfigError(f"--set {assignment!r}: expected rule.param=value")
        try:
            value = yaml.safe_load(value_text)
        except yaml.YAMLError as error:
            raise RulesConfigError(f"--set {assignment!r}: bad value: {error}") from error
        if rule == "notation":
            notation_patch[param] = value
        else:
            patch.setdefault(rule, {})[param] = value
    try:
        notation = Notation.model_validate({**thresholds.notation.model_dump(), **notation_patch})
    except ValidationError as error:
        raise RulesConfigError(f"--set notation: {_describe(error)}") from error
    default = _merge(thresholds.default, patch, "--set")
    models = {name: _merge(rs, patch, f"--set (model {name})") for name, rs in thresholds.models.items()}
    return Thresholds(notation, default, models)
