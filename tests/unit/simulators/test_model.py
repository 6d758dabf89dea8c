"""The fleet simulator behaves like elevators: motion invariants, catalog-exact faults, determinism."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.ingest.contract import Accepted, decode_telemetry
from liftwatch.schema import FaultCode
from liftwatch.simulators.faults import FaultInjection, timing
from liftwatch.simulators.fleet import ElevatorSpec
from liftwatch.simulators.stream import SimulationConfig, simulate_fleet

from tests.fixtures.simulators import CAR_FAULTS, START_MS, catalog_episodes, samples_by_terminal, small_fleet


@pytest.fixture(scope="module")
def normal_day() -> tuple[list[ElevatorSpec], list]:  # type: ignore[type-arg]
    specs = small_fleet(12)
    messages = list(simulate_fleet(specs, start_ms=START_MS, duration_s=3600, seed=7))
    return specs, messages


def test_motion_invariants_without_faults(normal_day: tuple[list[ElevatorSpec], list]) -> None:  # type: ignore[type-arg]
    specs, messages = normal_day
    by_terminal = samples_by_terminal(messages)
    assert set(by_terminal) == {s.terminal_id for s in specs}
    trips = 0
    for spec in specs:
        samples = by_terminal[spec.terminal_id]
        for s in samples:
            assert spec.bottom_floor <= s.floor <= spec.top_floor
            assert s.speed <= spec.rated_speed + 1e-9
            if s.door != "closed":
                assert s.speed == 0 and s.door_zone and s.direction == "stop", s
            if s.speed < 0.05:
                assert s.door_zone, s  # cars stop only at landings
            assert (s.direction == "stop") == (s.speed == 0), s
            assert s.safety_circuit and s.power and not s.alarm_button and not s.limit_up and not s.limit_down
            assert s.door_lock == (s.door == "closed")
        gaps = [b.ts - a.ts for a, b in itertools.pairwise(samples)]
        assert max(gaps) <= 30_000, "idle heartbeat at least every 30 s"
        trips += sum(1 for a, b in itertools.pairwise(samples) if a.speed == 0 and b.speed > 0)
        # A car with a passenger that stops at a landing opens its door at once.
        for a, b in itertools.pairwise(samples):
            if a.speed > 0 and b.speed == 0 and b.occupied:
                assert b.door != "closed", b
        assert catalog_episodes(samples, spec) == [], "normal traffic shows no catalog fault"
    assert trips > 12 * 10, "cars answer calls all the time"


def test_messages_follow_the_contract(normal_day: tuple[list[ElevatorSpec], list]) -> None:  # type: ignore[type-arg]
    _, messages = normal_day
    last_seq: dict[str, int] = {}
    encoder = msgspec.json.Encoder()
    for message in messages:
        assert 1 <= len(message.samples) <= 10
        assert message.seq == last_seq.get(message.terminal, -1) + 1
        last_seq[message.terminal] = message.seq
        ts = [s.ts for s in message.samples]
        assert ts == sorted(ts)
        decoded = decode_telemetry(encoder.encode(message), message.terminal, now_ms=ts[-1])
        assert isinstance(decoded, Accepted) and decoded.message == message


def test_moving_cars_sample_at_the_configured_rate() -> None:
    specs = small_fleet(4)
    run = simulate_fleet(specs, start_ms=START_MS, duration_s=900, seed=3, config=SimulationConfig(rate_hz=4, batch=50))
    by_terminal = samples_by_terminal(run)
    gaps = [
        b.ts - a.ts
        for samples in by_terminal.values()
        for a, b in itertools.pairwise(samples)
        if a.speed > 0 and b.speed > 0
    ]
    assert max(gaps) <= 250 and gaps


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    specs = small_fleet(6)
    faults = [FaultInjection(FaultCode.TRAPPED_PASSENGER, 60, 2, 60.0)]

    def stream(seed: int) -> bytes:
        run = simulate_fleet(specs, start_ms=START_MS, duration_s=300, seed=seed, faults=faults)
        return b"".join(msgspec.json.encode(m) for m in run) + msgspec.json.encode(run.truth)

    assert stream(11) == stream(11)
    assert stream(11) != stream(12)


ALL_FAULTS = CAR_FAULTS


def test_each_injected_fault_shows_exactly_its_catalog_condition() -> None:
    """One fault per car, all at once: each car shows its code (held long enough) and nothing else."""
    specs = small_fleet(len(ALL_FAULTS) + 2)
    faults = [
        FaultInjection(code, 20.0 + 3 * slot, slot, timing(code, variant).default_s, variant)  # type: ignore[arg-type]
        for slot, (code, variant) in enumerate(ALL_FAULTS)
    ]
    run = simulate_fleet(specs, start_ms=START_MS, duration_s=900, seed=5, faults=faults)
    by_terminal = samples_by_terminal(run)
    truth = {r.terminal: r for r in run.truth}
    assert len(truth) == len(ALL_FAULTS), "every fault found its opportunity"
    for slot, (code, variant) in enumerate(ALL_FAULTS):
        spec = specs[slot]
        record = truth[spec.terminal_id]
        assert record.code is code and record.variant == variant
        assert record.elevator == spec.registration_code
        assert record.end_ms is not None and record.end_ms > record.start_ms
        episodes = catalog_episodes(by_terminal[spec.terminal_id], spec)
        assert {e.code for e in episodes} == {code.value}, (code, variant, episodes)
        for episode in episodes:
            # The condition shows from the first sample after its start, until its end.
            assert record.start_ms - 100 <= episode.start_ms <= record.start_ms + 600, (record, episode)
            assert episode.end_ms <= record.end_ms + 600
        # The motion invariants hold on every sample but those the injected fault is about.
        for s in by_terminal[spec.terminal_id]:
            if code is not FaultCode.OVERSPEED:
                assert s.speed <= spec.rated_speed + 1e-9, (code, s)
            if code is not FaultCode.DOOR_OPEN_WHILE_MOVING and s.door != "closed":
                assert s.speed == 0 and s.door_zone, (code, s)
            if code not in (FaultCode.OVERTRAVEL_TOP, FaultCode.OVERTRAVEL_BOTTOM):
                assert spec.bottom_floor <= s.floor <= spec.top_floor and not (s.limit_up or s.limit_down), (code, s)
    for spec in specs[len(ALL_FAULTS) :]:
        assert catalog_episodes(by_terminal[spec.terminal_id], spec) == []


def test_overspeed_is_sampled_finely() -> None:
    specs = small_fleet(6)
    slot = 5  # 4 m/s
    run = simulate_fleet(
        specs, start_ms=START_MS, duration_s=600, seed=2, faults=[FaultInjection(FaultCode.OVERSPEED, 10, slot, 2.0)]
    )
    by_terminal = samples_by_terminal(run)
    samples = by_terminal[specs[slot].terminal_id]
    fast = [s for s in samples if s.speed > 1.15 * specs[slot].rated_speed]
    for other in by_terminal.values():  # fine ticks shift the grid; heartbeats stay within 30 s
        assert max(b.ts - a.ts for a, b in itertools.pairwise(other)) <= 30_000
    assert len(fast) >= 15 and fast[-1].ts - fast[0].ts >= 1_900
    assert max(s.speed for s in samples) <= 1.25 * specs[slot].rated_speed + 1e-9


def test_terminal_offline_goes_silent_and_announces_it() -> None:
    specs = small_fleet(3)
    run = simulate_fleet(
        specs,
        start_ms=START_MS,
        duration_s=900,
        seed=4,
        faults=[FaultInjection(FaultCode.TERMINAL_OFFLINE, 100, 1, 300.0)],
    )
    samples = samples_by_terminal(run)[specs[1].terminal_id]
    [record] = run.truth
    assert record.end_ms is not None
    assert not [s for s in samples if record.start_ms < s.ts < record.end_ms]
    assert record.start_ms in {s.ts for s in samples}, "a last sample when it goes silent"
    assert [(s.status, s.at_ms) for s in run.statuses] == [("offline", record.start_ms), ("online", record.end_ms)]


def test_unregistered_terminal_sends_only_in_its_window() -> None:
    specs = small_fleet(3)
    run = simulate_fleet(
        specs,
        start_ms=START_MS,
        duration_s=600,
        seed=4,
        faults=[FaultInjection(FaultCode.UNREGISTERED_TERMINAL, 60, None, 200.0)],
    )
    by_terminal = samples_by_terminal(run)
    [record] = run.truth
    assert record.elevator is None and record.code is FaultCode.UNREGISTERED_TERMINAL
    assert record.terminal not in {s.terminal_id for s in specs}
    ghost = by_terminal[record.terminal]
    assert record.end_ms is not None
    assert record.start_ms <= ghost[0].ts and ghost[-1].ts <= record.end_ms


def test_faults_on_one_car_take_turns() -> None:
    specs = small_fleet(3)
    faults = [
        FaultInjection(FaultCode.POWER_FAILURE, 30, 0, 30.0),
        FaultInjection(FaultCode.ALARM_BUTTON, 31, 0, 6.0),
    ]
    run = simulate_fleet(specs, start_ms=START_MS, duration_s=900, seed=8, faults=faults)
    list(run)
    power, alarm = sorted(run.truth, key=lambda r: r.start_ms)
    assert power.code is FaultCode.POWER_FAILURE and alarm.code is FaultCode.ALARM_BUTTON
    assert power.end_ms is not None and alarm.start_ms >= power.end_ms


def test_a_single_landing_car_just_reports_heartbeats() -> None:
    spec = ElevatorSpec("ONE", "31010000000000000001", 1.0, 1, 1)
    samples = samples_by_terminal(simulate_fleet([spec], start_ms=START_MS, duration_s=1800, seed=1))["ONE"]
    assert len(samples) >= 60
    assert all(s.speed == 0 and s.door == "closed" and not s.occupied and s.floor == 1 for s in samples)


@settings(max_examples=4, deadline=None)
@given(
    cars=st.lists(
        st.tuples(st.sampled_from([0.5, 0.63, 1.0, 1.6, 2.5, 4.0, 6.0]), st.integers(-3, 2), st.integers(1, 60)),
        min_size=1,
        max_size=4,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_building_moves_like_an_elevator(cars: list[tuple[float, int, int]], seed: int) -> None:
    """Whatever the speed and height, the invariants of normal traffic hold."""
    specs = [
        ElevatorSpec(f"P{i}", f"3101{i:016d}", speed, bottom, bottom + floors)
        for i, (speed, bottom, floors) in enumerate(cars)
    ]
    by_terminal = samples_by_terminal(simulate_fleet(specs, start_ms=START_MS, duration_s=600, seed=seed))
    for spec in specs:
        samples = by_terminal[spec.terminal_id]
        for s in samples:
            assert spec.bottom_floor <= s.floor <= spec.top_floor
            assert s.speed <= spec.rated_speed
            assert s.door == "closed" or (s.speed == 0 and s.door_zone)
            assert s.speed >= 0.05 or s.door_zone
        assert catalog_episodes(samples, spec) == []
