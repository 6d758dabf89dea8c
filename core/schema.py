"""Every message liftwatch exchanges, defined once.

* MQTT payloads from terminals (``lift/v1/{terminal}/telemetry`` and ``.../status``), per
  ``docs/protocol/telemetry.schema.json`` (version 1).
* Kafka records between processes: ``telemetry``, ``status``, ``deadletter``, ``faults``,
  ``incidents``. Kafka records are msgpack-encoded structs tagged with their type and version
  (``"type": "fault.v1"``); a consumer rejects a version it does not know instead of guessing.
  Documented in ``docs/protocol/kafka.md`` (a test keeps the page and these structs in step).

All structs are frozen and slotted. Decoding is strict: unknown fields, wrong types and
out-of-range values are rejected with the JSON path of the offending field.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

import msgspec
from liftwatch.ids import TERMINAL_ID
from msgspec import Meta, Struct

# --- terminal -> platform (MQTT) --------------------------------------------------------------

# msgspec searches with Python's `re`, whose `$` would also match before a final newline.
TerminalId: TypeAlias = Annotated[str, Meta(pattern=TERMINAL_ID.search_pattern)]
Mode: TypeAlias = Literal["normal", "inspection", "maintenance", "fire", "emergency_power", "out_of_service"]
Direction: TypeAlias = Literal["up", "down", "stop"]
DoorState: TypeAlias = Literal["open", "opening", "closing", "closed"]

MODES: tuple[Mode, ...] = ("normal", "inspection", "maintenance", "fire", "emergency_power", "out_of_service")
DIRECTIONS: tuple[Direction, ...] = ("up", "down", "stop")
DOOR_STATES: tuple[DoorState, ...] = ("open", "opening", "closing", "closed")


class Sample(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One reading of an elevator's state, taken by its terminal."""

    ts: int
    """Sample time in milliseconds since the Unix epoch (UTC), terminal clock."""
    mode: Mode
    """Service mode of the controller."""
    floor: Annotated[int, Meta(ge=-10, le=200)]
    """Floor the car is at or passing (negative = basement)."""
    door_zone: bool
    """Car is inside the unlocking (levelling) zone of a landing."""
    direction: Direction
    """Travel direction."""
    speed: Annotated[float, Meta(ge=0, le=25)]
    """Car speed magnitude, m/s."""
    door: DoorState
    """Car door state."""
    occupied: bool
    """Passenger presence in the car."""
    safety_circuit: bool
    """True = safety chain closed (normal); False = a safety device tripped."""
    door_lock: bool | None = None
    """True = all door locks closed; None = the terminal does not report it."""
    alarm_button: bool = False
    """Car alarm button pressed at this sample."""
    power: bool = True
    """True = mains present; False = the terminal runs on its battery."""
    load_pct: Annotated[float, Meta(ge=0, le=200)] | None = None
    """Car load in percent of rated load; None = not reported."""
    limit_up: bool = False
    """Upper final limit switch tripped."""
    limit_down: bool = False
    """Lower final limit switch tripped."""


class TelemetryMessage(Struct, frozen=True, forbid_unknown_fields=True):
    """Payload of ``lift/v1/{terminal}/telemetry``: 1 to 100 samples of one terminal, oldest first."""

    v: Literal[1]
    """Contract version."""
    terminal: TerminalId
    """Terminal id; must equal the topic's ``{terminal}``."""
    seq: Annotated[int, Meta(ge=0)]
    """Message sequence number, +1 per message, back to 0 after a terminal reboot."""
    samples: Annotated[list[Sample], Meta(min_length=1, max_length=100)]
    """The samples, oldest first."""


TerminalStatus: TypeAlias = Literal["online", "offline"]


# --- platform-internal records (Kafka) --------------------------------------------------------


class TelemetryRecord(Struct, frozen=True, tag="telemetry.v1"):
    """Kafka ``telemetry`` record (key = terminal id): one accepted MQTT message."""

    terminal: str
    """Terminal id from the topic and payload."""
    seq: int
    """The message's sequence number."""
    received_ms: int
    """Gateway wall-clock time of receipt, ms since the epoch (for latency and offline rules)."""
    samples: list[Sample]
    """The accepted samples, as sent."""


class TelemetryColumns(Struct, frozen=True, tag="telemetry.columns.v1"):
    """Kafka ``telemetry`` record carrying many accepted MQTT messages of one partition as packed
    arrays (``liftwatch.columnar`` packs and unpacks it; the layout is its docstring's).

    Key: none (the gateway chooses the partition: the one of each of its terminals). The messages
    are in the order the gateway received them.
    """

    terminals: list[TerminalId]
    """Distinct terminal ids of the record; ``terminal`` indexes this list."""
    terminal: bytes
    """Per message: index into ``terminals`` (u4)."""
    seq: bytes
    """Per message: its sequence number (i8)."""
    received_ms: bytes
    """Per message: gateway wall-clock time of receipt (i8)."""
    count: bytes
    """Per message: how many samples it holds (u2, 1-100)."""
    ts: bytes
    """Per sample, in message order: sample time, ms since the epoch (i8)."""
    floor: bytes
    """Per sample: floor (i2)."""
    speed: bytes
    """Per sample: speed, m/s (f8)."""
    load_pct: bytes
    """Per sample: car load in percent, NaN when not reported (f8)."""
    code: bytes
    """Per sample: flags, mode, door, direction and door lock packed in a u2 (``liftwatch.columnar.CODE_BITS``)."""


