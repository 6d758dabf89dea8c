"""PostgreSQL side of incidents: operator actions, the audit trail, the outbox lock.

Every change of an incident appends an ``incident_events`` row (the audit trail, kept for years,
and the outbox the relay publishes from). Writers take one transaction-level advisory lock
before appending (:func:`lock_outbox`): ids then become visible in id order, so the relay's
"last id published" position can never skip a row committed late. Incident writes are rare
(faults, not samples), and a fault storm is folded a whole batch per statement
(:func:`record_faults`), so the serialisation costs little: the lock is held for well under
0.1 s per 500-event batch. A ``NOTIFY`` at commit wakes the relay at once instead of at its
next poll.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from liftwatch.alerts import lifecycle
from liftwatch.alerts.deadlines import DeadlinePolicy, Due, DueKind, IncidentTimes, due_for
from liftwatch.alerts.errors import IncidentNotFound
from liftwatch.alerts.incidents import (
    CHATTERING_TOGGLES,
    CHATTERING_WINDOW_MS,
    EventKind,
    Fold,
    OpenIncident,
    Outcome,
    fold,
    ms_to_datetime,
)
from liftwatch.alerts.lifecycle import Action
from liftwatch.schema import FaultEvent
from psycopg import sql
from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

log = logging.getLogger(__name__)

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
    cur = conn.cursor(row_factory=dict_row)
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
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


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
            # Own namespace, so a client's key can never collide with a fault event id.
            idempotency_key = f"action:{idempotency_key}"
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
            lifecycle.require_note(action, note, status)
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


# --- fault events -----------------------------------------------------------------------------

# The elevator the terminal is fitted to, else the one the event names (a terminal not in the
# registry, or unfitted, whose rule engine still knew the elevator).
_REGISTRY = """
SELECT registration_code, maintainer_id, district, use_unit_id FROM elevators
WHERE registration_code = COALESCE((SELECT registration_code FROM terminals WHERE terminal_id = %s), %s)
"""
_OPEN_COLUMNS = """
SELECT id, occurrences, chattering, condition_cleared_at IS NOT NULL AS cleared, toggles_ms, last_event_ms
FROM incidents
"""
_OPEN = "status NOT IN ('closed', 'false_alarm', 'auto_cleared')"
# One open incident per (elevator, code): keyed by the elevator when the registry knows it (so a
# replaced or swapped terminal keeps feeding the elevator's incident), else by the terminal.
_OPEN_BY_ELEVATOR = f"{_OPEN_COLUMNS} WHERE registration_code = %s AND code = %s AND {_OPEN} FOR UPDATE"
_OPEN_BY_TERMINAL = (
    f"{_OPEN_COLUMNS} WHERE registration_code IS NULL AND terminal_id = %s AND code = %s AND {_OPEN} FOR UPDATE"
)


async def _registry_snapshot(conn: psycopg.AsyncConnection[Any], event: FaultEvent) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_REGISTRY, (event.terminal, event.registration_code))
    row = await cur.fetchone()
    # Unknown to the registry (unregistered terminal, or a code the registry no longer has):
    # the incident is still opened, keyed by terminal, with no routing data.
    return row or {"registration_code": None, "maintainer_id": None, "district": None, "use_unit_id": None}


async def _open_incident(
    conn: psycopg.AsyncConnection[Any], event: FaultEvent, registration_code: str | None
) -> OpenIncident | None:
    cur = conn.cursor(row_factory=dict_row)
    if registration_code is not None:
        await cur.execute(_OPEN_BY_ELEVATOR, (registration_code, event.code.value))
    else:
        await cur.execute(_OPEN_BY_TERMINAL, (event.terminal, event.code.value))
    row = await cur.fetchone()
    return None if row is None else _open_from_row(row)


def _open_from_row(row: dict[str, Any]) -> OpenIncident:
    """An open incident's fold state from its row."""
    return OpenIncident(
        id=row["id"],
        occurrences=row["occurrences"],
        chattering=row["chattering"],
        condition_cleared=row["cleared"],
        toggles_ms=tuple(row["toggles_ms"]),
        last_event_ms=row["last_event_ms"],
    )


