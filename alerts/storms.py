"""Fault storms: grouping incidents that share a cause, inhibiting faults another one explains. Pure.

A district power cut makes hundreds of elevators raise ``power_failure``, then stop outside the
door zone, open their safety circuits, go offline. Two configurable rules, in the spirit of
Prometheus Alertmanager (``route.group_by``; ``inhibit_rules`` with ``source``, ``target``,
``equal``):

* **Grouping** (:class:`GroupRule`): an incident opened within ``window_s`` of an open
  incident with the same values of ``by`` (default: same code, same district) joins its
  **incident group**; the first one is the group's leader (``incidents.group_id`` = the
  leader's id on every member, the leader included). The board shows a group as one row
  (expandable) and acknowledges it together; a receiver gets one notification per group and
  change kind (the first member of its own), not one per elevator.
* **Inhibition** (:class:`InhibitRule`): while an incident of a ``source`` code is open with its
  condition holding, changes of ``target`` codes of an incident that agrees with it on
  ``equal`` (default: the same elevator) are recorded but not notified
  (``incidents.inhibited_by`` = the source's id).

Never grouped, never inhibited: :data:`NEVER_HIDDEN` (a trapped passenger, an overspeed). Each
entrapment stays its own incident with its own clocks and its own notifications; a rule naming
one is refused at start (:func:`check_rules`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from liftwatch.alerts.errors import AlertsConfigError
from liftwatch.schema import FaultCode

NEVER_HIDDEN: frozenset[str] = frozenset({FaultCode.TRAPPED_PASSENGER.value, FaultCode.OVERSPEED.value})
"""Codes never grouped away or inhibited: someone may be inside."""
GROUP_FIELDS = ("code", "district", "maintainer_id")
"""What ``GroupRule.by`` may name (columns of the incident)."""
EQUAL_FIELDS = ("registration_code", "district", "maintainer_id")
"""What ``InhibitRule.equal`` may name."""

# What a lost supply or a silent terminal explains on the same elevator: the car stops where it
# is (outside the door zone), the safety circuit drops, the doors stay or bounce. Not the alarm
# button (a person pressing it is a person) and not the entrapment (its own rule decides).
DERIVED_OF_POWER = frozenset(
    {"stopped_outside_door_zone", "safety_circuit_open", "door_held_open", "door_reopen_loop", "terminal_offline"}
)


@dataclass(frozen=True, slots=True)
class GroupRule:
    """Incidents with equal ``by`` values opened within ``window_s`` of the group's leader form one group."""

    by: tuple[str, ...] = ("code", "district")
    window_s: int = 300
    """0 = no grouping."""


@dataclass(frozen=True, slots=True)
class InhibitRule:
    """While a ``source`` incident lasts, ``target`` incidents equal on ``equal`` are not notified."""

    source: frozenset[str]
    target: frozenset[str]
    equal: tuple[str, ...] = ("registration_code",)


DEFAULT_INHIBIT_RULES: tuple[InhibitRule, ...] = (
    InhibitRule(source=frozenset({"power_failure"}), target=DERIVED_OF_POWER),
    InhibitRule(source=frozenset({"terminal_offline"}), target=DERIVED_OF_POWER - {"terminal_offline"}),
)


def check_rules(group: GroupRule, inhibit: Iterable[InhibitRule]) -> None:
    """Refuse rules naming unknown codes or fields, or hiding what must never be hidden (AlertsConfigError)."""
    codes = {code.value for code in FaultCode}
    if group.window_s < 0 or any(field not in GROUP_FIELDS for field in group.by) or "code" not in group.by:
        raise AlertsConfigError(f"group_by must include code and name only {', '.join(GROUP_FIELDS)}; window >= 0")
    for rule in inhibit:
        unknown = (rule.source | rule.target) - codes
        if unknown:
            raise AlertsConfigError(f"inhibit rule names unknown fault codes: {', '.join(sorted(unknown))}")
        if rule.target & NEVER_HIDDEN:
            raise AlertsConfigError(f"{', '.join(sorted(rule.target & NEVER_HIDDEN))} is never inhibited")
        if not rule.equal or any(field not in EQUAL_FIELDS for field in rule.equal):
            raise AlertsConfigError(f"inhibit rule equal must name some of {', '.join(EQUAL_FIELDS)}")


@dataclass(frozen=True, slots=True)
class StormIncident:
    """What grouping and inhibition read of an incident."""

    id: int
    code: str
    registration_code: str | None
    district: str | None
    maintainer_id: int | None
    opened_at: datetime
    group_id: int | None = None
    closed_at: datetime | None = None
    condition_cleared_at: datetime | None = None

    def field(self, name: str) -> Any:
        return getattr(self, name)


def lasts(source: StormIncident, at: datetime) -> bool:
    """Whether ``source`` was open with its condition holding at ``at``."""
    if source.opened_at > at or (source.closed_at is not None and source.closed_at <= at):
        return False
    return source.condition_cleared_at is None or at < source.condition_cleared_at


def inhibitor(
    target: StormIncident, at: datetime, sources: Sequence[StormIncident], rules: Iterable[InhibitRule]
) -> int | None:
    """The id of the incident that inhibits a change of ``target`` at ``at``, or None."""
    if target.code in NEVER_HIDDEN:
        return None
    for rule in rules:
        if target.code not in rule.target:
            continue
        for source in sources:
            if source.id == target.id or source.code not in rule.source or not lasts(source, at):
                continue
            if all(source.field(f) is not None and source.field(f) == target.field(f) for f in rule.equal):
                return source.id
    return None


def group_key(incident: StormIncident, rule: GroupRule) -> tuple[Any, ...] | None:
    """What incidents of one group share (``rule.by``), or None when it never groups."""
    if rule.window_s == 0 or incident.code in NEVER_HIDDEN:
        return None
    key = tuple(incident.field(f) for f in rule.by)
    return None if any(value is None for value in key) else key


def _joinable(candidate: StormIncident, new: StormIncident, since: datetime) -> bool:
    return (
        candidate.id != new.id
        and candidate.code not in NEVER_HIDDEN
        and (candidate.group_id is None or candidate.group_id == candidate.id)
        and since <= candidate.opened_at <= new.opened_at
    )


def group_leader(new: StormIncident, open_incidents: Sequence[StormIncident], rule: GroupRule) -> int | None:
    """The leader of the group ``new`` joins (maybe an incident that becomes one now), or None.

    ``open_incidents`` are the open incidents opened before ``new``. The leader is the earliest
    one with the same ``rule.by`` values, within ``rule.window_s`` before ``new``: an existing
    group's leader, else an ungrouped incident that leads a group from now on.
    """
    key = group_key(new, rule)
    if key is None:
        return None
    ordered = sorted(
        (incident for incident in open_incidents if group_key(incident, rule) == key),
        key=lambda incident: (incident.opened_at, incident.id),
    )
    return first_leader(new, ordered, rule)


def first_leader(new: StormIncident, ordered: Sequence[StormIncident], rule: GroupRule) -> int | None:
    """:func:`group_leader` over candidates of ``new``'s key already in (opened_at, id) order: the first joinable.

    What the relay uses on a storm: the first candidate usually qualifies, so a batch costs one
    look per incident instead of a scan of every open incident of its key.
    """
    since = new.opened_at - timedelta(seconds=rule.window_s)
    for candidate in ordered:
        if candidate.opened_at > new.opened_at:
            break
        if _joinable(candidate, new, since):
            return candidate.id
    return None
