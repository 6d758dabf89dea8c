"""Kafka goes away: the gateway stops acknowledging, holds at most its in-flight bound, and recovers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from liftwatch.config import GatewaySettings
from liftwatch.ingest import gateway
from liftwatch.launcher import services
from prometheus_client import CollectorRegistry

from tests.fixtures.ingest import gateway_subscribed, publisher, running, telemetry_payload, wait_until

pytestmark = pytest.mark.integration

IN_FLIGHT = 10


@pytest.fixture
def private_kafka() -> Iterator[list[services.StartedService]]:
    """A tansu of our own (this test stops and restarts it); the list holds the running one."""
    started = [services.start_tansu()]
    yield started
    for service in started:
        service.stop()


def out(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("liftwatch_gateway_records_out_total", {"topic": "telemetry"}) or 0.0


async def test_kafka_outage_applies_back_pressure_and_recovers(
    gateway_settings: GatewaySettings, private_kafka: list[services.StartedService]
) -> None:
    port = int(private_kafka[0].url.rpartition(":")[2])
    settings = gateway_settings.model_copy(update={"kafka_bootstrap": private_kafka[0].url, "max_in_flight": IN_FLIGHT})
    topic = settings.mqtt_topic("lift/v1/K1/telemetry")
    async with running(gateway.serve, settings) as registry, publisher(str(settings.mqtt_url)) as pub:
        await gateway_subscribed(registry)
        for seq in range(5):
            pub.publish(topic, telemetry_payload("K1", seq))

        async def first_five() -> bool:
            return out(registry) == 5

        await wait_until(first_five)
        private_kafka[0].stop()
        for seq in range(5, 45):
            pub.publish(topic, telemetry_payload("K1", seq))
        await pub.wait_below(1)  # the broker has them all (queued in the gateway's session)

        async def saturated() -> bool:
            return registry.get_sample_value("liftwatch_gateway_in_flight") == IN_FLIGHT

        await wait_until(saturated)
        await asyncio.sleep(0.5)
        assert registry.get_sample_value("liftwatch_gateway_in_flight") == IN_FLIGHT  # bounded, not buffering
        assert out(registry) == 5  # nothing acknowledged while Kafka is away

        private_kafka.append(services.start_tansu(port))

        async def all_delivered() -> bool:
            return out(registry) == 45

        await wait_until(all_delivered, timeout=60)
