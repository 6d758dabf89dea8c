"""Deadlines on stored incidents: what the periodic tick reads, and how a due item is recorded.

:func:`liftwatch.alerts.deadlines.due` decides (pure); :func:`deadline_candidates` narrows the
incidents it looks at, :func:`apply_due` records one item under the incident's lock. The tick
also reads the open-incident gauge (:func:`open_incident_counts`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import psycopg
from liftwatch.alerts import lifecycle
from liftwatch.alerts.deadlines import DeadlinePolicy, Due, DueKind, IncidentTimes, due_for
from liftwatch.alerts.incidents import EventKind
from liftwatch.alerts.outbox import append_event, lock_outbox
from psycopg import sql
from psycopg.rows import class_row, tuple_row

_TIMES_COLUMNS = (
    "id, code, severity, status, detected_at, opened_at, escalation_level, dispatched_at, arrived_at,"
    " condition_cleared_at, last_notified_at, dispatch_deadline_missed, arrival_deadline_missed, closed_at,"
    " dispatch_deadline_at, arrival_deadline_at"
)
# Necessary conditions of deadlines.due_for, so a tick reads only incidents with something due
# (not every open incident of a storm, every second), plus closed incidents not judged yet.
_CANDIDATES = f"""
SELECT {_TIMES_COLUMNS} FROM incidents
WHERE {lifecycle.FINAL_SQL} AND NOT deadlines_settled
UNION ALL
SELECT {_TIMES_COLUMNS} FROM incidents
WHERE {lifecycle.status_in(lifecycle.OPEN_STATUSES)}
  AND ((status = 'detected' AND COALESCE(last_notified_at, opened_at) <= (
           SELECT r.before FROM json_to_recordset(%(reminders)s::json) AS r(severity text, before timestamptz)
           WHERE r.severity = incidents.severity))
       OR (NOT dispatch_deadline_missed AND dispatch_deadline_at < %(now)s)
       OR (NOT arrival_deadline_missed AND arrival_deadline_at < %(now)s)
       OR (severity <> 'critical' AND status = 'detected' AND condition_cleared_at IS NOT NULL
           AND LEAST(detected_at, opened_at) <= %(auto_clear)s))
"""


async def deadline_candidates(
    conn: psycopg.AsyncConnection[Any], policy: DeadlinePolicy, now: datetime
) -> list[IncidentTimes]:
    """Open incidents on which something may be due at ``now`` (:func:`due` decides)."""
    cur = conn.cursor(row_factory=class_row(IncidentTimes))
    await cur.execute(
        _CANDIDATES,
        {
            "reminders": json.dumps(
                [
                    {"severity": severity, "before": (now - timedelta(seconds=every)).isoformat()}
                    for severity in ("critical", "major", "minor")
                    if (every := policy.reminder_s(severity)) is not None
                ]
            ),
            "now": now,
            "auto_clear": now - timedelta(seconds=policy.auto_clear_s),
        },
    )
    return await cur.fetchall()


async def save_deadline_policy(conn: psycopg.AsyncConnection[Any], policy: DeadlinePolicy) -> None:
    """Make ``policy`` the one stamped on incidents opened from now on (``alerts_deadline_policy``)."""
    async with conn.transaction():
        await conn.execute("DELETE FROM alerts_deadline_policy")
        cur = conn.cursor()
        await cur.executemany(
            "INSERT INTO alerts_deadline_policy (code, dispatch_s, arrival_s) VALUES (%s, %s, %s)",
            [(code, rule.dispatch_s, rule.arrival_s) for code, rule in sorted(policy.codes.items())],
        )


async def settle_closed(conn: psycopg.AsyncConnection[Any], incident_ids: list[int]) -> None:
    """Mark closed incidents as judged (their missed deadlines, if any, are recorded)."""
    if incident_ids:
        await conn.execute(
            f"UPDATE incidents SET deadlines_settled = true WHERE id = ANY(%s) AND {lifecycle.FINAL_SQL}",
            (incident_ids,),
        )


async def apply_due(conn: psycopg.AsyncConnection[Any], item: Due, *, now: datetime, policy: DeadlinePolicy) -> bool:
    """Record one due item, re-checked under the incident's lock; False if no longer due."""
    async with conn.transaction():
        await lock_outbox(conn)
        cur = conn.cursor(row_factory=class_row(IncidentTimes))
        await cur.execute(f"SELECT {_TIMES_COLUMNS} FROM incidents WHERE id = %s FOR UPDATE", (item.incident_id,))
        row = await cur.fetchone()
        if row is None:
            return False
        current = [d for d in due_for(row, now, policy) if d.kind is item.kind]
        if not current:
            return False
        item = current[0]
        key = f"due:{item.incident_id}:{item.kind.value}:{int(item.deadline.timestamp() * 1000)}"
        status = row.status
        data: dict[str, Any]
        if item.kind is DueKind.RENOTIFY:
            await conn.execute("UPDATE incidents SET last_notified_at = %s WHERE id = %s", (now, item.incident_id))
            kind, data = EventKind.RENOTIFIED, {"due_at": item.deadline.isoformat()}
        elif item.kind is DueKind.AUTO_CLEAR:
            status = lifecycle.auto_clear(status).value
            await conn.execute(
                "UPDATE incidents SET status = %s, closed_at = %s WHERE id = %s", (status, now, item.incident_id)
            )
            kind, data = EventKind.AUTO_CLEARED, {"due_at": item.deadline.isoformat()}
        else:
            deadline = "dispatch" if item.kind is DueKind.DISPATCH_MISSED else "arrival"
            await conn.execute(
                sql.SQL(
                    "UPDATE incidents SET {} = true, escalation_level = GREATEST(escalation_level, %s) WHERE id = %s"
                ).format(sql.Identifier(f"{deadline}_deadline_missed")),
                (item.escalate_to or 1, item.incident_id),
            )
            kind, data = EventKind.DEADLINE_MISSED, {"deadline": deadline, "due_at": item.deadline.isoformat()}
            if not lifecycle.is_open(status):
                data["after_close"] = True  # found after a restart: recorded, nobody to escalate to
        await append_event(
            conn,
            item.incident_id,
            kind=kind,
            status_after=status,
            actor="system",
            at=now,
            data=data,
            idempotency_key=key,
        )
        if item.escalate_to is not None:
            await append_event(
                conn,
                item.incident_id,
                kind=EventKind.ESCALATED,
                status_after=status,
                actor="system",
                at=now,
                data={"level": item.escalate_to, "by": "deadline", "deadline": data.get("deadline")},
                idempotency_key=f"{key}:escalated",
            )
        return True


async def open_incident_counts(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """Open incidents by severity."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(f"SELECT severity, count(*) FROM incidents WHERE {lifecycle.OPEN_SQL} GROUP BY severity")
    return {severity: int(count) for severity, count in await cur.fetchall()}
