"""``liftwatch writer``: Kafka ``telemetry`` and ``deadletter`` into PostgreSQL, idempotently.

Per poll (``getmany``) the writer opens one transaction: COPY the samples (binary, built by numpy
from the records' arrays: :mod:`liftwatch.ingest.rows`) into a temp staging table of fixed-width
columns, ``INSERT INTO telemetry SELECT ...`` (which maps the terminal index and the packed code
back to text and booleans) and account for the new rows in ``terminal_activity`` and
``terminals.last_seen_at``, insert the dead letters (unique on their Kafka coordinates), commit,
and only then commit the Kafka offsets. A crash anywhere re-delivers the batch; nothing is lost
and nothing is stored twice.

The insert goes the fast way first: no ``ON CONFLICT``, no ``RETURNING``, the accounting computed
from the arrays (:func:`~liftwatch.ingest.rows.activity`), all in one statement in a savepoint. A
re-delivered row (the primary key (terminal_id, ts, seq, idx) also catches the copies a restarted
gateway may have produced) raises ``UniqueViolation``; then the idempotent way runs,
``ON CONFLICT DO NOTHING`` with the accounting from the rows actually inserted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import psycopg
import psycopg.errors
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from liftwatch.badinput import BadInputPolicy
from liftwatch.columnar import (
    CODE_BITS,
    DIRECTION_MASK,
    DIRECTION_SHIFT,
    DOOR_MASK,
    DOOR_SHIFT,
    MODE_MASK,
    MODE_SHIFT,
    TelemetryArrays,
)
from liftwatch.config import WriterSettings
from liftwatch.kafka import ensure_topics, make_consumer
from liftwatch.presence import last_seen_sql
from liftwatch.schema import DIRECTIONS, DOOR_STATES, MODES, DeadLetterReason
from prometheus_client import CollectorRegistry

from .metrics import WriterMetrics
from .plumbing import RETRY_MAX_S, RETRY_MIN_S, process_registry, sleep_unless
from .rows import (
    STAGING_COLUMNS,
    Batch,
    LastSeenMarks,
    RawRecord,
    StoredDeadLetter,
    activity,
    decode_batch,
    staging_copy,
)

log = logging.getLogger(__name__)

# Daily partitions are created this far ahead (and kept this far back) by the writer itself.
PARTITIONS_BACK_DAYS, PARTITIONS_AHEAD_DAYS = 2, 7
PARTITIONS_EVERY_S = 600.0
# Consumer lag is measured at most this often (it asks the broker for end offsets).
LAG_EVERY_S = 5.0
# How long a fetch may wait at the broker for data. Kafka's default (500 ms) is added in full to
# the publish-to-row latency whenever the broker answers only at the deadline (tansu does);
# 100 ms costs a few idle fetches per second and keeps rows within a fraction of a second.
FETCH_MAX_WAIT_MS = 100

_STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS telemetry_staging ("
    + ", ".join(f"{name} {kind}" for name, kind, _ in STAGING_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
# Session settings for the writer's statements; none touches durability (the Kafka offsets are
# committed after the database commit, so the commit must be flushed). JIT compiling costs more
# than it saves on a batch insert: its cost estimate (the staging table has no statistics) passes
# jit_above_cost on large batches, and compiling took 40% of such a statement's time. work_mem
# keeps the sort of a large batch's staged rows in memory instead of a temporary file.
_SESSION = ("SET jit = off", "SET work_mem = '64MB'")
_COPY = f"COPY telemetry_staging ({', '.join(n for n, _, _ in STAGING_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def _flag(name: str) -> str:
    return f"(s.code & {1 << CODE_BITS[name]}) <> 0"


def _enumeration(values: tuple[str, ...], shift: int, mask: int) -> str:
    listed = ", ".join(f"'{value}'" for value in values)  # the contract's own identifiers
    return f"(ARRAY[{listed}])[((s.code >> {shift}) & {mask}) + 1]"


# Each telemetry column from the staging row, undoing liftwatch.columnar's packing of ``code``.
_FROM_STAGING: dict[str, str] = {
    "terminal_id": "t.terminal_id",
    "ts": "timestamptz 'epoch' + s.ts_ms * interval '1 millisecond'",
    "seq": "s.seq",
    "idx": "s.idx",
    "mode": _enumeration(MODES, MODE_SHIFT, MODE_MASK),
    "floor": "s.floor",
    "door_zone": _flag("door_zone"),
    "direction": _enumeration(DIRECTIONS, DIRECTION_SHIFT, DIRECTION_MASK),
    "speed": "s.speed",
    "door": _enumeration(DOOR_STATES, DOOR_SHIFT, DOOR_MASK),
    "occupied": _flag("occupied"),
    "safety_circuit": _flag("safety_circuit"),
    "door_lock": f"CASE WHEN {_flag('door_lock_reported')} THEN {_flag('door_lock')} END",
    "alarm_button": _flag("alarm_button"),
    "power": _flag("power"),
    "load_pct": "nullif(s.load_pct, 'NaN')",
    "limit_up": _flag("limit_up"),
    "limit_down": _flag("limit_down"),
    "received_at": "timestamptz 'epoch' + s.received_ms * interval '1 millisecond'",
}

_INSERT = f"""
INSERT INTO telemetry ({", ".join(_FROM_STAGING)})
SELECT {", ".join(_FROM_STAGING.values())}
FROM telemetry_staging s
JOIN unnest(%(terminals)s::text[]) WITH ORDINALITY AS t (terminal_id, position) ON t.position = s.terminal + 1
"""

_ADD_ACTIVITY = """
ON CONFLICT (terminal_id, day) DO UPDATE
SET samples = a.samples + excluded.samples,
    first_ts = least(a.first_ts, excluded.first_ts),
    last_ts = greatest(a.last_ts, excluded.last_ts)
