"""Turning Kafka records into database rows (pure, no I/O): what the writer COPYs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from liftwatch.schema import DeadLetter, TelemetryRecord, decode_dead_letter, decode_telemetry_record

# Staging columns in COPY order, with their PostgreSQL types (binary COPY needs them). Times
# travel as epoch milliseconds and become timestamptz in SQL: cheaper than datetime objects.
STAGING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("terminal_id", "text"),
    ("ts_ms", "int8"),
    ("seq", "int8"),
    ("idx", "int2"),
    ("mode", "text"),
    ("floor", "int2"),
    ("door_zone", "bool"),
    ("direction", "text"),
    ("speed", "float4"),
    ("door", "text"),
    ("occupied", "bool"),
    ("safety_circuit", "bool"),
    ("door_lock", "bool"),
    ("alarm_button", "bool"),
    ("power", "bool"),
    ("load_pct", "float4"),
    ("limit_up", "bool"),
    ("limit_down", "bool"),
    ("received_ms", "int8"),
)

Row = tuple[Any, ...]


def telemetry_rows(record: TelemetryRecord) -> Iterator[Row]:
    """One staging row per sample, ``idx`` = position in the MQTT message."""
    terminal, seq, received = record.terminal, record.seq, record.received_ms
    for idx, s in enumerate(record.samples):
        yield (
            terminal,
            s.ts,
            seq,
            idx,
            s.mode,
            s.floor,
            s.door_zone,
            s.direction,
            s.speed,
            s.door,
            s.occupied,
            s.safety_circuit,
            s.door_lock,
            s.alarm_button,
            s.power,
            s.load_pct,
            s.limit_up,
            s.limit_down,
            received,
        )


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """A dead letter with its Kafka coordinates (which make its row idempotent)."""

    letter: DeadLetter
    partition: int | None
    offset: int | None


@dataclass(slots=True)
class Batch:
    """What one writer transaction stores, decoded from a poll of Kafka records."""

    rows: list[Row] = field(default_factory=list)
    dead_letters: list[StoredDeadLetter] = field(default_factory=list)
    records: int = 0
    spans: list[tuple[RawRecord, int, int]] = field(default_factory=list)
    """Which slice of ``rows`` each telemetry record produced (to isolate a record the database refuses)."""

    def split(self) -> list[tuple[RawRecord, Batch]]:
        """One batch per telemetry record (dead letters stay with the first)."""
        parts = [(record, Batch(rows=self.rows[start:end], records=1)) for record, start, end in self.spans]
        if parts:
            parts[0][1].dead_letters = list(self.dead_letters)
        return parts


@dataclass(frozen=True, slots=True)
class RawRecord:
    """The parts of a Kafka record the writer uses."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A Kafka record the writer could not decode (dead-lettered, never blocks the batch)."""

    record: RawRecord
    detail: str


def decode_batch(
    records: Iterable[RawRecord], telemetry_topic: str, deadletter_topic: str
) -> tuple[Batch, list[Undecodable]]:
    """Decode a poll of records into rows and dead letters; records that cannot be read are returned apart."""
    batch = Batch()
    bad: list[Undecodable] = []
    for record in records:
        batch.records += 1
        if record.value is None:
            bad.append(Undecodable(record, "record without a value"))
            continue
        try:
            if record.topic == telemetry_topic:
                start = len(batch.rows)
                batch.rows.extend(telemetry_rows(decode_telemetry_record(record.value)))
                batch.spans.append((record, start, len(batch.rows)))
            elif record.topic == deadletter_topic:
                letter = decode_dead_letter(record.value)
                batch.dead_letters.append(StoredDeadLetter(letter, record.partition, record.offset))
            else:
                bad.append(Undecodable(record, f"unexpected topic {record.topic}"))
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            bad.append(Undecodable(record, f"{type(error).__name__}: {error}"))
    return batch, bad
