"""Turning Kafka records into database rows (pure, no I/O): what the writer COPYs.

Both forms of ``telemetry`` record become :class:`~liftwatch.columnar.TelemetryArrays` (the
per-message records of a poll packed together, a columns record as it comes), and the writer
COPYs the samples in PostgreSQL's binary format, built by numpy from the arrays in one go: no
Python object per sample. Every staging column is fixed-width: the terminal travels as an index
into the batch's terminal ids, and the flags, mode, door and direction as the packed ``code``;
the INSERT that moves the rows into ``telemetry`` turns them back into text and booleans.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import numpy.typing as npt
from liftwatch.columnar import TelemetryArrays, unpackable
from liftwatch.presence import last_seen_mark
from liftwatch.schema import (
    DeadLetter,
    DeadLetterReason,
    TelemetryColumns,
    TelemetryRecord,
    decode_dead_letter,
    decode_telemetry,
)

STAGING_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("terminal", "int4", ">i4"),
    ("ts_ms", "int8", ">i8"),
    ("seq", "int8", ">i8"),
    ("idx", "int2", ">i2"),
    ("floor", "int2", ">i2"),
    ("speed", "float4", ">f4"),
    ("load_pct", "float4", ">f4"),
    ("code", "int4", ">i4"),
    ("received_ms", "int8", ">i8"),
)
"""Staging columns in COPY order: name, PostgreSQL type, its binary COPY layout (big-endian).

``terminal`` indexes the batch's terminal ids (0-based); times are epoch milliseconds (cheaper
than timestamps, converted in SQL); ``load_pct`` is NaN when not reported; ``code`` is
``liftwatch.columnar``'s packing of the flags, mode, door and direction."""

