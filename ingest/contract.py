"""Decoding of what terminals send over MQTT, with a precise reason for every refusal.

Pure functions: bytes and the topic in, a decoded message (possibly with some samples refused)
or a :class:`Rejection` out. The gateway turns rejections into dead letters and counters.

Topics (under an optional root prefix, see ``CommonSettings.mqtt_topic_root``):

* ``lift/v1/{terminal}/telemetry``: JSON per the telemetry contract;
* ``lift/v1/{terminal}/status``: ``online`` / ``offline`` as plain text, or JSON
  ``{"v": 1, "status": "online"}`` (the contract leaves the payload open; we accept both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec
from liftwatch.ids import TERMINAL_ID
from liftwatch.schema import DeadLetterReason, Sample, TelemetryMessage, TerminalStatus

TELEMETRY_TOPIC_FILTER = "lift/v1/+/telemetry"
STATUS_TOPIC_FILTER = "lift/v1/+/status"
_PATH_RE = re.compile(r"`(\$[^`]*)`")
_NULL = re.compile(b"null")
_FIELD_RE = re.compile(r"Object (?:missing required|contains unknown) field `([^`]*)`")


class Rejection(msgspec.Struct, frozen=True):
    """Why an input was refused: a reason code, a detail a person can act on, the JSON path."""

    reason: DeadLetterReason
    detail: str
    field: str | None = None


class Accepted(msgspec.Struct, frozen=True):
    """A decoded telemetry message; ``refused`` holds samples dropped for their timestamps.

    The results are msgspec Structs: one is made per message, at a sixth of a frozen dataclass's cost.
    """

    message: TelemetryMessage
    refused: tuple[Rejection, ...] = ()


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """Bounds on sample timestamps relative to the receiver's clock."""

    max_future_ms: int = 24 * 3600 * 1000
    max_age_ms: int = 400 * 24 * 3600 * 1000


_telemetry_decoder = msgspec.json.Decoder(TelemetryMessage)


