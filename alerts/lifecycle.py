"""The rescue lifecycle of an incident, as a pure state machine, and the one vocabulary of it.

::

    detected -> acknowledged -> dispatched -> arrived -> released -> closed
        \\___________ any open status __________________________-> false_alarm
    detected (non-critical, condition cleared, nobody acknowledged for 24 h) -> auto_cleared  [system]

Operators drive it with :class:`Action`; :func:`transition` says what status an action leads to
or raises :class:`IllegalTransition`. ``escalate`` does not change the status: it raises the
escalation level (:func:`escalate`), which the deadlines also do. ``auto_cleared`` is not an
action: only the service reaches it, through :func:`auto_clear`.

Everything else says "open", "closed in any way", "may do X now" through this module: the SQL
conditions (:data:`OPEN_SQL`, :data:`FINAL_SQL`), the API's types and its ``/api/v1/catalog``
(from which the console takes its lists) and the dashboards (a test holds their SQL to these).
The status names themselves are ``liftwatch.schema.IncidentStatus``: they travel in every
``incident.v1`` record, and the core that defines the records cannot import this package (the
same choice as fault severities); this module decides what each name means.
"""

from __future__ import annotations

import enum

from liftwatch.alerts.errors import IllegalTransition, InvalidCause, NoteRequired
from liftwatch.schema import IncidentStatus


class Action(enum.StrEnum):
    """What an operator (or a maintainer, for arrive/release) does to an incident."""

    ACKNOWLEDGE = "acknowledge"
    DISPATCH = "dispatch"
    ARRIVE = "arrive"
    RELEASE = "release"
    CLOSE = "close"
    FALSE_ALARM = "false_alarm"
    ESCALATE = "escalate"


class CloseCause(enum.StrEnum):
    """Cause category recorded when an incident is closed (regulator statistics)."""

    EQUIPMENT_FAULT = "equipment_fault"
    """A component of the elevator failed (drive, brake, door operator, controller, ...)."""
    EXTERNAL_POWER = "external_power"
    """Mains power loss or supply problem outside the elevator."""
    MISUSE = "misuse"
    """Passengers used the elevator wrongly (holding doors, overloading, jumping)."""
    VANDALISM = "vandalism"
    """Deliberate damage."""
    MAINTENANCE_ERROR = "maintenance_error"
    """Caused by maintenance work (left in a wrong mode, bad adjustment)."""
    TERMINAL_FAULT = "terminal_fault"
    """The monitoring terminal or its sensors misreported; the elevator was fine."""
    ENVIRONMENT = "environment"
    """Water ingress, fire, extreme temperature, building works."""
    UNKNOWN = "unknown"
    """Investigated, cause not found."""


FINAL_STATUSES: tuple[IncidentStatus, ...] = (
    IncidentStatus.CLOSED,
    IncidentStatus.FALSE_ALARM,
    IncidentStatus.AUTO_CLEARED,
)
"""Closed in one way or another: nobody needs to do anything more."""
OPEN_STATUSES: tuple[IncidentStatus, ...] = tuple(s for s in IncidentStatus if s not in FINAL_STATUSES)
"""Still needs someone, in lifecycle order."""
AT_RISK_STATUSES: tuple[IncidentStatus, ...] = OPEN_STATUSES[: OPEN_STATUSES.index(IncidentStatus.RELEASED)]
"""Open and nobody released yet: someone may still be trapped or in danger. Escalation (rescue team,
fire brigade) and the false-alarm verdict are meant for these, so the console offers them only here;
the service accepts both in any open status."""


def status_in(statuses: tuple[IncidentStatus, ...], *, negated: bool = False) -> str:
    """SQL condition: ``status`` is (``negated``: is not) one of ``statuses``, quoted in their order."""
    quoted = ", ".join(f"'{status}'" for status in statuses)
    return f"status {'NOT IN' if negated else 'IN'} ({quoted})"


# The partial indexes on incidents are declared with exactly this text (core/migrations), and
# PostgreSQL uses one only for a query whose condition implies its predicate: keep the terminal
# statuses' order, and prefix a table alias as ``f"i.{OPEN_SQL}"``.
FINAL_SQL = status_in(FINAL_STATUSES)
"""SQL condition: the incident is closed in one way or another."""
OPEN_SQL = status_in(FINAL_STATUSES, negated=True)
"""SQL condition: the incident is open, ``status NOT IN ('closed', 'false_alarm', 'auto_cleared')``."""

