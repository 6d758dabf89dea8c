"""Kafka records to staging rows: one row per sample in record order, from either record form;
undecodable and broken records set apart with their reason."""

from __future__ import annotations

import struct
from datetime import date, datetime
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.columnar import TelemetryArrays
from liftwatch.ingest.rows import (
    STAGING_COLUMNS,
    LastSeenMarks,
    RawRecord,
    activity,
    decode_batch,
    local_days,
    staging_copy,
)
from liftwatch.presence import LAST_SEEN_RESOLUTION_MS, last_seen_mark, last_seen_sql
from liftwatch.schema import DeadLetter, DeadLetterReason, TelemetryRecord, encode_record

from tests.fixtures.ingest import sample


def _message(terminal: str, seq: int, count: int) -> TelemetryRecord:
    return TelemetryRecord(terminal=terminal, seq=seq, received_ms=5, samples=[sample(1_000 + i) for i in range(count)])


def _columns(*messages: TelemetryRecord) -> bytes:
    return encode_record(TelemetryArrays.from_records(messages).to_record())


def _copy_rows(data: bytes) -> list[tuple[int, ...]]:
    """Parse a binary COPY stream of the staging columns (as PostgreSQL would)."""
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00") and data.endswith(b"\xff\xff")
    body, rows = memoryview(data)[19:-2], []
    formats = {"int2": "!h", "int4": "!i", "int8": "!q", "float4": "!f"}
    position = 0
    while position < len(body):
        (fields,) = struct.unpack_from("!h", body, position)
        position += 2
        assert fields == len(STAGING_COLUMNS)
        row = []
        for _, kind, _ in STAGING_COLUMNS:
            (size,) = struct.unpack_from("!i", body, position)
            row.append(struct.unpack_from(formats[kind], body, position + 4)[0])
            position += 4 + size
        rows.append(tuple(row))
    return rows


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 100), st.booleans()), max_size=30))
def test_one_row_per_sample_in_record_order_from_either_form(counts: list[tuple[int, bool]]) -> None:
    """Per-message and columns records mixed in one poll: rows in poll order, idx per message."""
    raw = []
    for offset, (count, packed) in enumerate(counts):
        message = _message(f"T{offset % 3}", offset, count)
        value = _columns(message) if packed else encode_record(message)
        raw.append(RawRecord("t", 0, offset, value))
    batch, bad = decode_batch(raw, "t", "d")
    assert not bad and batch.records == len(counts) and batch.samples == sum(c for c, _ in counts)
    rows = _copy_rows(staging_copy(batch.telemetry()))
    terminals = batch.telemetry().terminals
    names = [name for name, _, _ in STAGING_COLUMNS]
    keys = [(terminals[row[names.index("terminal")]], row[names.index("seq")], row[names.index("idx")]) for row in rows]
    assert keys == [(f"T{offset % 3}", offset, idx) for offset, (n, _) in enumerate(counts) for idx in range(n)]
    assert [(record.offset, start, end) for record, start, end in batch.spans] == [
        (offset, offset, offset + 1) for offset in range(len(counts))
    ]


def test_split_isolates_each_records_messages() -> None:
    raw = [
        RawRecord("t", 0, 0, encode_record(_message("A", 1, 2))),
        RawRecord("t", 0, 1, _columns(_message("B", 1, 1), _message("C", 1, 3))),
        RawRecord("t", 0, 2, encode_record(_message("A", 2, 1))),
    ]
    batch, _ = decode_batch(raw, "t", "d")
    split = batch.split()
    assert [part.telemetry().terminals for _, part in split] == [["A"], ["B", "C"], ["A"]]
    parts = [(record.offset, part.telemetry().records()) for record, part in split]
    assert [(offset, [(m.terminal, m.seq, len(m.samples)) for m in messages]) for offset, messages in parts] == [
        (0, [("A", 1, 2)]),
        (1, [("B", 1, 1), ("C", 1, 3)]),
        (2, [("A", 2, 1)]),
    ]


