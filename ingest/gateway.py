"""``liftwatch gateway``: MQTT telemetry and status in, Kafka records out, nothing lost.

The loop only moves data; decisions live in :mod:`liftwatch.ingest.handling` (decode, validate,
deduplicate) and :mod:`liftwatch.ingest.sequence`. Per event-loop wake-up the gateway takes every
MQTT message waiting, hands all their records to the producer, awaits Kafka's acknowledgement of
the whole batch (acks=all) and only then sends the PUBACKs, in receive order. A crash before the
PUBACK means the broker re-delivers (persistent session); the writer's primary key absorbs the
copy that may already be in Kafka.

Order: batches are pipelined, but their records are appended to each Kafka partition by one sender
per partition, one Kafka batch at a time, retried before anything later
(:mod:`liftwatch.ingest.ordering`), so a terminal's records reach Kafka in receive order.

Records (``LIFTWATCH_GATEWAY_RECORD_FORMAT``): with ``columns`` the telemetry messages a sender
takes in one go are packed into one ``telemetry.columns.v1`` record (a few when they are many), so
the broker, the rules and the writer handle one record per thousands of samples; ``messages``
writes one ``telemetry.v1`` record per message.

Back-pressure: while Kafka does not acknowledge, nothing is acknowledged to MQTT, so the broker
stops sending once ``max_in_flight`` (MQTT Receive Maximum) messages are unacknowledged, and
keeps the rest queued in our session. The gateway retries the pending batches until Kafka answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from operator import attrgetter

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from liftwatch.badinput import BadInputPolicy
from liftwatch.config import GatewaySettings
from liftwatch.errors import ServiceUnavailable
from liftwatch.ingest.contract import STATUS_TOPIC_FILTER, TELEMETRY_TOPIC_FILTER, TimeLimits
from liftwatch.kafka import ensure_topics, make_producer
from liftwatch.mqtt import BrokerAddress, InboundMessage, MqttClient
from liftwatch.schema import DeadLetterReason, encode_record
from prometheus_client import CollectorRegistry

from .handling import HandlerConfig, MessageHandler, Out, OutRecord, OutTelemetry
from .metrics import GatewayMetrics
from .ordering import Built, Chunk, PartitionQueue, RecordFormat, Refused, build_records
from .plumbing import RETRY_MAX_S, RETRY_MIN_S, process_registry, sleep_unless
from .sequence import SequenceTracker

log = logging.getLogger(__name__)
_topic_of = attrgetter("topic")

# On stop, how long pending batches may take to reach Kafka before we leave them to re-delivery.
DRAIN_TIMEOUT_S = 15.0
# Producer linger: a short wait fills Kafka batches without adding visible latency.
PRODUCER_LINGER_MS = 2
# Messages handled per dispatch at most: bounds how long one dispatch holds the event loop
# (Kafka responses and PUBACKs wait meanwhile) without shrinking Kafka batches much.
DISPATCH_MAX = 2000
# Terminal -> partition memo; bounded so a flood of forged terminal ids cannot grow it forever.
PARTITION_CACHE_MAX = 1_000_000
# Leaving (`liftwatch gateway --leave`): the session counts as drained after this long without a message.
LEAVE_IDLE_S = 2.0


def default_client_id(mqtt_url: str) -> str:
    """A client id stable across restarts, so the persistent session is resumed: the broker account's
    name (a broker that ties sessions to accounts, as the shipped one does, uses it anyway), else
    one per host."""
    return BrokerAddress.parse(mqtt_url).username or f"liftwatch-gateway-{socket.gethostname()}"


def subscription_filters(settings: GatewaySettings) -> list[str]:
    """Shared-subscription filters: several gateways in one group split the messages."""
    root = settings.mqtt_topic_root
    return [f"$share/{settings.gateway_group}/{root}{flt}" for flt in (TELEMETRY_TOPIC_FILTER, STATUS_TOPIC_FILTER)]


class Gateway:
    """One gateway process: an MQTT session, a Kafka producer and the handler between them."""

    def __init__(
        self,
        settings: GatewaySettings,
        registry: CollectorRegistry,
        backoff: tuple[float, float] = (RETRY_MIN_S, RETRY_MAX_S),
    ) -> None:
        self.settings = settings
        self._backoff = backoff  # first and longest wait between produce retries
        self.metrics = GatewayMetrics(registry)
        self.policy = BadInputPolicy(registry)
        config = HandlerConfig(
            topic_root=settings.mqtt_topic_root,
            max_payload_bytes=settings.max_payload_bytes,
            limits=TimeLimits(
                max_future_ms=settings.max_future_skew_s * 1000, max_age_ms=settings.retention_days * 86_400_000
            ),
        )
        self.handler = MessageHandler(config, self.policy, self.metrics, SequenceTracker(settings.dedupe_window))
        self._topics = {name: settings.topic(name) for name in ("telemetry", "status", "deadletter")}
        self._producer: AIOKafkaProducer | None = None
        self._partition_counts: dict[str, int] = {}
        self._targets: dict[tuple[str, bytes], tuple[str, int]] = {}  # (topic, key) -> (topic, partition)
        self._target_tuples: dict[tuple[str, int], tuple[str, int]] = {}
        self._senders: dict[tuple[str, int], _PartitionSender] = {}
        self._mqtt: MqttClient | None = None
        self._stopping = False
        self._last: asyncio.Task[bool] | None = None
        self._pending: set[asyncio.Task[bool]] = set()
        self._received = 0  # MQTT messages taken so far
        self._unacked = 0  # of which not acknowledged yet

    # --- start-up, retried until the services answer --------------------------------------------

    async def _start_producer(self, stop: asyncio.Event) -> AIOKafkaProducer | None:
        delay = RETRY_MIN_S
        while not stop.is_set():
            producer = make_producer(self.settings, linger_ms=PRODUCER_LINGER_MS)
            try:
                await ensure_topics(self.settings)
                await producer.start()
                await self._learn_partitions(producer)
                return producer
            except (KafkaError, OSError) as error:
                await producer.stop()
                log.warning("Kafka not available (%s); retrying in %.1f s", error, delay)
            await sleep_unless(stop, delay)
            delay = min(delay * 2, RETRY_MAX_S)
        return None

    async def _start_mqtt(self, stop: asyncio.Event) -> MqttClient | None:
        delay = RETRY_MIN_S
        while not stop.is_set():
            client = MqttClient(
                self.settings.require_mqtt(),
                self.settings.gateway_client_id or default_client_id(self.settings.require_mqtt()),
                persistent_session=True,
                manual_ack=True,
                receive_maximum=self.settings.max_in_flight,
                tls=self.settings.mqtt_tls,
            )
            client.on_connection_change = lambda up: self.metrics.mqtt_connected.set(1 if up else 0)
            try:
                await client.connect()
                await client.subscribe(*subscription_filters(self.settings), qos=1)
                self.metrics.subscribed.set(1)
                return client
            except ServiceUnavailable as error:
                await client.disconnect()
                log.warning("MQTT broker not available (%s); retrying in %.1f s", error, delay)
            await sleep_unless(stop, delay)
            delay = min(delay * 2, RETRY_MAX_S)
        return None

    # --- the loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, leave: bool = False) -> None:
        """Move messages until ``stop`` is set, then deliver what is pending and disconnect.

        With ``leave``, the gateway instead retires its session for good: it unsubscribes (no new
        messages are routed to it), delivers what the session had queued, and disconnects with a
        session expiry of 0. A shared subscription keeps routing a share of the messages to a
        member's session while it is offline, so a gateway removed for good (scale-down, a changed
        client id) must leave, or its share is lost when the session expires.
        """
        self._producer = await self._start_producer(stop)
        if self._producer is None:
            return
        try:
            self._mqtt = await self._start_mqtt(stop)
            if self._mqtt is None:
                return
            log.info("gateway %s consuming %s", self._mqtt.client_id, subscription_filters(self.settings))
            drained = False
            try:
                if leave:
                    await self._mqtt.unsubscribe(*subscription_filters(self.settings))
                    drained = await self._pump_until_idle(self._mqtt, stop)
                else:
                    await self._pump(self._mqtt, stop)
            finally:
                await self._drain()
                await self._stop_senders()
                await self._mqtt.disconnect(end_session=drained and not self._unacknowledged())
                if leave:
                    log.info("gateway %s %s", self._mqtt.client_id, "left" if drained else "stopped before leaving")
        finally:
            await self._producer.stop()

    def _unacknowledged(self) -> bool:
        return self._unacked > 0

    async def _pump_until_idle(self, mqtt: MqttClient, stop: asyncio.Event) -> bool:
        """Pump until the session has been quiet for LEAVE_IDLE_S; False if ``stop`` came first."""
        idle = asyncio.Event()
        pump = asyncio.create_task(self._pump(mqtt, idle))
        quiet_since = time.monotonic()
        seen = -1
        try:
            while not stop.is_set():
                received = self._received
                if received != seen or mqtt.waiting or self._pending:
                    seen, quiet_since = received, time.monotonic()
                elif time.monotonic() - quiet_since >= LEAVE_IDLE_S:
                    return True
                await sleep_unless(stop, 0.1)
            return False
        finally:
            idle.set()
            await pump

    async def _pump(self, mqtt: MqttClient, stop: asyncio.Event) -> None:
        stopped = asyncio.ensure_future(stop.wait())
        limit = min(self.settings.max_in_flight, DISPATCH_MAX)
        try:
            while True:
                receiving = asyncio.ensure_future(mqtt.receive_many(limit))
                await asyncio.wait((receiving, stopped), return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await receiving
                    return
                self.dispatch(receiving.result())
        finally:
            stopped.cancel()

    def dispatch(self, messages: Sequence[InboundMessage]) -> None:
        """Handle a burst of messages and start delivering their records to Kafka."""
        now_ms = int(time.time() * 1000)
        records: list[Out] = []
        handle = self.handler.handle
        for message in messages:
            try:
                records.extend(handle(message.topic, message.payload, now_ms))
            except Exception as error:  # a handler bug must not stop the gateway; the fuzz test hunts them
                log.exception("handler failed on %s", message.topic)
                letter = self.policy.refuse(
                    source="mqtt",
                    topic=message.topic,
                    reason=DeadLetterReason.UNDECODABLE,
                    detail=f"internal error: {error!r}",
                    payload=message.payload,
                )
                records.append(OutRecord("deadletter", None, encode_record(letter)))
        self.metrics.batch_size.observe(len(messages))
        self.metrics.in_flight.inc(len(messages))
        self._received += len(messages)
        self._unacked += len(messages)
        # Queued here, synchronously and in receive order: the order of every partition's queue is
        # the order in which the messages arrived, whatever order the deliveries run in.
        chunks = self._enqueue(records)
        task = asyncio.create_task(self._deliver(records, chunks, messages, self._last))
        self._last = task
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _learn_partitions(self, producer: AIOKafkaProducer) -> None:
        """Partition counts of our topics, fixed for the life of the process.

        Records are assigned to partitions synchronously in ``dispatch`` (that is what keeps their
        order), so the counts are read once here. A topic given more partitions while the gateway
        runs keeps its old key -> partition mapping until the gateway restarts.
        """
        for topic in self._topics.values():
            self._partition_counts[topic] = len(await producer.partitions_for(topic))

    def _partition(self, topic: str, key: bytes | None) -> int:
        """Kafka's default partitioner (murmur2 of the key), memoised per key."""
        return self._target(topic, key)[1]

    def _target(self, topic: str, key: bytes | None) -> tuple[str, int]:
        """The (topic, partition) a record goes to; memoised per key, as one tuple (a burst's records
        are grouped by it)."""
        cached = self._targets.get((topic, key)) if key is not None else None
        if cached is not None:
            return cached
        count = self._partition_counts[topic]
        if key is None:
            return topic, random.randrange(count)  # noqa: S311 - load spreading, not security
        target = topic, (murmur2(key) & 0x7FFFFFFF) % count
        target = self._target_tuples.setdefault(target, target)  # one tuple per partition, shared
        if len(self._targets) < PARTITION_CACHE_MAX:
            self._targets[(topic, key)] = target
        return target

    def _enqueue(self, records: Sequence[Out]) -> list[Chunk]:
        """Queue a batch's records on their partitions' senders; one chunk per partition."""
        by_partition: dict[tuple[str, int], list[Out]] = {}
        topics, targets = self._topics, self._targets
        for record in records:  # per record: the memo inline, no list made for a partition seen
            topic, key = topics[record.topic], record.key
            target = targets.get((topic, key)) if key is not None else None
            if target is None:
                target = self._target(topic, key)
            items = by_partition.get(target)
            if items is None:
                items = by_partition[target] = []
            items.append(record)
        loop = asyncio.get_running_loop()
        chunks = []
        for topic_partition, items in by_partition.items():
            sender = self._senders.get(topic_partition)
            if sender is None:
                assert self._producer is not None
                sender = self._senders[topic_partition] = _PartitionSender(
                    self._producer,
                    *topic_partition,
                    self.settings.gateway_record_format,
                    self.metrics,
                    self._backoff,
                    lambda: self._stopping,
                    self.settings.gateway_linger_ms / 1000,
                )
            chunk = Chunk(items, loop.create_future())
            sender.put(chunk)
            chunks.append(chunk)
        return chunks

    async def _stop_senders(self) -> None:
        """Cancel the partition senders; whatever they still held is abandoned (re-delivered)."""
        senders = list(self._senders.values())
        for sender in senders:
            sender.cancel()
        for sender in senders:
            await sender.stopped()

    async def _deliver(
        self,
        records: list[Out],
        chunks: list[Chunk],
        messages: Sequence[InboundMessage],
        previous: asyncio.Task[bool] | None,
    ) -> bool:
        """Wait until the partition senders have a batch in Kafka, then PUBACK its messages after
        the previous batch's; True once acknowledged."""
        started = time.perf_counter()
        if chunks:
            # asyncio.wait, not gather: cancelling this task must not cancel the senders' futures.
            await asyncio.wait([chunk.done for chunk in chunks])
            if not all(chunk.done.result() for chunk in chunks):
                log.warning("stopping with %d messages not in Kafka; the broker re-delivers them", len(messages))
                return False
        self.metrics.produce_latency.observe(time.perf_counter() - started)
        if previous is not None:
            # PUBACKs go out in receive order, as MQTT asks of a receiver. If an earlier batch was
            # given up (stopping), later ones are not acknowledged either: a message this batch
            # dropped as a duplicate may be the re-delivered copy of one in the abandoned batch.
            await asyncio.wait((previous,))
            if previous.cancelled() or previous.exception() is not None or not previous.result():
                return False
        assert self._mqtt is not None
        self._mqtt.ack_many(messages)
        self.metrics.in_flight.dec(len(messages))
        self._unacked -= len(messages)
        # Counted per topic, not per record: a labelled counter costs microseconds an increment.
        for topic, count in Counter(map(_topic_of, records)).items():
            self.metrics.records_out.labels(topic=topic).inc(count)
        self.metrics.samples_out.inc(sum([len(r.record.samples) for r in records if isinstance(r, OutTelemetry)]))
        return True

    async def _drain(self) -> None:
        """Give pending batches a bounded time to reach Kafka and be acknowledged."""
        if not self._pending:
            return
        done, not_done = await asyncio.wait(set(self._pending), timeout=DRAIN_TIMEOUT_S)
        self._stopping = True
        await self._stop_senders()  # completes their chunks as not delivered
        for task in not_done:
            task.cancel()
        for task in not_done:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("delivery failed", exc_info=task.exception())