def _evidence(event: FaultEvent) -> Jsonb:
    return Jsonb({**event.evidence, "event_id": event.event_id, "since_ms": event.since_ms, "at_ms": event.at_ms})


async def record_fault(
    conn: psycopg.AsyncConnection[Any],
    event: FaultEvent,
    *,
    now: datetime,
    window_ms: int = CHATTERING_WINDOW_MS,
    toggles: int = CHATTERING_TOGGLES,
) -> Outcome:
    """Fold one fault event into the incidents, exactly once per ``event_id``.

    Runs in a savepoint of the caller's transaction (which holds :func:`lock_outbox`): a
    duplicate or a failure of this event leaves the others of the batch intact.
    """
    async with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT 1 AS seen FROM incident_events WHERE idempotency_key = %s", (event.event_id,))
        if await cur.fetchone() is not None:
            return Outcome.DUPLICATE
        snapshot = await _registry_snapshot(conn, event)
        incident = await _open_incident(conn, event, snapshot["registration_code"])
        result = fold(incident, event, window_ms=window_ms, toggles=toggles)
        if result.kind is None:
            return result.outcome
        if incident is None:
            opened = await _insert_incident(conn, event, snapshot, result, now)
            if opened is None:
                # Another writer opened it between our read and insert: fold onto theirs.
                incident = await _open_incident(conn, event, snapshot["registration_code"])
                if incident is None:
                    raise RuntimeError(f"open incident of {event.terminal}/{event.code} vanished")
                result = fold(incident, event, window_ms=window_ms, toggles=toggles)
            else:
                incident_id, status = opened, "detected"
        if incident is not None:
            incident_id = incident.id
            status = await _update_incident(conn, incident_id, event, result)
        assert result.kind is not None
        await append_event(
            conn,
            incident_id,
            kind=result.kind,
            status_after=status,
            actor="system",
            at=now,
            data={
                "event_id": event.event_id,
                "transition": event.transition,
                "at_ms": event.at_ms,
                "occurrences": result.occurrences,
                "chattering": result.chattering,
            },
            idempotency_key=event.event_id,
        )
        return result.outcome


# --- fault events, a whole batch at once ---------------------------------------------------------

# Every statement of the batch takes its rows as one JSON document (json_to_recordset): one
# parameter, dumped by the json module's C encoder, instead of psycopg escaping each element of
# a dozen text arrays in Python (that was a third of the batch's time). Event times travel as
# epoch milliseconds and become timestamps exactly (integer microseconds) in the database.
_REGISTRY_MANY = """
SELECT x.terminal, x.reg, e.registration_code, e.maintainer_id, e.district, e.use_unit_id
FROM json_to_recordset(%s::json) AS x(terminal text, reg text)
LEFT JOIN terminals t ON t.terminal_id = x.terminal
LEFT JOIN elevators e ON e.registration_code = COALESCE(t.registration_code, x.reg)
"""
_SEEN_MANY = (
    "SELECT idempotency_key FROM incident_events"
    " WHERE idempotency_key = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
)
_OPEN_MANY_COLUMNS = (
    "SELECT id, status, registration_code, terminal_id, code, occurrences, chattering,"
    " condition_cleared_at IS NOT NULL AS cleared, toggles_ms, last_event_ms FROM incidents"
)
_OPEN_MANY_BY_ELEVATOR = (
    f"{_OPEN_MANY_COLUMNS} WHERE (registration_code, code) IN"
    f" (SELECT k, c FROM json_to_recordset(%s::json) AS x(k text, c text)) AND {_OPEN} FOR UPDATE"
)
_OPEN_MANY_BY_TERMINAL = (
    f"{_OPEN_MANY_COLUMNS} WHERE registration_code IS NULL AND (terminal_id, code) IN"
    f" (SELECT k, c FROM json_to_recordset(%s::json) AS x(k text, c text)) AND {_OPEN} FOR UPDATE"
)


def _ts(ms: str) -> str:
    return f"(timestamptz 'epoch' + {ms} * interval '1 millisecond')"