"""

# The idempotent way, one statement: insert what is new, then account for exactly those rows. The
# activity day is the site's local date; ORDER BY keeps lock order stable between concurrent
# writers. The terminal ids come as one array parameter, joined by position.
_MERGE = f"""
WITH inserted AS (
    {_INSERT}
    ON CONFLICT DO NOTHING
    RETURNING terminal_id, ts, received_at
), activity AS (
    INSERT INTO terminal_activity AS a (terminal_id, day, samples, first_ts, last_ts)
    SELECT terminal_id, (ts AT TIME ZONE %(tz)s)::date, count(*), min(ts), max(ts)
    FROM inserted GROUP BY 1, 2 ORDER BY 1, 2
    {_ADD_ACTIVITY}
), seen AS (
    UPDATE terminals t SET last_seen_at = greatest(t.last_seen_at, s.seen)
    FROM (SELECT terminal_id, {last_seen_sql("max(received_at)")} AS seen FROM inserted GROUP BY 1 ORDER BY 1) s
    WHERE t.terminal_id = s.terminal_id
)
SELECT count(*) FROM inserted
"""

# The fast way, for a batch expected to hold only new rows (a duplicate raises UniqueViolation):
# the rows go in without ON CONFLICT and without RETURNING, and the few activity rows come
# computed from the arrays (liftwatch.ingest.rows.activity), terminals as positions in the ids.
# last_seen_at is raised only where LastSeenMarks says it would rise, the ids given as text so that
# the planner knows how few they are (a join through positions estimated ten times as many and
# chose to hash the whole registry, a cost that grew with the fleet). The terminals updated come
# back: only they are remembered (an id not registered yet must be written once it is).
_INSERT_NEW = f"""
WITH inserted AS (
    {_INSERT}
), ids AS (
    SELECT * FROM unnest(%(terminals)s::text[]) WITH ORDINALITY AS t (terminal_id, position)
), activity AS (
    INSERT INTO terminal_activity AS a (terminal_id, day, samples, first_ts, last_ts)
    SELECT ids.terminal_id, date '1970-01-01' + n.day::int4, n.samples,
           timestamptz 'epoch' + n.first_ms * interval '1 millisecond',
           timestamptz 'epoch' + n.last_ms * interval '1 millisecond'
    FROM unnest(%(terminal)s::int8[], %(day)s::int8[], %(samples)s::int8[], %(first_ms)s::int8[], %(last_ms)s::int8[])
         AS n (terminal, day, samples, first_ms, last_ms)
    JOIN ids ON ids.position = n.terminal + 1
    ORDER BY 1, 2
    {_ADD_ACTIVITY}
)
UPDATE terminals t SET last_seen_at = greatest(t.last_seen_at, s.seen)
FROM (SELECT u.terminal_id, timestamptz 'epoch' + u.ms * interval '1 millisecond' AS seen
      FROM unnest(%(seen_ids)s::text[], %(seen_ms)s::int8[]) AS u (terminal_id, ms) ORDER BY 1) s
