"""Two gateways in one shared subscription race a terminal's messages into its partition; the rules
must judge exactly what one in-order stream gives: nothing late, nothing dropped, the same events.

mosquitto hands the messages of one terminal round-robin to the members of a shared subscription,
so consecutive messages reach Kafka through different gateways and can land out of order. The rule
engine reorders them by ``seq`` (docs/rules.md, "Only a real hole waits").
"""

from __future__ import annotations

import time

import msgspec
import psycopg
import pytest
from liftwatch.config import GatewaySettings, RulesSettings
from liftwatch.ingest import gateway
from liftwatch.rules import service as rules_service
from liftwatch.rules import thresholds
from liftwatch.rules.processor import RuleProcessor
from liftwatch.rules.registry import load_registry_sync
from liftwatch.schema import Sample, TelemetryMessage, TelemetryRecord

from tests.fixtures.ingest import gateway_subscribed, publisher, running, sample, wait_until
from tests.fixtures.rules import register_elevator

pytestmark = pytest.mark.integration

TERMINALS, MESSAGES, PER_MESSAGE = 12, 150, 10


def car_stream(terminal_index: int, ts0: int) -> list[list[Sample]]:
    """A car's messages: idle, then for the odd cars a passenger trapped between floors for 40 s and
    an alarm button pressed, then idle again (the rules raise and clear on these)."""
    samples = []
    for i in range(MESSAGES * PER_MESSAGE):
        ts = ts0 + 200 * i
        trapped = terminal_index % 2 == 1 and 300 <= i < 500
        samples.append(sample(ts, door_zone=not trapped, occupied=trapped, alarm_button=trapped and i % 50 < 20))
    return [samples[k : k + PER_MESSAGE] for k in range(0, len(samples), PER_MESSAGE)]


@pytest.mark.timeout(300)  # a loaded CI machine: the waits below are bounded themselves
async def test_two_gateways_racing_a_terminals_messages_change_nothing_the_rules_judge(
    ingest_env: dict[str, str], database_url: str
) -> None:
    terminals = [f"G{t:02d}" for t in range(TERMINALS)]
    for t, terminal in enumerate(terminals):
        register_elevator(database_url, terminal=terminal, code=f"3110000000000000{t:04d}")
    env = {key.removeprefix("LIFTWATCH_").lower(): value for key, value in ingest_env.items()}
    first = GatewaySettings(**env)
    second = GatewaySettings(**{**env, "gateway_client_id": env["gateway_client_id"] + "-b"})
    rules_settings = RulesSettings(
        **{k: v for k, v in env.items() if not k.startswith(("gateway", "writer", "mqtt"))},
        rules_group=f"rules-{env['gateway_group']}",
        rules_batch_wait_ms=50,
        rules_session_timeout_ms=2000,
    )
    ts0 = int(time.time() * 1000) - 3_600_000
    streams = {terminal: car_stream(t, ts0) for t, terminal in enumerate(terminals)}
    total = TERMINALS * MESSAGES * PER_MESSAGE
    async with (
        running(gateway.serve, first) as registry_a,
        running(gateway.serve, second) as registry_b,
        running(rules_service.serve, rules_settings) as rules,
        publisher(str(first.mqtt_url)) as pub,
    ):
        await gateway_subscribed(registry_a)
        await gateway_subscribed(registry_b)
        for seq in range(MESSAGES):  # a fleet uploading its history at once, no pacing
            for terminal in terminals:
                message = TelemetryMessage(v=1, terminal=terminal, seq=seq, samples=streams[terminal][seq])
                pub.publish(first.mqtt_topic(f"lift/v1/{terminal}/telemetry"), msgspec.json.encode(message))
        await pub.wait_below(1)

        async def judged() -> bool:
            value = rules.get_sample_value("liftwatch_rules_samples_evaluated_total") or 0
            return value >= total

        try:
            await wait_until(judged, timeout=180, every=0.1)
        except AssertionError:
            names = ("samples_evaluated_total", "late_samples_total", "duplicate_messages_total", "consumer_lag")
            seen = {n: rules.get_sample_value(f"liftwatch_rules_{n}") for n in names}
            holes = {
                o: rules.get_sample_value("liftwatch_rules_sequence_holes_total", {"outcome": o})
                for o in ("opened", "given_up")
            }
            outs = [
                r.get_sample_value("liftwatch_gateway_records_out_total", {"topic": "telemetry"})
                for r in (registry_a, registry_b)
            ]
            raise AssertionError(
                f"not every sample judged: {seen} holes {holes} gateways out {outs} of {TERMINALS * MESSAGES}"
            ) from None
        shares = [
            registry.get_sample_value("liftwatch_gateway_records_out_total", {"topic": "telemetry"}) or 0
            for registry in (registry_a, registry_b)
        ]
        given_up = rules.get_sample_value("liftwatch_rules_sequence_holes_total", {"outcome": "given_up"}) or 0
        counters = {
            name: rules.get_sample_value(name) or 0
            for name in (
                "liftwatch_rules_samples_evaluated_total",
                "liftwatch_rules_late_samples_total",
                "liftwatch_rules_duplicate_messages_total",
            )
        }
        live = {
            (code, transition): rules.get_sample_value(
                "liftwatch_rules_events_total", {"code": code, "transition": transition}
            )
            or 0
            for code in ("trapped_passenger", "alarm_button")
            for transition in ("raised", "cleared")
        }
    assert min(shares) > 0, f"one gateway got everything ({shares}): the race was not tested"
    assert given_up == 0
    assert counters == {
        "liftwatch_rules_samples_evaluated_total": total,
        "liftwatch_rules_late_samples_total": 0,
        "liftwatch_rules_duplicate_messages_total": 0,
    }
    # What one in-order stream gives, judged in-process.
    with psycopg.connect(database_url) as conn:
        registry = load_registry_sync(conn)
    reference = RuleProcessor(thresholds.load(None), lateness_ms=rules_settings.allowed_lateness_ms)
    reference.set_registry(registry)
    expected: dict[tuple[str, str], int] = {key: 0 for key in live}
    for seq in range(MESSAGES):
        batch = [TelemetryRecord(t, seq, 0, streams[t][seq]) for t in terminals]
        for event in reference.process(batch)[0]:
            key = (event.code.value, event.transition)
            if key in expected:
                expected[key] += 1
    assert expected[("trapped_passenger", "raised")] == TERMINALS // 2
    assert live == expected