# Ids are assigned in the order of the SELECT (ORDER BY ord, the row's position in the batch), i.e.
# in event order, as one event per statement would assign them.
_INSERT_MANY = f"""
INSERT INTO incidents (registration_code, terminal_id, code, severity, status, maintainer_id, district,
    use_unit_id, detected_at, opened_at, last_seen_at, occurrences, chattering, condition_cleared_at, evidence,
    toggles_ms, last_notified_at, last_event_ms)
SELECT reg, terminal, code, severity, 'detected', maintainer, district, unit, {_ts("detected")}, %(now)s,
    {_ts("seen")}, occ, chat, {_ts("cleared")}, ev, toggles, %(now)s, last_ms
FROM json_to_recordset(%(rows)s::json) AS v(reg text, terminal text, code text, severity text,
    maintainer bigint, district text, unit bigint, detected bigint, seen bigint, occ int, chat bool, cleared bigint,
    ev jsonb, toggles bigint[], last_ms bigint, ord int)
ORDER BY ord
RETURNING id, registration_code, terminal_id, code
"""
_UPDATE_MANY = f"""
UPDATE incidents i SET occurrences = v.occ, chattering = v.chat, condition_cleared_at = {_ts("v.cleared")},
    toggles_ms = v.toggles, last_seen_at = COALESCE({_ts("v.seen")}, i.last_seen_at),
    evidence = COALESCE(v.ev, i.evidence), last_event_ms = GREATEST(i.last_event_ms, v.last_ms)
FROM json_to_recordset(%s::json) AS v(id bigint, occ int, chat bool, cleared bigint, toggles bigint[], seen bigint,
    ev jsonb, last_ms bigint)
WHERE i.id = v.id
"""
# The rows and one NOTIFY (the highest change id; listeners only need waking) in one statement.
_APPEND_MANY = """
WITH ev AS (
    INSERT INTO incident_events (incident_id, at, kind, status_after, actor, data, idempotency_key)
    SELECT incident, %s, kind, status, 'system', data, key
    FROM json_to_recordset(%s::json) AS v(incident bigint, kind text, status text, data jsonb, key text, ord int)
    ORDER BY ord
    RETURNING id)
SELECT pg_notify(%s, max(id)::text) FROM ev
"""

_IncidentKey = tuple[str, str | None, str]
"""("elevator", registration code, code) or ("terminal", terminal id, code)."""


@dataclass(slots=True)
class _Tracked:
    """An incident of the batch as the events so far left it (what the database will hold)."""

    incident: OpenIncident | None
    status: str = "detected"
    new: bool = False
    first: FaultEvent | None = None
    """The opening event (new incidents)."""
    last: Fold | None = None
    """The last change applied in this batch (None: none)."""
    seen_event: FaultEvent | None = None
    """The last detection (raise) applied in this batch."""
    snapshot: dict[str, Any] | None = None


def _evidence_doc(event: FaultEvent) -> dict[str, Any]:
    return {**event.evidence, "event_id": event.event_id, "since_ms": event.since_ms, "at_ms": event.at_ms}


def _json(rows: list[Any]) -> str:
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


async def record_faults(
    conn: psycopg.AsyncConnection[Any],
    events: Sequence[FaultEvent],
    *,
    now: datetime,
    window_ms: int = CHATTERING_WINDOW_MS,
    toggles: int = CHATTERING_TOGGLES,
) -> list[Outcome | psycopg.Error]:
    """Fold a batch of fault events, in order, exactly as :func:`record_fault` one by one would.

    The caller's transaction holds :func:`lock_outbox`. Set-based: the seen event ids, the
    registry snapshots and the open incidents are read in a few queries, the events are folded
    in Python (:func:`fold`, in order, a duplicate within the batch included), and the new
    incidents, the changed ones and the audit rows are written in one statement each. Returns
    one result per event: its :class:`Outcome`, or the database error that refused it (a data
    error such as a NUL character in the evidence: the batch is then folded again one event per
    savepoint, so only the offending events are refused). Errors of the connection are raised.
    """
    if not events:
        return []
    try:
        async with conn.transaction():
            return list(await _fold_batch(conn, events, now=now, window_ms=window_ms, toggles=toggles))
    except (psycopg.OperationalError, psycopg.InterfaceError):
        raise
    except psycopg.Error as error:
        log.warning("faults batch of %d refused (%s: %s); folding it one event at a time", len(events),
                    type(error).__name__, error)  # fmt: skip
    results: list[Outcome | psycopg.Error] = []
    for event in events:
        try:
            results.append(await record_fault(conn, event, now=now, window_ms=window_ms, toggles=toggles))
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as error:
            results.append(error)
    return results


