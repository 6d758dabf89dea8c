"""Rescue deadlines through the running service, with an injected clock: re-notify, misses,
escalation to the district rescue team and (by an operator) the fire brigade, auto-clear, restart."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
import pytest
from liftwatch.alerts.actions_store import apply_action
from liftwatch.alerts.lifecycle import Action
from liftwatch.config import AlertsSettings
from liftwatch.schema import FaultCode

from tests.fixtures.alerts import (
    T0,
    FakeClock,
    Lift,
    Receiver,
    add_webhook,
    eventually,
    fault,
    insert_incident,
    produce_faults,
    query,
    running_service,
)

pytestmark = pytest.mark.integration


async def _kinds(url: str, skip: int = 0) -> list[tuple[str, str]]:
    rows = await query(
        url,
        "SELECT i.code, ev.kind FROM incident_events ev JOIN incidents i ON i.id = ev.incident_id"
        " WHERE i.id <> %s ORDER BY ev.id",
        (skip,),
    )
    return [(row["code"], row["kind"]) for row in rows]


async def test_deadlines_escalate_and_survive_a_restart(
    alerts_settings: AlertsSettings, database_url: str, lifts: list[Lift], receiver: Receiver
) -> None:
    lift = lifts[0]
    add_webhook(database_url, "firm", "maintenance_firm", f"{receiver.url}/firm", firm_id=lift.firm_id)
    add_webhook(database_url, "centre", "emergency_centre", f"{receiver.url}/centre")
    add_webhook(database_url, "rescue", "district_rescue", f"{receiver.url}/rescue", district=lift.district)
    add_webhook(database_url, "other rescue", "district_rescue", f"{receiver.url}/elsewhere", district="Elsewhere")
    add_webhook(database_url, "119", "fire_brigade", f"{receiver.url}/119")
    clock = FakeClock()
    now_ms = int(time.time() * 1000)
    await produce_faults(
        alerts_settings,
        [
            fault(lift, FaultCode.TRAPPED_PASSENGER, since_ms=now_ms - 21_000, at_ms=now_ms),
            fault(lifts[1], FaultCode.DOOR_HELD_OPEN, since_ms=now_ms - 120_000, at_ms=now_ms),
            fault(lifts[1], FaultCode.DOOR_HELD_OPEN, "cleared", since_ms=now_ms + 5_000, at_ms=now_ms + 15_000),
        ],
    )

    async def until(kind: str, count: int = 1) -> None:
        await eventually(
            lambda: _has(database_url, kind, count), timeout_s=15, what=f"{count} x {kind} at {clock.offset}"
        )

    async def act(action: Action) -> None:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await apply_action(conn, trapped_id, action, actor="op", now=clock())
            await conn.commit()

    async with running_service(alerts_settings, clock=clock) as registry:
        await until("opened", 2)
        trapped_id = (await query(database_url, "SELECT id FROM incidents WHERE code = 'trapped_passenger'"))[0]["id"]
        clock.offset = timedelta(seconds=61)
        await until("renotified")
        await act(Action.ACKNOWLEDGE)
        clock.offset = timedelta(minutes=5, seconds=2)
        await until("escalated")
        await act(Action.DISPATCH)
        clock.offset = timedelta(minutes=30, seconds=2)
        await until("deadline_missed", 2)
        await act(Action.ESCALATE)
        clock.offset = timedelta(hours=24, seconds=1)
        await until("auto_cleared")
        await eventually(lambda: _async(bool(receiver.bodies("/119"))), what="fire brigade notified")
        assert registry.get_sample_value("liftwatch_alerts_deadline_misses_total", {"deadline": "dispatch"}) == 1
        assert registry.get_sample_value("liftwatch_alerts_deadline_misses_total", {"deadline": "arrival"}) == 1

    trapped = (await query(database_url, "SELECT * FROM incidents WHERE id = %s", (trapped_id,)))[0]
    assert trapped["dispatch_deadline_missed"] and trapped["arrival_deadline_missed"]
    assert trapped["escalation_level"] == 3 and trapped["status"] == "dispatched"
    door = (await query(database_url, "SELECT * FROM incidents WHERE code = 'door_held_open'"))[0]
    assert door["status"] == "auto_cleared" and door["closed_at"] is not None
    expected = [
        ("trapped_passenger", "opened"),
        ("door_held_open", "opened"),
        ("door_held_open", "condition_cleared"),
        ("trapped_passenger", "renotified"),
        ("trapped_passenger", "acknowledged"),
        ("trapped_passenger", "deadline_missed"),
        ("trapped_passenger", "escalated"),
        ("trapped_passenger", "dispatched"),
        ("trapped_passenger", "deadline_missed"),
        ("trapped_passenger", "escalated"),
        ("door_held_open", "auto_cleared"),
    ]
    assert _by_code(await _kinds(database_url)) == _by_code(expected)

    # The district rescue team hears from level 2 on, the fire brigade from level 3, others never.
    # (Deliveries run concurrently: the arrival order is not the change order.)
    rescue = [b["kind"] for b in sorted(receiver.bodies("/rescue"), key=lambda b: b["change_id"])]
    assert rescue[:2] == ["deadline_missed", "escalated"] and "opened" not in rescue
    assert [(b["kind"], b["escalation_level"]) for b in receiver.bodies("/119")] == [("escalated", 3)]
    assert receiver.bodies("/elsewhere") == []
    assert [b["kind"] for b in receiver.bodies("/firm")].count("deadline_missed") == 2

    # While the service is down, an entrapment is handled late and closed: the restarted service
    # still records the missed dispatch (it counts against the firm), without escalating.
    late = insert_incident(database_url, lifts[2])
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for minutes, action in enumerate((Action.ACKNOWLEDGE, Action.DISPATCH, Action.ARRIVE, Action.RELEASE)):
            await apply_action(conn, late, action, actor="op", now=T0 + timedelta(minutes=4 + 3 * minutes))
        await apply_action(
            conn, late, Action.CLOSE, actor="op", cause="equipment_fault", note="fixed", now=T0 + timedelta(hours=1)
        )
        await conn.commit()

    # A restart at the same clock finds nothing new to do on the others: deadlines come from stored state.
    async with running_service(alerts_settings, clock=clock):
        clock.offset += timedelta(seconds=5)
        await eventually(lambda: _settled(database_url, late), what="closed incident judged")
        await eventually(lambda: _relayed(database_url), what="relays caught up")
    assert _by_code(await _kinds(database_url, skip=late)) == _by_code(expected)
    row = (await query(database_url, "SELECT * FROM incidents WHERE id = %s", (late,)))[0]
    assert row["dispatch_deadline_missed"] and not row["arrival_deadline_missed"]
    assert row["escalation_level"] == 1 and row["status"] == "closed"
    trail = await query(
        database_url, "SELECT kind, data FROM incident_events WHERE incident_id = %s ORDER BY id", (late,)
    )
    assert trail[-1]["kind"] == "deadline_missed" and trail[-1]["data"]["after_close"] is True
    assert trail[-1]["data"]["deadline"] == "dispatch"


def _by_code(kinds: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Kinds per incident code, in order (faults of two terminals come from two partitions)."""
    found: dict[str, list[str]] = {}
    for code, kind in kinds:
        found.setdefault(code, []).append(kind)
    return found


async def _async(value: object) -> object:
    return value


async def _has(url: str, kind: str, count: int) -> bool:
    rows = await query(url, "SELECT count(*) AS n FROM incident_events WHERE kind = %s", (kind,))
    return bool(rows[0]["n"] >= count)


async def _settled(url: str, incident_id: int) -> bool:
    rows = await query(url, "SELECT deadlines_settled FROM incidents WHERE id = %s", (incident_id,))
    return bool(rows[0]["deadlines_settled"])


async def _relayed(url: str) -> bool:
    rows = await query(
        url,
        "SELECT (SELECT max(id) FROM incident_events) AS last,"
        " (SELECT min(last_change_id) FROM alerts_relay_position) AS position",
    )
    return bool(rows[0]["last"] == rows[0]["position"])