WHERE t.terminal_id = s.terminal_id
RETURNING t.terminal_id
"""

_INSERT_DEAD_LETTER = """
INSERT INTO dead_letters (received_at, source, topic, reason, detail, terminal_id, payload, kafka_partition,
                          kafka_offset)
VALUES (timestamptz 'epoch' + %s * interval '1 millisecond', %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (kafka_partition, kafka_offset) DO NOTHING
"""


async def prepare_session(conn: psycopg.AsyncConnection[Any]) -> None:
    """Ready a new connection for :func:`store_batch`: the staging table and the session settings."""
    for statement in (_STAGING_DDL, *_SESSION):
        await conn.execute(statement)
    await conn.commit()


async def store_batch(
    conn: psycopg.AsyncConnection[Any], batch: Batch, site_timezone: str, marks: LastSeenMarks | None = None
) -> int:
    """Store one batch in one transaction; returns the number of new telemetry rows.

    ``marks`` (the writer's memory of the ``last_seen_at`` values it committed) lets the fast way
    skip updates that would not raise them; without it every terminal's is written. What the
    batch wrote is remembered only if this call's transaction is the outermost one, that is if it
    committed here (inside a caller's transaction it is a savepoint, which may yet be rolled back)."""
    inserted = 0
    marks = marks if marks is not None else LastSeenMarks()
    outermost = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    raised: dict[str, int] | None = None
    async with conn.transaction():
        if batch.samples:
            telemetry = batch.telemetry()
            async with conn.cursor() as cur:
                async with cur.copy(_COPY) as copy:
                    await copy.write(staging_copy(telemetry))
                raised = await _insert_new(cur, telemetry, site_timezone, marks)
                if raised is None:
                    await cur.execute(_MERGE, {"terminals": telemetry.terminals, "tz": site_timezone})
                    result = await cur.fetchone()
                    inserted = int(result[0]) if result else 0
                else:
                    inserted = telemetry.samples
        if batch.dead_letters:
            async with conn.cursor() as cur:
                await cur.executemany(_INSERT_DEAD_LETTER, [_dead_letter_params(d) for d in batch.dead_letters])
    if raised and outermost:  # committed
        marks.remember(raised)
    return inserted


async def _insert_new(
    cur: psycopg.AsyncCursor[Any], telemetry: TelemetryArrays, site_timezone: str, marks: LastSeenMarks
) -> dict[str, int] | None:
    """The staged rows inserted the fast way, and accounted: the ``last_seen_at`` values written, by
    terminal (to remember once committed); None (nothing kept) if a row was there already."""
    try:
        added = activity(telemetry, ZoneInfo(site_timezone))
    except (ValueError, OverflowError, ZoneInfoNotFoundError):
        return None  # a time Python cannot place in the zone: PostgreSQL does it the idempotent way
    seen_ids, seen_marks = marks.fresh(telemetry.terminals, added.seen_terminal, added.seen_ms)
    params: dict[str, Any] = {"terminals": telemetry.terminals, "seen_ids": seen_ids, "seen_ms": _int_array(seen_marks)}
    for column in ("terminal", "day", "samples", "first_ms", "last_ms"):
        params[column] = _int_array(getattr(added, column))
    try:
        # Nearly every batch is new rows only, and the insert without ON CONFLICT and RETURNING
        # costs the database far less (bench/writer.py). A re-delivered row aborts the attempt.
        async with cur.connection.transaction():
            await cur.execute(_INSERT_NEW, params)
            updated = {row[0] for row in await cur.fetchall()}
    except psycopg.errors.UniqueViolation:
        return None
    return {t: mark for t, mark in zip(seen_ids, seen_marks.tolist(), strict=True) if t in updated}


def _int_array(values: npt.NDArray[np.int64]) -> str:
    """An array literal: a tenth of the client CPU of adapting a list of Python ints."""
    return "{" + ",".join(map(str, values.tolist())) + "}"


def _dead_letter_params(stored: StoredDeadLetter) -> tuple[Any, ...]:
    letter = stored.letter
    return (
        letter.received_ms,
        letter.source,
        letter.topic,
        letter.reason.value,
        letter.detail,
        letter.terminal,
        letter.payload,
        stored.partition,
        stored.offset,
    )


class Writer:
    """One writer process: a consumer-group member and a database connection."""

    def __init__(self, settings: WriterSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.metrics = WriterMetrics(registry)
        self.policy = BadInputPolicy(registry)
        self.telemetry_topic = settings.topic("telemetry")
        self.deadletter_topic = settings.topic("deadletter")
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._marks = LastSeenMarks()
        self._partitions_at = 0.0
        self._lag_at = 0.0

    async def _connect_db(self, stop: asyncio.Event) -> psycopg.AsyncConnection[Any] | None:
        delay = RETRY_MIN_S
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(self.settings.require_database_url())
                await prepare_session(conn)
                return conn
            except psycopg.OperationalError as error:
                log.warning("PostgreSQL not available (%s); retrying in %.1f s", error, delay)
            await sleep_unless(stop, delay)
            delay = min(delay * 2, RETRY_MAX_S)
        return None

    async def _start_consumer(self, stop: asyncio.Event) -> AIOKafkaConsumer | None:
        delay = RETRY_MIN_S
        while not stop.is_set():
            session_ms = self.settings.writer_session_timeout_ms
            consumer = make_consumer(
                self.settings,
                self.telemetry_topic,
                self.deadletter_topic,
                group_id=self.settings.writer_group,
                session_timeout_ms=session_ms,
                heartbeat_interval_ms=max(100, session_ms // 4),
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            )
            try:
                await ensure_topics(self.settings)
                await consumer.start()
                return consumer
            except (KafkaError, OSError) as error:
                await consumer.stop()
                log.warning("Kafka not available (%s); retrying in %.1f s", error, delay)
            await sleep_unless(stop, delay)
            delay = min(delay * 2, RETRY_MAX_S)
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and store until ``stop`` is set; the batch in hand is finished first."""
        conn = await self._connect_db(stop)
        if conn is None:
            return
        self._conn = conn
        try:
            consumer = await self._start_consumer(stop)
            if consumer is None:
                return
            try:
                while not stop.is_set():
                    await self._maintain_partitions()
                    polled = await consumer.getmany(
                        timeout_ms=self.settings.writer_batch_wait_ms, max_records=self.settings.writer_batch_max
                    )
                    if polled:
                        await self._handle(consumer, polled, stop)
                    await self._measure_lag(consumer)
            finally:
                await consumer.stop()
        finally:
            await self._conn.close()

    async def _handle(
        self, consumer: AIOKafkaConsumer, polled: dict[TopicPartition, list[Any]], stop: asyncio.Event
    ) -> None:
        raw = [
            RawRecord(message.topic, message.partition, message.offset, message.value)
            for messages in polled.values()
            for message in messages
        ]
        for tp, messages in polled.items():
            self.metrics.records_in.labels(topic=tp.topic).inc(len(messages))
        batch, bad = decode_batch(raw, self.telemetry_topic, self.deadletter_topic)
        for item in bad:
            letter = self.policy.refuse(
                source=f"kafka:{item.record.topic}",
                topic=item.record.topic,
                reason=item.reason,
                detail=item.detail,
                payload=item.record.value or b"",
            )
            batch.dead_letters.append(StoredDeadLetter(letter, None, None))
        if not await self._store(batch, stop):
            return  # stopping with the database away: the batch is re-delivered to the next writer
        offsets = {tp: messages[-1].offset + 1 for tp, messages in polled.items() if messages}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as error:
            # A rebalance took the partitions away: their new owner re-reads what we stored, harmlessly.
            log.warning("offset commit failed (%s); the batch will be re-delivered and deduplicated", error)

    async def _store(self, batch: Batch, stop: asyncio.Event) -> bool:
        """Store a batch, retrying while the database is unreachable; False if stopped first."""
        delay = RETRY_MIN_S
        while True:
            assert self._conn is not None
            started = time.perf_counter()
            try:
                inserted = await store_batch(self._conn, batch, self.settings.site_timezone, self._marks)
                break
            except psycopg.OperationalError as error:
                self.metrics.db_failures.inc()
                if stop.is_set():
                    log.warning("database write failed (%s) while stopping; leaving the batch to re-delivery", error)
                    return False
                log.warning("database write failed (%s); retrying in %.1f s", error, delay)
                await sleep_unless(stop, delay)
                delay = min(delay * 2, RETRY_MAX_S)
                if self._conn.closed or self._conn.broken:
                    reconnected = await self._connect_db(stop)
                    if reconnected is None:
                        return False
                    self._conn = reconnected
            except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as error:
                # A record the database refuses (SQLSTATE 22/23) must not block the partition
                # forever: store record by record and dead-letter the refused ones.
                log.warning("batch refused (%s); isolating the offending records", error)
                return await self._store_one_by_one(batch, stop)
        self._account(batch, inserted, time.perf_counter() - started)
        return True

    async def _store_one_by_one(self, batch: Batch, stop: asyncio.Event) -> bool:
        for record, part in batch.split():
            try:
                assert self._conn is not None
                inserted = await store_batch(self._conn, part, self.settings.site_timezone, self._marks)
            except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as error:
                letter = self.policy.refuse(
                    source=f"kafka:{record.topic}",
                    topic=record.topic,
                    reason=DeadLetterReason.SCHEMA,
                    detail=f"refused by the database: {error.sqlstate} {error}",
                    payload=record.value or b"",
                )
                part = Batch(dead_letters=[*part.dead_letters, StoredDeadLetter(letter, None, None)])
                if not await self._store(part, stop):
                    return False
                continue
            self._account(part, inserted, 0.0)
        return True

    def _account(self, batch: Batch, inserted: int, seconds: float) -> None:
        if seconds:
            self.metrics.batch_seconds.observe(seconds)
            self.metrics.batch_size.observe(batch.records)
        self.metrics.rows_written.labels(table="telemetry").inc(inserted)
        self.metrics.rows_skipped.inc(batch.samples - inserted)
        self.metrics.rows_written.labels(table="dead_letters").inc(len(batch.dead_letters))

    async def _maintain_partitions(self) -> None:
        now = time.monotonic()
        if self._partitions_at and now - self._partitions_at < PARTITIONS_EVERY_S:
            return
        self._partitions_at = now
        assert self._conn is not None
        try:
            async with self._conn.transaction():
                await self._conn.execute(
                    "SELECT liftwatch_ensure_telemetry_partitions(%s, %s)",
                    (PARTITIONS_BACK_DAYS, PARTITIONS_AHEAD_DAYS),
                )
        except psycopg.Error as error:  # rows land in the default partition meanwhile: nothing is lost
            log.warning("could not create telemetry partitions: %s", error)

    async def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now - self._lag_at < LAG_EVERY_S:
            return
        self._lag_at = now
        assigned = consumer.assignment()
        if not assigned:
            return
        lag: dict[str, int] = {}
        for tp in assigned:
            high = consumer.highwater(tp)  # known from the last fetch: no broker round trip
            if high is None:
                continue
            position = await consumer.position(tp)
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - position)
        for topic, value in lag.items():
            self.metrics.consumer_lag.labels(topic=topic).set(value)


async def serve(settings: WriterSettings, stop: asyncio.Event, registry: CollectorRegistry | None = None) -> None:
    """Run a writer until ``stop`` is set (the process entry point, also used by ``liftwatch up``)."""
    writer = Writer(settings, registry if registry is not None else process_registry(settings.metrics_port))
    await writer.run(stop)
