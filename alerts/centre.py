"""The emergency centre's own work on incidents: calls, comments, assignment. Pure, no I/O.

A trapped person phones the centre (96333) and reads the rescue code on the car's plate; the
operator opens an incident by hand (:func:`call_decision`). There is at most one open incident
per (elevator, code), whoever opened it: a call for an elevator and code already open joins
that incident (a ``called`` row on its trail) instead of opening a second one, and a rule
detection arriving after the call is folded onto the call's incident like any repeat
(:func:`liftwatch.alerts.incidents.fold` sees an ordinary open incident). A call's deadlines
start at the call: its ``detected_at`` is the moment the operator recorded it.

Comments can be added at any time, closed incidents included (the trail is the record).
Assignment (:func:`assignment`) says which operator holds an open incident; it never changes
the lifecycle status.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from liftwatch.alerts.errors import IllegalTransition
from liftwatch.alerts.lifecycle import is_open
from liftwatch.schema import FAULT_SEVERITY, FaultCode

COMMENT_MAX = 2000
"""Longest comment (characters), as long as an action's note."""
# A phone number as an operator types it: digits, an optional leading +, spaces and dashes.
PHONE = re.compile(r"\+?[0-9][0-9 -]{2,22}[0-9]")


class Source(enum.StrEnum):
    """Who opened an incident (``incidents.source``)."""

    RULE = "rule"
    """The rule engine detected the fault in the telemetry."""
    CALL = "call"
    """An operator recorded a phone call (the 96333 path)."""


class WorkKind(enum.StrEnum):
    """``incident_events.kind`` of the centre's work (a call that opens writes ``opened``)."""

    CALLED = "called"
    """A call about an incident already open (joined, not duplicated)."""
    COMMENT = "comment"
    """A comment: the note is the text."""
    ASSIGNED = "assigned"
    """The incident was claimed, handed to another operator, or released (``data.to`` None)."""
    SHELVED = "shelved"
    """Its (elevator, code) was shelved (``data``: shelf id, until); see liftwatch.alerts.suppression."""
    UNSHELVED = "unshelved"
    """The shelf was taken off early (it also returns by itself when it expires, without a row)."""


class CallOutcome(enum.StrEnum):
    OPENED = "opened"
    JOINED = "joined"


@dataclass(frozen=True, slots=True)
class Call:
    """One phone call as the operator recorded it."""

    registration_code: str
    code: FaultCode
    actor: str
    """The operator who took the call."""
    at: datetime
    """When the operator recorded it: the incident's detection time if it opens one."""
    note: str = ""
    caller_phone: str | None = None


@dataclass(frozen=True, slots=True)
class CallDecision:
    """What a call does: open a new incident, or join the open one (``incident_id``)."""

    outcome: CallOutcome
    kind: str
    """Audit row kind: ``opened`` or ``called``."""
    data: dict[str, Any]
    """Audit row data: the source, and the caller's number when given."""
    incident_id: int | None = None


def normalise_phone(value: str | None) -> str | None:
    """The caller's number as stored (spaces and dashes dropped), None when not given; ValueError if not a number."""
    if value is None or not value.strip():
        return None
    if PHONE.fullmatch(value.strip()) is None:
        raise ValueError("not a phone number")
    return re.sub(r"[ -]", "", value.strip())


def call_decision(call: Call, open_incident_id: int | None) -> CallDecision:
    """Open an incident for ``call``, or join the open one of its elevator and code."""
    data: dict[str, Any] = {"source": Source.CALL.value}
    if call.caller_phone is not None:
        data["caller_phone"] = call.caller_phone
    if open_incident_id is None:
        return CallDecision(CallOutcome.OPENED, "opened", data)
    return CallDecision(CallOutcome.JOINED, WorkKind.CALLED.value, data, open_incident_id)


def opening_fields(call: Call) -> dict[str, Any]:
    """Columns of the incident a call opens (routing columns come from the registry)."""
    return {
        "code": call.code.value,
        "severity": FAULT_SEVERITY[call.code].value,
        "source": Source.CALL.value,
        "detected_at": call.at,
        "evidence": {"source": Source.CALL.value},
    }


def assignment(status: str, current: str | None, to: str | None) -> dict[str, Any] | None:
    """The audit data of handing an incident from ``current`` to ``to``; None when nothing changes.

    Raises :class:`IllegalTransition` on a closed incident (nobody works it any more).
    """
    if not is_open(status):
        raise IllegalTransition(status, "assign", detail="the incident is already closed")
    if current == to:
        return None
    return {"from": current, "to": to}


def check_comment(note: str) -> str:
    """The comment as stored (trimmed); ValueError when empty or too long."""
    text = note.strip()
    if not text:
        raise ValueError("a comment needs text")
    if len(text) > COMMENT_MAX:
        raise ValueError(f"a comment has at most {COMMENT_MAX} characters")
    return text
