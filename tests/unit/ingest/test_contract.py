"""The MQTT contract decoder: every invalid form of every field is refused with reason and path."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.ids import TERMINAL_ID
from liftwatch.ingest.contract import (
    MAX_SEQ,
    Accepted,
    Rejection,
    TimeLimits,
    decode_status,
    decode_telemetry,
    parse_topic,
)
from liftwatch.schema import DeadLetterReason

NOW = 1_790_000_000_000
LIMITS = TimeLimits(max_future_ms=60_000, max_age_ms=86_400_000)
DELETE = object()
SCHEMA = DeadLetterReason.SCHEMA


def sample(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": NOW - 1000,
        "mode": "normal",
        "floor": 3,
        "door_zone": True,
        "direction": "stop",
        "speed": 0.0,
        "door": "closed",
        "occupied": False,
        "safety_circuit": True,
    }
    fields.update(changes)
    return {key: value for key, value in fields.items() if value is not DELETE}


def message(samples: list[dict[str, Any]] | None = None, **changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "v": 1,
        "terminal": "T000001",
        "seq": 7,
        "samples": [sample()] if samples is None else samples,
    }
    fields.update(changes)
    return json.dumps({key: value for key, value in fields.items() if value is not DELETE}).encode()


def decode(payload: bytes, terminal: str = "T000001") -> Accepted | Rejection:
    return decode_telemetry(payload, terminal, NOW, limits=LIMITS)


def test_valid_message_with_every_optional_field() -> None:
    full = sample(door_lock=True, alarm_button=True, power=False, load_pct=55.5, limit_up=False, limit_down=True)
    result = decode(message([full, sample(ts=NOW)]))
    assert isinstance(result, Accepted)
    assert result.refused == ()
    first = result.message.samples[0]
    assert (first.door_lock, first.alarm_button, first.power, first.load_pct, first.limit_down) == (
        True,
        True,
        False,
        55.5,
        True,
    )
    assert result.message.samples[1].door_lock is None and result.message.samples[1].power is True


_REQUIRED_SAMPLE = ("ts", "mode", "floor", "door_zone", "direction", "speed", "door", "occupied", "safety_circuit")
_BOOLEANS = ("door_zone", "occupied", "safety_circuit", "door_lock", "alarm_button", "power", "limit_up", "limit_down")

_JSON_TYPE = {int: "int", str: "str", type(None): "null", float: "float", bool: "bool"}

# (field, a value the contract refuses for it). The detail is the decoder's own explanation, in
# msgspec's words: we assert the reason and the path, which are ours, never that wording.
_SAMPLE_CASES: list[tuple[str, Any]] = [
    *[(name, DELETE) for name in _REQUIRED_SAMPLE],
    *[(name, value) for name in _BOOLEANS for value in (0, 1, "true", None)],
    *[("ts", value) for value in ("1790000000000", 1.5e12 + 0.5, None, True)],
    *[("mode", value) for value in ("idle", "NORMAL", 1)],
    *[("floor", value) for value in (-11, 201, 2.5, "3", True)],
    *[("direction", value) for value in ("sideways", None)],
    *[("speed", value) for value in (-0.1, 25.01, "1.0", True)],
    *[("door", value) for value in ("ajar", False)],
    *[("load_pct", value) for value in (-1, 200.5, "50", None)],
    ("colour", "red"),
]


@pytest.mark.parametrize(("name", "value"), _SAMPLE_CASES)
def test_each_invalid_sample_field_is_refused_with_its_path(name: str, value: Any) -> None:
    # The bad sample is the second one: the path must say which.
    result = decode(message([sample(), sample(**{name: value})]))
    assert isinstance(result, Rejection)
    assert result.reason is SCHEMA
    assert result.field == f"$.samples[1].{name}"
    assert result.detail


def test_integer_fields_accept_integral_floats_as_json_schema_does() -> None:
    # JSON Schema's "integer" is any number with a zero fractional part (1.0, 1.79e12).
    result = decode(message([sample(ts=float(NOW - 1000), floor=3.0)], v=1.0, seq=7.0))
    assert isinstance(result, Accepted)
    assert (result.message.v, result.message.seq, result.message.samples[0].ts) == (1, 7, NOW - 1000)
    assert type(result.message.samples[0].floor) is int
    # ... and the fractional ones stay refused, and a refusal names the field that is really wrong.
    result = decode(message([sample(floor=3.0, speed=30)], seq=7.0))
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (SCHEMA, "$.samples[0].speed")


def test_a_terminal_id_with_a_trailing_newline_is_refused() -> None:
    # The contract's `$` is the end of the text (ECMA-262), not "before a final newline" (Python).
    result = decode(message(terminal="T000001\n"), terminal="T000001\n")
    assert isinstance(result, Rejection)
    assert result.field == "$.terminal"
    assert parse_topic("lift/v1/T000001\n/telemetry") is None


@pytest.mark.parametrize(
    ("changes", "reason", "path"),
    [
        ({"v": 2}, DeadLetterReason.UNSUPPORTED_VERSION, "$.v"),
        ({"v": 0}, DeadLetterReason.UNSUPPORTED_VERSION, "$.v"),
        ({"v": 2.0}, DeadLetterReason.UNSUPPORTED_VERSION, "$.v"),
        ({"v": "1"}, SCHEMA, "$.v"),
        ({"v": "2"}, SCHEMA, "$.v"),
        ({"v": True}, SCHEMA, "$.v"),
        ({"v": 1.5}, SCHEMA, "$.v"),
        ({"v": DELETE}, SCHEMA, "$.v"),
        ({"terminal": DELETE}, SCHEMA, "$.terminal"),
        ({"terminal": "T/1"}, SCHEMA, "$.terminal"),
        ({"terminal": "T" * 65}, SCHEMA, "$.terminal"),
        ({"terminal": ""}, SCHEMA, "$.terminal"),
        ({"terminal": 1}, SCHEMA, "$.terminal"),
        ({"seq": DELETE}, SCHEMA, "$.seq"),
        ({"seq": -1}, SCHEMA, "$.seq"),
        ({"seq": 1.5}, SCHEMA, "$.seq"),
        ({"seq": "7"}, SCHEMA, "$.seq"),
        ({"seq": None}, SCHEMA, "$.seq"),
        ({"samples": DELETE}, SCHEMA, "$.samples"),
        ({"samples": {}}, SCHEMA, "$.samples"),
        ({"samples": [1]}, SCHEMA, "$.samples[0]"),
        ({"extra": True}, SCHEMA, "$.extra"),
    ],
)
def test_each_invalid_envelope_field_is_refused(changes: dict[str, Any], reason: DeadLetterReason, path: str) -> None:
    result = decode(message(**changes))
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (reason, path)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"v": 2}, "contract version 2 is not supported (1 is)"),
        ({"v": 2.0}, "contract version 2 is not supported (1 is)"),
        ({"v": 0}, "contract version 0 is not supported (1 is)"),
        ({"seq": MAX_SEQ + 1}, f"seq {MAX_SEQ + 1} is larger than 2^63-1"),
    ],
)
def test_refusals_of_our_own_say_why_in_our_words(changes: dict[str, Any], why: str) -> None:
    result = decode(message(**changes))
    assert isinstance(result, Rejection)
    assert why in result.detail


def test_zero_and_too_many_samples_are_refused() -> None:
    for samples in ([], [sample(ts=NOW - i) for i in range(101)]):
        payload = json.dumps({"v": 1, "terminal": "T000001", "seq": 0, "samples": samples}).encode()
        result = decode(payload)
        assert isinstance(result, Rejection)
        assert (result.reason, result.field) == (SCHEMA, "$.samples")
    assert isinstance(decode(message([sample(ts=NOW - i) for i in range(100)])), Accepted)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", DeadLetterReason.UNDECODABLE),
        (b"{", DeadLetterReason.UNDECODABLE),
        (b"\xff\xfe", DeadLetterReason.UNDECODABLE),
        (b"not json", DeadLetterReason.UNDECODABLE),
        (b"[]", SCHEMA),
        (b"null", SCHEMA),
        (b"42", SCHEMA),
    ],
)
def test_payloads_that_are_not_a_message_object(payload: bytes, reason: DeadLetterReason) -> None:
    result = decode(payload)
    assert isinstance(result, Rejection)
    assert result.reason is reason


def test_terminal_must_match_the_topic() -> None:
    result = decode(message(), terminal="T000002")
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (DeadLetterReason.TOPIC_MISMATCH, "$.terminal")


def test_oversized_payload_is_refused_before_decoding() -> None:
    result = decode_telemetry(b"x" * 1025, "T000001", NOW, max_bytes=1024)
    assert isinstance(result, Rejection)
    assert result.reason is DeadLetterReason.OVERSIZED
    assert isinstance(decode_telemetry(message(), "T000001", NOW, max_bytes=len(message())), Accepted)


def test_future_and_stale_samples_are_refused_alone() -> None:
    samples = [
        sample(ts=NOW - LIMITS.max_age_ms - 1),
        sample(ts=NOW - LIMITS.max_age_ms),
        sample(ts=NOW),
        sample(ts=NOW + LIMITS.max_future_ms),
        sample(ts=NOW + LIMITS.max_future_ms + 1),
    ]
    result = decode(message(samples))
    assert isinstance(result, Accepted)
    assert [s.ts for s in result.message.samples] == [s["ts"] for s in samples[1:4]]
    assert [(r.reason, r.field) for r in result.refused] == [
        (DeadLetterReason.STALE_TIMESTAMP, "$.samples[0].ts"),
        (DeadLetterReason.FUTURE_TIMESTAMP, "$.samples[4].ts"),
    ]


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (NOW + 10**9, DeadLetterReason.FUTURE_TIMESTAMP),
        (2**70, DeadLetterReason.FUTURE_TIMESTAMP),
        (0, DeadLetterReason.STALE_TIMESTAMP),
        (-(2**70), DeadLetterReason.STALE_TIMESTAMP),
    ],
)
def test_a_message_whose_every_sample_is_refused_is_rejected(ts: int, reason: DeadLetterReason) -> None:
    result = decode(message([sample(ts=ts)]))
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert result.field == "$.samples[0].ts"


@pytest.mark.parametrize(
    ("topic", "root", "expected"),
    [
        ("lift/v1/T1/telemetry", "", ("T1", "telemetry")),
        ("lift/v1/T-1_a/status", "", ("T-1_a", "status")),
        ("site/lift/v1/T1/telemetry", "site/", ("T1", "telemetry")),
        ("lift/v1/T1/telemetry", "site/", None),
        ("other/lift/v1/T1/telemetry", "site/", None),
        ("lift/v2/T1/telemetry", "", None),
        ("lift/v1/T1/commands", "", None),
        ("lift/v1/T1/telemetry/extra", "", None),
        ("lift/v1//telemetry", "", None),
        ("lift/v1/T+1/telemetry", "", None),
        ("lift/v1/" + "T" * 65 + "/telemetry", "", None),
        ("lift/v1/T1", "", None),
    ],
)
def test_parse_topic(topic: str, root: str, expected: tuple[str, str] | None) -> None:
    assert parse_topic(topic, root) == expected


def split_topic(topic: str, root: str) -> tuple[str, str] | None:
    """The topic rule spelled out: the root, then four levels, the third a terminal id."""
    if not topic.startswith(root):
        return None
    parts = topic[len(root) :].split("/")
    if len(parts) != 4 or parts[:2] != ["lift", "v1"] or parts[3] not in ("telemetry", "status"):
        return None
    return (parts[2], parts[3]) if TERMINAL_ID.matches(parts[2]) else None


@settings(max_examples=500, deadline=None)
@given(
    levels=st.lists(
        st.sampled_from(["lift", "v1", "telemetry", "status", "T1", "", "a.b", "T\n", "é", "+", "x" * 65]), max_size=6
    ),
    root=st.sampled_from(["", "site/", "a.b/", "(x)/"]),
    prefix=st.booleans(),
)
def test_parse_topic_follows_the_topic_rule(levels: list[str], root: str, prefix: bool) -> None:
    topic = (root if prefix else "") + "/".join(levels)
    assert parse_topic(topic, root) == split_topic(topic, root)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"online", "online"),
        (b"offline", "offline"),
        (b" online\n", "online"),
        (b'{"v": 1, "status": "offline"}', "offline"),
        (b'{"v": 2, "status": "online"}', (DeadLetterReason.UNSUPPORTED_VERSION, "$.v")),
        (b'{"v": 1, "status": "sleeping"}', (SCHEMA, "$.status")),
        (b'{"v": 1, "status": "online", "x": 1}', (SCHEMA, "$.x")),
        (b'{"v": 1}', (SCHEMA, "$.status")),
        (b"ONLINE", (DeadLetterReason.UNDECODABLE, None)),
        (b"", (DeadLetterReason.UNDECODABLE, None)),
        (b"x" * 2000, (DeadLetterReason.OVERSIZED, None)),
    ],
)
def test_decode_status(payload: bytes, expected: str | tuple[DeadLetterReason, str | None]) -> None:
    result = decode_status(payload)
    if isinstance(expected, str):
        assert result == expected
    else:
        assert isinstance(result, Rejection)
        assert (result.reason, result.field) == expected


_VALID = json.loads(message([sample(), sample(ts=NOW - 5, door_lock=False, load_pct=10)]))
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    document = json.loads(json.dumps(_VALID))
    target = document if draw(st.booleans()) else draw(st.sampled_from(document["samples"]))
    key = draw(st.sampled_from([*target.keys(), "extra"]))
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(_JSON_VALUES)
    return json.dumps(document).encode()


def _assert_total(result: object) -> None:
    assert isinstance(result, (Accepted, Rejection))
    if isinstance(result, Accepted):
        # What is accepted re-encodes: nothing half-valid slips through.
        assert msgspec.json.decode(msgspec.json.encode(result.message), type=type(result.message)) == result.message


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=512) | _mutated())
def test_no_input_makes_the_decoder_raise(payload: bytes) -> None:
    _assert_total(decode(payload))
    status = decode_status(payload)
    assert isinstance(status, Rejection) or status in ("online", "offline")


@settings(max_examples=100, deadline=None)
@given(payload=_mutated(), cut=st.integers(min_value=0, max_value=400))
def test_truncated_payloads_are_refused_not_raised(payload: bytes, cut: int) -> None:
    _assert_total(decode(payload[:cut]))


@settings(max_examples=150, deadline=None)
@given(
    payload=_mutated() | st.just(message()),
    damage=st.lists(st.tuples(st.integers(min_value=0, max_value=400), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_damaged_bytes_are_refused_not_raised(payload: bytes, damage: list[tuple[int, int]]) -> None:
    # Radio links flip bytes: inside a string that is invalid UTF-8, which some msgspec releases
    # report with a UnicodeDecodeError rather than a DecodeError.
    damaged = bytearray(payload)
    for position, byte in damage:
        damaged[position % len(damaged)] = byte
    _assert_total(decode(bytes(damaged)))
    status = decode_status(bytes(damaged))
    assert isinstance(status, Rejection) or status in ("online", "offline")


@pytest.mark.parametrize(
    "payload",
    [
        message(terminal="T\udcff1").replace(b"\\udcff", b"\xff"),
        message([sample(mode="normal")]).replace(b'"normal"', b'"norm\xc3"'),
        message(seq=7.0).replace(b'"T000001"', b'"T\xe4\xb8"'),  # also on the integral-float retry path
    ],
)
def test_invalid_utf8_inside_a_string_is_undecodable(payload: bytes) -> None:
    result = decode(payload)
    assert isinstance(result, Rejection)
    assert result.reason is DeadLetterReason.UNDECODABLE
    # Our own check names the byte, whatever words the msgspec release in use has for it.
    bad = next(offset for offset, byte in enumerate(payload) if byte >= 0x80)
    assert result.detail.startswith("not valid UTF-8: ") and f"at byte {bad} " in result.detail
    status = decode_status(b'{"v": 1, "status": "\xff"}')
    assert isinstance(status, Rejection) and status.reason is DeadLetterReason.UNDECODABLE
    assert status.detail.startswith("not valid UTF-8: ")


def test_sequence_numbers_beyond_64_bits_are_refused() -> None:
    # The schema sets no maximum; Kafka records and the database hold 64-bit integers.
    assert isinstance(decode(message(seq=MAX_SEQ)), Accepted)
    for seq in (MAX_SEQ + 1, 2**64, 10**400, 1e300):
        result = decode(message(seq=seq))
        assert isinstance(result, Rejection)
        assert (result.reason, result.field) == (SCHEMA, "$.seq")
        assert "larger than 2^63-1" in result.detail


_NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "payload",
    [
        b'{"v": 1, "terminal": "T000001", "seq": 7, "samples": ' + _NESTED + b"}",
        b'{"v": ' + _NESTED + b"}",
        message().replace(b'{"v": 1', b'{"extra": ' + _NESTED + b', "v": 1'),
        message(seq=7.0).replace(b'{"v": 1', b'{"extra": ' + _NESTED + b', "v": 1'),
    ],
    ids=["samples", "v", "unknown-field", "integral-float-retry"],
)
def test_deeply_nested_json_is_refused_not_raised(payload: bytes) -> None:
    # 200 KB of brackets fits under the size limit; msgspec then gives up with a RecursionError.
    result = decode_telemetry(payload, "T000001", NOW, max_bytes=len(payload), limits=LIMITS)
    assert isinstance(result, Rejection) and result.reason in (DeadLetterReason.UNDECODABLE, SCHEMA)
