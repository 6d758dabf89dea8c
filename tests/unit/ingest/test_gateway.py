"""The gateway's delivery chain: each terminal's records reach Kafka in receive order whatever fails,
PUBACKs only after Kafka, in receive order, never past an abandoned batch."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, cast

import pytest
from aiokafka.errors import KafkaTimeoutError, RequestTimedOutError
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.columnar import TelemetryArrays
from liftwatch.config import GatewaySettings
from liftwatch.ingest import ordering
from liftwatch.ingest.gateway import Gateway, default_client_id
from liftwatch.ingest.ordering import RecordFormat
from liftwatch.mqtt import InboundMessage, MqttClient
from liftwatch.schema import (
    TelemetryColumns,
    TelemetryRecord,
    decode_dead_letter,
    decode_status_record,
    decode_telemetry,
)
from prometheus_client import CollectorRegistry

from tests.fixtures.ingest import telemetry_payload

# How one ``send_batch`` call goes. ``refused``: aiokafka's ``add_batch`` times out waiting for the
# partition's queue (KafkaTimeoutError), nothing appended; ``lost``: sent, not written, the request
# fails; ``ambiguous``: written, but the acknowledgement is lost; ``bug``: an unexpected exception.
Fate = Literal["ok", "refused", "lost", "ambiguous", "bug"]
Record = tuple[bytes | None, bytes]


class FakeBatch:
    """aiokafka's BatchBuilder as the gateway uses it: full after ``capacity`` records."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[Record] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: int | None) -> object | None:
        if len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        pass


async def no_wait(topic: str, partition: int, records: list[Record]) -> Fate:
    return "ok"


class FakeProducer:
    """The batch API of AIOKafkaProducer over an in-memory log per partition.

    ``decide`` is awaited inside ``send_batch`` (where aiokafka may wait for the partition's queue
    to drain) and says how the call goes; ``settle`` is awaited before the acknowledgement. Like
    Kafka, a partition's log takes batches in the order they are written.
    """

    def __init__(
        self,
        decide: Callable[[str, int, list[Record]], Awaitable[Fate]] = no_wait,
        settle: Callable[[list[Record]], Awaitable[None]] | None = None,
        capacity: int = 3,
        partitions: int = 4,
    ) -> None:
        self.decide, self.settle = decide, settle
        self.capacity, self.partitions = capacity, partitions
        self.log: dict[tuple[str, int], list[Record]] = defaultdict(list)
        self.fates: list[Fate] = []
        self._answering: set[asyncio.Task[None]] = set()

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> asyncio.Future[None]:
        fate = await self.decide(topic, partition, batch.records)
        self.fates.append(fate)
        if fate == "refused":
            raise KafkaTimeoutError()
        if fate == "bug":
            raise RuntimeError("a bug in building the batch")
        if fate in ("ok", "ambiguous"):
            self.log[(topic, partition)].extend(batch.records)
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def answer() -> None:
            if self.settle is not None:
                await self.settle(batch.records)
            if fate == "ok":
                acknowledged.set_result(None)
            else:
                acknowledged.set_exception(RequestTimedOutError())

        task = asyncio.get_running_loop().create_task(answer())
        self._answering.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._answering.discard)
        return acknowledged

    def records(self, topic: str) -> list[Record]:
        return [record for (name, _), log in self.log.items() if name == topic for record in log]


