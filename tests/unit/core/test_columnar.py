"""Telemetry as columns: packing is lossless, and a broken record is refused with its reason."""

from __future__ import annotations

import math
import re

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.columnar import CODE_BITS, TelemetryArrays, unpackable
from liftwatch.schema import (
    DIRECTIONS,
    DOOR_STATES,
    MODES,
    Sample,
    TelemetryColumns,
    TelemetryRecord,
    decode_telemetry,
    encode_record,
)

from tests.fixtures.ingest import sample

samples = st.builds(
    Sample,
    ts=st.integers(0, 2**53),
    mode=st.sampled_from(MODES),
    floor=st.integers(-10, 200),
    door_zone=st.booleans(),
    direction=st.sampled_from(DIRECTIONS),
    speed=st.floats(0, 25, allow_nan=False),
    door=st.sampled_from(DOOR_STATES),
    occupied=st.booleans(),
    safety_circuit=st.booleans(),
    door_lock=st.none() | st.booleans(),
    alarm_button=st.booleans(),
    power=st.booleans(),
    load_pct=st.none() | st.floats(0, 200, allow_nan=False),
    limit_up=st.booleans(),
    limit_down=st.booleans(),
)
records = st.builds(
    TelemetryRecord,
    terminal=st.sampled_from(["T1", "T2", "LW-000042", "b"]),
    seq=st.integers(0, 2**40),
    received_ms=st.integers(0, 2**45),
    samples=st.lists(samples, min_size=1, max_size=12),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(records, max_size=20))
def test_records_survive_packing_and_the_kafka_bytes(batch: list[TelemetryRecord]) -> None:
    arrays = TelemetryArrays.from_records(batch)
    decoded = decode_telemetry(encode_record(arrays.to_record()))
    assert isinstance(decoded, TelemetryColumns)
    assert TelemetryArrays.from_record(decoded).records() == batch


def test_a_per_message_record_still_decodes_on_the_same_topic() -> None:
    record = TelemetryRecord(terminal="T1", seq=1, received_ms=5, samples=[sample(1_000)])
    assert decode_telemetry(encode_record(record)) == record


def test_the_code_bits_are_distinct_and_clear_of_mode_door_direction() -> None:
    bits = list(CODE_BITS.values())
    assert len(set(bits)) == len(bits)
    assert not set(bits) & {8, 9, 10, 12, 13, 14, 15}


def _good() -> TelemetryColumns:
    records = [
        TelemetryRecord(terminal="T1", seq=1, received_ms=5, samples=[sample(1_000), sample(2_000)]),
        TelemetryRecord(terminal="T2", seq=9, received_ms=6, samples=[sample(1_000, load_pct=50.0)]),
    ]
    return TelemetryArrays.from_records(records).to_record()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ts": b"\x00" * 7}, "ts: 7 bytes"),
        ({"seq": np.zeros(3, "<i8").tobytes()}, "seq: 3 values for 2 messages"),
        ({"floor": np.zeros(2, "<i2").tobytes()}, "floor: 2 values for 3 samples"),
        ({"count": np.array([2, 2], "<u2").tobytes()}, "the messages hold 4 samples, not 3"),
        ({"count": np.array([0, 3], "<u2").tobytes()}, "a message holds 1 to 100 samples"),
        ({"terminal": np.array([0, 2], "<u4").tobytes()}, "an index beyond the 2 terminals"),
        ({"code": np.array([0, 0, 7 << 8], "<u2").tobytes()}, "a mode or direction beyond"),
        ({"code": np.array([0, 0, 3 << 14], "<u2").tobytes()}, "a mode or direction beyond"),
    ],
)
def test_a_broken_record_is_refused_with_its_reason(change: dict[str, bytes], reason: str) -> None:
    broken = msgspec.structs.replace(_good(), **change)
    with pytest.raises(ValueError, match=reason):
        TelemetryArrays.from_record(broken)


def test_helpers_give_each_samples_terminal_and_index() -> None:
    arrays = TelemetryArrays.from_record(_good())
    assert arrays.sample_terminal().tolist() == [0, 0, 1]
    assert arrays.index_of_sample().tolist() == [0, 1, 0]
    assert math.isnan(arrays.load_pct[0]) and arrays.load_pct[2] == 50.0


def test_a_terminal_id_off_the_contract_is_refused_when_decoded() -> None:
    broken = msgspec.structs.replace(_good(), terminals=["T1", "T2\n"])
    with pytest.raises(msgspec.ValidationError, match="terminals"):
        decode_telemetry(encode_record(broken))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"terminals": ["T1", "T1"]}, "a terminal id listed twice"),
        ({"floor": np.array([3, 3, 201], "<i2").tobytes()}, "floor: a value outside"),
        ({"speed": np.array([0, 0, 25.5], "<f8").tobytes()}, "speed: a value outside"),
        ({"speed": np.array([0, np.nan, 0], "<f8").tobytes()}, "speed: a value outside"),
        ({"load_pct": np.array([np.nan, 250, np.nan], "<f8").tobytes()}, "load_pct: a value outside"),
    ],
)
def test_a_record_off_the_contracts_values_is_refused(change: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        TelemetryArrays.from_record(msgspec.structs.replace(_good(), **change))


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (TelemetryRecord(terminal="T1", seq=2**63, received_ms=5, samples=[sample(1)]), "seq: .* beyond 64 bits"),
        (TelemetryRecord(terminal="T1", seq=1, received_ms=-(2**63) - 1, samples=[sample(1)]), "received_ms"),
        (TelemetryRecord(terminal="T1", seq=1, received_ms=5, samples=[sample(2**64)]), "ts: a sample time"),
        (TelemetryRecord(terminal="T1", seq=1, received_ms=5, samples=[]), "samples: 0"),
        (TelemetryRecord(terminal="T1", seq=1, received_ms=5, samples=[sample(1)] * 101), "samples: 101"),
    ],
)
def test_a_per_message_record_that_cannot_be_packed_says_why(record: TelemetryRecord, reason: str) -> None:
    refusal = unpackable(record)
    assert refusal is not None and re.search(reason, refusal)
    assert unpackable(msgspec.structs.replace(record, seq=1, received_ms=5, samples=[sample(1)])) is None
