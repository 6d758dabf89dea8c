"""The whole platform, end to end: simulated terminals -> MQTT -> gateway -> Kafka -> writer and rules
-> alerts -> API, every process the way ``liftwatch up`` runs it (one loop, one metrics registry).

The simulator injects faults with a ground truth; the test expects exactly one incident per injected
fault (right code, right elevator, linked to the registry), none on fault-free elevators, every
published sample stored once, and then drives the entrapment through its rescue over HTTP as an
operator while a maintainer of another firm cannot see it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import psycopg
import pytest
from liftwatch.api.auth import hash_token, new_token
from liftwatch.config import CommonSettings, PlatformSettings
from liftwatch.kafka import ensure_topics
from liftwatch.launcher import services
from liftwatch.launcher.up import platform_processes
from liftwatch.mqtt import MqttClient
from liftwatch.registry.importer import import_registry
from liftwatch.schema import FaultCode
from liftwatch.simulators.faults import FaultInjection
from liftwatch.simulators.publisher import FleetPublisher, run_fleet
from liftwatch.simulators.specs import generated_registry, specs_from_rows
from liftwatch.simulators.stream import FleetSimulator
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration

ELEVATORS = 12
SEED = 7
ADMIN_TOKEN = "e2e-bootstrap-admin-token"
EVENT_SECONDS = 420
SPEEDUP = 70.0
FAULTS = [
    (FaultCode.TRAPPED_PASSENGER, 60.0, 150.0),
    (FaultCode.OVERSPEED, 60.0, 2.0),
    (FaultCode.DOOR_OPEN_WHILE_MOVING, 90.0, 2.0),
    (FaultCode.POWER_FAILURE, 120.0, 30.0),
]


def _token(url: str, role: str, firm_id: int | None = None) -> str:
    token = new_token()
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO api_tokens (name, role, maintainer_id, token_hash) VALUES (%s, %s, %s, %s)",
            (f"e2e {role} {firm_id}", role, firm_id, hash_token(token)),
        )
    return token


@pytest.fixture
async def platform(common_settings: CommonSettings) -> AsyncIterator[PlatformSettings]:
    """Every liftwatch process running against the test's services, stopped at the end."""
    settings = PlatformSettings(
        **{**common_settings.model_dump(), "api_port": services.free_port(), "admin_token": ADMIN_TOKEN},
    )
    await ensure_topics(settings)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run(stop)) for run in platform_processes(settings, CollectorRegistry()).values()]
    try:
        yield settings
    finally:
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=30)
        assert not pending, "a process did not stop within 30 s of the stop signal"
        for task in done:
            task.result()


async def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {value!r}")
        await asyncio.sleep(0.25)


async def _gateway_subscribed(settings: PlatformSettings) -> bool:
    async with httpx.AsyncClient(timeout=5) as http:
        try:
            metrics = (await http.get(f"http://127.0.0.1:{settings.api_port}/metrics")).text
        except httpx.TransportError:
            return False
    return "liftwatch_gateway_subscribed 1.0" in metrics