def test_a_columns_record_whose_arrays_do_not_fit_is_set_apart_as_schema() -> None:
    good = _message("T1", 1, 2)
    broken = TelemetryArrays.from_records([good]).to_record()
    short = encode_record(msgspec.structs.replace(broken, ts=broken.ts[:-8]))  # a sample's time missing
    raw = [RawRecord("t", 0, 0, short), RawRecord("t", 0, 1, encode_record(good))]
    batch, bad = decode_batch(raw, "t", "d")
    assert [(b.record.offset, b.reason) for b in bad] == [(0, DeadLetterReason.SCHEMA)]
    assert bad[0].detail == "floor: 2 values for 1 samples"
    assert batch.samples == 2 and [r.offset for r, _, _ in batch.spans] == [1]


def test_dead_letters_keep_their_coordinates_and_garbage_is_set_apart() -> None:
    letter = DeadLetter(
        source="mqtt", topic="x", reason=DeadLetterReason.SCHEMA, detail="d", received_ms=1, payload=b"p"
    )
    raw = [
        RawRecord("d", 0, 41, encode_record(letter)),
        RawRecord("t", 3, 7, b"\x00garbage"),
        RawRecord("t", 3, 8, None),
        RawRecord("t", 3, 9, encode_record(letter)),  # a dead letter on the telemetry topic
    ]
    batch, bad = decode_batch(raw, "t", "d")
    assert [(d.partition, d.offset) for d in batch.dead_letters] == [(0, 41)]
    assert [(b.record.offset, b.reason) for b in bad] == [(7, "undecodable"), (8, "undecodable"), (9, "undecodable")]
    assert batch.samples == 0 and np.size(batch.telemetry().ts) == 0


@settings(max_examples=50)
@given(
    zone=st.sampled_from(["Asia/Shanghai", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "UTC"]),
    ts=st.lists(st.integers(1_700_000_000_000, 1_900_000_000_000), min_size=1, max_size=50),
    near=st.lists(st.integers(-7_200_000, 7_200_000), max_size=50),
)
def test_local_days_are_the_zone_dates_of_the_instants(zone: str, ts: list[int], near: list[int]) -> None:
    """Also right next to one of the instants (where a DST switch or midnight may fall between)."""
    instants = ts + [ts[0] + delta for delta in near]
    days = local_days(np.array(instants, np.int64), ZoneInfo(zone))
    expected = [(datetime.fromtimestamp(t / 1000, ZoneInfo(zone)).date() - date(1970, 1, 1)).days for t in instants]
    assert days.tolist() == expected


def test_activity_groups_by_terminal_and_site_local_day() -> None:
    shanghai_midnight = 1_765_036_800_000  # 2025-12-07 00:00 in Shanghai
    messages = [
        TelemetryRecord(terminal="A", seq=1, received_ms=7, samples=[sample(shanghai_midnight - 1)]),
        TelemetryRecord(
            terminal="A", seq=2, received_ms=5, samples=[sample(shanghai_midnight), sample(shanghai_midnight + 5)]
        ),
    ]
    added = activity(TelemetryArrays.from_records(messages), ZoneInfo("Asia/Shanghai"))
    day = (date(2025, 12, 7) - date(1970, 1, 1)).days
    assert (added.terminal.tolist(), added.day.tolist(), added.samples.tolist()) == ([0, 0], [day - 1, day], [1, 2])
    assert (added.first_ms.tolist(), added.last_ms.tolist()) == (
        [shanghai_midnight - 1, shanghai_midnight],
        [shanghai_midnight - 1, shanghai_midnight + 5],
    )
    assert (added.seen_terminal.tolist(), added.seen_ms.tolist()) == ([0], [7])