class AckRecorder:
    """Stands in for the MQTT client: records the PUBACKs the gateway sends."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack_many(self, messages: Iterable[InboundMessage]) -> None:
        self.acked.extend(m.mid for m in messages)


def telemetry_in(value: bytes) -> list[TelemetryRecord]:
    """The messages of a ``telemetry`` record of either form, in record order."""
    record = decode_telemetry(value)
    return TelemetryArrays.from_record(record).records() if isinstance(record, TelemetryColumns) else [record]


async def gateway_with(
    producer: FakeProducer, registry: CollectorRegistry | None = None, record_format: RecordFormat = "messages"
) -> tuple[Gateway, AckRecorder]:
    settings = GatewaySettings(gateway_record_format=record_format)
    gateway = Gateway(settings, registry or CollectorRegistry(), backoff=(0.0, 0.0))
    recorder = AckRecorder()
    gateway._mqtt = cast(MqttClient, recorder)
    gateway._producer = cast(Any, producer)
    await gateway._learn_partitions(cast(Any, producer))
    return gateway, recorder


async def settled(gateway: Gateway) -> list[bool]:
    """Wait for every delivery, then stop the partition senders."""
    results = await asyncio.gather(*gateway._pending)
    await gateway._stop_senders()
    return list(results)


def message(mid: int, terminal: str = "T1", seq: int | None = None) -> InboundMessage:
    payload = telemetry_payload(terminal, mid if seq is None else seq)
    return InboundMessage(f"lift/v1/{terminal}/telemetry", payload, 1, mid, cast(MqttClient, None))


def terminals_on_distinct_partitions(producer: FakeProducer, count: int) -> list[str]:
    """Terminal ids that the gateway sends to ``count`` different telemetry partitions."""
    gateway = Gateway(GatewaySettings(), CollectorRegistry())
    gateway._partition_counts = {gateway._topics["telemetry"]: producer.partitions}
    found: dict[int, str] = {}
    for n in range(1000):
        found.setdefault(gateway._partition(gateway._topics["telemetry"], f"T{n}".encode()), f"T{n}")
    return list(found.values())[:count]


async def test_pubacks_follow_receive_order_even_when_kafka_answers_out_of_order() -> None:
    first_may_finish = asyncio.Event()
    producer = FakeProducer()
    slow, fast = terminals_on_distinct_partitions(producer, 2)

    async def settle(records: list[Record]) -> None:
        if records[0][0] == slow.encode():
            await first_may_finish.wait()

    producer.settle = settle
    gateway, recorder = await gateway_with(producer)
    gateway.dispatch([message(1, slow), message(2, slow)])
    gateway.dispatch([message(3, fast)])
    await asyncio.sleep(0.01)
    assert len(producer.records("telemetry")) == 3
    assert recorder.acked == []  # the second batch is in Kafka but waits for the first
    first_may_finish.set()
    assert await settled(gateway) == [True, True]
    assert recorder.acked == [1, 2, 3]


async def test_no_puback_after_a_batch_given_up_on_stop() -> None:
    """A batch abandoned while stopping blocks the PUBACKs of every later batch, and nothing later
    for its partition reaches Kafka.

    A later batch may hold a message dropped as a duplicate of one in the abandoned batch (a
    re-delivery after a reconnect): acknowledging it would acknowledge a message never in Kafka.
    """
    producer = FakeProducer()
    lost, fine = terminals_on_distinct_partitions(producer, 2)

    async def decide(topic: str, partition: int, records: list[Record]) -> Fate:
        return "lost" if records[0][0] == lost.encode() else "ok"

    producer.decide = decide
    registry = CollectorRegistry()
    gateway, recorder = await gateway_with(producer, registry)
    gateway._stopping = True
    gateway.dispatch([message(1, lost, 0)])
    gateway.dispatch([message(2, fine, 0)])
    gateway.dispatch([message(3, lost, 1)])
    assert await settled(gateway) == [False, False, False]
    assert recorder.acked == []
    assert [telemetry_in(v)[0].terminal for _, v in producer.records("telemetry")] == [fine]
    assert registry.get_sample_value("liftwatch_gateway_produce_failures_total") == 1


async def test_an_unexpected_producer_error_is_retried_not_acknowledged() -> None:
    attempts = 0

    async def decide(topic: str, partition: int, records: list[Record]) -> Fate:
        nonlocal attempts
        attempts += 1
        return "bug" if attempts == 1 else "ok"

    producer = FakeProducer(decide)
    gateway, recorder = await gateway_with(producer)
    gateway.dispatch([message(7)])
    assert await settled(gateway) == [True]
    assert attempts == 2 and recorder.acked == [7]
    assert len(producer.records("telemetry")) == 1


async def test_columns_pack_a_partitions_messages_in_receive_order_and_ack_after_kafka() -> None:
    """Several terminals' messages for one partition become one columns record (no key), holding
    them in receive order; they are acknowledged once that record is in Kafka."""
    producer = FakeProducer(partitions=1, capacity=10)
    gateway, recorder = await gateway_with(producer, record_format="columns")
    burst = [message(1, "T1", 0), message(2, "T2", 0), message(3, "T1", 1), message(4, "T3", 0), message(5, "T2", 1)]
    gateway.dispatch(burst)
    assert await settled(gateway) == [True]
    [(key, value)] = producer.records("telemetry")
    assert key is None and isinstance(decode_telemetry(value), TelemetryColumns)
    assert [(r.terminal, r.seq) for r in telemetry_in(value)] == [
        ("T1", 0),
        ("T2", 0),
        ("T1", 1),
        ("T3", 0),
        ("T2", 1),
    ]
    assert recorder.acked == [1, 2, 3, 4, 5]


async def test_a_retry_sends_the_same_columns_record_not_a_bigger_one() -> None:
    """Messages queued while a columns record is in flight wait for the next record: the retry of a
    failed record is byte for byte the record sent first."""
    producer = FakeProducer(partitions=1, capacity=10)
    attempts: list[list[Record]] = []
    later_queued = asyncio.Event()

    async def decide(topic: str, partition: int, records: list[Record]) -> Fate:
        attempts.append(list(records))
        if len(attempts) == 1:
            await later_queued.wait()
            return "lost"
        return "ok"

    producer.decide = decide
    gateway, recorder = await gateway_with(producer, record_format="columns")
    gateway.dispatch([message(1, "T1", 0), message(2, "T2", 0)])
    await asyncio.sleep(0.01)  # the first record is in flight
    gateway.dispatch([message(3, "T1", 1)])
    later_queued.set()
    assert await settled(gateway) == [True, True]
    assert len(attempts) == 3 and attempts[0] == attempts[1]
    assert [[(r.terminal, r.seq) for r in telemetry_in(v)] for _, v in producer.records("telemetry")] == [
        [("T1", 0), ("T2", 0)],
        [("T1", 1)],
    ]
    assert recorder.acked == [1, 2, 3]


async def test_a_pack_the_full_batch_refused_is_sent_next_as_built_and_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A columns record built but refused by a full Kafka batch is not packed again: the next batch
    starts with it, byte for byte, even if more messages were queued meanwhile, and nothing is
    acknowledged before it is in."""
    monkeypatch.setattr(ordering, "COLUMNS_MAX_SAMPLES", 1)  # one message a pack
    producer = FakeProducer(partitions=1, capacity=1)
    built: list[int] = []
    pack = TelemetryArrays.from_records

    def counted(records: list[TelemetryRecord]) -> TelemetryArrays:
        built.append(len(records))
        return pack(records)

    monkeypatch.setattr(TelemetryArrays, "from_records", counted)
    first_sent = asyncio.Event()
    attempts: list[list[Record]] = []

    async def decide(topic: str, partition: int, records: list[Record]) -> Fate:
        attempts.append(list(records))
        if len(attempts) == 1:
            first_sent.set()
            await asyncio.sleep(0.01)
        return "ok"

    producer.decide = decide
    gateway, recorder = await gateway_with(producer, record_format="columns")
    gateway.dispatch([message(1, "T1", 0), message(2, "T2", 0)])
    await first_sent.wait()
    gateway.dispatch([message(3, "T1", 1)])
    assert await settled(gateway) == [True, True]
    assert built == [1, 1, 1]  # each message packed once: the refused pack was kept, not rebuilt
    assert [[(r.terminal, r.seq) for r in telemetry_in(v)] for _, v in producer.records("telemetry")] == [
        [("T1", 0)],
        [("T2", 0)],
        [("T1", 1)],
    ]
    assert recorder.acked == [1, 2, 3]