class _PartitionSender:
    """Appends one partition's queued records to Kafka, one batch at a time, in queue order.

    The driver of a :class:`PartitionQueue`: it builds as many records from the oldest waiting
    entries as one Kafka batch holds (:func:`build_records`), hands the batch to the producer,
    awaits its acknowledgement, and on a failure sends the same records again after a back-off.
    Retrying the same records is what keeps the order: aiokafka's ``send_batch`` can fail before
    appending (its wait for the partition's queue raises ``KafkaTimeoutError`` under load), and a
    batch can fail after being sent; either way nothing later for this partition has been appended.
    While the gateway stops, a failure abandons everything queued (the broker re-delivers it to the
    next session).
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        partition: int,
        record_format: RecordFormat,
        metrics: GatewayMetrics,
        backoff: tuple[float, float],
        stopping: Callable[[], bool],
        linger_s: float = 0.0,
    ) -> None:
        self._producer = producer
        self._linger_s = linger_s
        self.topic = topic
        self.partition = partition
        self._record_format = record_format
        self._built: Built | None = None  # sent and not acknowledged yet: what a retry sends again
        self._next: Refused | None = None  # built, refused by the full batch: the next send's first record
        self._metrics = metrics
        self._backoff = backoff
        self._stopping = stopping
        self._queue = PartitionQueue()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def put(self, chunk: Chunk) -> None:
        """Queue a chunk; the sender takes it after everything queued before."""
        self._queue.put(chunk)
        self._wake.set()

    def cancel(self) -> None:
        """Stop sending; the chunks left are abandoned."""
        self._task.cancel()

    async def stopped(self) -> None:
        """Wait until the sender has stopped."""
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        queue = self._queue
        first_delay, longest_delay = self._backoff
        delay = first_delay
        try:
            while True:
                if not queue:
                    self._wake.clear()
                    await self._wake.wait()
                    if self._linger_s:
                        # Woken from idle by one dispatch: let the next few join it, so that the
                        # record (and the broker's, the rules' and the writer's work per record) is
                        # shared by more messages. After a send the queue fills during the wait
                        # for Kafka's acknowledgement instead.
                        await asyncio.sleep(self._linger_s)
                    continue
                try:
                    count = await self._send_one_batch()
                except Exception as error:  # KafkaError, or a bug: either way nothing is acknowledged
                    self._metrics.produce_failures.inc()
                    if not isinstance(error, KafkaError):
                        log.exception("producing to %s[%d] failed", self.topic, self.partition)
                    if self._stopping():
                        queue.abandon()
                        return
                    log.warning(
                        "Kafka did not acknowledge a batch for %s[%d] (%r); retrying in %.1f s",
                        self.topic,
                        self.partition,
                        error,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, longest_delay)
                    continue
                delay = first_delay
                queue.acknowledged(count)
        finally:
            queue.abandon()

    async def _send_one_batch(self) -> int:
        """Send records built from the oldest waiting entries, as many as fit one Kafka batch; how
        many entries, once acknowledged. After a failure the same records are sent again; after a
        success the record the batch refused starts the next one, unbuilt again.

        Building the batch ourselves costs a few microseconds per record where ``producer.send()``
        costs tens (a coroutine, partitioner and future per record).
        """
        producer = self._producer
        batch = producer.create_batch()

        def append(record: tuple[bytes | None, bytes]) -> bool:
            return batch.append(key=record[0], value=record[1], timestamp=None) is not None

        if self._built is None:
            self._built = build_records(self._queue.waiting(), self._record_format, append, self._next)
            self._next = None
        else:
            for record in self._built.records:  # they fitted one batch before: they fit again
                append(record)
        batch.close()
        await (await producer.send_batch(batch, self.topic, partition=self.partition))
        # Once these are in, the record the batch refused holds the queue's head: sent first next.
        taken, self._next, self._built = self._built.taken, self._built.refused, None
        return taken


async def serve(
    settings: GatewaySettings, stop: asyncio.Event, registry: CollectorRegistry | None = None, leave: bool = False
) -> None:
    """Run a gateway until ``stop`` is set (the process entry point, also used by ``liftwatch up``)."""
    gateway = Gateway(settings, registry if registry is not None else process_registry(settings.metrics_port))
    await gateway.run(stop, leave=leave)
