"""What the gateway does with one MQTT message, without any I/O (pure, fuzzed).

``MessageHandler.handle(topic, payload, now_ms)`` returns what to produce for a message: the
accepted telemetry message (:class:`OutTelemetry`, which its partition's sender encodes, alone or
packed with its neighbours as columns) and encoded records (status, dead letters). Bad input goes
through the :class:`~liftwatch.badinput.BadInputPolicy` (counted and turned into dead letters the
caller produces too). It never raises on input: every byte string
on every topic ends as records, dead letters, or a counted duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

import msgspec
from liftwatch.badinput import BadInputPolicy
from liftwatch.ingest.contract import Accepted, TimeLimits, decode_status, decode_telemetry, parse_topic
from liftwatch.schema import DeadLetter, DeadLetterReason, StatusRecord, TelemetryRecord, encode_record

from .metrics import GatewayMetrics
from .sequence import SequenceTracker, SeqVerdict

SOURCE = "mqtt"


class OutRecord(msgspec.Struct, frozen=True):
    """One encoded Kafka record to produce: logical topic (``status``, ``deadletter``), key, value."""

    topic: str
    key: bytes | None
    value: bytes


class OutTelemetry(msgspec.Struct, frozen=True):
    """An accepted telemetry message for the ``telemetry`` topic (key: the terminal id).

    Left unencoded: the partition's sender writes it as one ``telemetry.v1`` record or packs it
    with the messages sent beside it into one ``telemetry.columns.v1`` record. (The outputs are
    msgspec Structs, made per message at a sixth of a frozen dataclass's cost.)
    """

    record: TelemetryRecord
    key: bytes
    topic: ClassVar[str] = "telemetry"


Out: TypeAlias = OutRecord | OutTelemetry
"""What one MQTT message turns into."""


@dataclass(slots=True)
class HandlerConfig:
    """The gateway settings the pure handler needs."""

    topic_root: str = ""
    max_payload_bytes: int = 256 * 1024
    limits: TimeLimits = field(default_factory=TimeLimits)


class MessageHandler:
    """Decodes, validates, deduplicates and encodes MQTT messages into Kafka records."""

    def __init__(
        self, config: HandlerConfig, policy: BadInputPolicy, metrics: GatewayMetrics, tracker: SequenceTracker
    ) -> None:
        self.config = config
        self.policy = policy
        self.metrics = metrics
        self.tracker = tracker
        self._in_telemetry = metrics.messages_in.labels(kind="telemetry")
        self._in_status = metrics.messages_in.labels(kind="status")
        self._in_other = metrics.messages_in.labels(kind="other")

    def _dead(
        self,
        out: list[Out],
        topic: str,
        reason: DeadLetterReason,
        detail: str,
        payload: bytes,
        terminal: str | None,
    ) -> None:
        letter: DeadLetter = self.policy.refuse(
            source=SOURCE, topic=topic, reason=reason, detail=detail, payload=payload, terminal=terminal
        )
        out.append(OutRecord("deadletter", terminal.encode() if terminal else None, encode_record(letter)))

    def handle(self, topic: str, payload: bytes, now_ms: int) -> list[Out]:
        """What one MQTT message turns into (possibly nothing: a duplicate)."""
        out: list[Out] = []
        parsed = parse_topic(topic, self.config.topic_root)
        if parsed is None:
            self._in_other.inc()
            self._dead(out, topic, DeadLetterReason.BAD_TOPIC, "not {root}lift/v1/{terminal}/{kind}", payload, None)
            return out
        terminal, kind = parsed
        if kind == "status":
            self._in_status.inc()
            try:
                status = decode_status(payload)
            except ValueError as error:  # invalid UTF-8 inside a JSON string escapes the contract decoder
                self._dead(out, topic, DeadLetterReason.UNDECODABLE, f"not valid UTF-8: {error}", payload, terminal)
                return out
            if isinstance(status, str):
                status_record = StatusRecord(terminal=terminal, status=status, received_ms=now_ms)
                out.append(OutRecord("status", terminal.encode(), encode_record(status_record)))
            else:
                self._dead(out, topic, status.reason, status.detail, payload, terminal)
            return out
        self._in_telemetry.inc()
        try:
            decoded = decode_telemetry(
                payload, terminal, now_ms, max_bytes=self.config.max_payload_bytes, limits=self.config.limits
            )
        except ValueError as error:  # UnicodeDecodeError from msgspec on invalid UTF-8 inside a string
            self._dead(out, topic, DeadLetterReason.UNDECODABLE, f"not valid UTF-8: {error}", payload, terminal)
            return out
        if not isinstance(decoded, Accepted):
            self._dead(out, topic, decoded.reason, decoded.detail, payload, terminal)
            return out
        message = decoded.message
        seen = self.tracker.observe(terminal, message.seq)
        if seen.verdict is SeqVerdict.DUPLICATE:
            self.metrics.duplicates.inc()
            return out
        if seen.verdict is SeqVerdict.RESTART:
            self.metrics.restarts.inc()
        elif seen.gap:
            self.metrics.seq_gaps.inc(seen.gap)
        for refused in decoded.refused:
            detail = f"{refused.field}: {refused.detail}" if refused.field else refused.detail
            self._dead(out, topic, refused.reason, detail, payload, terminal)
        record = TelemetryRecord(terminal=terminal, seq=message.seq, received_ms=now_ms, samples=message.samples)
        out.append(OutTelemetry(record, terminal.encode()))
        return out
