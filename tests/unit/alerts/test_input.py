"""What the alert service refuses: fault records that break the contract, settings naming nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from liftwatch.alerts import service
from liftwatch.alerts.errors import AlertsConfigError
from liftwatch.alerts.incidents import CHANGE_KINDS, check_event
from liftwatch.config import AlertsSettings
from liftwatch.schema import DeadLetterReason, FaultCode, FaultEvent, Severity, fault_event_id

NOW_MS = int(datetime(2026, 3, 2, 8, 0, tzinfo=UTC).timestamp() * 1000)
R = DeadLetterReason


def sound(**changes: object) -> FaultEvent:
    since = NOW_MS - 30_000
    event = FaultEvent(
        event_id=fault_event_id("term-1", "trapped_passenger", "raised", since),
        transition="raised",
        code=FaultCode.TRAPPED_PASSENGER,
        severity=Severity.CRITICAL,
        terminal="term-1",
        registration_code="31104403000000000001",
        since_ms=since,
        at_ms=NOW_MS - 10_000,
    )
    return msgspec.structs.replace(event, **changes)


@pytest.mark.parametrize(
    ("event", "reason", "detail"),
    [
        (sound(), None, ""),
        # A forged id could shadow an operator action's or a deadline's idempotency key.
        (sound(event_id="action:api:op1:req-1"), R.SCHEMA, "event_id"),
        (sound(event_id=fault_event_id("term-1", "trapped_passenger", "raised", 5)), R.SCHEMA, "event_id"),
        # A downgraded severity would keep the emergency centre out of it.
        (sound(severity=Severity.MINOR), R.SCHEMA, "severity"),
        (sound(terminal=""), R.SCHEMA, "terminal"),
        (sound(terminal="t" * 65), R.SCHEMA, "terminal"),
        (sound(terminal="term\x00-1"), R.SCHEMA, "terminal"),
        # Out of datetime's range: it used to stall the whole batch, retried forever.
        (sound(at_ms=2**62), R.FUTURE_TIMESTAMP, "at_ms"),
        (sound(since_ms=-(2**62)), R.STALE_TIMESTAMP, "since_ms"),
        (sound(at_ms=NOW_MS + 25 * 3600 * 1000), R.FUTURE_TIMESTAMP, "at_ms"),
        (sound(since_ms=0), R.STALE_TIMESTAMP, "since_ms"),
        # msgpack carries what JSON (jsonb) cannot: it used to stall the batch, retried forever.
        (sound(evidence={"raw": b"\x01"}), R.SCHEMA, "evidence"),
        (sound(evidence={"speed": float("nan")}), R.SCHEMA, "evidence"),
        (sound(evidence={"ext": msgspec.msgpack.Ext(1, b"x")}), R.SCHEMA, "evidence"),
        (sound(evidence={"nested": {"speed": 1.5, "doors": [1, 2]}}), None, ""),
    ],
)
def test_check_event(event: FaultEvent, reason: DeadLetterReason | None, detail: str) -> None:
    refused = check_event(event, now_ms=NOW_MS)
    if reason is None:
        assert refused is None
    else:
        assert refused is not None and refused[0] is reason and detail in refused[1]


def test_an_old_stream_replayed_is_not_refused() -> None:
    """Event time, not wall-clock time: replaying last year's faults is allowed."""
    year_ms = 365 * 24 * 3600 * 1000
    assert check_event(sound(), now_ms=NOW_MS + year_ms) is None


def test_settings_naming_unknown_codes_or_kinds_are_refused() -> None:
    with pytest.raises(AlertsConfigError, match="traped_passenger"):
        service.deadline_policy(AlertsSettings(deadline_codes=["traped_passenger"]))
    with pytest.raises(AlertsConfigError, match="overspeeed"):
        service.deadline_policy(AlertsSettings(code_deadlines_s={"overspeeed": (60, None)}))
    with pytest.raises(AlertsConfigError, match="> 0"):
        service.deadline_policy(AlertsSettings(code_deadlines_s={"overspeed": (0, None)}))
    with pytest.raises(AlertsConfigError, match="renotify"):
        service.routing_policy(AlertsSettings(quiet_kinds=["updated", "renotify"]))
    assert {"updated", "renotified", "escalated", "acknowledged", "false_alarm"} <= CHANGE_KINDS
    assert "detected" not in CHANGE_KINDS  # a status nothing leads to


def test_the_service_refuses_to_start_on_such_settings() -> None:
    from liftwatch.alerts.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [], env={"LIFTWATCH_DEADLINE_CODES": '["trapped_pasenger"]'})
    assert result.exit_code == 2 and "trapped_pasenger" in result.output


def test_deadline_settings_map_onto_the_policy() -> None:
    policy = service.deadline_policy(
        AlertsSettings(
            deadline_codes=["trapped_passenger", "overspeed"],
            code_deadlines_s={"overspeed": (600, None)},
            auto_escalation_limit=3,
            renotify_interval_s=30,
        )
    )
    assert (policy.codes["trapped_passenger"].dispatch_s, policy.codes["trapped_passenger"].arrival_s) == (300, 1800)
    assert (policy.codes["overspeed"].dispatch_s, policy.codes["overspeed"].arrival_s) == (600, None)
    assert policy.auto_escalation_limit == 3 and policy.renotify_s == 30
    routing = service.routing_policy(AlertsSettings(emergency_severities=["critical", "major"], quiet_kinds=[]))
    assert routing.emergency_severities == {"critical", "major"} and routing.quiet_kinds == frozenset()


async def test_any_decoder_failure_is_a_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the decoder raises on a record, it is that record's fault: refused, counted, never fatal."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    def explode(data: bytes) -> FaultEvent:
        raise RecursionError("maximum recursion depth exceeded while deserializing an object")

    monkeypatch.setattr(service, "decode_fault_event", explode)
    registry = CollectorRegistry()
    alerts = service.AlertService(AlertsSettings(topic_prefix="t."), registry)
    try:
        assert alerts._decode(SimpleNamespace(value=b"\x91" * 5000, key=b"term-1")) is None
    finally:
        await alerts.webhooks.close()
    labels = {"source": "kafka:t.faults", "reason": "undecodable"}
    assert registry.get_sample_value("liftwatch_dead_letters_total", labels) == 1
    assert alerts.dead[0].terminal is None and "RecursionError" in alerts.dead[0].detail
