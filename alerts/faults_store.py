"""Fault events folded into stored incidents, a whole batch per statement.

The fold itself is pure (:func:`liftwatch.alerts.incidents.fold`); this module reads what it
needs (seen event ids, registry snapshots, open incidents) and writes what it decided.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from liftwatch.alerts.incidents import (
    CHATTERING_TOGGLES,
    CHATTERING_WINDOW_MS,
    Fold,
    OpenIncident,
    Outcome,
    fold,
    ms_to_datetime,
)
from liftwatch.alerts.outbox import NOTIFY_CHANNEL, append_event
from liftwatch.schema import FaultEvent
from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

log = logging.getLogger(__name__)

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
