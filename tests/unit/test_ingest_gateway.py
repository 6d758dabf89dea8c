"""The gateway's delivery chain: PUBACKs only after Kafka, in receive order, never past an abandoned batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, cast

from aiokafka.errors import KafkaConnectionError
from liftwatch.config import GatewaySettings
from liftwatch.ingest.gateway import Gateway
from liftwatch.ingest.handling import OutRecord
from liftwatch.mqtt import InboundMessage, MqttClient
from prometheus_client import CollectorRegistry


class AckRecorder:
    """Stands in for the MQTT client: records the PUBACKs the gateway sends."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack_many(self, messages: Iterable[InboundMessage]) -> None:
        self.acked.extend(m.mid for m in messages)


def message(mid: int) -> InboundMessage:
    return InboundMessage("lift/v1/T1/telemetry", b"{}", 1, mid, cast(MqttClient, None))


def gateway_with(produce: Any, registry: CollectorRegistry | None = None) -> tuple[Gateway, AckRecorder]:
    gateway = Gateway(GatewaySettings(), registry or CollectorRegistry())
    recorder = AckRecorder()
    gateway._mqtt = cast(MqttClient, recorder)
    gateway._produce = produce  # type: ignore[method-assign]
    return gateway, recorder


def batch(key: bytes) -> list[OutRecord]:
    return [OutRecord("telemetry", key, b"value", 1)]


async def test_pubacks_follow_receive_order_even_when_kafka_answers_out_of_order() -> None:
    first_may_finish = asyncio.Event()

    async def produce(records: Sequence[OutRecord]) -> None:
        if records[0].key == b"slow":
            await first_may_finish.wait()

    gateway, recorder = gateway_with(produce)
    first = asyncio.create_task(gateway._deliver(batch(b"slow"), [message(1), message(2)], None))
    second = asyncio.create_task(gateway._deliver(batch(b"fast"), [message(3)], first))
    await asyncio.sleep(0.01)
    assert recorder.acked == []  # the second batch is in Kafka but waits for the first
    first_may_finish.set()
    assert await first and await second
    assert recorder.acked == [1, 2, 3]


async def test_no_puback_after_a_batch_given_up_on_stop() -> None:
    """A batch abandoned while stopping blocks the PUBACKs of every later batch.

    A later batch may hold a message dropped as a duplicate of one in the abandoned batch (a
    re-delivery after a reconnect): acknowledging it would acknowledge a message never in Kafka.
    """

    async def produce(records: Sequence[OutRecord]) -> None:
        if records[0].key == b"lost":
            raise KafkaConnectionError()

    registry = CollectorRegistry()
    gateway, recorder = gateway_with(produce, registry)
    gateway._stopping = True
    first = asyncio.create_task(gateway._deliver(batch(b"lost"), [message(1)], None))
    second = asyncio.create_task(gateway._deliver(batch(b"fine"), [message(2)], first))
    assert await first is False and await second is False
    assert recorder.acked == []
    assert registry.get_sample_value("liftwatch_gateway_produce_failures_total") == 1


async def test_an_unexpected_producer_error_is_retried_not_acknowledged() -> None:
    attempts = 0

    async def produce(records: Sequence[OutRecord]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("a bug in building the batch")

    gateway, recorder = gateway_with(produce)
    assert await gateway._deliver(batch(b"k"), [message(7)], None)
    assert attempts == 2 and recorder.acked == [7]
