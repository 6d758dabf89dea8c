"""The live incident feed: one Kafka consumer per API process, fanned out to SSE subscribers.

The alert service publishes every incident change (its own and those operators cause through
this API, via the ``incident_events`` outbox) on the ``incidents`` topic. Each API process reads
that topic once, without a consumer group, from the end, and hands every change to every
subscriber's bounded queue. A subscriber too slow to keep up is cut off rather than slowing the
others; its client reconnects with ``Last-Event-ID`` and replays what it missed from
``incident_events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import psycopg
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, KafkaError
from liftwatch import kafka
from liftwatch.alerts import relay
from liftwatch.api import access
from liftwatch.api.auth import Principal
from liftwatch.api.metrics import ApiMetrics
from liftwatch.config import CommonSettings
from liftwatch.schema import IncidentChange, decode_incident_change
from psycopg.rows import dict_row

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE = 1_000
# Kafka down or topic missing at start: try again after this long, the API keeps serving.
_RETRY_S = 2.0
# aiokafka's consumer retries a lost broker silently (getmany just returns nothing), so the
# running feed asks the broker this often whether it still answers, and reconnects if not.
_PROBE_S = 5.0
_PROBE_TIMEOUT_S = 2.0
_API_VERSIONS = 18  # Kafka protocol ApiVersions request: every broker answers it, without auth


async def broker_answers(bootstrap: str, timeout_s: float = _PROBE_TIMEOUT_S) -> bool:
    """True when one of the bootstrap servers answers a Kafka ApiVersions request (an open port is not enough)."""
    client_id = b"liftwatch-api-probe"
    correlation = 0x4C57
    request = struct.pack(">hhih", _API_VERSIONS, 0, correlation, len(client_id)) + client_id
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(struct.pack(">i", len(request)) + request)
                await writer.drain()
                size, answered = struct.unpack(">ii", await reader.readexactly(8))
                if answered == correlation and size >= 6:
                    return True
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            if writer is not None:
                writer.close()
    return False


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One change as delivered to clients: who may see it and its SSE frame (encoded once for all)."""

    change_id: int
    maintainer_id: int | None
    """The incident's firm: who may see the change (``access.may_see_firm``)."""
    data: str
    frame: bytes = b""

    def __post_init__(self) -> None:
        if not self.frame:
            # JSON text has no raw newlines, so it is a single `data:` line.
            frame = f"event: incident\nid: {self.change_id}\ndata: {self.data}\n\n".encode()
            object.__setattr__(self, "frame", frame)


def item_from_change(change: IncidentChange) -> FeedItem:
    """The feed item of a Kafka record."""
    data = msgspec.json.encode(msgspec.structs.asdict(change)).decode()
    return FeedItem(change.change_id, change.maintainer_id, data)


async def replay(
    conn: psycopg.AsyncConnection[Any], principal: Principal, after: int, limit: int
) -> list[FeedItem] | None:
    """The changes after ``after`` that ``principal`` may see, in order; None when more than ``limit``.

    Each item is built as the live one is (the alert service's :func:`relay.to_change`, then
    :func:`item_from_change`), so a client replaying what it missed gets the very frames it
    would have had live.
    """
    where, params = ["ev.id > %s"], [after]
    access.restrict(principal, "i.maintainer_id", where, params)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {relay.CHANGE_COLUMNS} FROM {relay.CHANGES_FROM} WHERE {' AND '.join(where)} ORDER BY ev.id LIMIT %s",
        [*params, limit + 1],
    )
    rows = await cur.fetchall()
    if len(rows) > limit:
        return None
    return [item_from_change(change) for change in relay.changes_of(rows)]


@dataclass(eq=False)
class Subscription:
    """One connected client's queue."""

    principal: Principal
    queue: asyncio.Queue[FeedItem | None] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    """Changes to send; None = the subscriber fell behind and is cut off."""
    overflowed: bool = False


