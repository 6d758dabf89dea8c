"""Identifier patterns: one definition, and every entry point refuses a trailing newline."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import msgspec
import pytest
from liftwatch import ids
from liftwatch.alerts.incidents import check_event
from liftwatch.api.models import RegistrationCode, RescueCode, TerminalId
from liftwatch.ingest.contract import parse_topic
from liftwatch.ingest.credentials import is_terminal_id
from liftwatch.registry.model import REGISTRY_COLUMNS, row_cells
from liftwatch.registry.parse import parse_registry
from liftwatch.schema import FaultCode, FaultEvent, Severity, TelemetryMessage, fault_event_id
from liftwatch.simulators.registry import generate_registry
from pydantic import TypeAdapter, ValidationError

NOW_MS = int(datetime(2026, 3, 2, 8, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (ids.TERMINAL_ID, ["T1", "term_01-a", "x" * 64], ["", "x" * 65, "T.1", "T 1", "T1\n", "\nT1"]),
        (ids.REGISTRATION_CODE, ["31104403000000000001"], ["3110440300000000000", "3110440300000000000a"]),
        (ids.RESCUE_CODE, ["12345", "123456"], ["1234", "1234567", "12345\n", "1234a"]),
    ],
)
def test_each_pattern_matches_whole_identifiers_only(pattern: ids.IdPattern, good: list[str], bad: list[str]) -> None:
    assert all(pattern.matches(text) for text in good)
    assert not any(pattern.matches(text) for text in bad)
    assert not any(pattern.matches(text + "\n") for text in good)


def _api_refuses(annotation: object, text: str) -> bool:
    try:
        TypeAdapter(annotation).validate_python(text)
    except ValidationError:
        return True
    return False


def _registry_reads(column: str, cell: str) -> object:
    """The value a registry file with ``cell`` in ``column`` gives, or None when the file is refused."""
    row = generate_registry(1, 1)[0]
    cells = row_cells(row)
    cells[REGISTRY_COLUMNS.index(column)] = cell
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([REGISTRY_COLUMNS, cells])
    parsed = parse_registry(buffer.getvalue())
    return None if parsed.errors else getattr(parsed.rows[0], column)


def _fault_refused(terminal: str) -> bool:
    event = FaultEvent(
        event_id=fault_event_id(terminal, "trapped_passenger", "raised", NOW_MS - 30_000),
        transition="raised",
        code=FaultCode.TRAPPED_PASSENGER,
        severity=Severity.CRITICAL,
        terminal=terminal,
        registration_code="31104403000000000001",
        since_ms=NOW_MS - 30_000,
        at_ms=NOW_MS - 10_000,
    )
    return check_event(event, now_ms=NOW_MS) is not None


def _payload_refused(terminal: str) -> bool:
    sample = {"ts": NOW_MS, "mode": "normal", "floor": 1, "door_zone": True, "direction": "stop", "speed": 0.0,
              "door": "closed", "occupied": False, "safety_circuit": True}  # fmt: skip
    payload = {"v": 1, "terminal": terminal, "seq": 0, "samples": [sample]}
    try:
        msgspec.convert(payload, TelemetryMessage)
    except msgspec.ValidationError as error:
        return "$.terminal" in str(error)
    return False


def test_a_trailing_newline_is_refused_at_every_entry() -> None:
    assert not is_terminal_id("T1\n")  # MQTT credentials
    assert parse_topic("lift/v1/T1\n/telemetry") is None  # MQTT topics
    assert _payload_refused("T1\n")  # MQTT payloads
    assert _fault_refused("T1\n")  # fault events reaching the alert service
    assert _api_refuses(TerminalId, "T1\n")  # HTTP paths, queries and bodies
    assert _api_refuses(RegistrationCode, "31104403000000000001\n")
    assert _api_refuses(RescueCode, "12345\n")
    # Registry files trim every cell (docs/registry.md), so the id stored is the bare one.
    assert _registry_reads("terminal_id", "T1\n") == "T1"
    assert _registry_reads("terminal_id", "T\n1") is None
    assert _registry_reads("registration_code", "3110440300000000000\n1") is None
    assert _registry_reads("rescue_code", "1234\n5") is None
    # ... and the same well-formed ids pass everywhere.
    assert is_terminal_id("T1") and parse_topic("lift/v1/T1/telemetry") == ("T1", "telemetry")
    assert not _payload_refused("T1") and not _fault_refused("T1")
    assert not _api_refuses(TerminalId, "T1") and not _api_refuses(RegistrationCode, "31104403000000000001")
