"""What the gateway may append to one Kafka partition next, so a terminal's records keep their order.

A terminal's records all go to one partition (the key is the terminal id), and the rules engine
reads them in partition order. Several MQTT batches are in flight at once, so their records must
not race each other into the producer: each partition has one queue, and its sender appends one
Kafka batch at a time from the head of the queue, awaits the acknowledgement, and on a failure
sends the same records again before anything later. Nothing later was appended, so the order holds
across retries; a retry after an ambiguous failure (appended, acknowledgement lost) at worst repeats
records right after themselves, which the writer (primary key) and the rules engine (seq) absorb.

What one send holds is :func:`build_records`: with ``columns``, the telemetry messages at the
head of the queue packed into few ``telemetry.columns.v1`` records (in queue order, so each
terminal's order holds inside a record too); the sender keeps what it built and sends exactly
that again after a failure, and keeps the record the full batch refused to send it first next time
(packing is most of a send's cost, so it is not done twice).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Literal, TypeAlias

from liftwatch.columnar import TelemetryArrays
from liftwatch.schema import TelemetryRecord, encode_record

from .handling import Out, OutTelemetry

RecordFormat: TypeAlias = Literal["columns", "messages"]

COLUMNS_MAX_SAMPLES = 8192
"""Samples per ``telemetry.columns.v1`` record at most: 28 bytes a sample and 22 a message keep it
well inside one producer batch (1 MiB), terminal ids included. Larger records would save little:
the cost per record is already spread over thousands of samples."""

KafkaRecord: TypeAlias = tuple[bytes | None, bytes]
"""Key and value of one record as appended to a Kafka batch."""


@dataclass(slots=True, eq=False)
class Chunk:
    """The records of one MQTT batch for one partition."""

    records: list[Out]
    """In receive order."""
    done: asyncio.Future[bool]
    """True once every record is acknowledged by Kafka; False if abandoned (the gateway stops)."""
    acknowledged: int = 0
    """How many of ``records`` Kafka has acknowledged (a chunk can span batches)."""


class PartitionQueue:
    """The records waiting for one partition, released strictly in the order they were queued.

    Transitions of the records at the head:
      ``put`` queues a chunk behind everything else;
      ``waiting`` offers the records not yet acknowledged, oldest first (the sender appends as many
      as one Kafka batch takes and sends them);
      ``acknowledged(n)`` removes the first ``n`` and completes every chunk wholly acknowledged;
      after a failure nothing changes: the same records come first again;
      ``abandon`` (stopping with Kafka away) completes every chunk left as not delivered, and every
      chunk put afterwards at once: nothing later may reach this partition before them.
    """

    def __init__(self) -> None:
        self._chunks: deque[Chunk] = deque()
        self._abandoned = False

    def __len__(self) -> int:
        """Chunks waiting."""
        return len(self._chunks)

    def put(self, chunk: Chunk) -> None:
        """Queue a chunk behind everything queued before it."""
        if self._abandoned:
            _complete(chunk, False)
        else:
            self._chunks.append(chunk)

    def waiting(self) -> Iterator[Out]:
        """The records not yet acknowledged, in queue order."""
        for chunk in self._chunks:
            yield from chunk.records[chunk.acknowledged :]

    def acknowledged(self, count: int) -> None:
        """The first ``count`` waiting records are in Kafka."""
        chunks = self._chunks
        while count:
            chunk = chunks[0]
            taken = min(count, len(chunk.records) - chunk.acknowledged)
            chunk.acknowledged += taken
            count -= taken
            if chunk.acknowledged == len(chunk.records):
                chunks.popleft()
                _complete(chunk, True)

    def abandon(self) -> None:
        """Give up every waiting chunk, and every later one (the gateway stops)."""
        self._abandoned = True
        while self._chunks:
            _complete(self._chunks.popleft(), False)


def _complete(chunk: Chunk, delivered: bool) -> None:
    if not chunk.done.done():
        chunk.done.set_result(delivered)


@dataclass(frozen=True, slots=True)
class Refused:
    """A record the batch had no room for: it holds the ``entries`` queued right after the built ones."""

    record: KafkaRecord
    entries: int


@dataclass(slots=True)
class Built:
    """Kafka records built from the head of a partition's queue: its first ``taken`` entries."""

    taken: int = 0
    records: list[KafkaRecord] = field(default_factory=list)
    refused: Refused | None = None
    """The record built next and not taken: what the next send starts with, once these are in."""


def build_records(
    waiting: Iterable[Out],
    record_format: RecordFormat,
    append: Callable[[KafkaRecord], bool],
    first: Refused | None = None,
) -> Built:
    """Encode entries from the head of the queue until ``append`` (one Kafka batch) takes no more.

    ``messages``: one record per entry. ``columns``: consecutive telemetry messages become one
    record of at most :data:`COLUMNS_MAX_SAMPLES` samples (key None: the partition is chosen
    explicitly), packed in queue order. ``append`` is offered each record in order and says whether
    the batch took it; the first record always fits, so something is always built. ``first``, the
    record the previous batch refused, holds the entries at the head: it is offered first, as it
    was built, and building goes on after its entries.
    """
    built = Built()
    group: list[TelemetryRecord] = []
    group_samples = 0

    def offer(record: KafkaRecord, entries: int) -> bool:
        if not append(record):
            built.refused = Refused(record, entries)
            return False
        built.records.append(record)
        built.taken += entries
        return True

    if first is not None:
        if not offer(first.record, first.entries):
            return built
        waiting = islice(waiting, first.entries, None)

    def flush() -> bool:
        nonlocal group_samples
        if not group:
            return True
        packed = encode_record(TelemetryArrays.from_records(group).to_record())
        if not offer((None, packed), len(group)):
            return False
        group.clear()
        group_samples = 0
        return True

    for entry in waiting:
        if isinstance(entry, OutTelemetry):
            if record_format == "columns":
                samples = len(entry.record.samples)
                if group_samples + samples > COLUMNS_MAX_SAMPLES and not flush():
                    return built
                group.append(entry.record)
                group_samples += samples
                continue
            record: KafkaRecord = (entry.key, encode_record(entry.record))
        else:
            record = (entry.key, entry.value)
        if not flush() or not offer(record, 1):
            return built
    flush()
    return built