async def _fold_batch(
    conn: psycopg.AsyncConnection[Any], events: Sequence[FaultEvent], *, now: datetime, window_ms: int, toggles: int
) -> list[Outcome]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_SEEN_MANY, (_json(list({event.event_id for event in events})),))
    written = {row["idempotency_key"] for row in await cur.fetchall()}
    sources = {(event.terminal, event.registration_code) for event in events}
    await cur.execute(_REGISTRY_MANY, (_json([{"terminal": t, "reg": r} for t, r in sources]),))
    snapshots: dict[tuple[str, str | None], dict[str, Any]] = {
        (row.pop("terminal"), row.pop("reg")): row for row in await cur.fetchall()
    }

    def key_of(event: FaultEvent) -> _IncidentKey:
        registration_code = snapshots[(event.terminal, event.registration_code)]["registration_code"]
        if registration_code is not None:
            return ("elevator", registration_code, event.code.value)
        return ("terminal", event.terminal, event.code.value)

    keys = {key_of(event) for event in events}
    tracked: dict[_IncidentKey, _Tracked] = {key: _Tracked(None) for key in keys}
    for kind, query in (("elevator", _OPEN_MANY_BY_ELEVATOR), ("terminal", _OPEN_MANY_BY_TERMINAL)):
        pairs = [{"k": name, "c": code} for k, name, code in keys if k == kind]
        if not pairs:
            continue
        await cur.execute(query, (_json(pairs),))
        for row in await cur.fetchall():
            name = row["registration_code"] if kind == "elevator" else row["terminal_id"]
            tracked[(kind, name, row["code"])] = _Tracked(_open_from_row(row), status=row["status"])

    outcomes: list[Outcome] = []
    audit: list[tuple[_Tracked, FaultEvent, Fold]] = []
    opened: list[_Tracked] = []  # in opening order, the order one event per statement assigns ids in
    for event in events:
        if event.event_id in written:
            outcomes.append(Outcome.DUPLICATE)
            continue
        entry = tracked[key_of(event)]
        result = fold(entry.incident, event, window_ms=window_ms, toggles=toggles)
        outcomes.append(result.outcome)
        if result.kind is None:
            continue
        written.add(event.event_id)
        if entry.incident is None:
            entry.new, entry.first = True, event
            entry.snapshot = snapshots[(event.terminal, event.registration_code)]
            opened.append(entry)
        entry.incident = OpenIncident(
            id=entry.incident.id if entry.incident is not None else 0,
            occurrences=result.occurrences,
            chattering=result.chattering,
            condition_cleared=result.condition_cleared_ms is not None,
            toggles_ms=result.toggles_ms,
            last_event_ms=event.at_ms
            if entry.incident is None or entry.incident.last_event_ms is None
            else max(entry.incident.last_event_ms, event.at_ms),
        )
        entry.last = result
        if result.seen_ms is not None:
            entry.seen_event = event
        audit.append((entry, event, result))
    if not audit:
        return outcomes

    if opened:
        rows: list[dict[str, Any]] = []
        for entry in opened:
            first, last, seen, snapshot = entry.first, entry.last, entry.seen_event, entry.snapshot
            assert first is not None and last is not None and seen is not None and snapshot is not None
            assert entry.incident is not None
            rows.append(
                {
                    "reg": snapshot["registration_code"],
                    "terminal": first.terminal,
                    "code": first.code.value,
                    "severity": first.severity.value,
                    "maintainer": snapshot["maintainer_id"],
                    "district": snapshot["district"],
                    "unit": snapshot["use_unit_id"],
                    "detected": first.at_ms,
                    "seen": seen.at_ms,
                    "occ": last.occurrences,
                    "chat": last.chattering,
                    "cleared": last.condition_cleared_ms,
                    "ev": _evidence_doc(seen),
                    "toggles": last.toggles_ms,
                    "last_ms": entry.incident.last_event_ms,
                    "ord": len(rows),
                }
            )
        await cur.execute(_INSERT_MANY, {"now": now, "rows": _json(rows)})
        ids = {(row["registration_code"], row["terminal_id"], row["code"]): row["id"] for row in await cur.fetchall()}
        for entry in opened:
            assert entry.first is not None and entry.snapshot is not None and entry.incident is not None
            incident_id = ids[(entry.snapshot["registration_code"], entry.first.terminal, entry.first.code.value)]
            entry.incident = replace(entry.incident, id=incident_id)

    changed: list[dict[str, Any]] = []
    for entry in tracked.values():
        last, seen, incident = entry.last, entry.seen_event, entry.incident
        if entry.new or last is None:
            continue
        assert incident is not None
        changed.append(
            {
                "id": incident.id,
                "occ": last.occurrences,
                "chat": last.chattering,
                "cleared": last.condition_cleared_ms,
                "toggles": last.toggles_ms,
                "seen": None if seen is None else seen.at_ms,
                "ev": None if seen is None else _evidence_doc(seen),
                "last_ms": incident.last_event_ms,
            }
        )
    if changed:
        await cur.execute(_UPDATE_MANY, (_json(changed),))

    appended: list[dict[str, Any]] = []
    for entry, event, result in audit:
        assert entry.incident is not None and result.kind is not None
        data = {
            "event_id": event.event_id,
            "transition": event.transition,
            "at_ms": event.at_ms,
            "occurrences": result.occurrences,
            "chattering": result.chattering,
        }
        appended.append(
            {
                "incident": entry.incident.id,
                "kind": result.kind.value,
                "status": entry.status,
                "data": data,
                "key": event.event_id,
                "ord": len(appended),
            }
        )
    await cur.execute(_APPEND_MANY, (now, _json(appended), NOTIFY_CHANNEL))
    return outcomes


