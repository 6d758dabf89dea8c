"""Thresholds files and ``--set``: validated, with messages naming the offending key; terminal_offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from liftwatch.rules.errors import RulesConfigError
from liftwatch.rules.params import TerminalInfo
from liftwatch.rules.processor import RuleProcessor
from liftwatch.rules.thresholds import build, load, with_settings
from liftwatch.schema import StatusRecord, TelemetryRecord

from tests.fixtures.rules import idle


def test_defaults_are_the_catalog() -> None:
    t = load(None)
    assert t.default.trapped_passenger.between_floors_hold_s == 20
    assert t.default.trapped_passenger.at_landing_hold_s == 60
    assert t.default.overspeed.factor == 1.15 and t.default.overspeed.min_samples == 2
    assert t.default.door_reopen_loop.reversals == 5 and t.default.door_reopen_loop.window_s == 60
    assert t.default.overtravel_top.clear_after_s == 0 and t.default.power_failure.clear_after_s == 10
    assert t.notation.stopped_below_mps == 0.05 and t.notation.moving_from_mps == 0.1


def test_yaml_file_with_model_overrides(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  door_held_open: {hold_s: 300}\nmodels:\n  GeN2:\n    overspeed: {factor: 1.2}\n")
    t = load(path)
    assert t.default.door_held_open.hold_s == 300
    assert t.for_model("GeN2").overspeed.factor == 1.2
    assert t.for_model("GeN2").door_held_open.hold_s == 300, "model overrides start from the fleet-wide rules"
    assert t.for_model("other").overspeed.factor == 1.15


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("rules:\n  trapped: {hold_s: 3}\n", ".yaml", "unknown rule 'trapped'"),
        ("rules:\n  overspeed: {factr: 1.2}\n", ".yaml", "overspeed.factr"),
        ("rules:\n  overspeed: {factor: 0.9}\n", ".yaml", "overspeed.factor"),
        ("models:\n  X:\n    alarm_button: {hold_s: -1}\n", ".yaml", "models.X"),
        ("rules: [1, 2]\n", ".yaml", "rules"),
        ("{not json", ".json", "not valid JSON"),
        ("- a\n- b\n", ".yaml", "expected a mapping"),
        ("surprise: 1\n", ".yaml", "surprise"),
    ],
)
def test_bad_files_fail_with_a_message_naming_the_key(tmp_path: Path, text: str, suffix: str, message: str) -> None:
    path = tmp_path / f"rules{suffix}"
    path.write_text(text)
    with pytest.raises(RulesConfigError, match=None) as caught:
        load(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RulesConfigError, match="cannot read"):
        load(tmp_path / "nope.yaml")


def test_set_assignments() -> None:
    t = with_settings(
        build({"models": {"M": {}}}), ["trapped_passenger.between_floors_hold_s=30", "notation.stopped_below_mps=0.04"]
    )
    assert t.default.trapped_passenger.between_floors_hold_s == 30
    assert t.for_model("M").trapped_passenger.between_floors_hold_s == 30
    assert t.notation.stopped_below_mps == 0.04
    for bad in ("trapped_passenger=3", "nope.x=1", "overspeed.factor=fast"):
        with pytest.raises(RulesConfigError):
            with_settings(t, [bad])


def test_terminal_offline_in_processing_time_and_cleared_by_the_next_message() -> None:
    processor = RuleProcessor(build())
    processor.set_registry({"E1": TerminalInfo("31000000000000000001", 1.0, 0, 9)})
    sample = idle(1_000, floor=1)
    processor.process(
        [TelemetryRecord("E1", 0, 1_000_000, [sample]), TelemetryRecord("STRANGER", 0, 1_000_000, [sample])]
    )
    assert processor.offline(1_120_000) == []
    processor.status([StatusRecord("E1", "offline", 1_030_000)])
    [raised] = processor.offline(1_120_001)
    assert (raised.code, raised.transition, raised.since_ms, raised.at_ms) == (
        "terminal_offline",
        "raised",
        1_000_000,
        1_120_001,
    )
    assert raised.evidence["last_will"] is True
    assert processor.offline(1_200_000) == [], "raised once"
    [cleared] = processor.seen([TelemetryRecord("E1", 1, 1_300_000, [sample])])
    assert (cleared.transition, cleared.since_ms) == ("cleared", 1_300_000)


def test_engine_refuses_to_start_with_a_bad_thresholds_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from liftwatch.rules.cli import app
    from typer.testing import CliRunner

    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  overspeed: {factor: 0.5}\n")
    monkeypatch.setenv("LIFTWATCH_RULES_OVERRIDES", str(path))
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2
    assert "overspeed.factor" in result.output and str(path) in result.output


def test_a_changed_registry_takes_effect_on_the_next_batch() -> None:
    processor = RuleProcessor(build(), lateness_ms=0)
    processor.set_registry({})  # not fitted yet: only unregistered_terminal

    def fast(t0: int, seq: int) -> list[str]:
        samples = [
            idle(t0 + 300 * i, floor=5, door_zone=False, direction="up", speed=1.5, occupied=True) for i in range(4)
        ]
        events, _ = processor.process([TelemetryRecord("E9", seq, 0, samples)], flush=True)
        return [f"{e.code}:{e.transition}" for e in events]

    assert fast(0, 0) == ["unregistered_terminal:raised"]
    processor.set_registry({"E9": TerminalInfo("31000000000000000009", 1.0, 0, 9)})
    assert fast(100_000, 1) == ["overspeed:raised"]
    processor.set_registry({"E9": TerminalInfo("31000000000000000009", 2.0, 0, 9)})  # re-rated elevator
    assert fast(200_000, 2) == []
    assert fast(210_000, 3) == ["overspeed:cleared"], "false for 10 s under the new rated speed"


def test_fault_events_are_keyed_by_elevator() -> None:
    from liftwatch.rules.service import fault_key

    processor = RuleProcessor(build(), lateness_ms=0)
    processor.set_registry({"E1": TerminalInfo("31000000000000000001", 1.0, 0, 9)})
    sample = idle(1_000, floor=1, limit_up=True)
    events, _ = processor.process(
        [TelemetryRecord("E1", 0, 0, [sample]), TelemetryRecord("STRANGER", 0, 0, [sample])], flush=True
    )
    assert sorted((e.code.value, fault_key(e)) for e in events) == [
        ("overtravel_top", b"31000000000000000001"),
        ("unregistered_terminal", b"STRANGER"),
    ]
