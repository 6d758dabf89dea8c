"""The simulator publishes a fleet through a real mosquitto, and its CLI runs a scenario end to end."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from liftwatch.ingest.contract import Accepted, Rejection, decode_status, decode_telemetry, parse_topic
from liftwatch.mqtt import InboundMessage, MqttClient
from liftwatch.schema import DeadLetterReason, FaultCode
from liftwatch.simulators.cli import app
from liftwatch.simulators.faults import BadInputInjection, FaultInjection, read_truth
from liftwatch.simulators.publisher import FleetPublisher, run_fleet
from liftwatch.simulators.stream import FleetSimulator
from typer.testing import CliRunner

from tests.fixtures.simulators import small_fleet

pytestmark = pytest.mark.integration


async def test_fleet_over_mqtt_arrives_valid_and_complete(mqtt_url: str, isolation: dict[str, str]) -> None:
    root = isolation["mqtt_topic_root"]
    specs = small_fleet(5)
    now_ms = int(time.time() * 1000)
    simulator = FleetSimulator(
        specs,
        start_ms=now_ms - 600_000,
        seed=3,
        faults=[FaultInjection(FaultCode.TERMINAL_OFFLINE, 100, 2, 200.0)],
        bad_inputs=[BadInputInjection("malformed_json", 50), BadInputInjection("duplicate", 60)],
    )
    subscriber = MqttClient(mqtt_url, f"sim-test-sub-{root}")
    await subscriber.connect()
    await subscriber.subscribe(f"{root}lift/v1/+/telemetry", f"{root}lift/v1/+/status")
    publisher_client = MqttClient(mqtt_url, f"sim-test-pub-{root}")
    await publisher_client.connect()
    try:
        publisher = FleetPublisher(publisher_client, topic_root=root)
        await publisher.announce_online([s.terminal_id for s in specs])
        stats = await run_fleet(simulator, publisher, asyncio.Event(), speedup=1200, duration_s=600)
        assert await publisher.flush(10)
        expected = stats.messages + stats.statuses + stats.bad_inputs + len(specs)
        received: list[InboundMessage] = []
        while len(received) < expected:
            received.append(await asyncio.wait_for(subscriber.receive(), 10))
    finally:
        await publisher_client.disconnect()
        await subscriber.disconnect()

    seqs: dict[str, list[int]] = {}
    statuses: list[tuple[str, str]] = []
    rejected = []
    for message in received:
        parsed = parse_topic(message.topic, root)
        assert parsed is not None
        terminal, kind = parsed
        if kind == "status":
            status = decode_status(message.payload)
            assert not isinstance(status, Rejection)
            statuses.append((terminal, status))
            continue
        result = decode_telemetry(message.payload, terminal, now_ms=int(time.time() * 1000))
        if isinstance(result, Accepted):
            seqs.setdefault(terminal, []).append(result.message.seq)
        else:
            rejected.append(result.reason)
    assert rejected == [DeadLetterReason.UNDECODABLE]
    assert set(seqs) == {s.terminal_id for s in specs}
    for terminal, numbers in seqs.items():
        assert sorted(set(numbers)) == list(range(max(numbers) + 1)), terminal
    assert sum(len(n) for n in seqs.values()) == stats.messages  # the duplicate counted as a message
    offline_terminal = specs[2].terminal_id
    assert [s for t, s in statuses if t == offline_terminal] == ["online", "offline", "online"]


@pytest.mark.parametrize("command", [[], ["run"]], ids=["simulate", "simulate-run"])
def test_cli_runs_a_scenario_and_writes_the_truth(
    mqtt_url: str, isolation: dict[str, str], tmp_path: Path, command: list[str]
) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "faults:\n  - {code: power_failure, elevator: 0, at_s: 5}\n  - {code: alarm_button, elevator: 1, at_s: 5}\n"
    )
    registry = tmp_path / "fleet.csv"
    registry.write_text(
        "registration_code,terminal_id,kind,rated_speed,bottom_floor,top_floor\n"
        "31010000000000000001,CLI0001,traction,1.75,1,18\n"
        "31010000000000000002,CLI0002,traction,2.5,-2,30\n"
        "31010000000000000003,,traction,1.0,1,6\n"
        "33010000000000000004,CLI0004,escalator,0.5,1,2\n"
    )
    truth = tmp_path / "truth.jsonl"
    result = CliRunner().invoke(
        app,
        [
            *command,
            "--registry",
            str(registry),
            "--duration",
            "300",
            "--speedup",
            "600",
            "--scenario",
            str(scenario),
            "--truth",
            str(truth),
            "--batch",
            "20",
        ],
        env={"LIFTWATCH_MQTT_URL": mqtt_url, "LIFTWATCH_MQTT_TOPIC_ROOT": isolation["mqtt_topic_root"]},
    )
    assert result.exit_code == 0, result.output
    records = read_truth(truth)
    assert sorted((r.terminal, r.code) for r in records) == [
        ("CLI0001", FaultCode.POWER_FAILURE),
        ("CLI0002", FaultCode.ALARM_BUTTON),
    ]
    assert all(r.end_ms is not None for r in records)


def test_demo_imports_its_registry_and_its_fleet_matches(database_url: str) -> None:
    import psycopg
    from liftwatch.config import CommonSettings
    from liftwatch.simulators.demo import prepare_demo
    from liftwatch.simulators.specs import generated_specs

    settings = CommonSettings(database_url=database_url)
    prepare_demo(settings, elevators=40, seed=3)
    prepare_demo(settings, elevators=40, seed=3)  # a second demo start changes nothing
    with psycopg.connect(database_url) as conn:
        count = conn.execute("SELECT count(*) FROM elevators").fetchone()
        terminals = {row[0] for row in conn.execute("SELECT terminal_id FROM terminals")}
    assert count == (40,)
    assert {s.terminal_id for s in generated_specs(40, 3)} <= terminals


def test_cli_refuses_a_bad_registry_file_with_its_line(mqtt_url: str, tmp_path: Path) -> None:
    registry = tmp_path / "fleet.csv"
    registry.write_text(
        "registration_code,terminal_id,kind,rated_speed,bottom_floor,top_floor\nX,T1,traction,fast,1,5\n"
    )
    result = CliRunner().invoke(
        app,
        ["run", "--registry", str(registry), "--duration", "10"],
        # wide enough that the error box does not wrap the (long, under pytest-xdist) path
        env={"LIFTWATCH_MQTT_URL": mqtt_url, "COLUMNS": "400"},
    )
    assert result.exit_code == 2
    assert "fleet.csv:2" in result.output


def test_load_command_reports_the_achieved_rate(mqtt_url: str, isolation: dict[str, str]) -> None:
    result = CliRunner().invoke(
        app,
        ["load", "--rate", "5000", "--duration", "1", "--batch", "50", "--json"],
        env={"LIFTWATCH_MQTT_URL": mqtt_url, "LIFTWATCH_MQTT_TOPIC_ROOT": isolation["mqtt_topic_root"]},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["acknowledged"] and report["samples"] >= 4000 and report["achieved_rate"] > 0
