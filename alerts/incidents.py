"""Folding fault events into incidents: open, repeat, clear, chattering. Pure, no I/O.

One open incident per (elevator, code) (per terminal when no elevator is known): a ``raised``
event with none open opens one; with one open it is a repeat (count, last seen, evidence).
``cleared`` only records that the condition stopped: it never closes an incident (a person
closes critical ones; non-critical ones that nobody acknowledged are auto-cleared after 24 h by
the deadlines). Every flip of the condition (the opening raise, a clear, a raise after a clear)
is a *toggle*; ``chattering_toggles`` toggles within ``chattering_window_ms`` of event time flag
the incident ``chattering`` (sticky until it is closed) instead of opening new incidents.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from liftwatch.alerts.centre import WorkKind
from liftwatch.ids import TERMINAL_ID
from liftwatch.schema import FAULT_SEVERITY, DeadLetterReason, FaultEvent, IncidentStatus, fault_event_id

CHATTERING_WINDOW_MS = 60_000
CHATTERING_TOGGLES = 3

# Plausible event times: anything outside cannot come from a terminal of this platform, and
# values far outside overflow datetime/timestamptz (a poison pill that would stall the batch).
EARLIEST_EVENT_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_FUTURE_MS = 24 * 3600 * 1000
"""How far ahead of the service clock an event time may be (the gateway's default skew bound)."""


class Outcome(enum.StrEnum):
    """What a fault event did; the ``outcome`` label of the processed-events counter."""

    OPENED = "opened"
    REPEATED = "repeated"
    CLEARED = "cleared"
    ORPHAN_CLEAR = "orphan_clear"
    """A clear with no open incident (already closed by a person): nothing to change."""
    DUPLICATE = "duplicate"
    """The event id was seen before (replay after a restart or rebalance)."""
    STALE = "stale"
    """Older than the last event applied to the open incident: a redelivery of an event that
    changed nothing the first time (a clear with nothing open), so it changes nothing now."""


class EventKind(enum.StrEnum):
    """``incident_events.kind`` values the service writes (operator actions use the new status)."""

    OPENED = "opened"
    UPDATED = "updated"
    CONDITION_CLEARED = "condition_cleared"
    CHATTERING = "chattering"
    RENOTIFIED = "renotified"
    DEADLINE_MISSED = "deadline_missed"
    ESCALATED = "escalated"
    AUTO_CLEARED = "auto_cleared"
    GROUPED = "grouped"
    """Joined (or now leads) an incident group (``data.group``: the leader); liftwatch.alerts.storms."""
    INHIBITED = "inhibited"
    """Its changes are not notified while another incident lasts (``data.by``); liftwatch.alerts.storms."""


# Operator actions record the status they lead to; an escalation records "escalated"; the
# centre's calls, comments and assignments their own kinds (liftwatch.alerts.centre.WorkKind).
CHANGE_KINDS: frozenset[str] = frozenset({*EventKind, *IncidentStatus, *WorkKind} - {IncidentStatus.DETECTED})
"""Every ``incident_events.kind`` (the ``kind`` of an incident change)."""


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """The fields of an open incident the fold reads."""

    id: int
    occurrences: int
    chattering: bool
    condition_cleared: bool
    toggles_ms: tuple[int, ...]
    last_event_ms: int | None = None
    """Event time of the last fault event applied (None: not recorded)."""


@dataclass(frozen=True, slots=True)
class Fold:
    """The change a fault event makes to its (new or open) incident."""

    outcome: Outcome
    kind: EventKind | None
    """Audit event to append; None = nothing to record."""
    occurrences: int = 1
    chattering: bool = False
    condition_cleared_ms: int | None = None
    """Event time the condition stopped; None = it holds (again)."""
    toggles_ms: tuple[int, ...] = ()
    seen_ms: int | None = None
    """Event time of the detection (opening or repeat); None for a clear."""


def check_event(event: FaultEvent, *, now_ms: int) -> tuple[DeadLetterReason, str] | None:
    """Why ``event`` breaks the ``faults`` contract (reason, detail), or None when it is sound.

    The rule engine derives the id and the severity from the other fields; a record that does
    not is refused rather than trusted, because its id is an idempotency key (a forged one could
    shadow an operator action or a deadline) and its severity decides who is paged.
    """
    if not TERMINAL_ID.matches(event.terminal):  # FaultEvent.terminal is a plain str
        return DeadLetterReason.SCHEMA, f"terminal {event.terminal[:80]!r} is not a terminal id ({TERMINAL_ID.rule})"
    for name, ms in (("since_ms", event.since_ms), ("at_ms", event.at_ms)):
        if ms < EARLIEST_EVENT_MS:
            return DeadLetterReason.STALE_TIMESTAMP, f"{name} {ms} is before 2000-01-01"
        if ms > now_ms + MAX_FUTURE_MS:
            return DeadLetterReason.FUTURE_TIMESTAMP, f"{name} {ms} is more than 24 h ahead of the service clock"
    expected_id = fault_event_id(event.terminal, event.code.value, event.transition, event.since_ms)
    if event.event_id != expected_id:
        return DeadLetterReason.SCHEMA, f"event_id {event.event_id[:200]!r} is not {expected_id[:200]!r}"
    if event.severity != FAULT_SEVERITY[event.code]:
        return DeadLetterReason.SCHEMA, f"severity {event.severity} is not the catalog's for {event.code}"
    try:
        # Stored as jsonb: msgpack allows what JSON does not (binary, extension types, NaN); such
        # evidence made the fold raise TypeError, and the consumer re-read the batch for ever.
        json.dumps(event.evidence, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        return DeadLetterReason.SCHEMA, f"evidence is not JSON: {type(error).__name__}: {str(error)[:200]}"
    return None


def ms_to_datetime(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _window(toggles: tuple[int, ...], at_ms: int, window_ms: int) -> tuple[int, ...]:
    return tuple(t for t in (*toggles, at_ms) if at_ms - t <= window_ms)


def fold(
    incident: OpenIncident | None,
    event: FaultEvent,
    *,
    window_ms: int = CHATTERING_WINDOW_MS,
    toggles: int = CHATTERING_TOGGLES,
) -> Fold:
    """The effect of ``event`` on the open incident of its (elevator, code), if any."""
    if incident is not None and incident.last_event_ms is not None and event.at_ms < incident.last_event_ms:
        return Fold(Outcome.STALE, None)
    if event.transition == "raised":
        if incident is None:
            return Fold(Outcome.OPENED, EventKind.OPENED, toggles_ms=(event.at_ms,), seen_ms=event.at_ms)
        flipped = incident.condition_cleared
        window = _window(incident.toggles_ms, event.at_ms, window_ms) if flipped else incident.toggles_ms
        chattering = incident.chattering or len(window) >= toggles
        return Fold(
            Outcome.REPEATED,
            EventKind.CHATTERING if chattering and not incident.chattering else EventKind.UPDATED,
            occurrences=incident.occurrences + 1,
            chattering=chattering,
            condition_cleared_ms=None,
            toggles_ms=window,
            seen_ms=event.at_ms,
        )
    if incident is None:
        return Fold(Outcome.ORPHAN_CLEAR, None)
    flipped = not incident.condition_cleared
    window = _window(incident.toggles_ms, event.at_ms, window_ms) if flipped else incident.toggles_ms
    chattering = incident.chattering or len(window) >= toggles
    return Fold(
        Outcome.CLEARED,
        EventKind.CHATTERING if chattering and not incident.chattering else EventKind.CONDITION_CLEARED,
        occurrences=incident.occurrences,
        chattering=chattering,
        condition_cleared_ms=event.since_ms,
        toggles_ms=window,
    )