class StatusRecord(Struct, frozen=True, tag="status.v1"):
    """Kafka ``status`` record (key = terminal id): a terminal's online/offline announcement."""

    terminal: str
    """Terminal id from the topic."""
    status: TerminalStatus
    """``online`` or ``offline`` (``offline`` is usually the MQTT last will)."""
    received_ms: int
    """Gateway wall-clock time of receipt."""


class DeadLetterReason(enum.StrEnum):
    """Why an input was rejected; the ``reason`` label of the dead-letter counters."""

    UNDECODABLE = "undecodable"
    SCHEMA = "schema"
    OVERSIZED = "oversized"
    TOPIC_MISMATCH = "topic_mismatch"
    BAD_TOPIC = "bad_topic"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    UNSUPPORTED_VERSION = "unsupported_version"


class DeadLetter(Struct, frozen=True, tag="deadletter.v1"):
    """Kafka ``deadletter`` record: an input that was refused, with the reason and the raw bytes."""

    source: str
    """Where it came from: ``mqtt``, ``kafka:<topic>``, ``csv``, ``api``."""
    topic: str
    """MQTT topic or Kafka topic of the input."""
    reason: DeadLetterReason
    """Machine-readable reason."""
    detail: str
    """Human-readable detail (which field, why)."""
    received_ms: int
    """Wall-clock time of refusal."""
    payload: bytes
    """The raw input, truncated to 4 KiB."""
    terminal: str | None = None
    """Terminal id if it could be read from the topic."""


