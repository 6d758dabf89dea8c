"""Fault events folded into stored incidents: one path, a whole batch per statement.

The fold itself is pure (:func:`liftwatch.alerts.incidents.fold`); :func:`record_faults` reads
what it needs (seen event ids, registry snapshots, open incidents), folds in Python and writes
what it decided. A single event is a batch of one.
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
)
from liftwatch.alerts.lifecycle import OPEN_SQL
from liftwatch.alerts.outbox import NOTIFY_CHANNEL
from liftwatch.schema import FaultEvent
from psycopg.rows import args_row, scalar_row

log = logging.getLogger(__name__)

# Every statement of the batch takes its rows as one JSON document (json_to_recordset): one
# parameter, dumped by the json module's C encoder, which is cheaper than psycopg escaping each
# element of a dozen text arrays in Python. Event times travel as epoch milliseconds and become
# timestamps exactly (integer microseconds) in the database.
# The elevator the terminal is fitted to, else the one the event names (a terminal not in the
# registry, or unfitted, whose rule engine still knew the elevator).
_REGISTRY = """
SELECT x.terminal, x.reg, e.registration_code, e.maintainer_id, e.district, e.use_unit_id
FROM json_to_recordset(%s::json) AS x(terminal text, reg text)
LEFT JOIN terminals t ON t.terminal_id = x.terminal
LEFT JOIN elevators e ON e.registration_code = COALESCE(t.registration_code, x.reg)
"""
_SEEN = (
    "SELECT idempotency_key FROM incident_events"
    " WHERE idempotency_key = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
)
_OPEN_COLUMNS = (
    "SELECT id, status, registration_code, terminal_id, code, occurrences, chattering,"
    " condition_cleared_at IS NOT NULL AS cleared, toggles_ms, last_event_ms FROM incidents"
)
# One open incident per (elevator, code): keyed by the elevator when the registry knows it (so a
# replaced or swapped terminal keeps feeding the elevator's incident), else by the terminal.
_OPEN_BY_ELEVATOR = (
    f"{_OPEN_COLUMNS} WHERE (registration_code, code) IN"
    f" (SELECT k, c FROM json_to_recordset(%s::json) AS x(k text, c text)) AND {OPEN_SQL} FOR UPDATE"
)
_OPEN_BY_TERMINAL = (
    f"{_OPEN_COLUMNS} WHERE registration_code IS NULL AND (terminal_id, code) IN"
    f" (SELECT k, c FROM json_to_recordset(%s::json) AS x(k text, c text)) AND {OPEN_SQL} FOR UPDATE"
)


def _ts(ms: str) -> str:
    return f"(timestamptz 'epoch' + {ms} * interval '1 millisecond')"


# Ids are assigned in the order of the SELECT (ORDER BY ord, the row's position in the batch), i.e.
# in event order, as folding the events one batch each would assign them.
_INSERT = f"""
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
_UPDATE = f"""
UPDATE incidents i SET occurrences = v.occ, chattering = v.chat, condition_cleared_at = {_ts("v.cleared")},
    toggles_ms = v.toggles, last_seen_at = COALESCE({_ts("v.seen")}, i.last_seen_at),
    evidence = COALESCE(v.ev, i.evidence), last_event_ms = GREATEST(i.last_event_ms, v.last_ms)
FROM json_to_recordset(%s::json) AS v(id bigint, occ int, chat bool, cleared bigint, toggles bigint[], seen bigint,
    ev jsonb, last_ms bigint)
WHERE i.id = v.id
"""
# The rows and one NOTIFY (the highest change id; listeners only need waking) in one statement.
_APPEND = """
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


# The rows a batch reads by the hundred are built with args_row, values in column order: a storm's
# batch reads a registry snapshot and an open incident per event, and class_row (a dict per row,
# then keyword arguments) or a frozen dataclass costs about 1 µs more per row than this does,
# several percent of the fold. Their queries select the fields in the order they are declared.
@dataclass(slots=True)
class _Snapshot:
    """What the registry says of an event's terminal (unknown: all but the event's own fields None)."""

    terminal: str
    reg: str | None
    """The registration code the event names."""
    registration_code: str | None
    """The elevator the incident belongs to (the terminal's, else the one the event names)."""
    maintainer_id: int | None
    district: str | None
    use_unit_id: int | None


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
    snapshot: _Snapshot | None = None


@dataclass(slots=True)
class _OpenRow:
    """An open incident as :data:`_OPEN_COLUMNS` reads it."""

    id: int
    status: str
    registration_code: str | None
    terminal_id: str
    code: str
    occurrences: int
    chattering: bool
    cleared: bool
    toggles_ms: list[int]
    last_event_ms: int | None

    def fold_state(self) -> OpenIncident:
        """What the fold reads of it."""
        return OpenIncident(
            id=self.id,
            occurrences=self.occurrences,
            chattering=self.chattering,
            condition_cleared=self.cleared,
            toggles_ms=tuple(self.toggles_ms),
            last_event_ms=self.last_event_ms,
        )


@dataclass(slots=True)
class _Inserted:
    """A new incident's id and its key (``RETURNING`` of :data:`_INSERT`)."""

    id: int
    registration_code: str | None
    terminal_id: str
    code: str


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
    """Fold fault events into the incidents, in order, exactly once per ``event_id``.

    The caller's transaction holds :func:`~liftwatch.alerts.outbox.lock_outbox`; one event is a
    batch of one. Returns one result per event: its :class:`Outcome`, or the database error that
    refused it. A data error (such as a NUL character in the evidence) rolls the batch back to
    its savepoint and folds it again one event per savepoint, so only the offending events are
    refused and the others give what any cut of the batch would. Errors of the connection are
    raised.
    """
    if not events:
        return []
    try:
        async with conn.transaction():
            return list(await _fold_batch(conn, events, now=now, window_ms=window_ms, toggles=toggles))
    except (psycopg.OperationalError, psycopg.InterfaceError):
        raise
    except psycopg.Error as error:
        if len(events) == 1:
            return [error]
        log.warning("faults batch of %d refused (%s: %s); folding it one event at a time", len(events),
                    type(error).__name__, error)  # fmt: skip
    return await _fold_one_at_a_time(conn, events, now=now, window_ms=window_ms, toggles=toggles)


async def _fold_one_at_a_time(
    conn: psycopg.AsyncConnection[Any], events: Sequence[FaultEvent], *, now: datetime, window_ms: int, toggles: int
) -> list[Outcome | psycopg.Error]:
    """The fallback of a refused batch: each event a batch of one, in a savepoint of its own."""
    results: list[Outcome | psycopg.Error] = []
    for event in events:
        try:
            async with conn.transaction():
                results.extend(await _fold_batch(conn, [event], now=now, window_ms=window_ms, toggles=toggles))
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as error:
            results.append(error)
    return results


async def _fold_batch(
    conn: psycopg.AsyncConnection[Any], events: Sequence[FaultEvent], *, now: datetime, window_ms: int, toggles: int
) -> list[Outcome]:
    """Fold a batch (the caller holds a savepoint: all of it is written, or none).

    The protocol, in this order, each read and write one statement for the whole batch (the
    open incidents two: by elevator and by terminal):

    1. read which event ids already wrote an audit row (a redelivery is a ``duplicate``);
    2. read the registry snapshot of every terminal (the elevator it is fitted to, else the one
       the event names; unknown: keyed by terminal, no routing data);
    3. read and lock (``FOR UPDATE``) the open incident of every (elevator, code), else
       (terminal, code);
    4. fold the events in Python (:func:`~liftwatch.alerts.incidents.fold`), in order, each
       seeing what the earlier events of the batch left (a duplicate within the batch counts
       ``duplicate`` once its first copy wrote a row);
    5. insert the new incidents with their final state, ids in opening order;
    6. update the incidents that were open before the batch;
    7. append the audit rows, ids in event order, and one ``NOTIFY`` for the relays.
    """
    # 1. seen event ids
    seen_ids = conn.cursor(row_factory=scalar_row)
    await seen_ids.execute(_SEEN, (_json(list({event.event_id for event in events})),))
    written: set[str] = set(await seen_ids.fetchall())
    # 2. registry snapshots
    sources = {(event.terminal, event.registration_code) for event in events}
    registry = conn.cursor(row_factory=args_row(_Snapshot))
    await registry.execute(_REGISTRY, (_json([{"terminal": t, "reg": r} for t, r in sources]),))
    snapshots = {(row.terminal, row.reg): row for row in await registry.fetchall()}

    def key_of(event: FaultEvent) -> _IncidentKey:
        registration_code = snapshots[(event.terminal, event.registration_code)].registration_code
        if registration_code is not None:
            return ("elevator", registration_code, event.code.value)
        return ("terminal", event.terminal, event.code.value)

    # 3. open incidents, locked
    keys = {key_of(event) for event in events}
    tracked: dict[_IncidentKey, _Tracked] = {key: _Tracked(None) for key in keys}
    for kind, query in (("elevator", _OPEN_BY_ELEVATOR), ("terminal", _OPEN_BY_TERMINAL)):
        pairs = [{"k": name, "c": code} for k, name, code in keys if k == kind]
        if not pairs:
            continue
        locked = conn.cursor(row_factory=args_row(_OpenRow))
        await locked.execute(query, (_json(pairs),))
        for row in await locked.fetchall():
            name = row.registration_code if kind == "elevator" else row.terminal_id
            tracked[(kind, name, row.code)] = _Tracked(row.fold_state(), status=row.status)

    # 4. the fold
    outcomes: list[Outcome] = []
    audit: list[tuple[_Tracked, FaultEvent, Fold]] = []
    opened: list[_Tracked] = []  # in opening order, the order batches of one assign ids in
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

    # 5. new incidents
    if opened:
        rows: list[dict[str, Any]] = []
        for entry in opened:
            first, last, seen, snapshot = entry.first, entry.last, entry.seen_event, entry.snapshot
            assert first is not None and last is not None and seen is not None and snapshot is not None
            assert entry.incident is not None
            rows.append(
                {
                    "reg": snapshot.registration_code,
                    "terminal": first.terminal,
                    "code": first.code.value,
                    "severity": first.severity.value,
                    "maintainer": snapshot.maintainer_id,
                    "district": snapshot.district,
                    "unit": snapshot.use_unit_id,
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
        inserted = conn.cursor(row_factory=args_row(_Inserted))
        await inserted.execute(_INSERT, {"now": now, "rows": _json(rows)})
        ids = {(row.registration_code, row.terminal_id, row.code): row.id for row in await inserted.fetchall()}
        for entry in opened:
            assert entry.first is not None and entry.snapshot is not None and entry.incident is not None
            incident_id = ids[(entry.snapshot.registration_code, entry.first.terminal, entry.first.code.value)]
            entry.incident = replace(entry.incident, id=incident_id)

    # 6. incidents open before the batch
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
        await conn.execute(_UPDATE, (_json(changed),))

    # 7. audit rows + NOTIFY
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
    await conn.execute(_APPEND, (now, _json(appended), NOTIFY_CHANNEL))
    return outcomes
