"""A district power cut on a real PostgreSQL, through the notify relay: one group per code and
district, one notification per receiver and group, derived faults inhibited while the power is
off, and every entrapment its own incident with its own notifications."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from liftwatch.alerts import deadlines_store, faults_store, outbox, relay
from liftwatch.alerts.routing import RoutingPolicy
from liftwatch.config import CommonSettings
from liftwatch.schema import FaultCode, FaultEvent
from psycopg.rows import dict_row

from tests.fixtures.alerts import T0, add_webhook, fault, seed_registry

pytestmark = pytest.mark.integration

SITE_TIMEZONE = str(CommonSettings.model_fields["site_timezone"].default)
"""The shipped site time zone (quiet hours are local)."""

T0_MS = int(T0.timestamp() * 1000)
POWER, DOOR_ZONE, TRAPPED = FaultCode.POWER_FAILURE, FaultCode.STOPPED_OUTSIDE_DOOR_ZONE, FaultCode.TRAPPED_PASSENGER
# The centre takes major incidents too here, so it is told about the power cut as well.
POLICY = RoutingPolicy(emergency_severities=frozenset({"critical", "major"}))


async def _fold(conn: psycopg.AsyncConnection[Any], events: list[FaultEvent], now: datetime = T0) -> None:
    async with conn.transaction():
        await outbox.lock_outbox(conn)
        await faults_store.record_faults(conn, events, now=now)


async def _route(conn: psycopg.AsyncConnection[Any]) -> relay.Routed:
    return await relay.route_changes(conn, policy=POLICY, default_secret="", now=T0, limit=500, timezone=SITE_TIMEZONE)


async def _told(conn: psycopg.AsyncConnection[Any]) -> Counter[tuple[str, str, str]]:
    cur = await conn.execute(
        "SELECT w.name, i.code, ev.kind FROM alerts_deliveries d JOIN alerts_webhooks w ON w.id = d.webhook_id"
        " JOIN incident_events ev ON ev.id = d.change_id JOIN incidents i ON i.id = ev.incident_id"
    )
    return Counter((row[0], row[1], row[2]) for row in await cur.fetchall())


@pytest.mark.parametrize("batches", [1, 3], ids=["one relay batch", "a batch per wave"])
async def test_a_district_power_cut(database_url: str, batches: int) -> None:
    lifts = seed_registry(database_url, 8)
    futian = [lift for lift in lifts if lift.district == "Futian"]  # 4 elevators, all firm A ...
    with psycopg.connect(database_url) as conn:  # ... but one of them maintained by firm B
        conn.execute(
            "UPDATE elevators SET maintainer_id = (SELECT id FROM maintenance_firms WHERE name = 'Firm B')"
            " WHERE registration_code = %s",
            (futian[1].registration_code,),
        )
    firm_a, firm_b = lifts[0].firm_id, lifts[1].firm_id
    add_webhook(database_url, "A", "maintenance_firm", "https://a.example/h", firm_id=firm_a)
    add_webhook(database_url, "B", "maintenance_firm", "https://b.example/h", firm_id=firm_b)
    add_webhook(database_url, "centre", "emergency_centre", "https://119.example/h")
    waves = [
        [fault(lift, POWER, since_ms=T0_MS + i * 1000) for i, lift in enumerate(futian)],
        [fault(lift, DOOR_ZONE, since_ms=T0_MS + 20_000 + i) for i, lift in enumerate(futian)],
        [fault(futian[0], TRAPPED, since_ms=T0_MS + 30_000), fault(futian[2], TRAPPED, since_ms=T0_MS + 31_000)],
    ]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for wave in waves:
            await _fold(conn, wave)
            if batches > 1:
                await _route(conn)
        if batches == 1:
            await _route(conn)
        told = await _told(conn)
        # One notification per receiver for the power group (firm B gets its own elevator's).
        assert told[("A", "power_failure", "opened")] == 1
        assert told[("B", "power_failure", "opened")] == 1
        assert told[("centre", "power_failure", "opened")] == 1
        # The cars stopped outside the door zone because the power is off: recorded, nobody paged.
        assert not any(code == "stopped_outside_door_zone" for _, code, _ in told)
        # Each entrapment is its own incident, paged to its firm and the centre, never grouped.
        assert told[("A", "trapped_passenger", "opened")] == 2
        assert told[("centre", "trapped_passenger", "opened")] == 2
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT id, code, registration_code, group_id, inhibited_by FROM incidents ORDER BY id")
        incidents = await cur.fetchall()
        power = [i for i in incidents if i["code"] == "power_failure"]
        assert {i["group_id"] for i in power} == {power[0]["id"]}  # one group, led by the first
        door = [i for i in incidents if i["code"] == "stopped_outside_door_zone"]
        power_of = {i["registration_code"]: i["id"] for i in power}
        assert all(i["inhibited_by"] == power_of[i["registration_code"]] for i in door)
        # The door-zone incidents group among themselves too, but nobody was paged for them.
        assert len({i["group_id"] for i in door}) == 1
        trapped = [i for i in incidents if i["code"] == "trapped_passenger"]
        assert len(trapped) == 2 and all(i["group_id"] is None and i["inhibited_by"] is None for i in trapped)
        # Each decision is on the incident's trail (and so on the live feed), and pages nobody.
        await cur.execute("SELECT kind, incident_id, data FROM incident_events WHERE actor = 'system'"
                          " AND kind IN ('grouped', 'inhibited') ORDER BY id")  # fmt: skip
        decisions = await cur.fetchall()
        assert Counter(row["kind"] for row in decisions) == {"grouped": 8, "inhibited": 4}
        assert {row["incident_id"]: row["data"] for row in decisions if row["kind"] == "grouped"}[power[2]["id"]] == {
            "group": power[0]["id"]
        }
        await _route(conn)
        assert not any(kind in ("grouped", "inhibited") for _, _, kind in await _told(conn))

        # The power comes back on one elevator: its car still outside the door zone is news now.
        later = T0 + timedelta(minutes=2)
        await _fold(conn, [fault(futian[3], POWER, "cleared", since_ms=T0_MS + 60_000)], later)
        await _fold(conn, [fault(futian[3], DOOR_ZONE, "cleared", since_ms=T0_MS + 61_000)], later)
        routed = await _route(conn)
        assert routed.suppressed.get("inhibited", 0) == 0
        told = await _told(conn)
        assert told[("A", "stopped_outside_door_zone", "condition_cleared")] == 1


async def test_reminders_per_severity_and_a_group_reminded_through_its_leader(database_url: str) -> None:
    from liftwatch.alerts import service
    from liftwatch.alerts.deadlines import due
    from liftwatch.config import AlertsSettings

    lifts = seed_registry(database_url, 4)
    futian = [lift for lift in lifts if lift.district == "Futian"]
    add_webhook(database_url, "A", "maintenance_firm", "https://a.example/h", firm_id=futian[0].firm_id)
    policy = service.deadline_policy(AlertsSettings())  # major every 15 min, minor never
    events = [fault(lift, POWER, since_ms=T0_MS + i * 1000) for i, lift in enumerate(futian)]
    events.append(fault(futian[0], FaultCode.DOOR_HELD_OPEN, since_ms=T0_MS))  # minor
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await _fold(conn, events)
        await _route(conn)  # the two power failures form a group
        later = T0 + timedelta(minutes=16)
        candidates = await deadlines_store.deadline_candidates(conn, policy, later)
        items = due(candidates, later, policy)
        await conn.commit()
        assert len(items) == 2 and {c.code for c in candidates} == {"power_failure"}  # not the minor one
        for item in items:
            assert await deadlines_store.apply_due(conn, item, now=later, policy=policy)
        await conn.commit()
        await relay.route_changes(conn, policy=POLICY, default_secret="", now=later, limit=500, timezone=SITE_TIMEZONE)
        told = await _told(conn)
        assert told[("A", "power_failure", "renotified")] == 1  # the leader's reminder stands for the group
