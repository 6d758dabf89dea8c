"""Recorded but not notified, on a real PostgreSQL: the relay's SQL decides as the pure rule does,
at each change's own time, and the shelf returns by itself."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from liftwatch.alerts import faults_store, outbox, relay, suppression, suppression_store
from liftwatch.alerts.routing import RoutingPolicy
from liftwatch.config import CommonSettings
from liftwatch.schema import FaultCode
from psycopg.rows import dict_row

from tests.fixtures.alerts import T0, Lift, add_webhook, fault, insert_incident

pytestmark = pytest.mark.integration

SITE_TIMEZONE = str(CommonSettings.model_fields["site_timezone"].default)
"""The shipped site time zone (quiet hours are local)."""

T0_MS = int(T0.timestamp() * 1000)
H = timedelta(hours=1)


async def test_the_sql_agrees_with_the_pure_rule(database_url: str, lifts: list[Lift]) -> None:
    """Every code on four elevators: one shelved (its door code), one in maintenance, one out of service, one plain."""
    shelved, maintained, stopped, plain = lifts
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await suppression_store.add_shelf(conn, shelved.registration_code, "door_held_open", reason="sensor",
                                          expires_at=T0 + H, actor="op", now=T0 - H)  # fmt: skip
        await suppression_store.add_window(
            conn, maintained.registration_code, starts_at=T0 - H, ends_at=T0 + H, reason="yearly", actor="firm"
        )
        await suppression_store.add_window(  # already ended early: no longer in force
            conn, plain.registration_code, starts_at=T0 - H, ends_at=T0 + H, reason="x", actor="firm"
        )
        await conn.execute("UPDATE maintenance_windows SET ended_at = %s WHERE registration_code = %s",
                           (T0 - timedelta(minutes=1), plain.registration_code))  # fmt: skip
        await suppression_store.set_out_of_service(conn, stopped.registration_code, reason="flood", actor="reg",
                                                   now=T0 - H)  # fmt: skip
        cases = list(itertools.product(lifts, FaultCode))
        cur = conn.cursor(row_factory=dict_row)
        for lift, code in cases:
            await cur.execute(
                f"SELECT {suppression.suppression_sql('i', '%(at)s')} AS why"
                " FROM (SELECT %(reg)s::text AS registration_code, %(code)s::text AS code) i",
                {"at": T0, "reg": lift.registration_code, "code": code.value},
            )
            row = await cur.fetchone()
            assert row is not None
            expected = suppression.suppression(
                code.value,
                shelved=lift is shelved and code is FaultCode.DOOR_HELD_OPEN,
                in_maintenance=lift is maintained,
                out_of_service=lift is stopped,
            )
            assert row["why"] == (None if expected is None else expected.value), (lift.registration_code, code)


async def _deliveries(conn: psycopg.AsyncConnection[Any]) -> list[tuple[str, str]]:
    cur = await conn.execute(
        "SELECT ev.kind, i.code FROM alerts_deliveries d JOIN incident_events ev ON ev.id = d.change_id"
        " JOIN incidents i ON i.id = ev.incident_id ORDER BY d.id"
    )
    return [(row[0], row[1]) for row in await cur.fetchall()]


async def test_faults_in_a_window_are_recorded_not_notified_but_entrapments_are(
    database_url: str, lifts: list[Lift]
) -> None:
    lift = lifts[0]
    add_webhook(database_url, "firm A", "maintenance_firm", "https://firm.example/hook", firm_id=lift.firm_id)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await suppression_store.add_window(
            conn, lift.registration_code, starts_at=T0 - H, ends_at=T0 + H, reason="door operator", actor="tech"
        )
        await conn.commit()
        events = [
            fault(lift, FaultCode.DOOR_HELD_OPEN, since_ms=T0_MS),
            fault(lift, FaultCode.SAFETY_CIRCUIT_OPEN, since_ms=T0_MS),
            fault(lift, FaultCode.TRAPPED_PASSENGER, since_ms=T0_MS),
        ]
        async with conn.transaction():
            await outbox.lock_outbox(conn)
            await faults_store.record_faults(conn, events, now=T0)  # recorded: three incidents
        routed = await relay.route_changes(
            conn, policy=RoutingPolicy(), default_secret="", now=T0, limit=100, timezone=SITE_TIMEZONE
        )
        assert routed.changes == 3 and routed.suppressed == {"maintenance": 2}
        assert await _deliveries(conn) == [("opened", "trapped_passenger")]
        cur = await conn.execute("SELECT count(*) FROM incidents")
        assert (await cur.fetchone()) == (3,)


async def test_a_shelf_returns_by_itself_and_is_on_the_trail(database_url: str, lifts: list[Lift]) -> None:
    lift = lifts[1]
    add_webhook(database_url, "centre", "emergency_centre", "https://centre.example/hook")
    incident = insert_incident(database_url, lift, code="door_reopen_loop", severity="major")
    # Repeats are notified here (quiet_kinds empty), so the shelf's own effect shows on them.
    policy = RoutingPolicy(emergency_severities=frozenset({"critical", "major"}), quiet_kinds=frozenset())
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        shelf = await suppression_store.add_shelf(conn, lift.registration_code, "door_reopen_loop", reason="nuisance",
                                                  expires_at=T0 + 2 * H, actor="op-olivia", now=T0)  # fmt: skip
        await conn.execute("UPDATE incidents SET detected_at = %s WHERE id = %s", (T0, incident))
        raised = [fault(lift, FaultCode.DOOR_REOPEN_LOOP, since_ms=T0_MS + m * 3_600_000) for m in (1, 3)]
        for at, event in zip((T0 + H, T0 + 3 * H), raised, strict=True):  # shelved at +1 h, returned at +3 h
            async with conn.transaction():
                await outbox.lock_outbox(conn)
                await faults_store.record_faults(conn, [event], now=at)
        routed = await relay.route_changes(
            conn, policy=policy, default_secret="", now=T0, limit=100, timezone=SITE_TIMEZONE
        )
        # The shelving row itself falls in the shelf, and the repeat at +1 h: not notified. The
        # repeat at +3 h comes after the shelf expired: notified again, nobody had to unshelve.
        assert routed.suppressed == {"shelved": 2}
        assert await _deliveries(conn) == [("updated", "door_reopen_loop")]
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT kind, actor, note, data FROM incident_events WHERE incident_id = %s ORDER BY id", (incident,)
        )
        trail = await cur.fetchall()
        assert (trail[0]["kind"], trail[0]["actor"], trail[0]["note"]) == ("shelved", "op-olivia", "nuisance")
        assert trail[0]["data"]["shelf"] == shelf["id"]
        assert not await suppression_store.end_shelf(conn, shelf["id"], actor="op", now=T0 + 3 * H)  # expired
        assert await suppression_store.end_shelf(conn, shelf["id"], actor="op", now=T0 + H)
        with pytest.raises(psycopg.errors.CheckViolation):  # the database holds the 8 h bound too
            await suppression_store.add_shelf(conn, lift.registration_code, "door_reopen_loop", reason="x",
                                              expires_at=T0 + 9 * H, actor="op", now=T0)  # fmt: skip
