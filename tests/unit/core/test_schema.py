"""Kafka records: round trip, a version or type a consumer does not know is refused, damage never escapes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch import schema
from liftwatch.schema import (
    DeadLetter,
    DeadLetterReason,
    FaultCode,
    FaultEvent,
    IncidentChange,
    Sample,
    Severity,
    StatusRecord,
    TelemetryRecord,
    encode_record,
)

SAMPLE = Sample(1_790_000_000_000, "normal", 3, True, "up", 1.5, "closed", True, True, door_lock=True)
RECORDS: list[tuple[Any, Callable[[bytes], Any]]] = [
    (TelemetryRecord("T1", 7, 1_790_000_000_100, [SAMPLE]), schema.decode_telemetry_record),
    (StatusRecord("T1", "offline", 1_790_000_000_100), schema.decode_status_record),
    (
        DeadLetter("mqtt", "lift/v1/T1/telemetry", DeadLetterReason.SCHEMA, "why", 1, b"\x00{", "T1"),
        schema.decode_dead_letter,
    ),
    (
        FaultEvent(
            "T1:overspeed:raised:5", "raised", FaultCode.OVERSPEED, Severity.CRITICAL, "T1", None, 5, 6, {"speed": 2.3}
        ),
        schema.decode_fault_event,
    ),
    (
        IncidentChange(
            9,
            3,
            "opened",
            "detected",
            FaultCode.TRAPPED_PASSENGER,
            Severity.CRITICAL,
            "R" * 20,
            "T1",
            "M",
            "D",
            7,
            "system",
        ),
        schema.decode_incident_change,
    ),
]
_IDS = [type(record).__name__ for record, _ in RECORDS]


@pytest.mark.parametrize(("record", "decode"), RECORDS, ids=_IDS)
def test_records_round_trip_and_carry_their_type_and_version(record: Any, decode: Callable[[bytes], Any]) -> None:
    data = encode_record(record)
    assert decode(data) == record
    assert msgspec.msgpack.decode(data)["type"] == record.__struct_config__.tag


@pytest.mark.parametrize(("record", "decode"), RECORDS, ids=_IDS)
def test_another_version_or_type_is_refused_not_guessed(record: Any, decode: Callable[[bytes], Any]) -> None:
    fields = msgspec.msgpack.decode(encode_record(record))
    fields["type"] = fields["type"].replace(".v1", ".v2")
    with pytest.raises(msgspec.ValidationError):
        decode(msgspec.msgpack.encode(fields))
    other = next(r for r, _ in RECORDS if type(r) is not type(record))
    with pytest.raises(msgspec.ValidationError):
        decode(encode_record(other))


@settings(max_examples=150, deadline=None)
@given(
    index=st.integers(0, len(RECORDS) - 1),
    damage=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_damaged_records_raise_only_msgspec_errors(index: int, damage: list[tuple[int, int]]) -> None:
    # Consumers catch msgspec's errors and dead-letter the record; anything else would stop them.
    record, decode = RECORDS[index]
    data = bytearray(encode_record(record))
    for position, byte in damage:
        data[position % len(data)] = byte
    with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
        decode(bytes(data))


def test_a_bad_utf8_byte_inside_a_string_is_a_decode_error() -> None:
    # Consumers catch msgspec's errors only: whatever a release raises here (UnicodeDecodeError
    # before 0.23), it must reach them as a DecodeError. The wording is msgspec's, not asserted.
    data = encode_record(StatusRecord("T1", "online", 5)).replace(b"T1", b"\xff1")
    with pytest.raises(msgspec.DecodeError):
        schema.decode_status_record(data)


def test_deeply_nested_evidence_is_a_decode_error() -> None:
    # `evidence` holds any msgpack value: 100,000 nested arrays make msgspec give up with a RecursionError.
    event, _ = RECORDS[3]
    placeholder = msgspec.msgpack.encode("NESTED")
    data = encode_record(msgspec.structs.replace(event, evidence={"x": "NESTED"}))
    data = data.replace(placeholder, b"\x91" * 100_000 + b"\x90")
    with pytest.raises(msgspec.DecodeError):
        schema.decode_fault_event(data)