async def _insert_incident(
    conn: psycopg.AsyncConnection[Any], event: FaultEvent, snapshot: dict[str, Any], result: Fold, now: datetime
) -> int | None:
    """Open the incident; None when a one-open-incident index says another is open."""
    seen = ms_to_datetime(event.at_ms)
    cur = conn.cursor(row_factory=dict_row)
    try:
        async with conn.transaction():
            await cur.execute(
                "INSERT INTO incidents (registration_code, terminal_id, code, severity, status, maintainer_id,"
                " district, use_unit_id, detected_at, opened_at, last_seen_at, evidence, toggles_ms,"
                " last_notified_at, last_event_ms)"
                " VALUES (%s, %s, %s, %s, 'detected', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " RETURNING id",
                (
                    snapshot["registration_code"],
                    event.terminal,
                    event.code.value,
                    event.severity.value,
                    snapshot["maintainer_id"],
                    snapshot["district"],
                    snapshot["use_unit_id"],
                    seen,
                    now,
                    seen,
                    _evidence(event),
                    list(result.toggles_ms),
                    now,
                    event.at_ms,
                ),
            )
    except UniqueViolation:
        return None
    row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def _update_incident(
    conn: psycopg.AsyncConnection[Any], incident_id: int, event: FaultEvent, result: Fold
) -> str:
    """Apply a repeat or clear to the open incident; returns its status."""
    seen_at = None if result.seen_ms is None else ms_to_datetime(result.seen_ms)
    cleared_at = None if result.condition_cleared_ms is None else ms_to_datetime(result.condition_cleared_ms)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "UPDATE incidents SET occurrences = %s, chattering = %s, condition_cleared_at = %s, toggles_ms = %s,"
        " last_seen_at = COALESCE(%s, last_seen_at), evidence = CASE WHEN %s THEN %s ELSE evidence END,"
        " last_event_ms = GREATEST(last_event_ms, %s)"
        " WHERE id = %s RETURNING status",
        (
            result.occurrences,
            result.chattering,
            cleared_at,
            list(result.toggles_ms),
            seen_at,
            seen_at is not None,
            _evidence(event),
            event.at_ms,
            incident_id,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return str(row["status"])


# --- deadlines --------------------------------------------------------------------------------

_TIMES_COLUMNS = (
    "id, code, severity, status, detected_at, opened_at, escalation_level, dispatched_at, arrived_at,"
    " condition_cleared_at, last_notified_at, dispatch_deadline_missed, arrival_deadline_missed, closed_at"
)
# Necessary conditions of deadlines.due_for, so a tick reads only incidents with something due
# (not every open incident of a storm, every second), plus closed incidents not judged yet.
_CANDIDATES = f"""
SELECT {_TIMES_COLUMNS} FROM incidents
WHERE status IN ('closed', 'false_alarm', 'auto_cleared') AND NOT deadlines_settled
UNION ALL
SELECT {_TIMES_COLUMNS} FROM incidents
WHERE status IN ('detected', 'acknowledged', 'dispatched', 'arrived', 'released')
  AND ((status = 'detected' AND COALESCE(last_notified_at, opened_at) <= (
           SELECT r.before FROM json_to_recordset(%(reminders)s::json) AS r(severity text, before timestamptz)
           WHERE r.severity = incidents.severity))
       OR (code = ANY(%(codes)s) AND NOT (dispatch_deadline_missed AND arrival_deadline_missed)
           AND LEAST(detected_at, opened_at) < %(deadline)s)
       OR (severity <> 'critical' AND status = 'detected' AND condition_cleared_at IS NOT NULL
           AND LEAST(detected_at, opened_at) <= %(auto_clear)s))
"""


def _times(row: dict[str, Any]) -> IncidentTimes:
    return IncidentTimes(**row)


async def deadline_candidates(
    conn: psycopg.AsyncConnection[Any], policy: DeadlinePolicy, now: datetime
) -> list[IncidentTimes]:
    """Open incidents on which something may be due at ``now`` (:func:`due` decides)."""
    seconds = [s for rule in policy.codes.values() for s in (rule.dispatch_s, rule.arrival_s) if s is not None]
    cur = conn.cursor(row_factory=dict_row)
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
            "codes": list(policy.codes) if seconds else [],
            "deadline": now - timedelta(seconds=min(seconds, default=0)),
            "auto_clear": now - timedelta(seconds=policy.auto_clear_s),
        },
    )
    return [_times(row) for row in await cur.fetchall()]


