"""Rescue deadlines, re-notification and auto-clearing, computed from stored timestamps. Pure.

:func:`due` looks at incidents as stored (detection time, what happened when, which misses are
already recorded) and a clock reading, and says what must happen now. Nothing lives in memory,
so a restarted service finds exactly the same work; applying an item records it on the
incident, so it is not due again.

Decisions (see docs/alerts.md): an incident's dispatch and arrival deadlines are stamped on it
when it opens, from the :class:`DeadlinePolicy` in force (the ``alerts_deadline_policy`` table the
service writes at start): they run from detection, the event time the rule raised the fault
(``detected_at``), or from ``opened_at`` if that is earlier (a terminal clock running ahead must
not buy the firm time); everything else reads the stamped instants. A missed deadline raises the
escalation level by one up to ``DeadlinePolicy.auto_escalation_limit`` (default 2, the district
rescue team): level 3 (fire brigade, 119) is an operator's decision (``Action.ESCALATE``) unless
configured otherwise.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from liftwatch.alerts.lifecycle import is_open
from liftwatch.schema import IncidentStatus

AUTO_ESCALATION_LIMIT = 2
"""Highest level a missed deadline reaches by itself; the fire brigade is called by a person."""


class DueKind(enum.StrEnum):
    """What is due on an incident."""

    RENOTIFY = "renotify"
    DISPATCH_MISSED = "dispatch_missed"
    ARRIVAL_MISSED = "arrival_missed"
    AUTO_CLEAR = "auto_clear"


@dataclass(frozen=True, slots=True)
class CodeDeadlines:
    """Deadlines of one fault code, in seconds after detection (None = none)."""

    dispatch_s: int | None = None
    arrival_s: int | None = None


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    """Configuration of :func:`due` (built from ``AlertsSettings``)."""

    renotify_s: int = 60
    auto_clear_s: int = 24 * 3600
    codes: Mapping[str, CodeDeadlines] = field(default_factory=dict)
    """Deadlines stamped on the incidents of each code when they open (``AlertsSettings`` owns the values)."""
    auto_escalation_limit: int = AUTO_ESCALATION_LIMIT
    """Highest level a missed deadline raises an incident to (1 = never escalate by itself)."""
    reminders_s: Mapping[str, int] | None = None
    """Seconds between reminders of an unacknowledged incident, per severity (a severity absent:
    none); None = critical every ``renotify_s`` only (the behaviour before reminders per severity)."""

    def reminder_s(self, severity: str) -> int | None:
        """Seconds between reminders of an unacknowledged incident of ``severity``; None = no reminders."""
        if self.reminders_s is None:
            return self.renotify_s if severity == "critical" else None
        return self.reminders_s.get(severity)


@dataclass(frozen=True, slots=True)
class IncidentTimes:
    """The stored facts :func:`due` needs about one incident."""

    id: int
    code: str
    severity: str
    status: str
    detected_at: datetime
    opened_at: datetime
    escalation_level: int = 1
    dispatched_at: datetime | None = None
    arrived_at: datetime | None = None
    condition_cleared_at: datetime | None = None
    last_notified_at: datetime | None = None
    dispatch_deadline_missed: bool = False
    arrival_deadline_missed: bool = False
    closed_at: datetime | None = None
    dispatch_deadline_at: datetime | None = None
    """Stamped when the incident opened; None = no dispatch deadline."""
    arrival_deadline_at: datetime | None = None
    """Stamped when the incident opened; None = no arrival deadline."""


@dataclass(frozen=True, slots=True)
class Due:
    """One thing to do now on one incident."""

    incident_id: int
    kind: DueKind
    deadline: datetime
    """When it became due."""
    escalate_to: int | None = None
    """New escalation level, for a miss that raises it."""


def _missed(deadline: datetime, done_at: datetime | None, now: datetime) -> bool:
    return done_at > deadline if done_at is not None else now > deadline


def due_for(incident: IncidentTimes, now: datetime, policy: DeadlinePolicy) -> list[Due]:
    """What is due on one incident at ``now``.

    A closed incident is judged as it stood when it closed: a deadline it missed while the
    service was down is still recorded (it counts against the firm), without escalation.
    """
    closed = not is_open(incident.status)
    if closed and incident.closed_at is None:
        return []  # closed without a stamp (imported history): nothing to judge by
    horizon = incident.closed_at if closed and incident.closed_at is not None else now
    found: list[Due] = []
    detected = min(incident.detected_at, incident.opened_at)
    level = incident.escalation_level
    every = policy.reminder_s(incident.severity)
    if every is not None and incident.status == IncidentStatus.DETECTED:
        deadline = (incident.last_notified_at or incident.opened_at) + timedelta(seconds=every)
        if now >= deadline:
            found.append(Due(incident.id, DueKind.RENOTIFY, deadline))
    i = incident
    for kind, stamped, done_at, recorded in (
        (DueKind.DISPATCH_MISSED, i.dispatch_deadline_at, i.dispatched_at, i.dispatch_deadline_missed),
        (DueKind.ARRIVAL_MISSED, i.arrival_deadline_at, i.arrived_at, i.arrival_deadline_missed),
    ):
        if stamped is None or recorded:
            continue
        if _missed(stamped, done_at, horizon):
            escalate_to = level + 1 if level < policy.auto_escalation_limit and not closed else None
            if escalate_to is not None:
                level = escalate_to
            found.append(Due(incident.id, kind, stamped, escalate_to))
    if (
        incident.severity != "critical"
        and incident.status == IncidentStatus.DETECTED
        and incident.condition_cleared_at is not None
    ):
        deadline = detected + timedelta(seconds=policy.auto_clear_s)
        if now >= deadline:
            found.append(Due(incident.id, DueKind.AUTO_CLEAR, deadline))
    return found


def due(incidents: Iterable[IncidentTimes], now: datetime, policy: DeadlinePolicy) -> list[Due]:
    """Everything due at ``now`` on ``incidents``, oldest deadline first."""
    found = [item for incident in incidents for item in due_for(incident, now, policy)]
    return sorted(found, key=lambda item: (item.deadline, item.incident_id))
