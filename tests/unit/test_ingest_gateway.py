"""The gateway's delivery chain: PUBACKs only after Kafka, in receive order, never past an abandoned batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from aiokafka.errors import KafkaConnectionError
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.config import GatewaySettings
from liftwatch.ingest.gateway import Gateway, default_client_id
from liftwatch.ingest.handling import OutRecord
from liftwatch.mqtt import InboundMessage, MqttClient
from liftwatch.schema import decode_dead_letter, decode_status_record, decode_telemetry_record
from prometheus_client import CollectorRegistry

from tests.fixtures.ingest import telemetry_payload


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


VALID = telemetry_payload("T1", 5, 3, int(time.time() * 1000))


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buffer = bytearray(data)
    for position, value in edits:
        buffer[position % len(buffer)] = value
    return bytes(buffer)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["lift/v1/T1/telemetry", "lift/v1/T1/status", "lift/v1/T2/telemetry", "junk/topic"]),
            st.one_of(
                st.binary(max_size=300),
                st.just(VALID),
                st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), max_size=6).map(
                    lambda edits: _mutate(VALID, edits)
                ),
            ),
        ),
        min_size=1,
        max_size=30,
    ),
    st.integers(1, 4),
)
def test_gateway_path_acknowledges_every_message_once_in_order_whatever_the_input(
    messages: list[tuple[str, bytes]], bursts: int
) -> None:
    """Random and mutated payloads through dispatch and delivery, in a few bursts: no exception,
    every message acknowledged exactly once and in receive order, every record produced readable."""
    produced: list[OutRecord] = []

    async def produce(records: Sequence[OutRecord]) -> None:
        await asyncio.sleep(0)
        produced.extend(records)

    async def run() -> list[int]:
        gateway, recorder = gateway_with(produce)
        inbound = [
            InboundMessage(topic, payload, 1, mid, cast(MqttClient, None))
            for mid, (topic, payload) in enumerate(messages, 1)
        ]
        size = max(1, len(inbound) // bursts)
        for start in range(0, len(inbound), size):
            gateway.dispatch(inbound[start : start + size])
        await asyncio.gather(*gateway._pending)
        return recorder.acked

    acked = asyncio.run(run())
    assert acked == list(range(1, len(messages) + 1))
    for record in produced:
        decoder = {"telemetry": decode_telemetry_record, "status": decode_status_record}.get(record.topic)
        (decoder or decode_dead_letter)(record.value)


def test_the_client_id_defaults_to_the_broker_account() -> None:
    """The shipped broker makes the user name the client id; the gateway says the same in its logs and
    keeps one stable id per host on a broker without accounts."""
    assert default_client_id("mqtt://gateway.1:pw@broker:1883") == "gateway.1"
    assert default_client_id("mqtt://broker:1883").startswith("liftwatch-gateway-")