async def settle_closed(conn: psycopg.AsyncConnection[Any], incident_ids: list[int]) -> None:
    """Mark closed incidents as judged (their missed deadlines, if any, are recorded)."""
    if incident_ids:
        await conn.execute(
            "UPDATE incidents SET deadlines_settled = true"
            " WHERE id = ANY(%s) AND status IN ('closed', 'false_alarm', 'auto_cleared')",
            (incident_ids,),
        )


async def apply_due(conn: psycopg.AsyncConnection[Any], item: Due, *, now: datetime, policy: DeadlinePolicy) -> bool:
    """Record one due item, re-checked under the incident's lock; False if no longer due."""
    async with conn.transaction():
        await lock_outbox(conn)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"SELECT {_TIMES_COLUMNS} FROM incidents WHERE id = %s FOR UPDATE", (item.incident_id,))
        row = await cur.fetchone()
        if row is None:
            return False
        current = [d for d in due_for(_times(row), now, policy) if d.kind is item.kind]
        if not current:
            return False
        item = current[0]
        key = f"due:{item.incident_id}:{item.kind.value}:{int(item.deadline.timestamp() * 1000)}"
        status = row["status"]
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


async def delivery_counts(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """Webhook deliveries pending and dead (both read from their partial indexes)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT (SELECT count(*) FROM alerts_deliveries WHERE status = 'pending') AS pending,"
        " (SELECT count(*) FROM alerts_deliveries WHERE status = 'dead') AS dead"
    )
    row = await cur.fetchone()
    assert row is not None
    return {"pending": int(row["pending"]), "dead": int(row["dead"])}


async def open_incident_counts(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """Open incidents by severity."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT severity, count(*) AS open FROM incidents"
        " WHERE status NOT IN ('closed', 'false_alarm', 'auto_cleared') GROUP BY severity"
    )
    return {row["severity"]: int(row["open"]) for row in await cur.fetchall()}
