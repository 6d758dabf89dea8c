"""Operator actions through ``actions_store.apply_action`` on a real PostgreSQL: every lifecycle path."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from liftwatch.alerts.actions_store import apply_action
from liftwatch.alerts.errors import IllegalTransition, IncidentNotFound, InvalidCause
from liftwatch.alerts.lifecycle import Action

from tests.fixtures.alerts import T0, Lift, insert_incident

pytestmark = pytest.mark.integration

A = Action
PATHS: dict[str, list[tuple[Action, str | None, str]]] = {
    "full rescue": [
        (A.ACKNOWLEDGE, None, "acknowledged"),
        (A.DISPATCH, None, "dispatched"),
        (A.ARRIVE, None, "arrived"),
        (A.RELEASE, None, "released"),
        (A.CLOSE, "equipment_fault", "closed"),
    ],
    "false alarm at once": [(A.FALSE_ALARM, None, "false_alarm")],
    "false alarm after dispatch": [
        (A.ACKNOWLEDGE, None, "acknowledged"),
        (A.DISPATCH, None, "dispatched"),
        (A.FALSE_ALARM, "terminal_fault", "false_alarm"),
    ],
    "escalated to the fire brigade": [
        (A.ACKNOWLEDGE, None, "acknowledged"),
        (A.ESCALATE, None, "acknowledged"),
        (A.ESCALATE, None, "acknowledged"),
        (A.DISPATCH, None, "dispatched"),
    ],
}
STAMPS = {
    "acknowledged": "acknowledged_at",
    "dispatched": "dispatched_at",
    "arrived": "arrived_at",
    "released": "released_at",
    "closed": "closed_at",
    "false_alarm": "closed_at",
}


async def _events(conn: psycopg.AsyncConnection[Any], incident_id: int) -> list[tuple[Any, ...]]:
    cur = await conn.execute(
        "SELECT kind, status_after, actor, note, at FROM incident_events WHERE incident_id = %s ORDER BY id",
        (incident_id,),
    )
    return await cur.fetchall()


async def test_lifecycle_paths_stamp_and_audit(database_url: str, lifts: list[Lift]) -> None:
    """Each path on its own incident (one schema for all: migrations per test are the slow part)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for number, (path, steps) in enumerate(PATHS.items()):
            incident_id = insert_incident(database_url, lifts[number % len(lifts)], code=f"code_{number}")
            for step, (action, cause, expected) in enumerate(steps, start=1):
                now = T0 + timedelta(minutes=step)
                async with conn.transaction():
                    row = await apply_action(
                        conn, incident_id, action, actor=f"op{step}", note=f"step {step}", cause=cause, now=now
                    )
                assert row.status == expected, path
                if action is not A.ESCALATE:
                    assert getattr(row, STAMPS[expected]) == now
            events = await _events(conn, incident_id)
            assert [e[1] for e in events] == [expected for _, _, expected in steps]
            assert [e[2] for e in events] == [f"op{i}" for i in range(1, len(events) + 1)]
            assert [e[3] for e in events] == [f"step {i}" for i in range(1, len(events) + 1)]
            if path == "full rescue":
                assert row.close_cause == "equipment_fault"
            if path.startswith("escalated"):
                assert row.escalation_level == 3
                assert [e[0] for e in events][1:3] == ["escalated", "escalated"]


ILLEGAL: list[tuple[list[Action], Action, str]] = [
    ([], A.DISPATCH, "illegal_transition"),
    ([], A.ARRIVE, "illegal_transition"),
    ([A.ACKNOWLEDGE], A.ACKNOWLEDGE, "illegal_transition"),
    ([A.FALSE_ALARM], A.ACKNOWLEDGE, "illegal_transition"),
    ([A.ACKNOWLEDGE, A.DISPATCH, A.ARRIVE, A.RELEASE], A.CLOSE, "cause_required"),
    ([A.ESCALATE, A.ESCALATE], A.ESCALATE, "escalation_exhausted"),
]


async def test_illegal_actions_change_nothing(database_url: str, lifts: list[Lift]) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for number, (setup, action, reason) in enumerate(ILLEGAL):
            incident_id = insert_incident(database_url, lifts[0], code=f"code_{number}")
            for step in setup:
                async with conn.transaction():
                    await apply_action(conn, incident_id, step, actor="op", now=T0)
            before = await _events(conn, incident_id)
            with pytest.raises(IllegalTransition) as caught:
                async with conn.transaction():
                    await apply_action(conn, incident_id, action, actor="op", now=T0 + timedelta(hours=1))
            assert caught.value.reason == reason
            assert caught.value.current_status == (await _events(conn, incident_id) or [("", "detected")])[-1][1]
            assert await _events(conn, incident_id) == before


async def test_refusals_rollback_and_client_retries(database_url: str, lifts: list[Lift]) -> None:
    first = insert_incident(database_url, lifts[0])
    second = insert_incident(database_url, lifts[1])
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for step in (A.ACKNOWLEDGE, A.DISPATCH, A.ARRIVE, A.RELEASE):
            await apply_action(conn, first, step, actor="op", now=T0)
        with pytest.raises(InvalidCause) as caught:
            await apply_action(conn, first, A.CLOSE, actor="op", cause="bad luck", now=T0)
        assert caught.value.reason == "unknown_cause"
        with pytest.raises(IncidentNotFound) as missing:
            await apply_action(conn, first + 1000, A.ACKNOWLEDGE, actor="op", now=T0)
        assert missing.value.reason == "incident_not_found"
        await conn.commit()
        assert len(await _events(conn, first)) == 4

        # The caller's rollback undoes the action and its audit event.
        await apply_action(conn, second, A.ACKNOWLEDGE, actor="op", now=T0)
        await conn.rollback()
        assert await _events(conn, second) == []
        cur = await conn.execute("SELECT status FROM incidents WHERE id = %s", (second,))
        assert await cur.fetchone() == ("detected",)

    # A client retrying with the same idempotency key applies the action once.
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        once = await apply_action(conn, second, A.ACKNOWLEDGE, actor="op", now=T0, idempotency_key="req-1")
        again = await apply_action(conn, second, A.ACKNOWLEDGE, actor="op", now=T0, idempotency_key="req-1")
        assert once.status == again.status == "acknowledged"
        assert len(await _events(conn, second)) == 1