async def test_simulated_faults_become_incidents_and_an_operator_rescues(
    platform: PlatformSettings, database_url: str
) -> None:
    settings = platform
    rows = generated_registry(ELEVATORS, SEED)
    with psycopg.connect(database_url) as conn:
        assert import_registry(conn, rows).ok
    specs = specs_from_rows(rows)
    # Event time ends about now: the gateway refuses samples from the future.
    start_ms = int(time.time() * 1000) - EVENT_SECONDS * 1000
    faults = [FaultInjection(code, at_s, slot, duration) for slot, (code, at_s, duration) in enumerate(FAULTS)]
    # Terminals' messages reach the gateway once its (persistent) subscription exists, as in production.
    await _wait_for(partial(_gateway_subscribed, settings), 30, "the gateway's subscription")
    simulator = FleetSimulator(specs, start_ms=start_ms, seed=SEED, faults=faults)
    client = MqttClient(settings.require_mqtt(), f"e2e-fleet-{settings.topic_prefix}", receive_maximum=65535)
    await client.connect()
    try:
        publisher = FleetPublisher(client, topic_root=settings.mqtt_topic_root)
        await publisher.announce_online([s.terminal_id for s in specs])
        stats = await run_fleet(simulator, publisher, asyncio.Event(), speedup=SPEEDUP, duration_s=EVENT_SECONDS)
        assert await publisher.flush(30)
    finally:
        await client.disconnect()
    truth = {(record.elevator, record.code) for record in simulator.truth}
    assert {code for _, code in truth} == {code for code, _, _ in FAULTS}, simulator.truth

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    base = f"http://127.0.0.1:{settings.api_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:

        async def incidents() -> list[dict[str, Any]]:
            response = await http.get("/api/v1/incidents", params={"limit": 100}, headers=admin)
            response.raise_for_status()
            items: list[dict[str, Any]] = response.json()["items"]
            return items if {(i["registration_code"], i["code"]) for i in items} >= truth else []

        found = await _wait_for(incidents, 60, "one incident per injected fault")
        # Exactly the injected faults: nothing on fault-free elevators, no duplicates.
        assert sorted((i["registration_code"], i["code"]) for i in found) == sorted(truth)
        by_code = {i["code"]: i for i in found}
        trapped = by_code[FaultCode.TRAPPED_PASSENGER]
        registered = next(r for r in rows if r.registration_code == trapped["registration_code"])
        assert (trapped["rescue_code"], trapped["address"], trapped["maintainer"], trapped["severity"]) == (
            registered.rescue_code,
            registered.address,
            registered.maintainer,
            "critical",
        )
        assert trapped["dispatch_deadline_at"] is not None and trapped["arrival_deadline_at"] is not None

        # Every published sample is stored exactly once (the writer may still be catching up).
        async def stored() -> tuple[int, int] | None:
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT count(*), count(DISTINCT (terminal_id, ts, seq, idx)) FROM telemetry"
                ).fetchone()
            assert row is not None
            return None if row[0] < stats.samples else (row[0], row[1])

        assert await _wait_for(stored, 30, f"{stats.samples} telemetry rows") == (stats.samples, stats.samples)

        # A maintainer of another firm never learns the entrapment exists; the firm's own one sees it.
        with psycopg.connect(database_url) as conn:
            firms = dict(conn.execute("SELECT name, id FROM maintenance_firms").fetchall())
        other_firm = next(firm_id for name, firm_id in firms.items() if name != trapped["maintainer"])
        outsider = {"Authorization": f"Bearer {_token(database_url, 'maintainer', other_firm)}"}
        own = {"Authorization": f"Bearer {_token(database_url, 'maintainer', firms[trapped['maintainer']])}"}
        assert (await http.get(f"/api/v1/incidents/{trapped['id']}", headers=outsider)).status_code == 404
        listed = (await http.get("/api/v1/incidents", headers=outsider)).json()["items"]
        assert trapped["id"] not in {i["id"] for i in listed}
        assert (await http.get(f"/api/v1/incidents/{trapped['id']}", headers=own)).status_code == 200

        # The rescue, as the emergency centre and the firm would drive it.
        operator = {"Authorization": f"Bearer {_token(database_url, 'operator')}"}
        steps = [
            ("acknowledge", operator, {"note": "call taken"}, "acknowledged"),
            ("dispatch", operator, {"note": "team 3 sent"}, "dispatched"),
            ("arrive", own, {}, "arrived"),
            ("release", own, {"note": "passenger out"}, "released"),
            ("close", operator, {"cause": "equipment_fault", "note": "brake"}, "closed"),
        ]
        for action, who, body, status in steps:
            response = await http.post(f"/api/v1/incidents/{trapped['id']}/{action}", json=body, headers=who)
            assert response.status_code == 200, (action, response.text)
            assert response.json()["status"] == status
        refused = await http.post(f"/api/v1/incidents/{trapped['id']}/acknowledge", json={}, headers=operator)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "illegal_transition", refused.text
        detail = (await http.get(f"/api/v1/incidents/{trapped['id']}", headers=operator)).json()
        trail = [event["kind"] for event in detail["events"]]
        assert trail[0] == "opened" and trail[-5:] == [status for *_, status in steps], trail
        metrics = (await http.get("/metrics")).text
        for family in ("liftwatch_gateway_messages_in_total", "liftwatch_writer_rows_written_total",
                       "liftwatch_rules_samples_evaluated_total", "liftwatch_alerts_open_incidents"):  # fmt: skip
            assert family in metrics
