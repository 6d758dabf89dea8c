"""Simulated fleet against the engine: every injected fault detected with its code, nothing on healthy cars."""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np
import pytest
from liftwatch.rules.params import TerminalInfo
from liftwatch.rules.processor import RuleProcessor
from liftwatch.rules.thresholds import build
from liftwatch.schema import FaultCode, FaultEvent, TelemetryMessage, TelemetryRecord
from liftwatch.simulators.faults import FaultInjection, TruthRecord, timing
from liftwatch.simulators.fleet import ElevatorSpec
from liftwatch.simulators.stream import simulate_fleet

from tests.fixtures.simulators import CAR_FAULTS
from tests.unit.rules.reference import Reference

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOURS = float(os.environ.get("LIFTWATCH_TEST_FLEET_HOURS", "3"))
"""Simulated event time. 3 h keeps the suite fast (every fault is injected twice in it); the simulator
has no time-of-day profile, so a whole day only repeats the traffic: LIFTWATCH_TEST_FLEET_HOURS=24
runs the fleet-day of the issue (about a minute)."""
INJECTED = [*CAR_FAULTS, (FaultCode.TERMINAL_OFFLINE, None)]
HEALTHY = 4


def fleet() -> list[ElevatorSpec]:
    speeds = (1.0, 1.5, 1.75, 2.0, 2.5, 4.0)
    return [
        ElevatorSpec(f"RF{i:03d}", f"3109{i:016d}", speeds[i % 6], -2 if i % 3 == 0 else 1, 14 + i % 9)
        for i in range(len(INJECTED) + HEALTHY)
    ]


@pytest.fixture(scope="module")
def simulated() -> tuple[list[ElevatorSpec], list[TelemetryMessage], list[TruthRecord]]:
    specs = fleet()
    faults = [
        # Each fault twice on its car, early and late in the run (the second after the first cleared).
        FaultInjection(code, at, slot, timing(code, variant).default_s, variant)  # type: ignore[arg-type]
        for slot, (code, variant) in enumerate(INJECTED)
        for at in (600.0 + 97 * slot, 5400.0 + 131 * slot)
    ]
    faults.append(FaultInjection(FaultCode.UNREGISTERED_TERMINAL, 900.0, None, 300.0))
    run = simulate_fleet(specs, start_ms=START_MS, duration_s=HOURS * 3600, seed=21, faults=faults)
    messages = list(run)
    return specs, messages, run.truth


def run_engine(specs: list[ElevatorSpec], messages: list[TelemetryMessage]) -> list[FaultEvent]:
    processor = RuleProcessor(build(), lateness_ms=5_000)
    processor.set_registry(
        {s.terminal_id: TerminalInfo(s.registration_code, s.rated_speed, s.bottom_floor, s.top_floor) for s in specs}
    )
    events: list[FaultEvent] = []
    chunk = 200
    for i in range(0, len(messages), chunk):
        # Processing time follows event time here: each message is received when its last sample was taken.
        records = [
            TelemetryRecord(m.terminal, m.seq, m.samples[-1].ts, m.samples)
            for m in messages[i : i + chunk]
            if m.samples
        ]
        found, _ = processor.process(records)
        events += found
        events += processor.offline(max(r.received_ms for r in records))
    events += processor.evaluate(processor.columns([]), flush=True)[0]
    return events


def test_fleet_ground_truth_every_fault_detected_and_healthy_cars_quiet(
    simulated: tuple[list[ElevatorSpec], list[TelemetryMessage], list[TruthRecord]],
) -> None:
    specs, messages, truth = simulated
    events = run_engine(specs, messages)
    raised: dict[str, list[FaultEvent]] = defaultdict(list)
    for event in events:
        if event.transition == "raised":
            raised[event.terminal].append(event)
    assert len(truth) == 2 * len(INJECTED) + 1, "every injection found its opportunity"
    for record in truth:
        mine = [e for e in raised[record.terminal] if e.code == record.code]
        # Detected once per episode, with the time the condition started (within a sample or two).
        # terminal_offline starts at the last message before the silence (idle heartbeats are <= 30 s apart).
        slack = 31_000 if record.code is FaultCode.TERMINAL_OFFLINE else 2_000
        hits = [e for e in mine if record.start_ms - slack <= e.since_ms <= (record.end_ms or e.since_ms) + 1]
        assert len(hits) == 1, (record, mine)
        if record.code is FaultCode.DOOR_REOPEN_LOOP:
            # The condition (>= 5 reversals in 60 s) starts at the 5th reversal; the truth at the 1st.
            assert record.start_ms < hits[0].since_ms <= (record.end_ms or 0), (record, hits[0])
        elif record.code is not FaultCode.TERMINAL_OFFLINE:
            assert abs(hits[0].since_ms - record.start_ms) <= 2_000, (record, hits[0])
        if record.code is FaultCode.TRAPPED_PASSENGER:
            assert hits[0].evidence["variant"] == record.variant
    for slot, (code, _) in enumerate(INJECTED):
        terminal = specs[slot].terminal_id
        assert {e.code for e in raised[terminal]} == {code}, (terminal, raised[terminal])
        assert len(raised[terminal]) == 2
    for spec in specs[len(INJECTED) :]:
        assert raised[spec.terminal_id] == [], "no fault on a healthy elevator"
    ghosts = [t for t in raised if t not in {s.terminal_id for s in specs}]
    assert [(e.code, e.severity) for t in ghosts for e in raised[t]] == [("unregistered_terminal", "minor")]


def test_engine_agrees_with_reference_on_the_simulated_fleet(
    simulated: tuple[list[ElevatorSpec], list[TelemetryMessage], list[TruthRecord]],
) -> None:
    specs, messages, _ = simulated
    registry = {
        s.terminal_id: TerminalInfo(s.registration_code, s.rated_speed, s.bottom_floor, s.top_floor) for s in specs
    }
    reference = Reference(build(), registry, lateness_ms=5_000)
    for message in messages:
        for sample in message.samples:
            reference.feed(
                message.terminal,
                {
                    "ts": sample.ts,
                    "mode": sample.mode,
                    "floor": sample.floor,
                    "door_zone": sample.door_zone,
                    "speed": sample.speed,
                    "door": sample.door,
                    "occupied": sample.occupied,
                    "safety_circuit": sample.safety_circuit,
                    "alarm_button": sample.alarm_button,
                    "power": sample.power,
                    "limit_up": sample.limit_up,
                    "limit_down": sample.limit_down,
                },
            )
    reference.flush()
    engine = [
        (e.terminal, e.code.value, e.transition, e.since_ms, e.at_ms)
        for e in run_engine(specs, messages)
        if e.code is not FaultCode.TERMINAL_OFFLINE  # processing time: not part of the per-sample oracle
    ]
    assert sorted(engine) == sorted(reference.events)
    assert np.unique([e[1] for e in engine]).size >= 12
