"""The incident outbox: the audit trail every incident writer appends to, and its lock.

Every change of an incident appends an ``incident_events`` row (the audit trail, kept for years,
and the outbox the relay publishes from). Writers take one transaction-level advisory lock
before appending (:func:`lock_outbox`): ids then become visible in id order, so the relay's
"last id published" position can never skip a row committed late. Incident writes are rare
(faults, not samples), and a fault storm is folded a whole batch per statement
(:func:`liftwatch.alerts.faults_store.record_faults`), so the serialisation costs little: the
lock is held for well under 0.1 s per 500-event batch. A ``NOTIFY`` at commit wakes the relay at
once instead of at its next poll.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import scalar_row

# pg_advisory_xact_lock key serialising incident_events writers ("LWIE").
OUTBOX_LOCK_KEY = 0x4C574945
# LISTEN/NOTIFY channel the relay waits on.
NOTIFY_CHANNEL = "liftwatch_incident_events"


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
    cur = conn.cursor(row_factory=scalar_row)
    # One round trip: the row and its NOTIFY (delivered at commit, so never before the row is visible).
    await cur.execute(
        "WITH ev AS (INSERT INTO incident_events (incident_id, at, kind, status_after, actor, note, data,"
        " idempotency_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id)"
        " SELECT id, pg_notify(%s, id::text) FROM ev",
        (
            incident_id,
            at,
            kind,
            status_after,
            actor,
            note,
            json.dumps(data or {}, ensure_ascii=False),
            idempotency_key,
            NOTIFY_CHANNEL,
        ),
    )
    change_id = await cur.fetchone()
    assert change_id is not None
    return int(change_id)
