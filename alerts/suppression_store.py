"""PostgreSQL side of maintenance windows, shelves and out-of-service periods (see :mod:`suppression`).

Rows are never deleted: ending one early stamps ``ended_at``/``ended_by``. Validation is the
pure module's; these functions only write. A shelf also goes on the trail of the open incident
of its (elevator, code), if any (``shelved`` / ``unshelved``), under the outbox lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from liftwatch.alerts.centre import WorkKind
from liftwatch.alerts.centre_store import outbox_transaction
from liftwatch.alerts.lifecycle import OPEN_SQL
from liftwatch.alerts.outbox import append_event
from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row


async def _one(conn: psycopg.AsyncConnection[Any], query: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, params)
    return await cur.fetchone()


async def add_window(
    conn: psycopg.AsyncConnection[Any],
    registration_code: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    actor: str,
) -> dict[str, Any]:
    """Declare a maintenance window (checked by :func:`suppression.check_window`)."""
    row = await _one(
        conn,
        "INSERT INTO maintenance_windows (registration_code, starts_at, ends_at, reason, created_by)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING *",
        (registration_code, starts_at, ends_at, reason, actor),
    )
    assert row is not None
    return row


async def end_window(conn: psycopg.AsyncConnection[Any], window_id: int, *, actor: str, now: datetime) -> None:
    """End a window now (a window already over stays as it was)."""
    await conn.execute(
        "UPDATE maintenance_windows SET ended_at = %s, ended_by = %s"
        " WHERE id = %s AND ended_at IS NULL AND ends_at > %s",
        (now, actor, window_id, now),
    )


async def _open_incident(
    conn: psycopg.AsyncConnection[Any], registration_code: str, code: str
) -> dict[str, Any] | None:
    return await _one(
        conn,
        f"SELECT id, status FROM incidents WHERE registration_code = %s AND code = %s AND {OPEN_SQL} FOR UPDATE",
        (registration_code, code),
    )


async def add_shelf(
    conn: psycopg.AsyncConnection[Any],
    registration_code: str,
    code: str,
    *,
    reason: str,
    expires_at: datetime,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Shelve an (elevator, code) until ``expires_at`` (checked by :func:`suppression.shelf_expiry`)."""
    async with outbox_transaction(conn):
        shelf = await _one(
            conn,
            "INSERT INTO alarm_shelves (registration_code, code, reason, shelved_at, expires_at, created_by)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
            (registration_code, code, reason, now, expires_at, actor),
        )
        assert shelf is not None
        incident = await _open_incident(conn, registration_code, code)
        if incident is not None:
            await append_event(
                conn,
                incident["id"],
                kind=WorkKind.SHELVED.value,
                status_after=incident["status"],
                actor=actor,
                at=now,
                note=reason,
                data={"shelf": shelf["id"], "until": expires_at.isoformat()},
            )
        return shelf


async def end_shelf(conn: psycopg.AsyncConnection[Any], shelf_id: int, *, actor: str, now: datetime) -> bool:
    """Take a shelf off now; False when it had already expired or ended."""
    async with outbox_transaction(conn):
        shelf = await _one(
            conn,
            "UPDATE alarm_shelves SET ended_at = %s, ended_by = %s"
            " WHERE id = %s AND ended_at IS NULL AND expires_at > %s RETURNING *",
            (now, actor, shelf_id, now),
        )
        if shelf is None:
            return False
        incident = await _open_incident(conn, shelf["registration_code"], shelf["code"])
        if incident is not None:
            await append_event(
                conn,
                incident["id"],
                kind=WorkKind.UNSHELVED.value,
                status_after=incident["status"],
                actor=actor,
                at=now,
                data={"shelf": shelf_id},
            )
        return True


async def set_out_of_service(
    conn: psycopg.AsyncConnection[Any], registration_code: str, *, reason: str, actor: str, now: datetime
) -> dict[str, Any]:
    """Mark the elevator out of service from ``now``; the open period when it already is."""
    try:
        async with conn.transaction():
            row = await _one(
                conn,
                "INSERT INTO out_of_service (registration_code, since, reason, set_by)"
                " VALUES (%s, %s, %s, %s) RETURNING *",
                (registration_code, now, reason, actor),
            )
    except UniqueViolation:
        row = await _one(
            conn, "SELECT * FROM out_of_service WHERE registration_code = %s AND ended_at IS NULL", (registration_code,)
        )
    assert row is not None
    return row


async def end_out_of_service(
    conn: psycopg.AsyncConnection[Any], registration_code: str, *, actor: str, now: datetime
) -> bool:
    """Back in service; False when it was not out of service."""
    cur = await conn.execute(
        "UPDATE out_of_service SET ended_at = %s, ended_by = %s WHERE registration_code = %s AND ended_at IS NULL",
        (now, actor, registration_code),
    )
    return cur.rowcount > 0