def test_records_the_writer_cannot_store_are_refused_and_the_rest_kept() -> None:
    """A columns record listing a terminal twice (its activity would be upserted twice in one
    statement) and a per-message record with a number beyond 64 bits (it cannot be packed) are
    dead-lettered with their reason; the good records of the same poll are kept."""
    twice = msgspec.structs.replace(
        TelemetryArrays.from_records([_message("B", 1, 1), _message("B", 2, 1)]).to_record(),
        terminals=["B", "B"],
        terminal=np.array([0, 1], "<u4").tobytes(),
    )
    beyond = msgspec.structs.replace(_message("C", 1, 1), seq=2**63)
    raw = [
        RawRecord("t", 0, 0, encode_record(_message("A", 1, 2))),
        RawRecord("t", 0, 1, encode_record(twice)),
        RawRecord("t", 0, 2, encode_record(beyond)),
        RawRecord("t", 0, 3, _columns(_message("D", 1, 3))),
    ]
    batch, bad = decode_batch(raw, "t", "d")
    assert [(b.record.offset, b.reason) for b in bad] == [(1, DeadLetterReason.SCHEMA), (2, DeadLetterReason.SCHEMA)]
    assert "listed twice" in bad[0].detail and "beyond 64 bits" in bad[1].detail
    stored = batch.telemetry()
    assert sorted(stored.terminals) == ["A", "D"] and stored.samples == 5


@settings(max_examples=200)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 10 * LAST_SEEN_RESOLUTION_MS)), min_size=1),
        max_size=6,
    ),
    committed=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_last_seen_marks_write_only_what_raises_the_stored_value(
    batches: list[list[tuple[str, int]]], committed: list[bool]
) -> None:
    """Against a model of the column (greatest of what was written): after every batch the stored
    value is the mark of the latest reception committed so far, and nothing is written that would
    not raise it; a batch whose transaction failed is not remembered."""
    marks, stored = LastSeenMarks(), dict[str, int]()
    latest: dict[str, int] = {}
    for batch, commits in zip(batches, committed, strict=False):
        terminals = sorted({terminal for terminal, _ in batch})
        seen = {t: max(ms for terminal, ms in batch if terminal == t) for t in terminals}
        ids, values = marks.fresh(
            terminals,
            np.arange(len(terminals), dtype=np.int64),
            np.array([seen[t] for t in terminals], dtype=np.int64),
        )
        for terminal_id, value in zip(ids, values.tolist(), strict=True):
            assert value == last_seen_mark(seen[terminal_id])
            assert value > stored.get(terminal_id, -1)  # every write raises the value
        if not commits:
            continue
        for terminal_id, value in zip(ids, values.tolist(), strict=True):
            stored[terminal_id] = max(stored.get(terminal_id, -1), value)
        marks.remember(dict(zip(ids, values.tolist(), strict=True)))
        for terminal, ms in seen.items():
            latest[terminal] = max(latest.get(terminal, -1), ms)
        assert stored == {t: last_seen_mark(ms) for t, ms in latest.items()}


def test_last_seen_marks_start_over_beyond_their_bound() -> None:
    marks = LastSeenMarks()
    marks.MAX_TERMINALS = 3
    marks.remember({"a": 0, "b": 0, "c": 0})
    assert marks.fresh(["a"], np.array([0]), np.array([5]))[0] == []
    marks.remember({"d": 0})  # beyond the bound: forgets a, b, c
    assert marks.fresh(["a", "d"], np.array([0, 1]), np.array([5, 5]))[0] == ["a"]


def test_the_rounding_migration_rounds_as_the_writer_does() -> None:
    """Migration 101 rounds the values written before last_seen_at had a resolution: with the
    owner's expression, so that it and the writer agree."""
    from pathlib import Path

    migration = Path(__file__).resolve().parents[3] / "core" / "migrations" / "101_last_seen_rounded.sql"
    assert last_seen_sql("last_seen_at") in migration.read_text(encoding="utf-8")