class IncidentFeed:
    """Fan-out hub: ``run`` consumes Kafka, ``subscribe`` gives a client its queue."""

    def __init__(self, settings: CommonSettings, metrics: ApiMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._subscribers: set[Subscription] = set()
        self.connected = False
        self.ready = asyncio.Event()
        # Next offset per partition: after a Kafka outage the feed resumes where it stopped, so
        # connected clients miss nothing (only the very first start begins at the end).
        self._positions: dict[int, int] = {}

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self._metrics.feed_connected.set(1 if connected else 0)

    @contextlib.contextmanager
    def subscribe(self, principal: Principal) -> Iterator[Subscription]:
        """Register a subscriber for the duration of the ``with`` block."""
        sub = Subscription(principal)
        self._subscribers.add(sub)
        self._metrics.sse_clients.inc()
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
            self._metrics.sse_clients.dec()

    def publish(self, item: FeedItem) -> None:
        """Hand one change to every subscriber allowed to see it."""
        for sub in self._subscribers:
            if sub.overflowed or not access.may_see_firm(sub.principal, item.maintainer_id):
                continue
            try:
                sub.queue.put_nowait(item)
            except asyncio.QueueFull:
                sub.overflowed = True
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.queue.put_nowait(None)
                self._metrics.sse_dropped.inc()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume the incidents topic from its end until ``stop``; reconnect after failures."""
        while not stop.is_set():
            try:
                await self._consume(stop)
            except (KafkaError, OSError) as error:
                self._set_connected(False)
                log.warning("incident feed: Kafka unavailable (%s), retrying", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _RETRY_S)

    async def _consume(self, stop: asyncio.Event) -> None:
        topic = self._settings.topic("incidents")
        await kafka.ensure_topics(self._settings, {"incidents": kafka.TOPIC_PARTITIONS["incidents"]})
        # No group: every API process reads every partition, and commits nothing.
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self._settings.require_kafka(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self._settings.kafka_fetch_max_wait_ms,  # see liftwatch.kafka.make_consumer
        )
        await consumer.start()
        try:
            # Resolve the start position now, so every change after `ready` is delivered.
            # Without a group every partition is assigned once metadata arrives.
            while not consumer.assignment() and not stop.is_set():
                self._deliver_batches(await consumer.getmany(timeout_ms=100))
            for partition in consumer.assignment():
                if partition.partition in self._positions:
                    consumer.seek(partition, self._positions[partition.partition])
                else:
                    self._positions[partition.partition] = await consumer.position(partition)
            self._set_connected(True)
            self.ready.set()
            probe_at = time.monotonic() + _PROBE_S
            while not stop.is_set():
                self._deliver_batches(await consumer.getmany(timeout_ms=200, max_records=1000))
                if time.monotonic() >= probe_at:
                    if not await broker_answers(self._settings.require_kafka()):
                        raise KafkaConnectionError("the broker stopped answering")
                    probe_at = time.monotonic() + _PROBE_S
        finally:
            self._set_connected(False)
            await consumer.stop()

    def _deliver_batches(self, batches: dict[Any, list[Any]]) -> None:
        for partition, records in batches.items():
            for record in records:
                self._deliver(record.value)
                self._positions[partition.partition] = record.offset + 1

    def _deliver(self, value: bytes | None) -> None:
        try:
            change = decode_incident_change(value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            self._metrics.feed_rejected.labels(reason="undecodable").inc()
            log.warning("incident feed: undecodable record skipped: %s", error)
            return
        self._metrics.feed_changes.inc()
        self.publish(item_from_change(change))


class StreamSlots:
    """Open live-feed streams of one API process, per caller and in all, each capped.

    Every stream holds a replay and a queue of up to ``SUBSCRIBER_QUEUE`` changes, so one token
    opening hundreds of streams would cost every other client. Transitions of a slot:
    :meth:`take` when a stream is asked for (False: refuse with 429), :meth:`give_back` exactly
    once when it ends (the stream's ``finally`` and the response's background task both call it:
    a client gone before the first byte never ran the stream).
    """

    def __init__(self, per_caller: int, total: int) -> None:
        self.per_caller = per_caller
        self.total = total
        self.open = 0
        """Streams open now."""
        self._held: dict[str, int] = {}

    def take(self, caller: str) -> bool:
        """Reserve a slot for ``caller``; False when it, or the process, is at its cap."""
        if self._held.get(caller, 0) >= self.per_caller or self.open >= self.total:
            return False
        self._held[caller] = self._held.get(caller, 0) + 1
        self.open += 1
        return True

    def give_back(self, caller: str) -> None:
        """Free one of ``caller``'s slots."""
        held = self._held.get(caller, 0)
        if held == 0:
            return
        self.open -= 1
        if held > 1:
            self._held[caller] = held - 1
        else:
            del self._held[caller]