async def test_a_refused_pack_of_several_messages_is_sent_next_and_each_message_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full batch refuses a pack of two messages: the next batch sends that pack as built and goes
    on after both of its messages, so each message is packed, written and acknowledged once."""
    monkeypatch.setattr(ordering, "COLUMNS_MAX_SAMPLES", 2)  # two one-sample messages a pack
    producer = FakeProducer(partitions=1, capacity=1)
    built: list[list[int]] = []
    pack = TelemetryArrays.from_records

    def counted(records: list[TelemetryRecord]) -> TelemetryArrays:
        built.append([r.seq for r in records])
        return pack(records)

    monkeypatch.setattr(TelemetryArrays, "from_records", counted)
    gateway, recorder = await gateway_with(producer, record_format="columns")
    gateway.dispatch([message(mid, "T1", mid) for mid in range(1, 6)])
    assert await settled(gateway) == [True]
    assert built == [[1, 2], [3, 4], [5]]
    assert [[r.seq for r in telemetry_in(v)] for _, v in producer.records("telemetry")] == [[1, 2], [3, 4], [5]]
    assert recorder.acked == [1, 2, 3, 4, 5]


FATES: list[Fate] = ["ok", "refused", "lost", "ambiguous", "bug"]


@pytest.mark.parametrize("record_format", ["messages", "columns"])
@settings(max_examples=150, deadline=None)
@given(
    bursts=st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=25), min_size=1, max_size=8),
    failure_rate=st.sampled_from([0.0, 0.1, 0.3, 0.6]),
    fates=st.lists(st.sampled_from(FATES[1:]), min_size=1, max_size=4),
    capacity=st.integers(1, 6),
    seed=st.integers(0, 2**32),
)
def test_each_terminals_records_reach_kafka_in_receive_order_whatever_fails(
    record_format: RecordFormat,
    bursts: list[list[int]],
    failure_rate: float,
    fates: list[Fate],
    capacity: int,
    seed: int,
) -> None:
    """Concurrent bursts of several terminals, dispatched while earlier ones are still in flight,
    against a producer that waits, refuses, loses and half-writes batches at random: per terminal,
    the topic holds every message in receive order (a copy only right after an ambiguous failure,
    of records already there), and every message is acknowledged once, in order."""
    # A seeded Random, not st.randoms(): the number of draws is unbounded (retries), and a
    # hypothesis-backed Random raises StopTest inside the producer when its buffer runs out.
    rnd = random.Random(seed)

    async def pause() -> None:
        for _ in range(rnd.randrange(4)):
            await asyncio.sleep(0)

    async def decide(topic: str, partition: int, records: list[Record]) -> Fate:
        await pause()  # aiokafka's send_batch may wait for the partition's previous batch
        return rnd.choice(fates) if rnd.random() < failure_rate else "ok"

    async def settle(records: list[Record]) -> None:
        await pause()

    async def run() -> tuple[FakeProducer, list[int], CollectorRegistry, list[list[int]]]:
        registry = CollectorRegistry()
        producer = FakeProducer(decide, settle, capacity=capacity)
        gateway, recorder = await gateway_with(producer, registry, record_format)
        seqs = [0] * 6
        mid = 0
        received: list[list[int]] = [[] for _ in range(6)]
        for burst in bursts:
            messages = []
            for terminal in burst:
                mid += 1
                messages.append(message(mid, f"T{terminal}", seqs[terminal]))
                received[terminal].append(seqs[terminal])
                seqs[terminal] += 1
            gateway.dispatch(messages)
            await pause()
        assert all(await settled(gateway))
        return producer, recorder.acked, registry, received

    producer, acked, registry, received = asyncio.run(run())
    assert acked == list(range(1, sum(map(len, bursts)) + 1))
    in_topic: dict[str, list[int]] = defaultdict(list)
    for _, value in producer.records("telemetry"):
        for record in telemetry_in(value):
            in_topic[record.terminal].append(record.seq)
    for terminal, seqs in enumerate(received):
        topic_seqs = in_topic.get(f"T{terminal}", [])
        first_copies = [seq for i, seq in enumerate(topic_seqs) if seq not in topic_seqs[:i]]
        assert first_copies == seqs
        if "ambiguous" not in producer.fates:
            assert topic_seqs == seqs
    failures = sum(fate != "ok" for fate in producer.fates)
    assert registry.get_sample_value("liftwatch_gateway_produce_failures_total") == failures


VALID = telemetry_payload("T1", 5, 3, int(time.time() * 1000))


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buffer = bytearray(data)
    for position, value in edits:
        buffer[position % len(buffer)] = value
    return bytes(buffer)


@pytest.mark.parametrize("record_format", ["messages", "columns"])
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
    record_format: RecordFormat, messages: list[tuple[str, bytes]], bursts: int
) -> None:
    """Random and mutated payloads through dispatch and delivery, in a few bursts: no exception,
    every message acknowledged exactly once and in receive order, every record produced readable."""

    async def settle(records: list[Record]) -> None:
        await asyncio.sleep(0)

    producer = FakeProducer(settle=settle)

    async def run() -> list[int]:
        gateway, recorder = await gateway_with(producer, record_format=record_format)
        inbound = [
            InboundMessage(topic, payload, 1, mid, cast(MqttClient, None))
            for mid, (topic, payload) in enumerate(messages, 1)
        ]
        size = max(1, len(inbound) // bursts)
        for start in range(0, len(inbound), size):
            gateway.dispatch(inbound[start : start + size])
        await settled(gateway)
        return recorder.acked

    acked = asyncio.run(run())
    assert acked == list(range(1, len(messages) + 1))
    for (topic, _), log in producer.log.items():
        decoder = {"telemetry": telemetry_in, "status": decode_status_record}.get(topic)
        for _, value in log:
            (decoder or decode_dead_letter)(value)


def test_the_client_id_defaults_to_the_broker_account() -> None:
    """The shipped broker makes the user name the client id; the gateway says the same in its logs and
    keeps one stable id per host on a broker without accounts."""
    assert default_client_id("mqtt://gateway.1:pw@broker:1883") == "gateway.1"
    assert default_client_id("mqtt://broker:1883").startswith("liftwatch-gateway-")
