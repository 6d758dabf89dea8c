"""Calls, comments and assignment on a real PostgreSQL: one open incident per elevator and code,
whoever opened it, and every step on the audit trail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from liftwatch.alerts import actions_store, centre_store, faults_store, outbox
from liftwatch.alerts.centre import Call, CallOutcome
from liftwatch.alerts.deadlines import DeadlinePolicy, DueKind, IncidentTimes, due_for
from liftwatch.alerts.errors import ElevatorNotFound, IllegalTransition
from liftwatch.alerts.incidents import Outcome
from liftwatch.alerts.lifecycle import Action
from liftwatch.schema import FaultCode
from psycopg.rows import dict_row

from tests.fixtures.alerts import T0, Lift, fault, insert_incident

pytestmark = pytest.mark.integration

TRAPPED = FaultCode.TRAPPED_PASSENGER
T0_MS = int(T0.timestamp() * 1000)


def _call(lift: Lift, *, code: FaultCode = TRAPPED, minutes: int = 0, phone: str | None = "13800138000") -> Call:
    return Call(lift.registration_code, code, "op-olivia", T0 + timedelta(minutes=minutes), "stuck on 5F", phone)


async def _trail(conn: psycopg.AsyncConnection[Any], incident_id: int) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT kind, status_after, actor, note, data, at FROM incident_events WHERE incident_id = %s ORDER BY id",
        (incident_id,),
    )
    return await cur.fetchall()


async def _open(conn: psycopg.AsyncConnection[Any]) -> list[tuple[str, str, str, int]]:
    cur = await conn.execute(
        "SELECT registration_code, code, source, occurrences FROM incidents"
        " WHERE status NOT IN ('closed', 'false_alarm', 'auto_cleared') ORDER BY id"
    )
    return await cur.fetchall()


async def test_a_call_opens_an_incident_whose_deadlines_start_at_the_call(database_url: str, lifts: list[Lift]) -> None:
    lift = lifts[0]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        result = await centre_store.record_call(conn, _call(lift, minutes=3))
        await conn.commit()
        incident = result.incident
        assert result.outcome is CallOutcome.OPENED and result.change_id is not None
        assert (incident["source"], incident["severity"], incident["status"]) == ("call", "critical", "detected")
        assert (incident["maintainer_id"], incident["district"], incident["terminal_id"]) == (
            lift.firm_id, lift.district, lift.terminal,
        )  # fmt: skip
        called_at = T0 + timedelta(minutes=3)
        assert incident["detected_at"] == incident["opened_at"] == called_at
        [opened] = await _trail(conn, incident["id"])
        assert (opened["kind"], opened["actor"], opened["note"]) == ("opened", "op-olivia", "stuck on 5F")
        assert opened["data"] == {"source": "call", "caller_phone": "13800138000"}
        times = IncidentTimes(**{k: incident[k] for k in IncidentTimes.__slots__})  # type: ignore[attr-defined]
        policy = DeadlinePolicy()

        def due(after_s: int) -> set[DueKind]:
            return {d.kind for d in due_for(times, called_at + timedelta(seconds=after_s), policy)}

        assert DueKind.DISPATCH_MISSED not in due(299)
        assert DueKind.DISPATCH_MISSED in due(301)


async def test_a_second_call_joins_and_other_codes_and_elevators_open_their_own(
    database_url: str, lifts: list[Lift]
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        first = await centre_store.record_call(conn, _call(lifts[0]))
        again = await centre_store.record_call(conn, _call(lifts[0], minutes=1, phone=None))
        assert again.outcome is CallOutcome.JOINED and again.incident["id"] == first.incident["id"]
        door = await centre_store.record_call(conn, _call(lifts[0], code=FaultCode.DOOR_HELD_OPEN))
        other = await centre_store.record_call(conn, _call(lifts[1]))
        assert {door.outcome, other.outcome} == {CallOutcome.OPENED}
        assert len({first.incident["id"], door.incident["id"], other.incident["id"]}) == 3
        trail = await _trail(conn, first.incident["id"])
        assert [(e["kind"], e["data"]) for e in trail] == [
            ("opened", {"source": "call", "caller_phone": "13800138000"}),
            ("called", {"source": "call"}),
        ]
        # The incident keeps its first detection: the second call does not restart the clocks.
        assert again.incident["detected_at"] == T0
        with pytest.raises(ElevatorNotFound):
            await centre_store.record_call(conn, Call("31104403999999999999", TRAPPED, "op", T0))


@pytest.mark.parametrize("batched", [False, True], ids=["one event", "batch"])
async def test_the_rules_join_a_call_opened_incident(database_url: str, lifts: list[Lift], batched: bool) -> None:
    lift = lifts[0]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        call = await centre_store.record_call(conn, _call(lift))
        await conn.commit()
        raised = fault(lift, TRAPPED, since_ms=T0_MS + 60_000)
        cleared = fault(lift, TRAPPED, "cleared", since_ms=T0_MS + 120_000)
        async with conn.transaction():
            await outbox.lock_outbox(conn)
            if batched:
                outcomes = await faults_store.record_faults(conn, [raised, cleared], now=T0 + timedelta(minutes=3))
            else:
                outcomes = [
                    outcome
                    for e in (raised, cleared)
                    for outcome in await faults_store.record_faults(conn, [e], now=T0 + timedelta(minutes=3))
                ]
        assert outcomes == [Outcome.REPEATED, Outcome.CLEARED]
        assert await _open(conn) == [(lift.registration_code, TRAPPED.value, "call", 2)]
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM incidents WHERE id = %s", (call.incident["id"],))
        row = await cur.fetchone()
        assert row is not None and row["detected_at"] == T0  # still the call's clock
        assert row["condition_cleared_at"] is not None
        assert [e["kind"] for e in await _trail(conn, call.incident["id"])] == [
            "opened", "updated", "condition_cleared",
        ]  # fmt: skip


async def test_a_call_joins_an_incident_the_rules_opened(database_url: str, lifts: list[Lift]) -> None:
    lift = lifts[1]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        async with conn.transaction():
            await outbox.lock_outbox(conn)
            await faults_store.record_faults(conn, [fault(lift, TRAPPED, since_ms=T0_MS)], now=T0)
        result = await centre_store.record_call(conn, _call(lift, minutes=2), idempotency_key="k1")
        retried = await centre_store.record_call(conn, _call(lift, minutes=2), idempotency_key="k1")
        await conn.commit()
        assert result.outcome is CallOutcome.JOINED and result.incident["source"] == "rule"
        assert retried.change_id is None and retried.outcome is CallOutcome.JOINED
        assert retried.incident["id"] == result.incident["id"]
        assert [e["kind"] for e in await _trail(conn, result.incident["id"])] == ["opened", "called"]
        assert await _open(conn) == [(lift.registration_code, TRAPPED.value, "rule", 1)]


async def test_comments_at_any_time_and_assignment_of_open_incidents(database_url: str, lifts: list[Lift]) -> None:
    incident_id = insert_incident(database_url, lifts[0])
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        first = await centre_store.add_comment(conn, incident_id, actor="op1", note="caller calm", now=T0)
        retried = await centre_store.add_comment(
            conn, incident_id, actor="op1", note="caller calm", now=T0, idempotency_key="c1"
        )
        assert retried == await centre_store.add_comment(
            conn, incident_id, actor="op1", note="caller calm", now=T0, idempotency_key="c1"
        )
        assert retried != first
        claimed = await centre_store.assign(conn, incident_id, assignee="op1", actor="op1", now=T0)
        same = await centre_store.assign(conn, incident_id, assignee="op1", actor="op1", now=T0)
        moved = await centre_store.assign(conn, incident_id, assignee="op2", actor="op1", now=T0)
        assert (claimed["assignee"], same["assignee"], moved["assignee"]) == ("op1", "op1", "op2")
        assert moved["status"] == "detected"  # assignment is not a lifecycle step
        await actions_store.apply_action(conn, incident_id, Action.FALSE_ALARM, actor="op2", now=T0)
        with pytest.raises(IllegalTransition):
            await centre_store.assign(conn, incident_id, assignee="op1", actor="op1", now=T0)
        await centre_store.add_comment(conn, incident_id, actor="op2", note="terminal replaced later", now=T0)
        trail = await _trail(conn, incident_id)
        assert [(e["kind"], e["actor"], e["note"], e["data"]) for e in trail] == [
            ("comment", "op1", "caller calm", {}),
            ("comment", "op1", "caller calm", {}),
            ("assigned", "op1", "", {"from": None, "to": "op1"}),
            ("assigned", "op1", "", {"from": "op1", "to": "op2"}),
            ("false_alarm", "op2", "", {"from": "detected", "action": "false_alarm"}),
            ("comment", "op2", "terminal replaced later", {}),
        ]
        assert trail[-1]["status_after"] == "false_alarm"