class Severity(enum.StrEnum):
    """Severity of a fault, from the catalog."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"


class FaultCode(enum.StrEnum):
    """Fault codes of the catalog (docs/protocol/faults.md)."""

    TRAPPED_PASSENGER = "trapped_passenger"
    OVERSPEED = "overspeed"
    DOOR_OPEN_WHILE_MOVING = "door_open_while_moving"
    OVERTRAVEL_TOP = "overtravel_top"
    OVERTRAVEL_BOTTOM = "overtravel_bottom"
    STOPPED_OUTSIDE_DOOR_ZONE = "stopped_outside_door_zone"
    SAFETY_CIRCUIT_OPEN = "safety_circuit_open"
    DOOR_REOPEN_LOOP = "door_reopen_loop"
    DOOR_HELD_OPEN = "door_held_open"
    POWER_FAILURE = "power_failure"
    ALARM_BUTTON = "alarm_button"
    TERMINAL_OFFLINE = "terminal_offline"
    UNREGISTERED_TERMINAL = "unregistered_terminal"


FAULT_SEVERITY: dict[FaultCode, Severity] = {
    FaultCode.TRAPPED_PASSENGER: Severity.CRITICAL,
    FaultCode.OVERSPEED: Severity.CRITICAL,
    FaultCode.DOOR_OPEN_WHILE_MOVING: Severity.CRITICAL,
    FaultCode.OVERTRAVEL_TOP: Severity.CRITICAL,
    FaultCode.OVERTRAVEL_BOTTOM: Severity.CRITICAL,
    FaultCode.STOPPED_OUTSIDE_DOOR_ZONE: Severity.MAJOR,
    FaultCode.SAFETY_CIRCUIT_OPEN: Severity.MAJOR,
    FaultCode.DOOR_REOPEN_LOOP: Severity.MAJOR,
    FaultCode.DOOR_HELD_OPEN: Severity.MINOR,
    FaultCode.POWER_FAILURE: Severity.MAJOR,
    FaultCode.ALARM_BUTTON: Severity.MAJOR,
    FaultCode.TERMINAL_OFFLINE: Severity.MINOR,
    FaultCode.UNREGISTERED_TERMINAL: Severity.MINOR,
}

FaultTransition: TypeAlias = Literal["raised", "cleared"]


class FaultEvent(Struct, frozen=True, tag="fault.v1"):
    """Kafka ``faults`` record (key = terminal id): a fault condition was raised or cleared."""

    event_id: str
    """Deterministic id ``{terminal}:{code}:{transition}:{since_ms}``: the idempotency key downstream."""
    transition: FaultTransition
    """``raised`` when the condition has held long enough, ``cleared`` when it has been false long enough."""
    code: FaultCode
    """Catalog code."""
    severity: Severity
    """Catalog severity."""
    terminal: str
    """Terminal that reported the samples."""
    registration_code: str | None
    """Elevator registration code (None for an unregistered terminal)."""
    since_ms: int
    """Event time the condition started (raise) or stopped (clear) being true."""
    at_ms: int
    """Event time of the sample that completed the hold (raise) or the clear period."""
    evidence: dict[str, Any] = {}
    """Sample values that justify the event (speed, floor, door, counts, ...)."""


class IncidentStatus(enum.StrEnum):
    """Status of an incident: the ``incidents.status`` column and the ``status`` of ``incident.v1``.

    The names are defined here, beside ``FaultCode`` and ``Severity``, because every ``incident.v1``
    record carries one and this core module cannot import the alert service. What the statuses mean
    (which are open, what leads where, the SQL conditions built from them) is
    ``liftwatch.alerts.lifecycle``, in the order declared here.
    """

    DETECTED = "detected"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    ARRIVED = "arrived"
    RELEASED = "released"
    CLOSED = "closed"
    FALSE_ALARM = "false_alarm"
    AUTO_CLEARED = "auto_cleared"


class IncidentChange(Struct, frozen=True, tag="incident.v1"):
    """Kafka ``incidents`` record (key = registration code): one change of one incident."""

    change_id: int
    """Monotonic id of the change (the audit trail row); SSE clients resume from it."""
    incident_id: int
    """Incident id."""
    kind: str
    """What happened: ``opened``, ``updated``, ``condition_cleared``, a transition name, ``deadline_missed``, ..."""
    status: IncidentStatus
    """Status after the change."""
    code: FaultCode
    """Fault code of the incident."""
    severity: Severity
    """Severity of the incident."""
    registration_code: str | None
    """Elevator registration code."""
    terminal: str | None
    """Terminal id."""
    maintainer: str | None
    """Name of the maintenance firm of the incident (for display and routing; access control uses the id)."""
    district: str | None
    """District of the elevator."""
    at_ms: int
    """Wall-clock time of the change."""
    actor: str
    """Who caused it: ``system`` or a user name."""
    note: str = ""
    """Free-text note given with the change."""
    maintainer_id: int | None = None
    """Id of the maintenance firm of the incident: the feed's access control compares ids, never names
    (None in records written before it existed: then only roles that see every firm get the change)."""


KafkaRecord: TypeAlias = TelemetryRecord | TelemetryColumns | StatusRecord | DeadLetter | FaultEvent | IncidentChange

_record_encoder = msgspec.msgpack.Encoder()


def encode_record(record: KafkaRecord) -> bytes:
    """Encode a Kafka record (msgpack, tagged with its type and version)."""
    return _record_encoder.encode(record)


_telemetry_record_decoder = msgspec.msgpack.Decoder(TelemetryRecord)
_telemetry_decoder = msgspec.msgpack.Decoder(TelemetryRecord | TelemetryColumns)
_status_record_decoder = msgspec.msgpack.Decoder(StatusRecord)
_dead_letter_decoder = msgspec.msgpack.Decoder(DeadLetter)
_fault_decoder = msgspec.msgpack.Decoder(FaultEvent)
_incident_decoder = msgspec.msgpack.Decoder(IncidentChange)


_Record = TypeVar("_Record")


def _decode(decoder: msgspec.msgpack.Decoder[_Record], data: bytes) -> _Record:
    try:
        return decoder.decode(data)
    except UnicodeDecodeError as error:
        # msgspec before 0.23 reports a bad byte inside a string as UnicodeDecodeError (0.23 raises
        # a DecodeError itself); callers catch msgspec's errors only.
        raise msgspec.DecodeError(f"not valid UTF-8 inside a string: {error.reason}") from error
    except RecursionError as error:  # deeply nested arrays or maps
        raise msgspec.DecodeError("nested too deeply") from error


def decode_telemetry_record(data: bytes) -> TelemetryRecord:
    """Decode a ``telemetry`` Kafka record; raises only msgspec.DecodeError / ValidationError."""
    return _decode(_telemetry_record_decoder, data)


def decode_telemetry(data: bytes) -> TelemetryRecord | TelemetryColumns:
    """Decode a ``telemetry`` Kafka record of either form (one message, or many as columns)."""
    return _decode(_telemetry_decoder, data)


def decode_status_record(data: bytes) -> StatusRecord:
    """Decode a ``status`` Kafka record (same errors)."""
    return _decode(_status_record_decoder, data)


def decode_dead_letter(data: bytes) -> DeadLetter:
    """Decode a ``deadletter`` Kafka record (same errors)."""
    return _decode(_dead_letter_decoder, data)


def decode_fault_event(data: bytes) -> FaultEvent:
    """Decode a ``faults`` Kafka record (same errors)."""
    return _decode(_fault_decoder, data)


def decode_incident_change(data: bytes) -> IncidentChange:
    """Decode an ``incidents`` Kafka record (same errors)."""
    return _decode(_incident_decoder, data)


def fault_event_id(terminal: str, code: str, transition: str, since_ms: int) -> str:
    """The deterministic id of a fault event (same stream in -> same ids out)."""
    return f"{terminal}:{code}:{transition}:{since_ms}"
