"""The rescue lifecycle of an incident, as a pure state machine.

::

    detected -> acknowledged -> dispatched -> arrived -> released -> closed
        \\___________ any open status __________________________-> false_alarm
    detected (non-critical, condition cleared, nobody acknowledged for 24 h) -> auto_cleared  [system]

Operators drive it with :class:`Action`; :func:`transition` says what status an action leads to
or raises :class:`IllegalTransition`. ``escalate`` does not change the status: it raises the
escalation level (:func:`escalate`), which the deadlines also do. ``auto_cleared`` is not an
action: only the service reaches it, through :func:`auto_clear`.
"""

from __future__ import annotations

import enum

from liftwatch.alerts.errors import IllegalTransition, InvalidCause, NoteRequired


class Status(enum.StrEnum):
    """Status of an incident (the ``incidents.status`` column)."""

    DETECTED = "detected"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    ARRIVED = "arrived"
    RELEASED = "released"
    CLOSED = "closed"
    FALSE_ALARM = "false_alarm"
    AUTO_CLEARED = "auto_cleared"


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


OPEN_STATUSES: frozenset[Status] = frozenset(
    {Status.DETECTED, Status.ACKNOWLEDGED, Status.DISPATCHED, Status.ARRIVED, Status.RELEASED}
)
FINAL_STATUSES: frozenset[Status] = frozenset({Status.CLOSED, Status.FALSE_ALARM, Status.AUTO_CLEARED})

# The one forward step each action makes on the main path.
_FORWARD: dict[Action, tuple[Status, Status]] = {
    Action.ACKNOWLEDGE: (Status.DETECTED, Status.ACKNOWLEDGED),
    Action.DISPATCH: (Status.ACKNOWLEDGED, Status.DISPATCHED),
    Action.ARRIVE: (Status.DISPATCHED, Status.ARRIVED),
    Action.RELEASE: (Status.ARRIVED, Status.RELEASED),
    Action.CLOSE: (Status.RELEASED, Status.CLOSED),
}

# Timestamp column stamped by each status (``incidents.<column>``).
STATUS_TIMESTAMP: dict[Status, str] = {
    Status.ACKNOWLEDGED: "acknowledged_at",
    Status.DISPATCHED: "dispatched_at",
    Status.ARRIVED: "arrived_at",
    Status.RELEASED: "released_at",
    Status.CLOSED: "closed_at",
    Status.FALSE_ALARM: "closed_at",
    Status.AUTO_CLEARED: "closed_at",
}

MAX_ESCALATION_LEVEL = 3
"""1 maintenance firm, 2 district rescue team, 3 fire brigade (119)."""


def is_open(status: str) -> bool:
    """Whether an incident in ``status`` still needs someone (not closed in any way)."""
    return status in OPEN_STATUSES


def transition(status: str, action: Action) -> Status:
    """The status ``action`` leads to from ``status``; raises :class:`IllegalTransition`."""
    current = Status(status)
    if current not in OPEN_STATUSES:
        raise IllegalTransition(current, action, detail="the incident is already closed")
    if action is Action.ESCALATE:
        return current
    if action is Action.FALSE_ALARM:
        return Status.FALSE_ALARM
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


def auto_clear(status: str) -> Status:
    """The system closes a cleared, never-acknowledged incident; only from ``detected``."""
    if Status(status) is not Status.DETECTED:
        raise IllegalTransition(status, "auto_clear", detail="only an unacknowledged incident is auto-cleared")
    return Status.AUTO_CLEARED