# A binary COPY row: the field count, then per field its byte length and value.
_COPY_ROW = np.dtype(
    [("fields", ">i2")] + [item for name, _, kind in STAGING_COLUMNS for item in ((f"{name}_n", ">i4"), (name, kind))]
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # signature, flags, no extension
_COPY_TRAILER = struct.pack("!h", -1)


def staging_copy(arrays: TelemetryArrays) -> bytes:
    """The whole binary COPY stream (header to trailer) of one staging row per sample."""
    rows = np.empty(arrays.samples, _COPY_ROW)
    rows["fields"] = len(STAGING_COLUMNS)
    for name, _, kind in STAGING_COLUMNS:
        rows[f"{name}_n"] = np.dtype(kind).itemsize
    rows["terminal"] = arrays.sample_terminal()
    rows["ts_ms"] = arrays.ts
    rows["seq"] = np.repeat(arrays.seq, arrays.count)
    rows["idx"] = arrays.index_of_sample()
    rows["floor"] = arrays.floor
    rows["speed"] = arrays.speed
    rows["load_pct"] = arrays.load_pct
    rows["code"] = arrays.code
    rows["received_ms"] = np.repeat(arrays.received_ms, arrays.count)
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


_DAY_MS = 86_400_000


def _utc_offset_s(zone: ZoneInfo, second: int) -> int:
    offset = datetime.fromtimestamp(second, UTC).astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return int(offset.total_seconds())


def local_days(ts_ms: npt.NDArray[np.int64], zone: ZoneInfo) -> npt.NDArray[np.int64]:
    """The ``zone`` date of each instant, as days since 1970-01-01: PostgreSQL's ``(ts AT TIME ZONE
    zone)::date``. Raises ValueError or OverflowError for instants Python's datetime cannot hold."""
    # Offsets change at whole seconds and never twice within an hour: one lookup per hour unless
    # the hour holds a transition, then one per second of it.
    seconds = ts_ms // 1000
    hours, per_row = np.unique(seconds // 3600, return_inverse=True)
    start = np.array([_utc_offset_s(zone, h * 3600) for h in hours.tolist()], np.int64)
    end = np.array([_utc_offset_s(zone, h * 3600 + 3599) for h in hours.tolist()], np.int64)
    offset = start[per_row]
    changing = (start != end)[per_row]
    if changing.any():
        exact, at = np.unique(seconds[changing], return_inverse=True)
        offset[changing] = np.array([_utc_offset_s(zone, s) for s in exact.tolist()], np.int64)[at]
    days: npt.NDArray[np.int64] = (ts_ms + offset * 1000) // _DAY_MS
    return days


@dataclass(frozen=True, slots=True)
class Activity:
    """What a batch of new rows adds to ``terminal_activity`` and ``terminals.last_seen_at``."""

    terminal: npt.NDArray[np.int64]
    """Per terminal and site-local day: the terminal (index into the batch's terminal ids)."""
    day: npt.NDArray[np.int64]
    """The site-local day, in days since 1970-01-01."""
    samples: npt.NDArray[np.int64]
    first_ms: npt.NDArray[np.int64]
    last_ms: npt.NDArray[np.int64]
    seen_terminal: npt.NDArray[np.int64]
    """Per terminal with samples in the batch: the terminal, and its latest ``received_ms``."""
    seen_ms: npt.NDArray[np.int64]


def activity(arrays: TelemetryArrays, zone: ZoneInfo) -> Activity:
    """Count, first and last sample per terminal and site-local day, and when each terminal was last
    heard of, over every sample of ``arrays`` (the writer's fast path, where every row is new)."""
    days = local_days(arrays.ts, zone)
    first_day = int(days.min())
    span = int(days.max()) - first_day + 1
    key = arrays.sample_terminal().astype(np.int64) * span + (days - first_day)  # terminal, then day
    order = np.argsort(key, kind="stable")
    key_sorted, ts_sorted = key[order], arrays.ts[order]
    starts = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
    groups = key_sorted[starts]
    seen = np.full(len(arrays.terminals), np.iinfo(np.int64).min)
    # Every message holds 1-100 samples (from_record and unpackable refuse others). A record may
    # list a terminal without messages of its own in this batch (``take``): not present then.
    np.maximum.at(seen, arrays.terminal, arrays.received_ms)
    present = np.flatnonzero(seen != np.iinfo(np.int64).min)
    return Activity(
        terminal=groups // span,
        day=groups % span + first_day,
        samples=np.diff(np.r_[starts, len(key_sorted)]),
        first_ms=np.minimum.reduceat(ts_sorted, starts),
        last_ms=np.maximum.reduceat(ts_sorted, starts),
        seen_terminal=present.astype(np.int64),
        seen_ms=seen[present],
    )


class LastSeenMarks:
    """The ``last_seen_at`` values a writer has committed, so that it skips updates that would not
    raise them (:mod:`liftwatch.presence`: most batches of a reporting terminal fall in the 30 s
    already written).

    A skipped update is safe because the database only ever raises ``last_seen_at``
    (``greatest``): a value this writer committed to a registered terminal's row, the row holds or
    more. Only values of rows the update found are remembered (a terminal registered after its
    first samples gets its value with the next batch), and only once their transaction committed;
    a writer that restarts, or takes over partitions, starts empty and writes once more what is
    there already.
    """

    MAX_TERMINALS = 2_000_000
    """Beyond this many terminals the memory starts over (about 250 MB; more than a city's registry)."""

    def __init__(self) -> None:
        self._written: dict[str, int] = {}

    def fresh(
        self, terminals: list[str], seen_terminal: npt.NDArray[np.int64], seen_ms: npt.NDArray[np.int64]
    ) -> tuple[list[str], npt.NDArray[np.int64]]:
        """Of the terminals heard of in a batch (positions into ``terminals``, latest
        ``received_ms``), those whose ``last_seen_at`` would rise, with the value it rises to."""
        marks = last_seen_mark(seen_ms)
        written = self._written
        ids: list[str] = []
        kept: list[int] = []
        for position, (terminal, mark) in enumerate(zip(seen_terminal.tolist(), marks.tolist(), strict=True)):
            terminal_id = terminals[terminal]
            if written.get(terminal_id, -1 << 62) < mark:
                ids.append(terminal_id)
                kept.append(position)
        return ids, marks[kept]

    def remember(self, written: dict[str, int]) -> None:
        """Record the values (by terminal) that a committed transaction wrote."""
        if len(self._written) + len(written) > self.MAX_TERMINALS:
            self._written.clear()
        self._written.update(written)


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """A dead letter with its Kafka coordinates (which make its row idempotent)."""

    letter: DeadLetter
    partition: int | None
    offset: int | None


@dataclass(frozen=True, slots=True)
class RawRecord:
    """The parts of a Kafka record the writer uses."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass(slots=True)
class Batch:
    """What one writer transaction stores, decoded from a poll of Kafka records."""

    parts: list[TelemetryArrays] = field(default_factory=list)
    """The telemetry, in poll order (:meth:`telemetry` joins them)."""
    spans: list[tuple[RawRecord, int, int]] = field(default_factory=list)
    """Which messages of :meth:`telemetry` each Kafka record holds (to isolate one the database refuses)."""
    dead_letters: list[StoredDeadLetter] = field(default_factory=list)
    records: int = 0

    @property
    def samples(self) -> int:
        return sum(part.samples for part in self.parts)

    def telemetry(self) -> TelemetryArrays:
        """Every message of the batch as one set of arrays."""
        return TelemetryArrays.concat(self.parts)

    def split(self) -> list[tuple[RawRecord, Batch]]:
        """One batch per telemetry record (dead letters stay with the first)."""
        whole = self.telemetry()
        parts = [
            (record, Batch(parts=[whole.take(start, end)], spans=[(record, 0, end - start)], records=1))
            for record, start, end in self.spans
        ]
        if parts:
            parts[0][1].dead_letters = list(self.dead_letters)
        return parts


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A Kafka record the writer could not read (dead-lettered, never blocks the batch)."""

    record: RawRecord
    detail: str
    reason: DeadLetterReason = DeadLetterReason.UNDECODABLE


def decode_batch(
    records: Iterable[RawRecord], telemetry_topic: str, deadletter_topic: str
) -> tuple[Batch, list[Undecodable]]:
    """Decode a poll of records into telemetry arrays and dead letters; records that cannot be read
    are returned apart."""
    batch = Batch()
    bad: list[Undecodable] = []
    messages = 0  # in the batch so far
    pending: list[TelemetryRecord] = []  # per-message records not packed yet

    def pack_pending() -> None:
        if pending:
            batch.parts.append(TelemetryArrays.from_records(pending))
            pending.clear()

    for record in records:
        batch.records += 1
        if record.value is None:
            bad.append(Undecodable(record, "record without a value"))
            continue
        try:
            if record.topic == telemetry_topic:
                decoded = decode_telemetry(record.value)
                if isinstance(decoded, TelemetryColumns):
                    arrays = TelemetryArrays.from_record(decoded)
                    pack_pending()
                    batch.parts.append(arrays)
                    batch.spans.append((record, messages, messages + arrays.messages))
                    messages += arrays.messages
                else:
                    refusal = unpackable(decoded)
                    if refusal is not None:
                        raise ValueError(refusal)
                    pending.append(decoded)
                    batch.spans.append((record, messages, messages + 1))
                    messages += 1
            elif record.topic == deadletter_topic:
                letter = decode_dead_letter(record.value)
                batch.dead_letters.append(StoredDeadLetter(letter, record.partition, record.offset))
            else:
                bad.append(Undecodable(record, f"unexpected topic {record.topic}"))
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            bad.append(Undecodable(record, f"{type(error).__name__}: {error}"))
        except ValueError as error:  # arrays that do not fit together, numbers beyond 64 bits
            bad.append(Undecodable(record, str(error), DeadLetterReason.SCHEMA))
    pack_pending()
    return batch, bad
