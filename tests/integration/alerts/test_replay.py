"""Exactly-once effect on at-least-once input, as a property: any redelivery pattern of a fault
stream (replays after restarts and rebalances) leaves the same incidents and audit trail as the
stream delivered once."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from liftwatch.alerts import faults_store, outbox
from liftwatch.schema import FaultCode, FaultEvent
from psycopg.rows import dict_row

from tests.fixtures.alerts import T0, Lift, fault

pytestmark = pytest.mark.integration

T0_MS = int(T0.timestamp() * 1000)
_names = itertools.count()

# A fault stream of one terminal: alternating raise/clear flips and repeats, seconds apart.
streams = st.lists(st.tuples(st.sampled_from(["raised", "cleared"]), st.integers(1, 40)), min_size=1, max_size=12)
# After delivering event i, replay from event i - k (k = 0: no replay).
replays = st.lists(st.integers(0, 4), min_size=12, max_size=12)


def build(terminal: str, stream: list[tuple[str, int]]) -> list[FaultEvent]:
    events, at = [], T0_MS
    for transition, gap_s in stream:
        at += gap_s * 1000
        events.append(fault(terminal, FaultCode.DOOR_REOPEN_LOOP, transition, since_ms=at - 500, at_ms=at))
    return events


def deliveries(events: list[FaultEvent], back: list[int]) -> list[FaultEvent]:
    delivered: list[FaultEvent] = []
    for i in range(len(events)):
        delivered.extend(events[max(0, i - back[i]) : i + 1] if back[i] else [events[i]])
    return delivered


async def feed(conn: psycopg.AsyncConnection[Any], events: list[FaultEvent], batch: int) -> None:
    for start in range(0, len(events), batch):
        async with conn.transaction():
            await outbox.lock_outbox(conn)
            await faults_store.record_faults(conn, events[start : start + batch], now=T0)


async def state(
    conn: psycopg.AsyncConnection[Any], terminal: str
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT status, occurrences, chattering, condition_cleared_at, toggles_ms, last_seen_at, evidence"
        " FROM incidents WHERE terminal_id = %s ORDER BY id",
        (terminal,),
    )
    incidents = await cur.fetchall()
    for row in incidents:
        row["evidence"].pop("event_id")
    await cur.execute(
        "SELECT ev.kind, ev.idempotency_key FROM incident_events ev JOIN incidents i ON i.id = ev.incident_id"
        " WHERE i.terminal_id = %s ORDER BY ev.id",
        (terminal,),
    )
    trail = [(row["kind"], row["idempotency_key"].replace(terminal, "T")) for row in await cur.fetchall()]
    return incidents, trail


async def register(conn: psycopg.AsyncConnection[Any], terminal: str, number: int, lift: Lift) -> None:
    """Fit ``terminal`` to a new elevator (the incident is then keyed by the elevator)."""
    code = f"{number:020d}"
    await conn.execute(
        "INSERT INTO elevators (registration_code, rescue_code, kind, address, district, use_unit_id, maintainer_id,"
        " installed_on, rated_speed, bottom_floor, top_floor) SELECT %s, %s, kind, address, district, use_unit_id,"
        " maintainer_id, installed_on, rated_speed, bottom_floor, top_floor FROM elevators"
        " WHERE registration_code = %s",
        (code, str(200_000 + number), lift.registration_code),
    )
    await conn.execute("INSERT INTO terminals (terminal_id, registration_code) VALUES (%s, %s)", (terminal, code))


async def once_and_noisy(
    url: str, stream: list[tuple[str, int]], back: list[int], batch: int, lift: Lift | None
) -> None:
    n = next(_names)
    once, noisy = f"once-{n}", f"noisy-{n}"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        if lift is not None:
            await register(conn, once, 2 * n, lift)
            await register(conn, noisy, 2 * n + 1, lift)
        await feed(conn, build(once, stream), batch)
        await feed(conn, deliveries(build(noisy, stream), back), batch)
        incidents_once, trail_once = await state(conn, once)
        assert await state(conn, noisy) == (incidents_once, trail_once)
    assert len(incidents_once) <= 1


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=streams, back=replays, batch=st.integers(1, 5), registered=st.booleans())
def test_redelivery_changes_nothing(
    database_url: str, lifts: list[Lift], stream: list[tuple[str, int]], back: list[int], batch: int, registered: bool
) -> None:
    """Registered terminals (incident keyed by elevator) and unknown ones (keyed by terminal)."""
    asyncio.run(once_and_noisy(database_url, stream, back, batch, lifts[0] if registered else None))
