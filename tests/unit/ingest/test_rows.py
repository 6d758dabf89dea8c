"""Kafka records to staging rows: one row per sample, undecodable records set apart."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.ingest.rows import STAGING_COLUMNS, RawRecord, decode_batch
from liftwatch.schema import DeadLetter, DeadLetterReason, TelemetryRecord, encode_record

from tests.fixtures.ingest import sample


def _record(terminal: str, seq: int, count: int) -> bytes:
    samples = [sample(1_000 + i) for i in range(count)]
    return encode_record(TelemetryRecord(terminal=terminal, seq=seq, received_ms=5, samples=samples))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=100), max_size=30))
def test_one_row_per_sample_in_order(counts: list[int]) -> None:
    raw = [RawRecord("t", 0, offset, _record("T1", offset, n)) for offset, n in enumerate(counts)]
    batch, bad = decode_batch(raw, "t", "d")
    assert not bad and batch.records == len(counts)
    assert len(batch.rows) == sum(counts)
    assert all(len(row) == len(STAGING_COLUMNS) for row in batch.rows)
    expected_keys = [(offset, idx) for offset, n in enumerate(counts) for idx in range(n)]
    assert [(row[2], row[3]) for row in batch.rows] == expected_keys


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
    assert [b.record.offset for b in bad] == [7, 8, 9]
    assert batch.rows == []
