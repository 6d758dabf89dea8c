"""A burst of QoS 1 messages reaches the telemetry topic in each terminal's publish order, complete.

The way a district's terminals upload their buffers after a network outage: thousands of messages
of a few dozen terminals published as fast as the broker takes them. The broker delivers them in
order; the gateway must keep that order per terminal on the way into Kafka (the rules engine reads
a terminal's samples in topic order and counts anything older than what it has seen as late).
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from liftwatch.config import GatewaySettings
from liftwatch.ingest import gateway
from liftwatch.schema import TelemetryRecord, decode_telemetry_record

from tests.fixtures.ingest import gateway_subscribed, publisher, read_records, running, telemetry_payload, wait_until

pytestmark = pytest.mark.integration

TERMINALS, MESSAGES, PER_MESSAGE = 30, 300, 10  # 9,000 messages in one burst


def out_of_order(records: list[TelemetryRecord]) -> dict[str, list[int]]:
    """Per terminal, the seq numbers of the topic that are not in publish order (empty when all are)."""
    by_terminal: dict[str, list[int]] = defaultdict(list)
    for record in records:
        by_terminal[record.terminal].append(record.seq)
    return {terminal: seqs for terminal, seqs in by_terminal.items() if seqs != list(range(MESSAGES))}


async def test_a_burst_keeps_every_terminals_order_into_kafka(gateway_settings: GatewaySettings) -> None:
    total = TERMINALS * MESSAGES
    async with (
        running(gateway.serve, gateway_settings) as registry,
        publisher(str(gateway_settings.mqtt_url)) as pub,
    ):
        await gateway_subscribed(registry)
        ts0 = int(time.time() * 1000) - MESSAGES * PER_MESSAGE * 100
        for seq in range(MESSAGES):  # interleaved like a fleet uploading at once, no pacing
            for t in range(TERMINALS):
                terminal = f"B{t:02d}"
                payload = telemetry_payload(terminal, seq, PER_MESSAGE, ts0 + seq * PER_MESSAGE * 100)
                pub.publish(gateway_settings.mqtt_topic(f"lift/v1/{terminal}/telemetry"), payload)
        await pub.wait_below(1)

        async def all_out() -> bool:
            return registry.get_sample_value("liftwatch_gateway_records_out_total", {"topic": "telemetry"}) == total

        await wait_until(all_out, timeout=90)
        assert registry.get_sample_value("liftwatch_gateway_produce_failures_total") == 0
        assert registry.get_sample_value("liftwatch_gateway_duplicates_total") == 0
        assert registry.get_sample_value("liftwatch_gateway_seq_gap_messages_total") == 0
        assert registry.get_sample_value("liftwatch_dead_letters_total", {"source": "mqtt", "reason": "schema"}) is None
        assert registry.get_sample_value("liftwatch_gateway_in_flight") == 0
    records = await read_records(gateway_settings, "telemetry", total, decode_telemetry_record, timeout=60)
    assert len(records) == total
    assert out_of_order(records) == {}
