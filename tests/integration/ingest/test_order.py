"""A burst of QoS 1 messages reaches the telemetry topic in each terminal's publish order, complete.

The way a district's terminals upload their buffers after a network outage: thousands of messages
of a few dozen terminals published as fast as the broker takes them. The broker delivers them in
order; the gateway must keep that order per terminal on the way into Kafka (the rules engine reads
a terminal's samples in topic order and counts anything older than what it has seen as late).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from liftwatch.config import GatewaySettings
from liftwatch.ingest import gateway
from liftwatch.kafka import TOPIC_PARTITIONS
from liftwatch.mqtt import MqttClient
from liftwatch.schema import TelemetryRecord

from tests.fixtures.ingest import (
    Process,
    gateway_subscribed,
    publisher,
    read_telemetry,
    running,
    telemetry_messages,
    telemetry_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

TERMINALS, MESSAGES, PER_MESSAGE = 30, 300, 10  # 9,000 messages in one burst


def out_of_order(records: list[TelemetryRecord]) -> dict[str, list[int]]:
    """Per terminal, the seq numbers of the topic that are not in publish order (empty when all are)."""
    by_terminal: dict[str, list[int]] = defaultdict(list)
    for record in records:
        by_terminal[record.terminal].append(record.seq)
    return {terminal: seqs for terminal, seqs in by_terminal.items() if seqs != list(range(MESSAGES))}


def in_order_but_for_copies(seqs: list[int]) -> bool:
    """Each seq is the next one, or a copy of one already there (a re-delivery), and none is missing."""
    highest = -1
    for seq in seqs:
        if seq == highest + 1:
            highest = seq
        elif seq > highest:
            return False
    return highest == MESSAGES - 1


async def publish_burst(
    pub: MqttClient, settings: GatewaySettings, seqs: range = range(MESSAGES), ts0: int | None = None
) -> None:
    """Every message of every terminal (of ``seqs``), interleaved like a fleet uploading at once, no pacing."""
    ts0 = ts0 if ts0 is not None else int(time.time() * 1000) - MESSAGES * PER_MESSAGE * 100
    for seq in seqs:
        for t in range(TERMINALS):
            terminal = f"B{t:02d}"
            payload = telemetry_payload(terminal, seq, PER_MESSAGE, ts0 + seq * PER_MESSAGE * 100)
            pub.publish(settings.mqtt_topic(f"lift/v1/{terminal}/telemetry"), payload)
    await pub.wait_below(1)


async def topic_exists(settings: GatewaySettings) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.require_kafka())
    await consumer.start()
    try:
        return settings.topic("telemetry") in await consumer.topics()
    finally:
        await consumer.stop()


async def follow_telemetry(settings: GatewaySettings, seqs: dict[str, list[int]]) -> None:
    """Append every record's seq to its terminal's list, in topic order, until cancelled.

    A consumer that keeps fetching, not end offsets: tansu's can lag behind what a fetch returns.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.require_kafka(), auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topic("telemetry"), p) for p in range(TOPIC_PARTITIONS["telemetry"])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while True:
            for batch in (await consumer.getmany(timeout_ms=100)).values():
                for message in batch:
                    for record in telemetry_messages(message.value):
                        seqs.setdefault(record.terminal, []).append(record.seq)
    finally:
        await consumer.stop()


async def test_a_burst_keeps_every_terminals_order_into_kafka(gateway_settings: GatewaySettings) -> None:
    total = TERMINALS * MESSAGES
    async with (
        running(gateway.serve, gateway_settings) as registry,
        publisher(str(gateway_settings.mqtt_url)) as pub,
    ):
        await gateway_subscribed(registry)
        await publish_burst(pub, gateway_settings)

        async def all_out() -> bool:
            return registry.get_sample_value("liftwatch_gateway_records_out_total", {"topic": "telemetry"}) == total

        await wait_until(all_out, timeout=90)
        assert registry.get_sample_value("liftwatch_gateway_produce_failures_total") == 0
        assert registry.get_sample_value("liftwatch_gateway_duplicates_total") == 0
        assert registry.get_sample_value("liftwatch_gateway_seq_gap_messages_total") == 0
        assert registry.get_sample_value("liftwatch_dead_letters_total", {"source": "mqtt", "reason": "schema"}) is None
        assert registry.get_sample_value("liftwatch_gateway_in_flight") == 0
    records = await read_telemetry(gateway_settings, total, timeout=60)
    assert len(records) == total
    assert out_of_order(records) == {}


async def test_a_gateway_killed_mid_burst_keeps_every_terminals_order_but_for_redelivered_copies(
    ingest_env: dict[str, str],
    gateway_settings: GatewaySettings,
    process_factory: Callable[[str, dict[str, str]], Process],
) -> None:
    """SIGKILL while thousands of messages are in flight, restart with the same client id: per
    terminal, the topic holds every message in publish order, interrupted only by copies of
    messages that were in Kafka but not yet acknowledged (the broker re-delivers them)."""
    total = TERMINALS * MESSAGES
    seqs: dict[str, list[int]] = {}

    def in_kafka() -> int:
        return sum(len(seen) for terminal, seen in seqs.items() if terminal != "probe")

    gw = process_factory("gateway", ingest_env)
    gw.start()

    async def created() -> bool:
        return await topic_exists(gateway_settings)

    await wait_until(created, timeout=60, every=0.2)  # by the gateway, at start-up
    reader = asyncio.create_task(follow_telemetry(gateway_settings, seqs))
    try:
        async with publisher(str(gateway_settings.mqtt_url)) as pub:
            probe = gateway_settings.mqtt_topic("lift/v1/probe/telemetry")

            async def subscribed() -> bool:
                pub.publish(probe, telemetry_payload("probe", 0))  # one seq: copies are dropped as duplicates
                return "probe" in seqs

            await wait_until(subscribed, timeout=60, every=0.2)
            # The first half as fast as the broker takes it, the kill while it is in flight, the
            # second half while the gateway is down: the kill always lands mid-burst, however fast
            # the machine (a fixed share of the whole burst could all be in Kafka before the kill).
            ts0 = int(time.time() * 1000) - MESSAGES * PER_MESSAGE * 100
            first = asyncio.create_task(publish_burst(pub, gateway_settings, range(MESSAGES // 2), ts0))

            async def some_in_kafka() -> bool:
                return in_kafka() > total // 10

            await wait_until(some_in_kafka, timeout=60, every=0.01)
            gw.kill()
            await first
            await publish_burst(pub, gateway_settings, range(MESSAGES // 2, MESSAGES), ts0)
            assert in_kafka() < total  # the second half waits in the gateway's session
            gw.start()

            async def complete() -> bool:
                # Re-delivered copies come before a terminal's last message: nothing of it is later.
                return all(MESSAGES - 1 in seqs.get(f"B{t:02d}", ()) for t in range(TERMINALS))

            await wait_until(complete, timeout=90)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    del seqs["probe"]
    assert {terminal for terminal, seen in seqs.items() if not in_order_but_for_copies(seen)} == set()
    assert gw.terminate() == 0
