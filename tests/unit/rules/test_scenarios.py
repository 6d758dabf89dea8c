"""One table of scenarios per rule: just below / just above every threshold, irregular sampling,
mode changes, clearing, unknown terminals, conditions spanning batch boundaries, late samples."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from liftwatch.rules.params import TerminalInfo
from liftwatch.rules.processor import RuleProcessor
from liftwatch.rules.thresholds import build
from liftwatch.schema import Sample, TelemetryRecord

from tests.unit.rules.forms import FORMS, Form, as_sent
from tests.unit.rules.reference import fast_thresholds, random_stream

T0 = 1_767_225_600_000 + 3_600_000  # 2026-01-01T01:00:00Z
REGISTRY = {
    "E1": TerminalInfo("31000000000000000001", 1.0, -1, 12),
    "E2": TerminalInfo("31000000000000000002", 1.0, -1, 12, "M2"),
}
IDLE: dict[str, Any] = {
    "mode": "normal",
    "floor": 3,
    "door_zone": True,
    "direction": "stop",
    "speed": 0.0,
    "door": "closed",
    "occupied": False,
    "safety_circuit": True,
}
TRAPPED = {"occupied": True, "door_zone": False}
AT_LANDING = {"occupied": True}
MOVING = {"speed": 1.0, "door_zone": False, "direction": "up"}

Step = tuple[float, dict[str, Any]]
"""(seconds after T0, fields different from an idle car)"""


def held(fields: dict[str, Any], seconds: float, every: float = 1.0, start: float = 0.0) -> list[Step]:
    """``fields`` sampled every ``every`` s from ``start`` to ``start + seconds`` inclusive."""
    n = round(seconds / every)
    steps = [(start + i * every, fields) for i in range(n + 1)]
    if steps[-1][0] < start + seconds:
        steps.append((start + seconds, fields))
    return steps


def then(steps: list[Step], fields: dict[str, Any], seconds: float, every: float = 1.0) -> list[Step]:
    start = steps[-1][0] + every
    return steps + held(fields, seconds - every, every, start)


def run(
    steps: list[Step],
    *,
    terminal: str = "E1",
    cuts: tuple[int, ...] = (),
    overrides: dict[str, Any] | None = None,
    lateness_ms: int = 0,
) -> list[tuple[str, str, float, float]]:
    """Events as (code, transition, since s, at s) after T0."""
    processor = RuleProcessor(build(overrides), lateness_ms=lateness_ms)
    processor.set_registry(REGISTRY)
    samples = [Sample(ts=T0 + round(t * 1000), **{**IDLE, **fields}) for t, fields in steps]
    bounds = [0, *cuts, len(samples)]
    events = []
    for seq, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        record = TelemetryRecord(terminal, seq, 0, samples[lo:hi])
        events += processor.process([record], flush=hi == len(samples))[0]
    return [(e.code.value, e.transition, (e.since_ms - T0) / 1000, (e.at_ms - T0) / 1000) for e in events]


SCENARIOS: dict[str, tuple[list[Step], list[tuple[str, str, float, float]]]] = {
    # trapped passenger, between floors: 20 s
    "trapped between floors 19.9 s": (held(TRAPPED, 19.9, 0.1), []),
    "trapped between floors 20 s": (held(TRAPPED, 20), [("trapped_passenger", "raised", 0, 20)]),
    "trapped irregular sampling": (
        [(0, TRAPPED), (7.3, TRAPPED), (13, TRAPPED), (21.5, TRAPPED)],
        [("trapped_passenger", "raised", 0, 21.5)],
    ),
    "trapped clears after 10 s free, not 9.9 s": (
        then(then(held(TRAPPED, 25), IDLE, 9.9, 0.1), TRAPPED, 5),
        [("trapped_passenger", "raised", 0, 20)],
    ),
    "trapped cleared": (
        then(held(TRAPPED, 25), IDLE, 12),
        [("trapped_passenger", "raised", 0, 20), ("trapped_passenger", "cleared", 26, 36)],
    ),
    "trapped interrupted by inspection restarts the hold": (
        then(then(held(TRAPPED, 15), {**TRAPPED, "mode": "inspection"}, 3), TRAPPED, 25),
        [("trapped_passenger", "raised", 19, 39)],
    ),
    "trapped in maintenance mode is the technician's": (held({**TRAPPED, "mode": "maintenance"}, 60), []),
    # trapped at a landing: 60 s and the door never opened since the stop
    "trapped at landing 59 s": (then(held(MOVING, 2), AT_LANDING, 59), []),
    "trapped at landing 60 s": (
        then(held(MOVING, 2), AT_LANDING, 61),
        [("trapped_passenger", "raised", 3, 63)],
    ),
    "door opened after the stop: not trapped": (
        then(then(then(held(MOVING, 2), AT_LANDING, 2), {"occupied": True, "door": "open"}, 3), AT_LANDING, 120),
        [],
    ),
    # overspeed: > 1.15 x rated, >= 0.5 s and >= 2 samples, any mode
    "overspeed at exactly 1.15 x": (held({**MOVING, "speed": 1.15}, 3, 0.25), []),
    "overspeed 0.4 s": (held({**MOVING, "speed": 1.16}, 0.4, 0.1), []),
    "overspeed 0.5 s": (held({**MOVING, "speed": 1.16}, 0.5, 0.25), [("overspeed", "raised", 0, 0.5)]),
    "overspeed one sample over a long gap": ([(0, {**MOVING, "speed": 1.3}), (1, MOVING)], []),
    "overspeed in inspection mode too": (
        held({**MOVING, "speed": 1.2, "mode": "inspection"}, 1, 0.5),
        [("overspeed", "raised", 0, 0.5)],
    ),
    # door open while moving
    "door open at 0.299 m/s in the door zone": (held({"speed": 0.299, "door": "opening"}, 2), []),
    "door open at 0.3 m/s": (held({"speed": 0.3, "door": "opening"}, 0), [("door_open_while_moving", "raised", 0, 0)]),
    "door open creeping outside the door zone": (
        held({"speed": 0.1, "door": "closing", "door_zone": False}, 0),
        [("door_open_while_moving", "raised", 0, 0)],
    ),
    "door open moving in inspection": (held({"speed": 0.5, "door": "open", "mode": "inspection"}, 3), []),
    "door open moving in fire mode": (
        held({"speed": 0.5, "door": "open", "mode": "fire"}, 0),
        [("door_open_while_moving", "raised", 0, 0)],
    ),
    # overtravel: one sample; clears as soon as back in range
    "top floor is fine": (held({"floor": 12}, 2), []),
    "above the top floor": (
        then(held({"floor": 13}, 1), {"floor": 12}, 2),
        [("overtravel_top", "raised", 0, 0), ("overtravel_top", "cleared", 2, 2)],
    ),
    "upper limit switch": (held({"limit_up": True}, 0), [("overtravel_top", "raised", 0, 0)]),
    "below the bottom floor": (held({"floor": -2}, 0), [("overtravel_bottom", "raised", 0, 0)]),
    "lower limit switch": (held({"limit_down": True}, 0), [("overtravel_bottom", "raised", 0, 0)]),
    # stopped outside the door zone, empty: 45 s
    "stopped outside door zone 44.9 s": (held({"door_zone": False}, 44.9, 0.1), []),
    "stopped outside door zone 45 s": (
        held({"door_zone": False}, 45),
        [("stopped_outside_door_zone", "raised", 0, 45)],
    ),
    # safety circuit: 1 s
    "safety circuit open 0.9 s": (held({"safety_circuit": False}, 0.9, 0.1), []),
    "safety circuit open 1 s": (held({"safety_circuit": False}, 1, 0.5), [("safety_circuit_open", "raised", 0, 1)]),
    # door held open: 120 s
    "door open 119 s": (held({"door": "open"}, 119), []),
    "door open 120 s": (held({"door": "open"}, 120, 2), [("door_held_open", "raised", 0, 120)]),
    # power failure: 5 s, any mode
    "power off 4.9 s": (held({"power": False}, 4.9, 0.1), []),
    "power off 5 s in maintenance": (
        held({"power": False, "mode": "maintenance"}, 5),
        [("power_failure", "raised", 0, 5)],
    ),
    # alarm button: 3 s
    "alarm 2.9 s": (held({"alarm_button": True}, 2.9, 0.1), []),
    "alarm 3 s": (held({"alarm_button": True}, 3), [("alarm_button", "raised", 0, 3)]),
    "alarm in inspection": (held({"alarm_button": True, "mode": "inspection"}, 5), []),
}


def reversals(count: int, every: float, *, depart_after: int | None = None) -> list[Step]:
    steps: list[Step] = []
    t = 0.0
    for i in range(count):
        steps += [(t, {"door": "closing"}), (t + 0.5, {"door": "opening"})]
        t += every
        if depart_after is not None and i == depart_after:
            steps.append((t - 0.2, MOVING))
    return steps


SCENARIOS.update(
    {
        "4 door reversals": (reversals(4, 5), []),
        "5 door reversals in 60 s": (reversals(5, 5), [("door_reopen_loop", "raised", 20.5, 20.5)]),
        "5 door reversals over 61 s": (reversals(5, 15.125), []),
        "5 door reversals with a departure between": (reversals(5, 5, depart_after=1), []),
    }
)


SCENARIOS.update(
    {
        # the catalog's notation: stopped = speed < 0.05, moving = speed >= 0.1
        "trapped at 0.049 m/s is stopped": (
            held({**TRAPPED, "speed": 0.049}, 20),
            [("trapped_passenger", "raised", 0, 20)],
        ),
        "trapped at 0.05 m/s is not stopped": (held({**TRAPPED, "speed": 0.05}, 30), []),
        "door open at 0.099 m/s outside the door zone": (
            held({"speed": 0.099, "door": "open", "door_zone": False}, 2),
            [],
        ),
        "door open moving in maintenance": (held({"speed": 0.5, "door": "open", "mode": "maintenance"}, 3), []),
        "bottom floor is fine": (held({"floor": -1}, 2), []),
        "back above the bottom floor": (
            then(held({"floor": -2}, 1), {"floor": -1}, 2),
            [("overtravel_bottom", "raised", 0, 0), ("overtravel_bottom", "cleared", 2, 2)],
        ),
        "overspeed two samples 0.5 s apart": (
            [(0, {**MOVING, "speed": 1.16}), (0.5, {**MOVING, "speed": 1.16})],
            [("overspeed", "raised", 0, 0.5)],
        ),
        "door held open, irregular sampling": (
            [(0, {"door": "open"}), (50, {"door": "open"}), (119.9, {"door": "open"}), (121, {"door": "open"})],
            [("door_held_open", "raised", 0, 121)],
        ),
        "stopped outside door zone, irregular sampling": (
            [(0, {"door_zone": False}), (30, {"door_zone": False}), (44.9, {"door_zone": False}), (60, IDLE)],
            [],
        ),
        "safety circuit open in inspection": (held({"safety_circuit": False, "mode": "inspection"}, 5), []),
        "power back 9.9 s: not cleared yet": (
            then(held({"power": False}, 6), IDLE, 9.9, 0.1),
            [("power_failure", "raised", 0, 5)],
        ),
        "power back 10 s: cleared": (
            then(held({"power": False}, 6), IDLE, 11),
            [("power_failure", "raised", 0, 5), ("power_failure", "cleared", 7, 17)],
        ),
        "door reversals in maintenance": ([(t, {**f, "mode": "maintenance"}) for t, f in reversals(6, 5)], []),
        "door reversals in inspection are not counted": (
            [(t, {**f, "mode": "inspection"} if t < 12 else f) for t, f in reversals(7, 5)],
            [],
        ),
        "door reversals counted afresh after inspection": (
            [(t, {**f, "mode": "inspection"} if t < 12 else f) for t, f in reversals(8, 5)],
            [("door_reopen_loop", "raised", 35.5, 35.5)],
        ),
    }
)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str) -> None:
    steps, expected = SCENARIOS[name]
    assert run(steps) == expected


@pytest.mark.parametrize("name", ["trapped cleared", "trapped at landing 60 s", "5 door reversals in 60 s"])
def test_condition_spanning_batch_boundaries(name: str) -> None:
    steps, expected = SCENARIOS[name]
    for cut in range(1, len(steps)):
        assert run(steps, cuts=(cut,), lateness_ms=2_000) == expected, cut


def test_model_override_applies_to_its_elevators_only() -> None:
    overrides = {"models": {"M2": {"trapped_passenger": {"between_floors_hold_s": 30}}}}
    steps = held(TRAPPED, 35)
    assert run(steps, overrides=overrides) == [("trapped_passenger", "raised", 0, 20)]
    assert run(steps, terminal="E2", overrides=overrides) == [("trapped_passenger", "raised", 0, 30)]


def test_unknown_terminal_raises_unregistered_once_per_day_and_nothing_else() -> None:
    steps = [*held(TRAPPED, 60, 5), (23 * 3600.0, TRAPPED), (23 * 3600.0 + 30, TRAPPED)]
    assert run(steps, terminal="NOBODY") == [
        ("unregistered_terminal", "raised", 0, 0),
        ("unregistered_terminal", "raised", 23 * 3600.0, 23 * 3600.0),  # the next (UTC) day
    ]


def test_late_samples_are_counted_and_ignored() -> None:
    # Without message sequence numbers (the replay path) the allowed lateness decides what is late.
    processor = RuleProcessor(build(), lateness_ms=5_000)
    processor.set_registry(REGISTRY)
    now = [Sample(ts=T0 + 1000 * i, **IDLE) for i in range(20)]
    processor.evaluate(processor.columns([TelemetryRecord("E1", 0, 0, now)]))
    stale = Sample(ts=T0 + 1000, **{**IDLE, "floor": 40})  # would be an overtravel if it were evaluated
    reordered = Sample(ts=T0 + 16_500, **{**IDLE, "floor": 40})  # within the lateness: evaluated in order
    batch = processor.columns([TelemetryRecord("E1", 1, 0, [stale]), TelemetryRecord("E1", 2, 0, [reordered])])
    events, det = processor.evaluate(batch, flush=True)
    assert det.late == 1
    assert [(e.code, e.transition, e.since_ms - T0) for e in events] == [
        ("overtravel_top", "raised", 16_500),
        ("overtravel_top", "cleared", 17_000),
    ]


def test_in_sequence_messages_are_judged_at_once_and_an_older_sample_is_late() -> None:
    processor = RuleProcessor(build(), lateness_ms=5_000)
    processor.set_registry(REGISTRY)
    now = [Sample(ts=T0 + 1000 * i, **IDLE) for i in range(20)]
    _, det = processor.process([TelemetryRecord("E1", 0, 0, now)])
    assert det.evaluated == 20  # nothing can come between: no waiting for the lateness
    stale = Sample(ts=T0 + 16_500, **{**IDLE, "floor": 40})  # older than what was judged: late
    fresh = Sample(ts=T0 + 20_000, **{**IDLE, "floor": 40})
    events, det = processor.process([TelemetryRecord("E1", 1, 0, [stale, fresh])])
    assert (det.late, det.evaluated) == (1, 1)
    # the late sample is judged apart (the late lane) and its event says so
    assert [(e.code, e.transition, e.since_ms - T0, "late" in e.evidence) for e in events] == [
        ("overtravel_top", "raised", 20_000, False),
        ("overtravel_top", "raised", 16_500, True),
    ]


def test_a_hole_in_the_sequence_waits_until_it_fills_then_judges_in_order() -> None:
    processor = RuleProcessor(build(), lateness_ms=5_000)
    processor.set_registry(REGISTRY)
    first = [Sample(ts=T0 + 1000 * i, **IDLE) for i in range(10)]
    missing = [Sample(ts=T0 + 10_000 + 1000 * i, **{**IDLE, "floor": 40}) for i in range(2)]
    after = [Sample(ts=T0 + 12_000 + 1000 * i, **IDLE) for i in range(2)]
    _, det = processor.process([TelemetryRecord("E1", 0, 0, first), TelemetryRecord("E1", 2, 0, after)])
    assert det.evaluated == 10  # seq 2 waits for seq 1
    events, det = processor.process([TelemetryRecord("E1", 1, 0, missing)])
    assert (det.late, det.evaluated) == (0, 4)
    assert [(e.code, e.transition, e.since_ms - T0) for e in events] == [
        ("overtravel_top", "raised", 10_000),
        ("overtravel_top", "cleared", 12_000),
    ]


def test_a_copy_of_a_judged_message_is_a_duplicate_not_late() -> None:
    processor = RuleProcessor(build(), lateness_ms=5_000)
    processor.set_registry(REGISTRY)
    message = TelemetryRecord("E1", 7, 0, [Sample(ts=T0 + 1000 * i, **IDLE) for i in range(10)])
    processor.process([message])
    _, det = processor.process([message, TelemetryRecord("E1", 8, 0, [Sample(ts=T0 + 10_000, **IDLE)])])
    assert (det.duplicates, det.late, det.evaluated) == (1, 0, 1)


def test_a_hole_is_given_up_after_the_lateness_and_a_silent_terminal_is_judged() -> None:
    processor = RuleProcessor(build(), lateness_ms=5_000)
    processor.set_registry(REGISTRY)
    first = TelemetryRecord("E1", 0, 1_000, [Sample(ts=T0 + 1000 * i, **IDLE) for i in range(3)])
    after = TelemetryRecord("E1", 2, 1_000, [Sample(ts=T0 + 5_000, **{**IDLE, "alarm_button": True})])
    _, det = processor.process([first, after])
    assert det.evaluated == 3
    assert not processor.expire(5_000)  # not yet: 4 s of 5
    assert processor.expire(6_001)
    _, det = processor.process([])
    assert det.evaluated == 1
    lost = TelemetryRecord("E1", 1, 7_000, [Sample(ts=T0 + 4_000, **IDLE)])
    _, det = processor.process([lost])  # the missing message after all: late, not a copy
    assert (det.late, det.duplicates) == (1, 0)


def test_a_rebooted_terminal_counts_again_without_waiting() -> None:
    processor = RuleProcessor(build(), lateness_ms=5_000)
    processor.set_registry(REGISTRY)
    processor.process([TelemetryRecord("E1", 40, 0, [Sample(ts=T0 + 1000 * i, **IDLE) for i in range(5)])])
    _, det = processor.process([TelemetryRecord("E1", 0, 0, [Sample(ts=T0 + 60_000, **IDLE)])])
    assert (det.evaluated, det.late, det.duplicates) == (1, 0, 0)


def test_a_backlog_uploaded_after_live_data_is_still_judged_and_marked_late() -> None:
    processor = RuleProcessor(build(), lateness_ms=5_000)
    processor.set_registry(REGISTRY)
    outage, back = T0, T0 + 3_600_000
    # Back online: live samples first (judged), then the buffer of the outage, message by message.
    processor.process([TelemetryRecord("E1", 100, 0, [Sample(ts=back + 1000 * i, **IDLE) for i in range(10)])])
    trapped = {**IDLE, "door_zone": False, "occupied": True}
    buffer = [Sample(ts=outage + 1000 * i, **(trapped if i < 40 else IDLE)) for i in range(60)]
    events, late = [], 0
    for k in range(6):  # ten samples a message, one message a batch: the late run goes on across them
        found, det = processor.process([TelemetryRecord("E1", 101 + k, 0, buffer[10 * k : 10 * k + 10])])
        events += found
        late += det.late
    assert late == 60
    assert [(e.code, e.transition, e.since_ms - T0, e.evidence["late"]) for e in events] == [
        ("trapped_passenger", "raised", 0, True),
        ("trapped_passenger", "cleared", 40_000, True),
    ]
    # The live lane goes on undisturbed.
    found, det = processor.process([TelemetryRecord("E1", 107, 0, [Sample(ts=back + 10_000, **trapped)])])
    assert (found, det.late, det.evaluated) == ([], 0, 1)


def test_late_runs_of_two_outages_do_not_join() -> None:
    processor = RuleProcessor(build(), lateness_ms=5_000)
    processor.set_registry(REGISTRY)
    back = T0 + 86_400_000
    processor.process([TelemetryRecord("E1", 0, 0, [Sample(ts=back, **IDLE)])])
    opened = {**IDLE, "door": "open"}
    first = [Sample(ts=T0 + 1000 * i, **opened) for i in range(100)]  # 100 s of an open door, then no data
    second = [Sample(ts=T0 + 600_000 + 1000 * i, **opened) for i in range(100)]  # 100 s more, 10 min later
    events, _ = processor.process([TelemetryRecord("E1", 1, 0, first)])
    found, _ = processor.process([TelemetryRecord("E1", 2, 0, second)])
    assert events + found == []  # door_held_open needs 120 s in one run


def late_outages(batches: list[list[int]], order: list[int]) -> list[tuple[str, str, int]]:
    """The late lane over some backlog messages of E1 (cut into batches) after live data."""
    processor = RuleProcessor(build(), lateness_ms=5_000)
    processor.set_registry(REGISTRY)
    processor.process([TelemetryRecord("E1", 0, 0, [Sample(ts=T0 + 86_400_000, **IDLE)])])
    opened = {**IDLE, "door": "open"}
    starts = [0, 600_000, 1_200_000]  # three outages' buffers, 10 minutes apart, 100 s of open door each
    messages = [
        TelemetryRecord("E1", 1 + k, 0, [Sample(ts=T0 + starts[m] + 1000 * i, **opened) for i in range(100)])
        for k, m in enumerate(order)
    ]
    events = []
    for batch in batches:
        events += processor.process([messages[i] for i in batch])[0]
    return [(e.code.value, e.transition, e.since_ms - T0) for e in events]


@pytest.mark.parametrize("batches", [[[0], [1], [2]], [[0, 1], [2]], [[0, 1, 2]]])
def test_late_runs_of_two_outages_do_not_join_in_one_batch_either(batches: list[list[int]]) -> None:
    assert late_outages(batches, [0, 1, 2]) == []  # door_held_open needs 120 s in one run


def test_late_lane_events_do_not_depend_on_how_late_messages_are_batched() -> None:
    opened = {**IDLE, "door": "open"}
    # One buffer of 146 s of open door in two messages, the newer one first: live data came before.
    newer = TelemetryRecord("E1", 1, 0, [Sample(ts=T0 + 1000 * i, **opened) for i in range(75, 146)])
    older = TelemetryRecord("E1", 2, 0, [Sample(ts=T0 + 1000 * i, **opened) for i in range(75)])

    def events(batches: list[list[TelemetryRecord]]) -> list[tuple[str, str, int]]:
        processor = RuleProcessor(build(), lateness_ms=5_000)
        processor.set_registry(REGISTRY)
        processor.process([TelemetryRecord("E1", 0, 0, [Sample(ts=T0 + 86_400_000, **IDLE)])])
        found = [e for batch in batches for e in processor.process(batch)[0]]
        return [(e.code.value, e.transition, e.since_ms - T0) for e in found]

    assert events([[newer], [older]]) == events([[newer, older]])


@pytest.mark.parametrize("restart_at", [None, 1, 3, 5])
def test_a_late_run_goes_on_across_a_restart(restart_at: int | None) -> None:
    def fresh() -> RuleProcessor:
        processor = RuleProcessor(build(), lateness_ms=5_000)
        processor.set_registry(REGISTRY)
        return processor

    processor = fresh()
    processor.process([TelemetryRecord("E1", 100, 0, [Sample(ts=T0 + 3_600_000, **IDLE)])])
    trapped = {**IDLE, "door_zone": False, "occupied": True}
    buffer = [Sample(ts=T0 + 1000 * i, **(trapped if i < 40 else IDLE)) for i in range(60)]
    events = []
    for k in range(6):
        if k == restart_at:
            blob = processor.snapshot(["E1"])
            processor = fresh()
            processor.slot("U1")  # another slot numbering
            processor.restore(blob)
        found, det = processor.process([TelemetryRecord("E1", 101 + k, 0, buffer[10 * k : 10 * k + 10])])
        assert det.late == 10
        events += [(e.code.value, e.transition, e.since_ms - T0, e.evidence["late"]) for e in found]
    assert events == [("trapped_passenger", "raised", 0, True), ("trapped_passenger", "cleared", 40_000, True)]


def test_late_samples_of_an_unregistered_terminal_raise_nothing_more() -> None:
    processor = RuleProcessor(build(), lateness_ms=5_000)
    processor.set_registry(REGISTRY)
    found, _ = processor.process([TelemetryRecord("U1", 100, 0, [Sample(ts=T0 + 3_600_000, **IDLE)])])
    assert [e.code.value for e in found] == ["unregistered_terminal"]
    trapped = {**IDLE, "door_zone": False, "occupied": True}
    found, det = processor.process(
        [TelemetryRecord("U1", 101, 0, [Sample(ts=T0 + 1000 * i, **trapped) for i in range(60)])]
    )
    assert (found, det.late) == ([], 60)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cut_fracs=st.lists(st.floats(0, 1), max_size=5),
    shuffle=st.booleans(),
    form=st.sampled_from(FORMS),
)
def test_late_lane_events_do_not_depend_on_batches(
    seed: int, cut_fracs: list[float], shuffle: bool, form: Form
) -> None:
    """Backlog messages (in order or not, gaps of every size) cut into batches anyhow, one record a
    message or packed as columns: the same late events."""
    rng = np.random.default_rng(seed)
    stream = random_stream(rng, ["E1"], 200, disorder_ms=0, late_share=0.0)
    samples = sorted((s for _, s in stream), key=lambda s: s["ts"])
    live = TelemetryRecord("E1", 0, 0, [Sample(direction="stop", **{**samples[-1], "ts": samples[-1]["ts"] + 10**8})])
    messages, i = [], 0
    while i < len(samples):
        n = int(rng.integers(1, 12))
        messages.append([Sample(direction="stop", **s) for s in samples[i : i + n]])
        i += n
    if shuffle:
        rng.shuffle(messages)
    records = [TelemetryRecord("E1", 1 + k, 0, m) for k, m in enumerate(messages)]

    def events(cuts: list[int], form: Form) -> list[tuple[str, str, int, int]]:
        processor = RuleProcessor(fast_thresholds(), lateness_ms=5_000)
        processor.set_registry(REGISTRY)
        processor.process([live])
        bounds = [0, *sorted(set(cuts)), len(records)]
        found = [
            e
            for lo, hi in itertools.pairwise(bounds)
            for e in processor.process(as_sent(records[lo:hi], form, np.random.default_rng(lo)))[0]
        ]
        assert all(e.evidence["late"] for e in found)
        return [(e.code.value, e.transition, e.since_ms, e.at_ms) for e in found]

    whole = events(list(range(len(records))), "messages")
    assume(whole)  # a stream without late events would compare two empty lists
    assert events([int(f * len(records)) for f in cut_fracs], form) == whole
