"""PostgreSQL side of the centre's work on incidents: calls, comments, assignment.

Each function runs in the caller's transaction (a savepoint in it; an autocommit connection gets
a transaction of its own) and follows the lock order of :func:`liftwatch.alerts.actions_store.apply_action`:
the outbox lock first, then the incident row. The rules' faults loop takes the same outbox lock
for a whole batch, so a call and a rule detection of the same elevator and code never both open
an incident: whichever comes second finds the other's open incident and joins it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from liftwatch.alerts.centre import Call, CallOutcome, WorkKind, assignment, call_decision, opening_fields
from liftwatch.alerts.errors import ElevatorNotFound, IncidentNotFound
from liftwatch.alerts.lifecycle import OPEN_SQL
from liftwatch.alerts.outbox import append_event, lock_outbox
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb


@contextlib.asynccontextmanager
async def outbox_transaction(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """A savepoint in the caller's transaction holding the outbox lock (as ``apply_action`` does)."""
    if not conn.autocommit:
        await lock_outbox(conn)  # opens the caller's transaction first, so the block is a savepoint
    async with conn.transaction():
        if conn.autocommit:
            await lock_outbox(conn)
        yield


@dataclass(frozen=True, slots=True)
class CallResult:
    """The incident a call opened or joined, and which."""

    incident: dict[str, Any]
    outcome: CallOutcome
    change_id: int | None
    """The audit row written (None: a retried request, nothing new)."""


async def record_call(
    conn: psycopg.AsyncConnection[Any], call: Call, *, idempotency_key: str | None = None
) -> CallResult:
    """Open an incident for a phone call, or join the open one of the same elevator and code.

    Raises :class:`ElevatorNotFound`. A repeated ``idempotency_key`` returns the incident the
    first request opened or joined, unchanged.
    """
    if call.at.tzinfo is None:
        raise ValueError("the call time must be timezone-aware")
    key = f"call:{idempotency_key}" if idempotency_key is not None else None
    async with outbox_transaction(conn):
        cur = conn.cursor(row_factory=dict_row)
        if key is not None:
            await cur.execute(
                "SELECT i.*, ev.kind FROM incident_events ev JOIN incidents i ON i.id = ev.incident_id"
                " WHERE ev.idempotency_key = %s",
                (key,),
            )
            seen = await cur.fetchone()
            if seen is not None:
                outcome = CallOutcome.OPENED if seen.pop("kind") == "opened" else CallOutcome.JOINED
                return CallResult(seen, outcome, None)
        await cur.execute(
            "SELECT e.registration_code, e.maintainer_id, e.district, e.use_unit_id, t.terminal_id"
            " FROM elevators e LEFT JOIN terminals t ON t.registration_code = e.registration_code"
            " WHERE e.registration_code = %s",
            (call.registration_code,),
        )
        elevator = await cur.fetchone()
        if elevator is None:
            raise ElevatorNotFound(call.registration_code)
        await cur.execute(
            f"SELECT * FROM incidents WHERE registration_code = %s AND code = %s AND {OPEN_SQL} FOR UPDATE",
            (call.registration_code, call.code.value),
        )
        current = await cur.fetchone()
        decision = call_decision(call, None if current is None else int(current["id"]))
        if current is None:
            fields = opening_fields(call)
            await cur.execute(
                "INSERT INTO incidents (registration_code, terminal_id, code, severity, status, source,"
                " maintainer_id, district, use_unit_id, detected_at, opened_at, last_seen_at, evidence,"
                " last_notified_at)"
                " VALUES (%s, %s, %s, %s, 'detected', %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (
                    elevator["registration_code"],
                    # The fitted terminal, so the incident reads as the elevator's; none fitted: empty.
                    elevator["terminal_id"] or "",
                    fields["code"],
                    fields["severity"],
                    fields["source"],
                    elevator["maintainer_id"],
                    elevator["district"],
                    elevator["use_unit_id"],
                    fields["detected_at"],
                    call.at,
                    call.at,
                    Jsonb(fields["evidence"]),
                    call.at,
                ),
            )
            current = await cur.fetchone()
            assert current is not None
        change_id = await append_event(
            conn,
            int(current["id"]),
            kind=decision.kind,
            status_after=current["status"],
            actor=call.actor,
            at=call.at,
            note=call.note,
            data=decision.data,
            idempotency_key=key,
        )
        return CallResult(current, decision.outcome, change_id)


async def _locked_incident(conn: psycopg.AsyncConnection[Any], incident_id: int) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM incidents WHERE id = %s FOR UPDATE", (incident_id,))
    row = await cur.fetchone()
    if row is None:
        raise IncidentNotFound(incident_id)
    return row


async def add_comment(
    conn: psycopg.AsyncConnection[Any],
    incident_id: int,
    *,
    actor: str,
    note: str,
    now: datetime,
    idempotency_key: str | None = None,
) -> int:
    """Append a comment to the incident's trail (open or closed); returns its change id.

    ``note`` is stored as given (:func:`liftwatch.alerts.centre.check_comment` validates it).
    A repeated ``idempotency_key`` appends nothing and returns the first comment's id.
    """
    key = f"comment:{idempotency_key}" if idempotency_key is not None else None
    async with outbox_transaction(conn):
        incident = await _locked_incident(conn, incident_id)
        if key is not None:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT id FROM incident_events WHERE idempotency_key = %s", (key,))
            seen = await cur.fetchone()
            if seen is not None:
                return int(seen["id"])
        return await append_event(
            conn,
            incident_id,
            kind=WorkKind.COMMENT.value,
            status_after=incident["status"],
            actor=actor,
            at=now,
            note=note,
            idempotency_key=key,
        )


async def assign(
    conn: psycopg.AsyncConnection[Any], incident_id: int, *, assignee: str | None, actor: str, now: datetime
) -> dict[str, Any]:
    """Hand an open incident to ``assignee`` (None: release it); returns the incident row after it.

    Claiming an incident someone else holds takes it over (the trail says from whom). Assigning it
    to whoever already holds it changes nothing. Raises :class:`IncidentNotFound`,
    :class:`IllegalTransition` (a closed incident).
    """
    async with outbox_transaction(conn):
        incident = await _locked_incident(conn, incident_id)
        data = assignment(incident["status"], incident["assignee"], assignee)
        if data is None:
            return incident
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("UPDATE incidents SET assignee = %s WHERE id = %s RETURNING *", (assignee, incident_id))
        updated = await cur.fetchone()
        assert updated is not None
        await append_event(
            conn,
            incident_id,
            kind=WorkKind.ASSIGNED.value,
            status_after=updated["status"],
            actor=actor,
            at=now,
            data=data,
        )
        return updated
