"""The fold (``faults_store.record_faults``) does not depend on where batches are cut: against the
reference, one event per transaction, as a property, any fault sequence over a few terminals
and codes (repeats, clears, chattering, out-of-order and redelivered events,
registered and unknown terminals), cut into batches anywhere, leaves the same incidents, the
same audit trail and the same outcomes."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from liftwatch.alerts import faults_store, outbox
from liftwatch.alerts.incidents import Outcome
from liftwatch.schema import FaultCode, FaultEvent
from psycopg.rows import dict_row

from tests.fixtures.alerts import T0, Lift, fault
from tests.integration.alerts.test_replay import register

pytestmark = pytest.mark.integration

T0_MS = int(T0.timestamp() * 1000)
TERMINALS = 3
CODES = (FaultCode.DOOR_REOPEN_LOOP, FaultCode.POWER_FAILURE)
_names = itertools.count()

# (terminal, code, transition, seconds after the previous event: negative = out of order)
steps = st.lists(
    st.tuples(
        st.integers(0, TERMINALS - 1),
        st.sampled_from(CODES),
        st.sampled_from(["raised", "cleared"]),
        st.integers(-20, 40),
    ),
    min_size=1,
    max_size=40,
)
# After event i, redeliver the k events before it too (k = 0: none).
redeliveries = st.lists(st.integers(0, 3), min_size=40, max_size=40)
# Batch sizes, cycled; the first example shrinks towards one batch for everything.
cuts = st.one_of(st.just([1_000]), st.lists(st.integers(1, 8), min_size=1, max_size=5))


def build(prefix: str, plan: list[tuple[int, FaultCode, str, int]], back: list[int]) -> list[FaultEvent]:
    events, at = [], T0_MS + 3_600_000
    for terminal, code, transition, gap_s in plan:
        at += gap_s * 1000
        events.append(fault(f"{prefix}{terminal}", code, transition, since_ms=at - 500, at_ms=at))
    delivered: list[FaultEvent] = []
    for i in range(len(events)):
        delivered.extend(events[max(0, i - back[i]) : i + 1])
    return delivered


async def one_by_one(conn: psycopg.AsyncConnection[Any], events: list[FaultEvent]) -> list[Any]:
    outcomes: list[Any] = []
    for event in events:
        async with conn.transaction():
            await outbox.lock_outbox(conn)
            outcomes.extend(await faults_store.record_faults(conn, [event], now=T0))
    return outcomes


async def batched(conn: psycopg.AsyncConnection[Any], events: list[FaultEvent], sizes: list[int]) -> list[Any]:
    async def fallback(*args: Any, **kwargs: Any) -> list[Outcome]:
        raise AssertionError("the database refused the batch: it was folded one event at a time")

    outcomes: list[Any] = []
    start, size = 0, itertools.cycle(sizes)
    # Sound events never take the one-by-one fallback (it would hide a bug of the batch fold).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(faults_store, "_fold_one_at_a_time", fallback)
        while start < len(events):
            end = start + next(size)
            async with conn.transaction():
                await outbox.lock_outbox(conn)
                outcomes.extend(await faults_store.record_faults(conn, events[start:end], now=T0))
            start = end
    return outcomes


async def state(conn: psycopg.AsyncConnection[Any], prefix: str) -> tuple[list[dict[str, Any]], list[Any]]:
    """Incidents and audit trail of the terminals ``prefix*``, names and ids made relative."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT id, registration_code IS NOT NULL AS registered, terminal_id, code, severity, status, maintainer_id,"
        " district, detected_at, opened_at, last_seen_at, occurrences, chattering, condition_cleared_at, evidence,"
        " toggles_ms, last_notified_at, last_event_ms FROM incidents WHERE terminal_id LIKE %s ORDER BY id",
        (f"{prefix}%",),
    )
    incidents = await cur.fetchall()
    ordinal = {row.pop("id"): i for i, row in enumerate(incidents)}
    for row in incidents:
        row["terminal_id"] = row["terminal_id"].removeprefix(prefix)
        row["evidence"] = json.loads(json.dumps(row["evidence"]).replace(prefix, "T"))
    await cur.execute(
        "SELECT ev.incident_id, ev.at, ev.kind, ev.status_after, ev.actor, ev.note, ev.data, ev.idempotency_key"
        " FROM incident_events ev WHERE ev.incident_id = ANY(%s) ORDER BY ev.id",
        (list(ordinal),),
    )
    trail = []
    for row in await cur.fetchall():
        row["incident_id"] = ordinal[row["incident_id"]]
        trail.append(json.loads(json.dumps(row, default=str).replace(prefix, "T")))
    return incidents, trail


async def compare(
    url: str,
    plan: list[tuple[int, FaultCode, str, int]],
    back: list[int],
    sizes: list[int],
    registered: list[bool],
    lift: Lift,
) -> None:
    n = next(_names)
    reference, candidate = f"ref{n}x", f"bat{n}x"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for prefix, offset in ((reference, 0), (candidate, 1)):
            for terminal in range(TERMINALS):
                if registered[terminal]:
                    await register(conn, f"{prefix}{terminal}", 100 * n + 10 * offset + terminal, lift)
        expected = await one_by_one(conn, build(reference, plan, back))
        got = await batched(conn, build(candidate, plan, back), sizes)
        assert got == expected
        assert all(isinstance(outcome, Outcome) for outcome in got)
        assert await state(conn, candidate) == await state(conn, reference)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps, back=redeliveries, sizes=cuts, registered=st.lists(st.booleans(), min_size=3, max_size=3))
def test_batch_fold_equals_one_event_at_a_time(
    database_url: str,
    lifts: list[Lift],
    plan: list[tuple[int, FaultCode, str, int]],
    back: list[int],
    sizes: list[int],
    registered: list[bool],
) -> None:
    asyncio.run(compare(database_url, plan, back, sizes, registered, lifts[0]))


def test_a_refused_event_leaves_the_rest_of_the_batch(database_url: str, lifts: list[Lift]) -> None:
    """A data error (NUL in the evidence) refuses that event only: the batch is folded again one
    event per savepoint, with the same result as the reference for the others."""

    async def run() -> None:
        good = [fault(lifts[0], CODES[0], since_ms=T0_MS), fault(lifts[1], CODES[1], since_ms=T0_MS)]
        bad = msgspec.structs.replace(fault(lifts[0], CODES[1], since_ms=T0_MS), evidence={"x": "\x00"})
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            async with conn.transaction():
                await outbox.lock_outbox(conn)
                results = await faults_store.record_faults(conn, [good[0], bad, good[1], good[0]], now=T0)
            assert results[0] is Outcome.OPENED and results[2] is Outcome.OPENED
            assert results[3] is Outcome.DUPLICATE
            assert isinstance(results[1], psycopg.DataError)
            cur = await conn.execute("SELECT count(*) FROM incidents")
            assert await cur.fetchone() == (2,)

    asyncio.run(run())
