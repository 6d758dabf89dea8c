"""``liftwatch rules``: the Kafka adapter around the pure rule engine.

Loop: ``getmany`` a large batch of ``telemetry`` (and ``status``) records, decode them into
columns, evaluate (``RuleProcessor``), produce the fault events to ``faults`` keyed by elevator
and wait for Kafka's acknowledgement, then checkpoint: the state of each touched partition's
terminals and the next offset to read, in one PostgreSQL transaction. On partition assignment
the checkpoint is restored and the consumer seeks to its offset; on revocation the partition is
checkpointed and forgotten. A crash between "events acknowledged" and "checkpoint written"
replays a few records and re-produces the same events with the same ``event_id`` (harmless
downstream); nothing is lost and no fault is raised twice with a different identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from liftwatch import db
from liftwatch.badinput import BadInputPolicy
from liftwatch.columnar import TelemetryArrays, unpackable
from liftwatch.config import RulesSettings
from liftwatch.kafka import ensure_topics, make_consumer, make_producer
from liftwatch.rules import thresholds as thresholds_mod
from liftwatch.rules.columns import Columns
from liftwatch.rules.health import LateShare
from liftwatch.rules.metrics import RulesMetrics
from liftwatch.rules.processor import RuleProcessor, Telemetry
from liftwatch.rules.registry import REGISTRY_CHANNEL, load_registry
from liftwatch.runtime import start_metrics
from liftwatch.schema import (
    DeadLetter,
    DeadLetterReason,
    FaultEvent,
    StatusRecord,
    TelemetryColumns,
    TelemetryRecord,
    decode_status_record,
    decode_telemetry,
    encode_record,
)
from prometheus_client import CollectorRegistry
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

log = logging.getLogger(__name__)

# Checkpoint retries while PostgreSQL is unreachable: quick first retry, then at most every 5 s.
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0
# How long the first registry read waits for the LISTEN connection (then reads, and reads again
# once it listens): a connection takes milliseconds; one that fails must not hold the start-up.
LISTEN_FIRST_S = 2.0

UPSERT_CHECKPOINT = """
INSERT INTO rules_checkpoints (consumer_group, topic, kafka_partition, next_offset, terminals, state, late_share,
                               updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (consumer_group, topic, kafka_partition)
DO UPDATE SET next_offset = EXCLUDED.next_offset, terminals = EXCLUDED.terminals, state = EXCLUDED.state,
              late_share = EXCLUDED.late_share, updated_at = now()
"""
SELECT_CHECKPOINT = """
SELECT next_offset, state FROM rules_checkpoints WHERE consumer_group = %s AND topic = %s AND kafka_partition = %s
"""


class Partition:
    """A telemetry partition this process owns: its terminals, how far it was read, what was checkpointed.

    Transitions (caller: effect):

    * assigned without a checkpoint (:meth:`RulesService.assigned`): no terminals, offset unknown
      until its first batch; the consumer starts from the committed/earliest offset.
    * assigned from a checkpoint (:meth:`restored`): the checkpoint's terminals, ``next_offset`` =
      ``saved_offset`` = the checkpoint's, saved now; the consumer seeks there.
    * read (:meth:`read`, ``RulesService._handle``): the batch's terminals join, ``next_offset`` moves
      past its last record.
    * checkpointed (:meth:`saved`, ``RulesService._checkpoint``): ``saved_offset`` = the offset written.
    * revoked (``RulesService.revoked``): checkpointed, then dropped with its terminals' rule state.
    """

    def __init__(self) -> None:
        self.terminals: set[str] = set()
        """Terminals whose records came through this partition (their rule state is checkpointed with it)."""
        self.next_offset: int | None = None
        """Next offset to read (None: nothing read or restored yet, so nothing to checkpoint)."""
        self.saved_offset: int | None = None
        """Offset of the last checkpoint written."""
        self.saved_at = -math.inf
        """Monotonic time of the last checkpoint written."""

    @classmethod
    def restored(cls, terminals: list[str], offset: int, now: float) -> Partition:
        """A partition assigned with a checkpoint: reading resumes at its offset."""
        partition = cls()
        partition.terminals = set(terminals)
        partition.next_offset = partition.saved_offset = offset
        partition.saved_at = now
        return partition

    def read(self, terminals: Iterable[str], last_offset: int) -> None:
        """A batch of the partition was read (records up to ``last_offset``)."""
        self.terminals.update(terminals)
        self.next_offset = last_offset + 1

    def due(self, now: float, interval_s: float, *, force: bool, unmoved: bool) -> bool:
        """Whether to checkpoint now: the offset is known and moved since the last checkpoint (or
        ``unmoved``), and the interval has passed (or ``force``)."""
        return (
            self.next_offset is not None
            and (unmoved or self.next_offset != self.saved_offset)
            and (force or now - self.saved_at >= interval_s)
        )

    def saved(self, offset: int, now: float) -> None:
        """A checkpoint of the partition at ``offset`` was committed."""
        self.saved_offset = offset
        self.saved_at = now


class TelemetryRead:
    """The telemetry records of one poll, of either form, and what the loop needs to know of them
    (read without unpacking a columns record's messages)."""

    def __init__(self) -> None:
        self.records: list[Telemetry] = []
        """In arrival order (partition after partition)."""
        self.terminals: set[str] = set()
        self.samples = 0
        self.received_ms = 0
        """Newest gateway receive time of the records' messages (0: none)."""

    def add(self, record: Telemetry) -> Sequence[str]:
        """Take a record; returns its terminals."""
        self.records.append(record)
        if isinstance(record, TelemetryArrays):
            terminals: Sequence[str] = record.terminals
            self.samples += record.samples
            self.received_ms = max(self.received_ms, int(record.received_ms.max(initial=0)))
        else:
            terminals = (record.terminal,)
            self.samples += len(record.samples)
            self.received_ms = max(self.received_ms, record.received_ms)
        self.terminals.update(terminals)
        return terminals


def fault_key(event: FaultEvent) -> bytes:
    """Key of a ``faults`` record: the elevator (all its events in one partition, in order, even across a
    terminal replacement); the terminal for one the registry does not know."""
    return (event.registration_code or event.terminal).encode()


def site_day_offset_ms(timezone: str) -> int:
    """UTC offset of the site's time zone now (days of ``unregistered_terminal`` are site days)."""
    offset = datetime.now(UTC).astimezone(ZoneInfo(timezone)).utcoffset()
    return int(offset.total_seconds() * 1000) if offset is not None else 0


class RulesService:
    """One rule-engine process: a consumer-group member over the telemetry partitions."""

    def __init__(self, settings: RulesSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.metrics = RulesMetrics(registry)
        self.policy = BadInputPolicy(registry, self._dead_letter)
        # A bad thresholds file stops the process here, before it touches Kafka.
        self.thresholds = thresholds_mod.load(settings.rules_overrides)
        self.processor = RuleProcessor(
            self.thresholds,
            lateness_ms=settings.allowed_lateness_ms,
            day_offset_ms=site_day_offset_ms(settings.site_timezone),
        )
        self.telemetry_topic = settings.topic("telemetry")
        self.status_topic = settings.topic("status")
        self.faults_topic = settings.topic("faults")
        self.deadletter_topic = settings.topic("deadletter")
        self.lock = asyncio.Lock()
        self.partitions: dict[int, Partition] = {}
        """The telemetry partitions this process owns, by partition number."""
        self.dead: list[DeadLetter] = []
        self.lag = 0
        self.caught_up = False
        self.read_at = time.monotonic()
        """When telemetry was last read: a stream idle for the allowed lateness counts as caught up even if
        the broker's end offsets say otherwise (tansu's can lag behind what a fetch returns)."""
        """Nothing left to read in any partition with a known end (set per poll, see ``_update_lag``)."""
        self.received_ms = 0
        """Newest gateway receive time of the telemetry read (the clock that gives up holes while busy)."""
        self.registry_changed = asyncio.Event()
        self.listening = asyncio.Event()
        """The registry LISTEN connection was established once."""
        self.registry_requested = False
        """The registry was read once (or is being read): a LISTEN established later reloads it."""
        self.late_share = LateShare()
        self._holes = (0, 0)  # the continuity's counters already in the metric
        self.pool: AsyncConnectionPool | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None

    def _dead_letter(self, letter: DeadLetter) -> None:
        self.dead.append(letter)

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        await ensure_topics(settings)
        self.pool = await db.async_pool(settings.require_database_url(), max_size=2, name="rules")
        listener = asyncio.create_task(self._listen_registry(stop))
        # The registry loads while the consumer joins its group (the broker holds a join for a while):
        # the first batch needs both, neither needs the other (a slot restored before the registry
        # came gets its facts from it when it comes).
        registry = asyncio.create_task(self._load_registry())
        try:
            self.producer = make_producer(settings)
            await self.producer.start()
            try:
                session_ms = settings.rules_session_timeout_ms
                self.consumer = make_consumer(
                    settings,
                    group_id=settings.rules_group,
                    session_timeout_ms=session_ms,
                    heartbeat_interval_ms=max(100, session_ms // 4),
                )
                self.consumer.subscribe([self.telemetry_topic, self.status_topic], listener=_Listener(self))
                await self.consumer.start()
                try:
                    await registry
                    await self._loop(stop)
                finally:
                    async with self.lock:
                        await self._checkpoint(list(self.partitions), force=True)
                    await self.consumer.stop()
            finally:
                await self.producer.stop()
        finally:
            for task in (registry, listener):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.pool.close()

    async def _load_registry(self) -> None:
        """The registry as the process starts (a database that is away stops it here)."""
        assert self.pool is not None
        # Listening first, so that a change made while the registry is read is pushed and the
        # listener need not read the whole registry once more, as it does after connecting late.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), LISTEN_FIRST_S)
        self.registry_requested = True
        registry = await load_registry(self.pool)
        async with self.lock:
            self.processor.set_registry(registry)
        self.metrics.registry_size.set(len(registry))

    async def _loop(self, stop: asyncio.Event) -> None:
        assert self.consumer is not None
        settings = self.settings
        next_registry = time.monotonic() + settings.rules_registry_refresh_s
        next_offline = time.monotonic() + settings.rules_offline_check_s
        while not stop.is_set():
            batch = await self.consumer.getmany(
                timeout_ms=max(settings.rules_batch_wait_ms, 1), max_records=settings.rules_batch_max
            )
            if self.registry_changed.is_set():
                self.registry_changed.clear()
                await self._refresh_registry()
            async with self.lock:
                await self._handle(batch)
            now = time.monotonic()
            if now >= next_registry:
                next_registry = now + settings.rules_registry_refresh_s
                await self._refresh_registry()
            if now >= next_offline:
                next_offline = now + settings.rules_offline_check_s
                async with self.lock:
                    await self._offline()

    async def _listen_registry(self, stop: asyncio.Event) -> None:
        """Flag a registry reload on each NOTIFY of our schema (migration 055), so an import, an API
        change or a terminal swap reaches the rules within a poll instead of the next periodic reload."""
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(self.settings.require_database_url(), autocommit=True)
                async with conn:
                    schema = (await (await conn.execute("SELECT current_schema()")).fetchone() or ("",))[0]
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(REGISTRY_CHANNEL)))
                    self.listening.set()
                    if self.registry_requested:  # changes made while we were not listening: reload once now
                        self.registry_changed.set()
                    self.metrics.registry_listening.set(1)
                    while not stop.is_set():
                        async for notice in conn.notifies(timeout=0.5):
                            if notice.payload == schema:
                                self.registry_changed.set()
                                self.metrics.registry_pushes.inc()
            except psycopg.Error:
                self.metrics.registry_listening.set(0)
                log.warning("registry LISTEN connection lost; periodic reloads until it is back", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY_MAX_S)

    async def _look_up(self, terminals: Iterable[str]) -> None:
        """Fetch the registry facts of terminals never seen before judging them: one registered a second
        before it speaks is judged with its elevator, not declared unregistered. Retried while the
        database is away (the batch waits: back-pressure), never skipped."""
        assert self.pool is not None
        unknown = self.processor.unknown(terminals)
        if not unknown:
            return
        delay = RETRY_MIN_S
        while True:
            try:
                found = await load_registry(self.pool, unknown)
                break
            except (psycopg.OperationalError, PoolTimeout):
                log.warning("registry look-up failed; retrying in %.1f s", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
        self.metrics.registry_lookups.inc(len(unknown))
        if found:
            self.processor.add_registry(found)
            self.metrics.registry_size.set(len(self.processor.registry))

    async def _refresh_registry(self) -> None:
        assert self.pool is not None
        try:
            registry = await load_registry(self.pool)
        except Exception:  # the database may be briefly away: keep the registry we have
            log.warning("registry refresh failed; keeping the previous one", exc_info=True)
            return
        async with self.lock:
            self.processor.set_registry(registry)
        self.metrics.registry_size.set(len(registry))

    # --- one batch ------------------------------------------------------------------------------

    async def _handle(self, batch: dict[TopicPartition, list[Any]]) -> None:
        read = TelemetryRead()
        records = read.records
        statuses: list[StatusRecord] = []
        touched: list[int] = []
        for tp, messages in batch.items():
            if not messages:
                continue
            self.metrics.records_in.labels(topic=tp.topic).inc(len(messages))
            if tp.topic == self.telemetry_topic:
                partition = self.partitions.get(tp.partition)
                if partition is None:  # revoked while the batch was in flight
                    continue
                terminals: set[str] = set()
                for message in messages:
                    record = self._decode_telemetry(message, tp.topic)
                    if record is not None:
                        terminals.update(read.add(record))
                partition.read(terminals, messages[-1].offset)
                touched.append(tp.partition)
            elif tp.topic == self.status_topic:
                for message in messages:
                    status = self._decode(message, tp.topic, decode_status_record)
                    if status is not None:
                        statuses.append(status)
        if statuses:
            self.processor.status(statuses)
        events: list[FaultEvent] = []
        # Holes open longer than the allowed lateness are given up on every poll, not only on empty
        # ones: a busy stream must not keep a silent terminal's held samples waiting. The clock is
        # the gateway receive time of the records read so far (capped by the wall clock): while
        # the engine works through a backlog, the wall clock would give up every hole it meets
        # (their missing messages, a few records on, late or not depending on when the engine
        # read them); the records' receive time only passes a hole's when the missing message, in
        # partition order, would be late by its own. Only an empty poll with nothing left to read
        # (caught up: a silent fleet) uses the wall clock; aiokafka polls empty between fetches too.
        now_ms = int(time.time() * 1000)
        idle = time.monotonic() - self.read_at > self.settings.allowed_lateness_ms / 1000
        caught_up = not records and (self.caught_up or idle)
        if records:
            self.read_at = time.monotonic()
        expired = self.processor.expire(now_ms if caught_up else min(now_ms, self.received_ms))
        self.received_ms = max(self.received_ms, read.received_ms)
        if records:
            await self._look_up(read.terminals)
            started = time.perf_counter()
            events, det = self.processor.process(records)
            self.metrics.evaluation.observe(time.perf_counter() - started)
            self.metrics.samples.inc(det.evaluated)
            self.metrics.batch.observe(read.samples)
            if det.late:
                self.metrics.late.inc(det.late)
            self.late_share.record(time.monotonic(), det.late, det.evaluated)
            if det.duplicates:
                self.metrics.duplicates.inc(det.duplicates)
        elif expired or self.processor.waiting:
            # No batch came, and samples can be judged: a silent terminal's hole has waited the
            # allowed lateness, or samples were held back for one more batch (a large batch's, under
            # load). Their events are checkpointed at once although no offset moved, so a restart
            # does not evaluate (and send) them again.
            events, det = self.processor.evaluate(Columns.empty())
            self.metrics.samples.inc(det.evaluated)
            if events:
                touched = sorted(set(touched) | set(self.partitions))
        continuity = self.processor.continuity
        opened, given_up = continuity.holes_opened, continuity.holes_given_up
        if opened > self._holes[0]:
            self.metrics.holes.labels(outcome="opened").inc(opened - self._holes[0])
        if given_up > self._holes[1]:
            self.metrics.holes.labels(outcome="given_up").inc(given_up - self._holes[1])
        self._holes = (opened, given_up)
        await self._produce(events)
        # A batch's events do not force a checkpoint: re-produced after a crash they carry the same
        # ids, and the alert service drops them as duplicates. Under load (every batch has some event
        # somewhere in a city) checkpointing each one cost the engine a compressed snapshot of every
        # touched partition per batch; the interval bounds what a restart re-sends instead.
        await self._checkpoint(touched, force=bool(events) and not records, unmoved=not records)
        self._update_lag()

    def _decode_telemetry(self, message: Any, topic: str) -> Telemetry | None:
        """A ``telemetry`` record of either form; a columns record is unpacked and checked here."""
        record = self._decode(message, topic, decode_telemetry)
        if not isinstance(record, TelemetryColumns):
            refusal = None if record is None else unpackable(record)
            if refusal is not None:
                self._refuse(message, topic, DeadLetterReason.SCHEMA, refusal)
                return None
            return cast("TelemetryRecord | None", record)
        try:
            return TelemetryArrays.from_record(record)
        except ValueError as error:
            self._refuse(message, topic, DeadLetterReason.SCHEMA, str(error))
            return None

    def _decode(self, message: Any, topic: str, decoder: Any) -> Any:
        try:
            return decoder(message.value)
        except msgspec.ValidationError as error:
            reason, detail = DeadLetterReason.SCHEMA, str(error)
        except (msgspec.DecodeError, TypeError) as error:
            reason, detail = DeadLetterReason.UNDECODABLE, str(error)
        self._refuse(message, topic, reason, detail)
        return None

    def _refuse(self, message: Any, topic: str, reason: DeadLetterReason, detail: str) -> None:
        """Bad input's one policy: counted, dead-lettered with the reason, and the loop goes on."""
        key = message.key.decode("utf-8", "replace") if message.key else None
        self.policy.refuse(
            source=f"kafka:{topic}",
            topic=topic,
            reason=reason,
            detail=detail,
            payload=message.value or b"",
            terminal=key,
        )

    async def _produce(self, events: list[FaultEvent]) -> None:
        """Send the events (and dead letters) and wait until Kafka acknowledged every one."""
        assert self.producer is not None
        futures = []
        for event in events:
            futures.append(await self.producer.send(self.faults_topic, encode_record(event), key=fault_key(event)))
            self.metrics.events.labels(code=event.code.value, transition=event.transition).inc()
        dead, self.dead = self.dead, []
        for letter in dead:
            key = letter.terminal.encode() if letter.terminal else None
            futures.append(await self.producer.send(self.deadletter_topic, encode_record(letter), key=key))
        if futures:
            await asyncio.gather(*futures)

    async def _offline(self) -> None:
        # Processing-time rule: only meaningful once the backlog is consumed.
        if self.lag > self.settings.rules_batch_max:
            return
        events = self.processor.offline(int(time.time() * 1000))
        await self._produce(events)

    def _update_lag(self) -> None:
        if self.consumer is None:
            return
        lag = 0
        known = True
        for number, partition in self.partitions.items():
            offset = partition.next_offset
            if offset is None:
                continue
            high = self.consumer.highwater(TopicPartition(self.telemetry_topic, number))
            if high is not None:
                lag += max(0, high - offset)
            else:
                known = False  # not fetched yet (just restored): what follows is unknown
        self.lag = lag
        self.caught_up = known and lag == 0
        self.metrics.lag.set(lag)
        self.metrics.terminals.set(len(self.processor.terminals))

    # --- checkpoints ----------------------------------------------------------------------------

    async def _checkpoint(self, partitions: list[int], *, force: bool, unmoved: bool = False) -> None:
        """Save state + next offset of the partitions (due ones only unless ``force``), in one transaction.

        A partition whose offset did not move since its last checkpoint is skipped unless ``unmoved``.
        """
        if self.pool is None:
            return
        now = time.monotonic()
        interval = self.settings.rules_checkpoint_interval_ms / 1000
        due = [
            p
            for p in partitions
            if p in self.partitions and self.partitions[p].due(now, interval, force=force, unmoved=unmoved)
        ]
        if not due:
            return
        started = time.perf_counter()
        rows = []
        late_share = self.late_share.share(now)
        for p in due:
            partition = self.partitions[p]
            assert partition.next_offset is not None  # due
            terminals = sorted(partition.terminals)
            rows.append((p, partition.next_offset, len(terminals), self.processor.snapshot(terminals)))
        delay = RETRY_MIN_S
        while True:
            try:
                async with self.pool.connection() as conn, conn.transaction():
                    for p, offset, count, blob in rows:
                        await conn.execute(
                            UPSERT_CHECKPOINT,
                            (self.settings.rules_group, self.telemetry_topic, p, offset, count, blob, late_share),
                        )
                break
            except (psycopg.OperationalError, PoolTimeout):
                # The database is away: hold the batch (back-pressure on Kafka) rather than lose the checkpoint.
                log.warning("checkpoint failed; retrying in %.1f s", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
        for p, offset, _, _ in rows:
            self.partitions[p].saved(offset, now)
        self.metrics.checkpoint.observe(time.perf_counter() - started)

    async def assigned(self, partitions: list[TopicPartition]) -> None:
        """Restore the checkpoints of newly assigned telemetry partitions and seek to their offsets."""
        assert self.pool is not None and self.consumer is not None
        async with self.lock:
            mine = {tp.partition for tp in partitions if tp.topic == self.telemetry_topic}
            for p in [p for p in self.partitions if p not in mine]:
                # Lost without a revocation (see below): another member owns it now and our state of
                # it is stale. Forgotten, not checkpointed: that would overwrite the owner's.
                self.processor.forget(sorted(self.partitions.pop(p).terminals))
            for tp in partitions:
                if tp.topic != self.telemetry_topic:
                    continue
                held = self.partitions.get(tp.partition)
                if held is not None:
                    # Still ours, and never revoked: aiokafka's coordinator joins again with no
                    # "previous assignment" when a join's result was no longer active, so the
                    # revocation that checkpoints and forgets does not come, while the consumer's
                    # position is reset to the committed offset, which the rules never commit: it
                    # reads the partition again from its start, every record a duplicate of state
                    # we hold (a restarted engine counting 1,491 and 4,155 duplicates in two
                    # full-suite runs of test_restarts under load). Reading resumes where our
                    # state is.
                    if held.next_offset is not None:
                        self.consumer.seek(tp, held.next_offset)
                    continue
                async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
                    await cursor.execute(
                        SELECT_CHECKPOINT, (self.settings.rules_group, self.telemetry_topic, tp.partition)
                    )
                    row = await cursor.fetchone()
                if row is None:
                    self.partitions[tp.partition] = Partition()
                    log.info("partition %d: no checkpoint, starting from the committed/earliest offset", tp.partition)
                    continue
                offset = int(row["next_offset"])
                terminals = self.processor.restore(bytes(row["state"]))
                self.partitions[tp.partition] = Partition.restored(terminals, offset, time.monotonic())
                self.consumer.seek(tp, offset)
                log.info(
                    "partition %d: restored %d terminals, resuming at offset %d", tp.partition, len(terminals), offset
                )

    async def revoked(self, partitions: list[TopicPartition]) -> None:
        """Checkpoint and forget telemetry partitions moving to another process."""
        async with self.lock:
            mine = [
                tp.partition
                for tp in partitions
                if tp.topic == self.telemetry_topic and tp.partition in self.partitions
            ]
            await self._checkpoint(mine, force=True)
            for p in mine:
                self.processor.forget(sorted(self.partitions.pop(p).terminals))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: RulesService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.service.revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.service.assigned(list(assigned))


async def serve(settings: RulesSettings, stop: asyncio.Event, registry: CollectorRegistry | None = None) -> None:
    """Run the rule engine until ``stop`` is set (the process entry point, also used by ``liftwatch up``)."""
    if registry is None:
        registry = CollectorRegistry()
        with contextlib.suppress(OSError):  # `liftwatch up`: another process of the platform may hold the port
            start_metrics(settings.metrics_port, registry)
    await RulesService(settings, registry).run(stop)