# The one forward step each action makes on the main path.
_FORWARD: dict[Action, tuple[IncidentStatus, IncidentStatus]] = {
    Action.ACKNOWLEDGE: (IncidentStatus.DETECTED, IncidentStatus.ACKNOWLEDGED),
    Action.DISPATCH: (IncidentStatus.ACKNOWLEDGED, IncidentStatus.DISPATCHED),
    Action.ARRIVE: (IncidentStatus.DISPATCHED, IncidentStatus.ARRIVED),
    Action.RELEASE: (IncidentStatus.ARRIVED, IncidentStatus.RELEASED),
    Action.CLOSE: (IncidentStatus.RELEASED, IncidentStatus.CLOSED),
}

# Timestamp column stamped by each status (``incidents.<column>``).
STATUS_TIMESTAMP: dict[IncidentStatus, str] = {
    IncidentStatus.ACKNOWLEDGED: "acknowledged_at",
    IncidentStatus.DISPATCHED: "dispatched_at",
    IncidentStatus.ARRIVED: "arrived_at",
    IncidentStatus.RELEASED: "released_at",
    IncidentStatus.CLOSED: "closed_at",
    IncidentStatus.FALSE_ALARM: "closed_at",
    IncidentStatus.AUTO_CLEARED: "closed_at",
}

MAX_ESCALATION_LEVEL = 3
"""1 maintenance firm, 2 district rescue team, 3 fire brigade (119)."""


def is_open(status: str) -> bool:
    """Whether an incident in ``status`` still needs someone (not closed in any way)."""
    return status in OPEN_STATUSES


def actions(status: str) -> tuple[Action, ...]:
    """The actions :func:`transition` accepts in ``status``: its step forward, then false alarm and escalate."""
    if not is_open(status):
        return ()
    forward = [action for action, (before, _) in _FORWARD.items() if before == status]
    return (*forward, Action.FALSE_ALARM, Action.ESCALATE)


def transition(status: str, action: Action) -> IncidentStatus:
    """The status ``action`` leads to from ``status``; raises :class:`IllegalTransition`."""
    current = IncidentStatus(status)
    if current not in OPEN_STATUSES:
        raise IllegalTransition(current, action, detail="the incident is already closed")
    if action is Action.ESCALATE:
        return current
    if action is Action.FALSE_ALARM:
        return IncidentStatus.FALSE_ALARM
    before, after = _FORWARD[action]
    if current is not before:
        raise IllegalTransition(current, action, detail=f"{action} needs status {before}")
    return after


def require_note(action: Action, note: str, status: str) -> None:
    """Closing needs a note saying what was found and done (the regulator's and the firm's record)."""
    if action is Action.CLOSE and not note.strip():
        raise NoteRequired(status, action, detail="closing needs a note")


def close_cause(action: Action, cause: str | None, status: str) -> CloseCause | None:
    """The validated cause to store with ``action``: required to close, optional for a false alarm."""
    if action is Action.CLOSE and cause is None:
        raise InvalidCause(status, action, detail="closing needs a cause category")
    if cause is None or action not in (Action.CLOSE, Action.FALSE_ALARM):
        return None
    try:
        return CloseCause(cause)
    except ValueError:
        raise InvalidCause(
            status, action, reason="unknown_cause", detail=f"{cause!r} is not one of {', '.join(CloseCause)}"
        ) from None


def escalate(status: str, level: int) -> int:
    """The next escalation level; raises at the last level or on a closed incident."""
    transition(status, Action.ESCALATE)
    if level >= MAX_ESCALATION_LEVEL:
        raise IllegalTransition(
            status, Action.ESCALATE, reason="escalation_exhausted", detail="already at the fire brigade level"
        )
    return level + 1


def auto_clear(status: str) -> IncidentStatus:
    """The system closes a cleared, never-acknowledged incident; only from ``detected``."""
    if IncidentStatus(status) is not IncidentStatus.DETECTED:
        raise IllegalTransition(status, "auto_clear", detail="only an unacknowledged incident is auto-cleared")
    return IncidentStatus.AUTO_CLEARED
