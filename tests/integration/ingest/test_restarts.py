"""Killing the gateway or the writer (SIGKILL) mid-stream loses no sample and stores none twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from liftwatch.config import GatewaySettings, WriterSettings
from liftwatch.ingest import gateway, writer
from liftwatch.mqtt import MqttClient
from prometheus_client import CollectorRegistry

from tests.fixtures.ingest import (
    Process,
    gateway_subscribed,
    publisher,
    read_telemetry,
    running,
    scalar,
    telemetry_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

TERMINALS, MESSAGES, PER_MESSAGE = 4, 150, 5
EXPECTED = TERMINALS * MESSAGES * PER_MESSAGE


async def publish_stream(pub: MqttClient, settings: GatewaySettings, pause_every: int = 5) -> None:
    """Publish every message of the stream, pacing a little so a kill lands mid-stream."""
    for seq in range(MESSAGES):
        for t in range(TERMINALS):
            terminal = f"R{t}"
            pub.publish(
                settings.mqtt_topic(f"lift/v1/{terminal}/telemetry"), telemetry_payload(terminal, seq, PER_MESSAGE)
            )
        if seq % pause_every == 0:
            await pub.wait_below(50)
            await asyncio.sleep(0.04)
    await pub.wait_below(1)


async def wait_for_probe(pub: MqttClient, settings: GatewaySettings, database_url: str) -> None:
    """Publish a probe until its row shows up: the gateway subprocess is then subscribed end to end."""
    payload = telemetry_payload("probe", 0, 1)
    topic = settings.mqtt_topic("lift/v1/probe/telemetry")

    async def arrived() -> bool:
        pub.publish(topic, payload)  # the same sample each time: stored once
        return bool(await scalar(database_url, "SELECT count(*) FROM telemetry WHERE terminal_id = 'probe'"))

    await wait_until(arrived, timeout=60, every=0.2)


async def rows(database_url: str) -> int:
    return int(await scalar(database_url, "SELECT count(*) FROM telemetry WHERE terminal_id <> 'probe'"))


async def assert_exactly_once(database_url: str) -> None:
    async def complete() -> bool:
        return await rows(database_url) >= EXPECTED

    await wait_until(complete, timeout=60)
    await asyncio.sleep(0.3)  # anything late would be a duplicate: give it a moment to show up
    assert await rows(database_url) == EXPECTED
    activity = await scalar(database_url, "SELECT sum(samples) FROM terminal_activity WHERE terminal_id <> 'probe'")
    assert activity == EXPECTED


async def test_gateway_killed_mid_stream(
    ingest_env: dict[str, str],
    writer_settings: WriterSettings,
    gateway_settings: GatewaySettings,
    database_url: str,
    process_factory: Callable[[str, dict[str, str]], Process],
) -> None:
    gw = process_factory("gateway", ingest_env)
    gw.start()
    async with running(writer.serve, writer_settings), publisher(str(gateway_settings.mqtt_url)) as pub:
        await wait_for_probe(pub, gateway_settings, database_url)
        stream = asyncio.create_task(publish_stream(pub, gateway_settings))

        async def some_stored() -> bool:
            return await rows(database_url) > EXPECTED // 4

        await wait_until(some_stored, every=0.02)
        gw.kill()
        assert await rows(database_url) < EXPECTED
        await asyncio.sleep(0.3)  # messages published meanwhile wait in the gateway's session
        gw.start()
        await stream
        await assert_exactly_once(database_url)
    assert gw.terminate() == 0


async def test_writer_killed_mid_batch(
    ingest_env: dict[str, str],
    gateway_settings: GatewaySettings,
    database_url: str,
    process_factory: Callable[[str, dict[str, str]], Process],
) -> None:
    wr = process_factory("writer", {**ingest_env, "LIFTWATCH_WRITER_BATCH_MAX": "40"})
    wr.start()
    async with running(gateway.serve, gateway_settings) as registry, publisher(str(gateway_settings.mqtt_url)) as pub:
        await gateway_subscribed(registry)
        await wait_for_probe(pub, gateway_settings, database_url)
        stream = asyncio.create_task(publish_stream(pub, gateway_settings))

        async def some_stored() -> bool:
            return await rows(database_url) > EXPECTED // 4

        await wait_until(some_stored, every=0.02)
        wr.kill()
        assert await rows(database_url) < EXPECTED
        wr.start()
        await stream
        await assert_exactly_once(database_url)
    assert wr.terminate() == 0


async def test_messages_published_while_the_gateway_is_down_arrive_when_it_returns(
    gateway_settings: GatewaySettings,
) -> None:
    topic = gateway_settings.mqtt_topic("lift/v1/P1/telemetry")
    async with running(gateway.serve, gateway_settings) as registry:
        await gateway_subscribed(registry)  # the broker now holds the gateway's persistent session
    async with publisher(str(gateway_settings.mqtt_url)) as pub:  # no gateway connected
        for seq in range(20):
            pub.publish(topic, telemetry_payload("P1", seq, 2))
        await pub.wait_below(1)
    async with running(gateway.serve, gateway_settings) as registry:

        async def all_out() -> bool:
            return registry.get_sample_value("liftwatch_gateway_samples_out_total") == 40

        await wait_until(all_out)
    records = await read_telemetry(gateway_settings, 20)
    assert sorted(r.seq for r in records) == list(range(20))


async def test_a_gateway_leaving_for_good_delivers_its_queued_share_and_ends_its_session(
    gateway_settings: GatewaySettings,
) -> None:
    """A shared subscription routes a share of the messages to an offline member's session: a
    gateway retired for good must leave (``liftwatch gateway --leave``) or that share is lost."""
    staying = gateway_settings.model_copy(update={"gateway_client_id": f"{gateway_settings.gateway_client_id}-b"})

    def out(registry: CollectorRegistry) -> float:
        return registry.get_sample_value("liftwatch_gateway_records_out_total", {"topic": "telemetry"}) or 0.0

    async def publish(pub: MqttClient, seqs: range) -> None:
        for seq in seqs:
            terminal = f"L{seq % 4}"
            pub.publish(gateway_settings.mqtt_topic(f"lift/v1/{terminal}/telemetry"), telemetry_payload(terminal, seq))
        await pub.wait_below(1)

    async with (
        running(gateway.serve, staying) as kept,
        publisher(str(gateway_settings.mqtt_url)) as pub,
    ):
        await gateway_subscribed(kept)
        async with running(gateway.serve, gateway_settings) as leaving:
            await gateway_subscribed(leaving)
        await publish(pub, range(20))  # the leaving gateway is offline: its session queues its share

        async def kept_has_its_share() -> bool:
            return out(kept) > 0

        await wait_until(kept_has_its_share)
        left = CollectorRegistry()
        await asyncio.wait_for(gateway.serve(gateway_settings, asyncio.Event(), left, leave=True), 30)
        assert out(left) > 0  # it delivered what its session held

        async def all_twenty() -> bool:
            return out(kept) + out(left) == 20

        await wait_until(all_twenty)
        await publish(pub, range(20, 30))  # the session is gone: everything goes to the other gateway

        async def all_thirty() -> bool:
            return out(kept) + out(left) == 30

        await wait_until(all_thirty)
