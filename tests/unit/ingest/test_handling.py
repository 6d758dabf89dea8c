"""The gateway's pure message handling: right records, right dead-letter reasons, never an exception."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from liftwatch.badinput import BadInputPolicy
from liftwatch.ingest.handling import HandlerConfig, MessageHandler, OutRecord, OutTelemetry
from liftwatch.ingest.metrics import GatewayMetrics
from liftwatch.ingest.sequence import SequenceTracker
from liftwatch.schema import DeadLetterReason, decode_dead_letter, decode_status_record
from prometheus_client import CollectorRegistry

from tests.fixtures.ingest import telemetry_payload

NOW = 1_763_900_000_000
TOPIC = "lift/v1/T1/telemetry"


def make_handler(root: str = "") -> tuple[MessageHandler, CollectorRegistry]:
    registry = CollectorRegistry()
    handler = MessageHandler(
        HandlerConfig(topic_root=root, max_payload_bytes=4096),
        BadInputPolicy(registry),
        GatewayMetrics(registry),
        SequenceTracker(64),
    )
    return handler, registry


def test_accepted_message_is_handed_on_unencoded() -> None:
    handler, _ = make_handler()
    out = handler.handle(TOPIC, telemetry_payload("T1", 7, 3, NOW), NOW)
    assert len(out) == 1 and isinstance(out[0], OutTelemetry)
    record = out[0].record
    assert (record.terminal, record.seq, record.received_ms, len(record.samples)) == ("T1", 7, NOW, 3)
    assert out[0].key == b"T1" and out[0].topic == "telemetry"


def test_status_becomes_status_record() -> None:
    handler, _ = make_handler("r/")
    out = handler.handle("r/lift/v1/T1/status", b"offline", NOW)
    assert len(out) == 1 and isinstance(out[0], OutRecord) and out[0].topic == "status"
    assert decode_status_record(out[0].value).status == "offline"


def test_duplicate_is_dropped_and_counted() -> None:
    handler, registry = make_handler()
    payload = telemetry_payload("T1", 1, 1, NOW)
    assert handler.handle(TOPIC, payload, NOW)
    assert handler.handle(TOPIC, payload, NOW) == []
    assert registry.get_sample_value("liftwatch_gateway_duplicates_total") == 1


def test_gap_counted_and_reboot_is_not_a_gap() -> None:
    handler, registry = make_handler()
    for seq in (10, 11, 14, 0):
        handler.handle(TOPIC, telemetry_payload("T1", seq, 1, NOW), NOW)
    assert registry.get_sample_value("liftwatch_gateway_seq_gap_messages_total") == 2
    assert registry.get_sample_value("liftwatch_gateway_terminal_restarts_total") == 1


def _sample_json(ts: int) -> dict[str, object]:
    return {
        "ts": ts,
        "mode": "normal",
        "floor": 1,
        "door_zone": True,
        "direction": "stop",
        "speed": 0.0,
        "door": "closed",
        "occupied": False,
        "safety_circuit": True,
    }


BAD = [
    (TOPIC, b"\xff\xfe not json", DeadLetterReason.UNDECODABLE),
    (TOPIC, b'{"v": 1}', DeadLetterReason.SCHEMA),
    (
        TOPIC,
        json.dumps({"v": 2, "terminal": "T1", "seq": 1, "samples": [_sample_json(NOW)]}).encode(),
        DeadLetterReason.UNSUPPORTED_VERSION,
    ),
    (TOPIC, telemetry_payload("T2", 1, 1, NOW), DeadLetterReason.TOPIC_MISMATCH),
    (TOPIC, b"x" * 5000, DeadLetterReason.OVERSIZED),
    (TOPIC, telemetry_payload("T1", 1, 1, NOW + 3 * 86_400_000), DeadLetterReason.FUTURE_TIMESTAMP),
    (TOPIC, telemetry_payload("T1", 1, 1, NOW - 500 * 86_400_000), DeadLetterReason.STALE_TIMESTAMP),
    ("lift/v1/bad id!/telemetry", b"{}", DeadLetterReason.BAD_TOPIC),
    ("lift/v1/T1/status", b"maybe", DeadLetterReason.UNDECODABLE),
    (TOPIC, telemetry_payload("T1", 1, 1, NOW).replace(b'"T1"', b'"\x80"'), DeadLetterReason.UNDECODABLE),
]


@pytest.mark.parametrize(("topic", "payload", "reason"), BAD, ids=[b[2].value + str(i) for i, b in enumerate(BAD)])
def test_bad_input_is_dead_lettered_with_its_reason(topic: str, payload: bytes, reason: DeadLetterReason) -> None:
    handler, registry = make_handler()
    out = handler.handle(topic, payload, NOW)
    assert len(out) == 1 and isinstance(out[0], OutRecord) and out[0].topic == "deadletter"
    letter = decode_dead_letter(out[0].value)
    assert letter.reason is reason
    assert letter.payload == payload[:4096]
    assert registry.get_sample_value("liftwatch_dead_letters_total", {"source": "mqtt", "reason": reason.value}) == 1


def test_one_bad_sample_is_dead_lettered_and_the_others_kept() -> None:
    handler, _ = make_handler()
    body = {
        "v": 1,
        "terminal": "T1",
        "seq": 3,
        "samples": [_sample_json(NOW), _sample_json(NOW + 5 * 86_400_000), _sample_json(NOW + 100)],
    }
    out = handler.handle(TOPIC, json.dumps(body).encode(), NOW)
    assert sorted(r.topic for r in out) == ["deadletter", "telemetry"]
    kept = next(r.record for r in out if isinstance(r, OutTelemetry))
    assert [s.ts for s in kept.samples] == [NOW, NOW + 100]
    letter = next(decode_dead_letter(r.value) for r in out if isinstance(r, OutRecord) and r.topic == "deadletter")
    assert letter.reason is DeadLetterReason.FUTURE_TIMESTAMP and "samples[1]" in letter.detail


VALID = telemetry_payload("T1", 5, 4, NOW)


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buffer = bytearray(data)
    for position, value in edits:
        buffer[position % len(buffer)] = value
    return bytes(buffer)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    topic=st.one_of(st.just(TOPIC), st.just("lift/v1/T1/status"), st.text(max_size=80)),
    payload=st.one_of(
        st.binary(max_size=600),
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8).map(lambda e: _mutate(VALID, e)),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
            max_leaves=20,
        ).map(lambda value: msgspec.json.encode(value)),
    ),
)
def test_no_input_makes_the_handler_raise(topic: str, payload: bytes) -> None:
    handler, _ = make_handler()
    # The valid payloads' own clock: with the wall clock they would grow too old to be accepted
    # and the accepting branch would silently stop being fuzzed.
    out = handler.handle(topic, payload, NOW)
    for record in out:
        assert record.topic in ("telemetry", "status", "deadletter")
        if isinstance(record, OutRecord) and record.topic == "deadletter":
            letter = decode_dead_letter(record.value)
            assert letter.reason and letter.payload == payload[: len(letter.payload)]
