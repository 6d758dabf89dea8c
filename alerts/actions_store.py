"""Operator actions on a stored incident: the lifecycle applied under the incident's lock."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import psycopg
from liftwatch.alerts import lifecycle
from liftwatch.alerts.errors import IncidentNotFound
from liftwatch.alerts.incidents import EventKind
from liftwatch.alerts.lifecycle import Action
from liftwatch.alerts.outbox import append_event, lock_outbox
from psycopg import sql
from psycopg.rows import class_row


@dataclass(frozen=True, slots=True)
class ActedIncident:
    """What an action reads and changes of an incident (its state after the action)."""

    id: int
    status: str
    escalation_level: int
    close_cause: str | None
    """A :class:`lifecycle.CloseCause` value, once closed with one."""
    acknowledged_at: datetime | None
    dispatched_at: datetime | None
    arrived_at: datetime | None
    released_at: datetime | None
    closed_at: datetime | None
    """Stamped by ``close``, ``false_alarm`` and ``auto_clear`` (:data:`lifecycle.STATUS_TIMESTAMP`)."""


_COLUMNS = ", ".join(field.name for field in fields(ActedIncident))


async def apply_action(
    conn: psycopg.AsyncConnection[Any],
    incident_id: int,
    action: Action,
    *,
    actor: str,
    note: str = "",
    cause: str | None = None,
    now: datetime,
    idempotency_key: str | None = None,
) -> ActedIncident:
    """Apply an operator action in the caller's transaction; returns the incident after it.

    The caller commits (an autocommit connection gets a transaction of its own).
    Locks the incident, applies the lifecycle (:func:`lifecycle.transition`), stamps the status's
    timestamp column, stores the close cause, appends the audit event. ``cause`` is required to
    close (a :class:`lifecycle.CloseCause` value), optional for a false alarm, ignored otherwise.
    A repeated ``idempotency_key`` (a client retrying) returns the incident unchanged.
    Raises :class:`IncidentNotFound`, :class:`IllegalTransition` (or its :class:`InvalidCause`).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not conn.autocommit:
        # Starts the caller's transaction if none is open yet, so the block below is a savepoint
        # in it (a non-autocommit connection's transaction() would otherwise commit by itself).
        await lock_outbox(conn)
    async with conn.transaction():
        if conn.autocommit:
            await lock_outbox(conn)
        cur = conn.cursor(row_factory=class_row(ActedIncident))
        await cur.execute(f"SELECT {_COLUMNS} FROM incidents WHERE id = %s FOR UPDATE", (incident_id,))
        incident = await cur.fetchone()
        if incident is None:
            raise IncidentNotFound(incident_id)
        if idempotency_key is not None:
            # Own namespace, so a client's key can never collide with a fault event id.
            idempotency_key = f"action:{idempotency_key}"
            seen = await conn.execute("SELECT 1 FROM incident_events WHERE idempotency_key = %s", (idempotency_key,))
            if await seen.fetchone() is not None:
                return incident
        status = incident.status
        if action is Action.ESCALATE:
            level = lifecycle.escalate(status, incident.escalation_level)
            await cur.execute(
                f"UPDATE incidents SET escalation_level = %s WHERE id = %s RETURNING {_COLUMNS}", (level, incident_id)
            )
            kind: str = EventKind.ESCALATED
            data: dict[str, Any] = {"level": level, "by": "operator"}
        else:
            new_status = lifecycle.transition(status, action)
            cause_value = lifecycle.close_cause(action, cause, status)
            lifecycle.require_note(action, note, status)
            column = lifecycle.STATUS_TIMESTAMP[new_status]
            await cur.execute(
                sql.SQL(
                    "UPDATE incidents SET status = %s, {} = %s, close_cause = COALESCE(%s, close_cause)"
                    " WHERE id = %s RETURNING {}"
                ).format(sql.Identifier(column), sql.SQL(_COLUMNS)),
                (new_status.value, now, cause_value, incident_id),
            )
            kind = new_status.value
            data = {"from": status, "action": action.value}
            if cause_value is not None:
                data["cause"] = cause_value.value
        updated = await cur.fetchone()
        assert updated is not None
        await append_event(
            conn,
            incident_id,
            kind=kind,
            status_after=updated.status,
            actor=actor,
            at=now,
            note=note,
            data=data,
            idempotency_key=idempotency_key,
        )
        return updated