class _StatusJson(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    v: int
    status: TerminalStatus


_status_decoder = msgspec.json.Decoder(_StatusJson)


def parse_topic(topic: str, root: str = "") -> tuple[str, str] | None:
    """Split ``{root}lift/v1/{terminal}/{kind}`` into (terminal, kind); None if it is not one of ours."""
    pattern = _TOPIC_PATTERNS.get(root)
    if pattern is None:
        pattern = _TOPIC_PATTERNS[root] = re.compile(
            rf"{re.escape(root)}lift/v1/({TERMINAL_ID.body})/(telemetry|status)"
        )
    match = pattern.fullmatch(topic)  # one regex per message: a third of splitting and checking
    return None if match is None else (match[1], match[2])


_TOPIC_PATTERNS: dict[str, re.Pattern[str]] = {}
"""The topics of each root (roots come from the settings: a handful at most)."""


def _schema_rejection(error: msgspec.ValidationError, payload: bytes | None = None) -> Rejection:
    """msgspec's explanation as the detail, the JSON path it names as the field.

    With ``payload`` (telemetry), a refused ``$.v`` that is a well-typed number other than 1 is
    an unsupported version, not a schema error; that is read off the payload, not the message.
    """
    text = str(error)
    match = _PATH_RE.search(text)
    path = match.group(1) if match else None
    # msgspec names a missing or unknown field in the message and gives its object's path.
    field = _FIELD_RE.match(text)
    if field is not None:
        path = f"{path or '$'}.{field.group(1)}"
    if path == "$.v" and payload is not None:
        version = _version_of(payload)
        if version is not None and version != 1:
            return Rejection(
                DeadLetterReason.UNSUPPORTED_VERSION, f"contract version {version} is not supported (1 is)", path
            )
    return Rejection(DeadLetterReason.SCHEMA, text, path)


def _version_of(payload: bytes) -> int | None:
    """The ``v`` of a JSON object when it is an integer (or integral float) of 64 bits, else None."""
    try:
        document = msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    version = document.get("v") if isinstance(document, dict) else None
    if isinstance(version, float) and version.is_integer():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or not -(2**63) <= version <= MAX_SEQ:
        return None
    return version


def _integral_to_int(fields: dict[str, Any], names: tuple[str, ...]) -> bool:
    changed = False
    for name in names:
        value = fields.get(name)
        if type(value) is float and value.is_integer():
            fields[name] = int(value)
            changed = True
    return changed


def _with_integral_floats(payload: bytes) -> TelemetryMessage | msgspec.ValidationError | None:
    """Decode again with integer fields written as integral floats (``7.0``, ``1.79e12``) made ints.

    JSON Schema's ``integer`` is any number with a zero fractional part, so the contract allows
    them; the fast typed decoder does not. Only refused payloads take this path. Returns None when
    no such field was found (the first refusal stands), else the message or the remaining error.
    """
    try:
        document = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    if not isinstance(document, dict):
        return None
    changed = _integral_to_int(document, ("v", "seq"))
    samples = document.get("samples")
    if isinstance(samples, list):
        for sample in samples:
            if isinstance(sample, dict):
                changed = _integral_to_int(sample, ("ts", "floor")) or changed
    if not changed:
        return None
    try:
        return msgspec.convert(document, TelemetryMessage)
    except msgspec.ValidationError as error:
        return error


def _null_sample_field(payload: bytes) -> Rejection | None:
    """A sample field given as JSON null: the contract has no nullable field.

    ``Sample`` models "not reported" optional fields as None, so its decoder also accepts an
    explicit null; this check refuses that (it runs only on payloads containing ``null``).
    """
    if _NULL.search(payload) is None:  # twice as fast as ``in`` on telemetry (many n, u and l)
        return None
    document = msgspec.json.decode(payload)
    for index, sample in enumerate(document.get("samples", ())):
        for key, value in sample.items():
            if value is None:
                path = f"$.samples[{index}].{key}"
                return Rejection(DeadLetterReason.SCHEMA, f"Expected a value, got `null` - at `{path}`", path)
    return None


def decode_telemetry(
    payload: bytes,
    topic_terminal: str,
    now_ms: int,
    *,
    max_bytes: int = 256 * 1024,
    limits: TimeLimits = TimeLimits(),
) -> Accepted | Rejection:
    """Decode one telemetry payload received on the topic of ``topic_terminal``; never raises.

    A schema violation refuses the whole message (its other fields cannot be trusted); a sample
    whose timestamp is too far in the future or older than the retention is refused alone and
    the rest of the message is kept.
    """
    try:
        return _decode_telemetry(payload, topic_terminal, now_ms, max_bytes, limits)
    except UnicodeDecodeError:
        return _not_utf8_or(payload, "not valid UTF-8")
    except RecursionError:  # e.g. 100,000 nested brackets: msgspec gives up with Python's error
        return _TOO_DEEP


_TOO_DEEP = Rejection(DeadLetterReason.UNDECODABLE, "not a telemetry message: JSON nested too deeply")

MAX_SEQ = 2**63 - 1
"""Largest ``seq`` accepted: the contract sets no maximum, but Kafka records (msgpack) and the
``telemetry.seq`` column (bigint) hold 64-bit integers, and no terminal counts that far."""


def _not_utf8_or(payload: bytes, detail: str) -> Rejection:
    """An undecodable payload: named as bad UTF-8 when it is, by our own check, else ``detail``.

    msgspec reports a bad byte inside a string as UnicodeDecodeError in some releases and as one
    of its DecodeErrors (with its own wording) in others; the dead letter must not depend on which.
    """
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = payload[error.start : error.start + 1].hex()
        detail = f"not valid UTF-8: {error.reason} at byte {error.start} (0x{bad})"
    return Rejection(DeadLetterReason.UNDECODABLE, detail)


def _decode_telemetry(
    payload: bytes, topic_terminal: str, now_ms: int, max_bytes: int, limits: TimeLimits
) -> Accepted | Rejection:
    if len(payload) > max_bytes:
        return Rejection(DeadLetterReason.OVERSIZED, f"payload of {len(payload)} bytes exceeds {max_bytes}")
    try:
        message = _telemetry_decoder.decode(payload)
    except msgspec.ValidationError as error:
        retried = _with_integral_floats(payload)
        if retried is None:
            return _schema_rejection(error, payload)
        if isinstance(retried, msgspec.ValidationError):
            return _schema_rejection(retried, payload)
        message = retried
    except msgspec.DecodeError as error:
        return _not_utf8_or(payload, f"not valid JSON: {error}")
    null_field = _null_sample_field(payload)
    if null_field is not None:
        return null_field
    if message.seq > MAX_SEQ:
        return Rejection(DeadLetterReason.SCHEMA, f"seq {message.seq} is larger than 2^63-1 - at `$.seq`", "$.seq")
    if message.terminal != topic_terminal:
        return Rejection(
            DeadLetterReason.TOPIC_MISMATCH,
            f"payload terminal {message.terminal!r} does not match topic terminal {topic_terminal!r}",
            "$.terminal",
        )
    newest_ok = now_ms + limits.max_future_ms
    oldest_ok = now_ms - limits.max_age_ms
    for sample in message.samples:  # a loop, not all() over a generator: it runs per message
        if not oldest_ok <= sample.ts <= newest_ok:
            break
    else:
        return Accepted(message)
    kept: list[Sample] = []
    refused: list[Rejection] = []
    for index, sample in enumerate(message.samples):
        if sample.ts > newest_ok:
            refused.append(
                Rejection(
                    DeadLetterReason.FUTURE_TIMESTAMP,
                    f"ts {sample.ts} is {(sample.ts - now_ms) // 1000} s ahead of the receiver clock",
                    f"$.samples[{index}].ts",
                )
            )
        elif sample.ts < oldest_ok:
            refused.append(
                Rejection(
                    DeadLetterReason.STALE_TIMESTAMP,
                    f"ts {sample.ts} is older than the retention",
                    f"$.samples[{index}].ts",
                )
            )
        else:
            kept.append(sample)
    if not kept:
        first = refused[0]
        return Rejection(first.reason, f"every sample refused; first: {first.detail}", first.field)
    return Accepted(msgspec.structs.replace(message, samples=kept), tuple(refused))


def decode_status(payload: bytes, max_bytes: int = 1024) -> TerminalStatus | Rejection:
    """Decode a status payload: ``online``/``offline`` as text or ``{"v": 1, "status": ...}``; never raises."""
    if len(payload) > max_bytes:
        return Rejection(DeadLetterReason.OVERSIZED, f"status payload of {len(payload)} bytes")
    text = payload.strip()
    if text == b"online":
        return "online"
    if text == b"offline":
        return "offline"
    try:
        status = _status_decoder.decode(text)
    except msgspec.ValidationError as error:
        return _schema_rejection(error)
    except msgspec.DecodeError:
        return _not_utf8_or(text, "status must be 'online', 'offline' or JSON")
    except UnicodeDecodeError:
        return _not_utf8_or(text, "not valid UTF-8")
    except RecursionError:
        return _TOO_DEEP
    if status.v != 1:
        return Rejection(DeadLetterReason.UNSUPPORTED_VERSION, f"status version {status.v}", "$.v")
    return status.status
