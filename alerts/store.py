"""PostgreSQL side of incidents: operator actions, the audit trail, the outbox lock.

Every change of an incident appends an ``incident_events`` row (the audit trail, kept for years,
and the outbox the relay publishes from). Writers take one transaction-level advisory lock
before appending (:func:`lock_outbox`): ids then become visible in id order, so the relay's
"last id published" position can never skip a row committed late. Incident writes are rare
(faults, not samples), so the serialisation costs nothing that matters. A ``NOTIFY`` at commit
wakes the relay at once instead of at its next poll.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from liftwatch.alerts import lifecycle
from liftwatch.alerts.errors import IncidentNotFound
from liftwatch.alerts.lifecycle import Action
from psycopg import sql
from psycopg.rows import dict_row

# pg_advisory_xact_lock key serialising incident_events writers ("LWIE").
OUTBOX_LOCK_KEY = 0x4C574945
# LISTEN/NOTIFY channel the relay waits on.
NOTIFY_CHANNEL = "liftwatch_incident_events"

ESCALATED = "escalated"
"""Event kind of an escalation (other operator actions use the status they lead to)."""


async def lock_outbox(conn: psycopg.AsyncConnection[Any]) -> None:
    """Serialise incident_events writers until the end of the current transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (OUTBOX_LOCK_KEY,))


async def append_event(
    conn: psycopg.AsyncConnection[Any],
    incident_id: int,
    *,
    kind: str,
    status_after: str,
    actor: str,
    at: datetime,
    note: str = "",
    data: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> int:
    """Append one audit/outbox row (caller holds :func:`lock_outbox`); returns its id (the change id)."""
    cur = await conn.execute(
        "INSERT INTO incident_events (incident_id, at, kind, status_after, actor, note, data, idempotency_key)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            incident_id,
            at,
            kind,
            status_after,
            actor,
            note,
            json.dumps(data or {}, ensure_ascii=False),
            idempotency_key,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    await conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(_first(row))))
    return int(_first(row))


def _first(row: Any) -> Any:
    return row["id"] if isinstance(row, dict) else row[0]


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
) -> dict[str, Any]:
    """Apply an operator action in the caller's transaction; returns the incident row after it.

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
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM incidents WHERE id = %s FOR UPDATE", (incident_id,))
        incident = await cur.fetchone()
        if incident is None:
            raise IncidentNotFound(incident_id)
        if idempotency_key is not None:
            await cur.execute("SELECT 1 FROM incident_events WHERE idempotency_key = %s", (idempotency_key,))
            if await cur.fetchone() is not None:
                return incident
        status = incident["status"]
        if action is Action.ESCALATE:
            level = lifecycle.escalate(status, incident["escalation_level"])
            await cur.execute(
                "UPDATE incidents SET escalation_level = %s WHERE id = %s RETURNING *", (level, incident_id)
            )
            kind = ESCALATED
            data: dict[str, Any] = {"level": level, "by": "operator"}
        else:
            new_status = lifecycle.transition(status, action)
            cause_value = lifecycle.close_cause(action, cause, status)
            column = lifecycle.STATUS_TIMESTAMP[new_status]
            await cur.execute(
                sql.SQL(
                    "UPDATE incidents SET status = %s, {} = %s, close_cause = COALESCE(%s, close_cause)"
                    " WHERE id = %s RETURNING *"
                ).format(sql.Identifier(column)),
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
            status_after=updated["status"],
            actor=actor,
            at=now,
            note=note,
            data=data,
            idempotency_key=idempotency_key,
        )
        return updated
