"""Incidents in PostgreSQL: one open per (elevator, code) across terminal changes, the registry
link, and an audit trail the database keeps append-only."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from liftwatch.alerts import faults_store, outbox
from liftwatch.alerts.incidents import Outcome
from liftwatch.schema import FaultCode, FaultEvent
from psycopg.errors import RestrictViolation
from psycopg.rows import dict_row

from tests.fixtures.alerts import T0, Lift, fault

pytestmark = pytest.mark.integration

T0_MS = int(T0.timestamp() * 1000)
DOOR = FaultCode.DOOR_HELD_OPEN


async def record(conn: psycopg.AsyncConnection[Any], *events: FaultEvent) -> list[Outcome | psycopg.Error]:
    async with conn.transaction():
        await outbox.lock_outbox(conn)
        return [result for event in events for result in await faults_store.record_faults(conn, [event], now=T0)]


async def open_incidents(conn: psycopg.AsyncConnection[Any]) -> list[tuple[str | None, str, int]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT registration_code, terminal_id, occurrences FROM incidents"
        " WHERE status NOT IN ('closed', 'false_alarm', 'auto_cleared') ORDER BY id"
    )
    return [(r["registration_code"], r["terminal_id"], r["occurrences"]) for r in await cur.fetchall()]


async def test_one_open_incident_per_elevator_linked_to_the_registry(database_url: str, lifts: list[Lift]) -> None:
    a, b = lifts[0], lifts[1]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await record(conn, fault(a, DOOR, since_ms=T0_MS)) == [Outcome.OPENED]
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT i.registration_code, e.rescue_code, e.address, i.district, u.name AS use_unit, f.name AS firm"
            " FROM incidents i JOIN elevators e USING (registration_code) JOIN use_units u ON u.id = i.use_unit_id"
            " JOIN maintenance_firms f ON f.id = i.maintainer_id"
        )
        link = (a.registration_code, a.rescue_code, "0 Shennan Rd", a.district, "Unit 1", a.firm)
        assert [tuple(row.values()) for row in await cur.fetchall()] == [link]

        # The elevator's terminal is replaced: the new one feeds the same open incident.
        await conn.execute("UPDATE terminals SET registration_code = NULL WHERE terminal_id = %s", (a.terminal,))
        await conn.execute(
            "INSERT INTO terminals (terminal_id, registration_code) VALUES ('new-0', %s)", (a.registration_code,)
        )
        assert await record(conn, fault("new-0", DOOR, since_ms=T0_MS + 60_000)) == [Outcome.REPEATED]
        assert await open_incidents(conn) == [(a.registration_code, a.terminal, 2)]

        # Two elevators swap terminals (one statement, as a registry import does): each terminal
        # now reports for the other elevator, and nothing stalls on the old per-terminal key.
        await conn.execute(
            "UPDATE terminals SET registration_code = CASE terminal_id WHEN 'new-0' THEN %s ELSE %s END"
            " WHERE terminal_id IN ('new-0', %s)",
            (b.registration_code, a.registration_code, b.terminal),
        )
        outcomes = await record(
            conn,
            fault(b.terminal, DOOR, since_ms=T0_MS + 120_000),  # now on elevator a: a repeat
            fault("new-0", DOOR, since_ms=T0_MS + 120_000),  # now on elevator b: its own incident
        )
        assert outcomes == [Outcome.REPEATED, Outcome.OPENED]
        assert await open_incidents(conn) == [(a.registration_code, a.terminal, 3), (b.registration_code, "new-0", 1)]

        # A terminal the registry does not know is keyed by itself, even if its event names an elevator.
        stray = [fault("stray-1", DOOR, since_ms=T0_MS), fault("stray-1", DOOR, since_ms=T0_MS + 5_000)]
        assert await record(conn, *stray) == [Outcome.OPENED, Outcome.REPEATED]
        assert (None, "stray-1", 2) in await open_incidents(conn)

        # The database itself refuses a second open incident for an elevator and code.
        with pytest.raises(psycopg.errors.UniqueViolation):
            await conn.execute(
                "INSERT INTO incidents (registration_code, terminal_id, code, severity, status, detected_at,"
                " last_seen_at) VALUES (%s, 'other', 'door_held_open', 'minor', 'detected', %s, %s)",
                (a.registration_code, T0, T0),
            )


async def test_audit_trail_is_append_only_and_wakes_the_relays(database_url: str, lifts: list[Lift]) -> None:
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn,
    ):
        await listener.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
        await record(conn, fault(lifts[0], DOOR, since_ms=T0_MS))
        cur = await conn.execute("SELECT id FROM incident_events")
        (change_id,) = await cur.fetchone() or (None,)
        assert [n.payload async for n in listener.notifies(timeout=5, stop_after=1)] == [str(change_id)]
        for statement in ("UPDATE incident_events SET note = 'edited'", "DELETE FROM incident_events"):
            with pytest.raises(RestrictViolation, match="append-only"):
                await conn.execute(statement)
        cur = await conn.execute("SELECT count(*), min(note) FROM incident_events")
        assert await cur.fetchone() == (1, "")
