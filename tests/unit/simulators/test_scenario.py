"""Scenario files, ground-truth log, bad-input injection and batching of the fleet simulator."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.ingest.contract import Accepted, Rejection, decode_telemetry, parse_topic
from liftwatch.schema import DeadLetterReason, FaultCode, Sample
from liftwatch.simulators.errors import ScenarioError
from liftwatch.simulators.faults import (
    BadInputInjection,
    FaultEntry,
    FaultInjection,
    Scenario,
    load_scenario,
    random_faults,
    read_truth,
    resolve_scenario,
    truth_line,
)
from liftwatch.simulators.fleet import ElevatorSpec
from liftwatch.simulators.stream import SimulationConfig, simulate_fleet

from tests.fixtures.simulators import START_MS, samples_by_terminal, small_fleet

SCENARIO = """
window_s: 600
faults:
  - code: trapped_passenger
    variant: at_landing
    elevator: SIMT0001
    at_s: 30
    duration_s: 90
  - code: overspeed
    elevator: "31010000000000000005"
    at_s: 45
  - code: alarm_button
    count: 3
  - code: unregistered_terminal
    at_s: 100
    duration_s: 60
bad_input:
  - kind: malformed_json
    count: 2
  - kind: oversized
    at_s: 20
"""


def test_scenario_resolves_deterministically(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    specs = small_fleet(8)
    first = resolve_scenario(load_scenario(path), specs, 3600, np.random.default_rng(1))
    again = resolve_scenario(load_scenario(path), specs, 3600, np.random.default_rng(1))
    assert first == again
    faults, bad = first
    assert [f.code for f in faults].count(FaultCode.ALARM_BUTTON) == 3
    trapped = faults[0]
    assert (trapped.elevator, trapped.variant, trapped.at_s, trapped.duration_s) == (1, "at_landing", 30.0, 90.0)
    assert faults[1].elevator == 5 and faults[1].duration_s == 2.0  # catalog default
    assert all(0 <= f.at_s < 600 for f in faults)
    assert sorted(b.kind for b in bad) == ["malformed_json", "malformed_json", "oversized"]


def test_scenario_json_is_accepted_too(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"faults": [{"code": "power_failure", "elevator": 0, "at_s": 5}]}')
    faults, _ = resolve_scenario(load_scenario(path), small_fleet(2), 60, np.random.default_rng(0))
    assert faults == [FaultInjection(FaultCode.POWER_FAILURE, 5.0, 0, 30.0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("faults: [{code: door_held_open, elevator: 0, duration_s: 100}]", "below 135"),
        ("faults: [{code: power_failure, elevator: NOPE}]", "unknown elevator"),
        ("faults: [{code: overspeed_xx}]", "overspeed_xx"),
        ("faults: [{code: alarm_button, colour: red}]", "colour"),
        ("faults: [{code: power_failure, variant: at_landing, elevator: 0}]", "variant"),
        ("faults: [{code: alarm_button, at_s: -5}]", r"\$\.faults\[0\]\.at_s"),
        ("faults: [{code: alarm_button, at_s: .nan}]", r"\$\.faults\[0\]\.at_s"),
        ("faults: [{code: alarm_button, at_s: .inf}]", r"\$\.faults\[0\]\.at_s"),
        ("faults: [{code: alarm_button, duration_s: .nan}]", "duration_s"),
        ("faults: [{code: alarm_button, count: 0}]", "count"),
        ("faults: [{code: alarm_button, count: 100000000}]", "count"),
        ("faults: [{code: door_reopen_loop, reversals: 3}]", "at least 5 reversals"),
        ("window_s: -10\nfaults: [{code: alarm_button}]", "window_s"),
        ("bad_input: [{kind: oversized, at_s: -1}]", "bad_input"),
        ("bad_input: [{kind: gibberish}]", "gibberish"),
    ],
)
def test_bad_scenarios_are_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        resolve_scenario(load_scenario(path), small_fleet(2), 60, np.random.default_rng(0))


def test_overspeed_only_on_elevators_that_can_reach_it() -> None:
    low = ElevatorSpec("LOW", "31010000000000000099", 2.5, 1, 2)  # two landings: never reaches 1.15x rated
    specs = [*small_fleet(3), low]
    faults = random_faults(specs, np.random.default_rng(3), 40, 3600, codes=[FaultCode.OVERSPEED])
    assert len(faults) == 40 and 3 not in {f.elevator for f in faults}
    with pytest.raises(ScenarioError, match="cannot show it"):
        resolve_scenario(
            Scenario(faults=[FaultEntry(FaultCode.OVERSPEED, elevator="LOW")]), specs, 60, np.random.default_rng(0)
        )


def test_ground_truth_matches_the_timeline_and_round_trips(tmp_path: Path) -> None:
    specs = small_fleet(10)
    faults = random_faults(specs, np.random.default_rng(9), 10, 900)
    run = simulate_fleet(specs, start_ms=START_MS, duration_s=1800, seed=9, faults=faults)
    list(run)
    assert len(run.truth) == len(faults)
    expected = sorted(
        (specs[f.elevator].registration_code, f.code, START_MS + round(f.at_s * 1000))
        for f in faults
        if f.elevator is not None
    )
    got = sorted((r.elevator, r.code, r.scheduled_ms) for r in run.truth)
    assert got == expected
    for record in run.truth:
        assert record.scheduled_ms <= record.start_ms <= record.scheduled_ms + 600_000
        assert record.end_ms is not None and record.end_ms > record.start_ms
    path = tmp_path / "truth.jsonl"
    path.write_bytes(b"".join(truth_line(r) for r in run.truth))
    assert read_truth(path) == run.truth


def test_every_bad_input_is_tagged_with_what_the_gateway_should_do() -> None:
    kinds = [
        "malformed_json",
        "wrong_type",
        "out_of_range",
        "oversized",
        "topic_mismatch",
        "bad_topic",
        "unknown_terminal",
    ]
    bad = [BadInputInjection(kind, 10.0 + i) for i, kind in enumerate(kinds)]  # type: ignore[arg-type]
    specs = small_fleet(3)
    run = simulate_fleet(specs, start_ms=START_MS, duration_s=60, seed=1, bad_inputs=bad)
    list(run)
    assert [r.kind for r in run.bad_inputs] == kinds
    assert [r.kind for r in run.raw] == kinds
    for raw, record in zip(run.raw, run.bad_inputs, strict=True):
        topic = f"lift/v1/{raw.topic_terminal}/telemetry"
        parsed = parse_topic(topic)
        if record.expected is DeadLetterReason.BAD_TOPIC:
            assert parsed is None
            continue
        assert parsed is not None
        result = decode_telemetry(raw.payload, parsed[0], now_ms=raw.at_ms)
        if record.expected is None:
            assert isinstance(result, Accepted)
        else:
            assert isinstance(result, Rejection) and result.reason is record.expected, (raw.kind, result)
    unknown = [r for r in run.truth if r.code is FaultCode.UNREGISTERED_TERMINAL]
    assert [r.terminal for r in unknown] == [run.raw[-1].topic_terminal]


def test_duplicates_repeat_a_message_and_out_of_order_swaps_two() -> None:
    specs = small_fleet(1)
    bad = [BadInputInjection("duplicate", 100.0), BadInputInjection("out_of_order", 300.0)]
    run = simulate_fleet(specs, start_ms=START_MS, duration_s=600, seed=1, bad_inputs=bad)
    seqs = [m.seq for m in run]
    dup, ooo = run.bad_inputs
    assert dup.seq is not None and ooo.seq is not None
    assert seqs.count(dup.seq) == 2 and seqs.index(dup.seq) + 1 == len(seqs) - seqs[::-1].index(dup.seq) - 1
    position = seqs.index(ooo.seq)
    assert seqs[position - 1] == ooo.seq + 1, "the held message follows the next one"
    assert sorted(set(seqs)) == list(range(max(seqs) + 1)), "nothing lost"


@functools.cache
def _batching_reference() -> dict[str, list[Sample]]:
    return samples_by_terminal(simulate_fleet(small_fleet(3), start_ms=START_MS, duration_s=300, seed=4))


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 100), linger=st.sampled_from([0.0, 0.5, 1.0, 5.0, 60.0]))
def test_batching_never_changes_the_samples(batch: int, linger: float) -> None:
    """Whatever the batch size and linger, each terminal sends the same samples, in order, once."""
    specs = small_fleet(3)
    reference = _batching_reference()
    messages = list(
        simulate_fleet(
            specs, start_ms=START_MS, duration_s=300, seed=4, config=SimulationConfig(batch=batch, linger_s=linger)
        )
    )
    assert all(1 <= len(m.samples) <= batch for m in messages)
    flat: dict[str, list[int]] = {}
    for m in messages:
        flat.setdefault(m.terminal, []).extend(s.ts for s in m.samples)
    assert {t: [s.ts for s in v] for t, v in reference.items()} == flat
    assert reference == samples_by_terminal(messages)  # same values too, not only the same times


def test_demo_fleet_keeps_the_console_busy() -> None:
    """The demo injects an entrapment every few minutes and other faults in between."""
    from liftwatch.simulators.demo import ENTRAPMENT_EVERY_S, DemoFaults
    from liftwatch.simulators.stream import FleetSimulator

    minutes = 15
    simulator = FleetSimulator(small_fleet(12), start_ms=START_MS, seed=2)
    faults = DemoFaults(simulator, seed=2)
    for _ in simulator.run_until(minutes * 60 * 1000):
        faults(simulator)
    trapped = [r for r in simulator.truth if r.code is FaultCode.TRAPPED_PASSENGER]
    assert len(trapped) >= (minutes * 60 - 60) // ENTRAPMENT_EVERY_S - 1
    assert len({r.code for r in simulator.truth}) >= 4


def test_registry_command_prints_the_fleet_it_simulates(tmp_path: Path) -> None:
    from liftwatch.registry.parse import parse_registry
    from liftwatch.simulators.cli import app
    from liftwatch.simulators.specs import generated_specs, read_registry_specs
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["registry", "--elevators", "60", "--seed", "3"])
    assert result.exit_code == 0, result.output
    parsed = parse_registry(result.stdout)
    assert parsed.errors == () and len(parsed.rows) == 60
    path = tmp_path / "fleet.csv"
    path.write_text(result.stdout, encoding="utf-8")
    specs = read_registry_specs(path)
    assert specs == generated_specs(60, 3)
    assert all(s.bottom_floor < s.top_floor for s in specs)


def test_shards_split_the_fleet_and_its_faults() -> None:
    from liftwatch.simulators.cli import _shard

    fleet = small_fleet(10)
    faults = random_faults(fleet, np.random.default_rng(1), 12, 600)
    bad = [BadInputInjection("malformed_json", 5.0)]
    shards = [_shard(fleet, faults, bad, f"{i}/3") for i in range(3)]
    assert sorted((s.terminal_id for specs, _, _ in shards for s in specs)) == [s.terminal_id for s in fleet]
    kept = sorted(
        (specs[f.elevator].terminal_id, f.code, f.at_s)
        for specs, mine, _ in shards
        for f in mine
        if f.elevator is not None
    )
    assert kept == sorted((fleet[f.elevator].terminal_id, f.code, f.at_s) for f in faults if f.elevator is not None)
    assert [len(b) for _, _, b in shards] == [1, 0, 0]


def test_files_that_are_not_utf8_or_not_csv_are_refused_with_the_file_named(tmp_path: Path) -> None:
    from liftwatch.simulators.specs import read_registry_specs

    header = b"registration_code,terminal_id,kind,rated_speed,bottom_floor,top_floor\n"
    cases = {
        "gbk.yaml": (b"faults:\n  - code: \xb5\xe7\xcc\xdd\n", load_scenario),
        "gbk.json": (b'{"faults": [{"code": "\xff"}]}', load_scenario),
        "gbk.csv": (header + b"\xb5\xe7,T1,traction,1,1,5\n", read_registry_specs),
        "short.csv": (header + b"31010000000000000001,T1\n", read_registry_specs),
    }
    for name, (data, read) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ScenarioError, match=name):
            read(path)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + header + b"31010000000000000001,T1,traction,1.75,1,5\n")
    assert [s.terminal_id for s in read_registry_specs(bom)] == ["T1"]


def test_start_time_must_be_an_iso_time_with_a_zone() -> None:
    import typer
    from liftwatch.simulators.cli import _start_ms

    assert _start_ms("2026-01-05T08:00:00+08:00", 1.0, None) == 1_767_571_200_000
    for text, why in (("garbage", "not an ISO time"), ("2026-01-05T08:00:00", "give a time zone")):
        with pytest.raises(typer.BadParameter, match=why):
            _start_ms(text, 1.0, None)


def test_load_options_stay_within_what_one_process_can_simulate() -> None:
    from liftwatch.simulators.cli import app
    from typer.testing import CliRunner

    for argv in (["load", "--rate", "1e9"], ["load", "--cars", "1000000"], ["--elevators", "300001"]):
        result = CliRunner().invoke(app, argv, env={"LIFTWATCH_MQTT_URL": "mqtt://127.0.0.1:1"})
        assert result.exit_code == 2, (argv, result.output)
