"""Fault injection: what to inject (scenario entries), how each catalog fault is produced, the ground truth.

Every code of the fault catalog (``docs/protocol/faults.md``) can be injected. An injection becomes
*due* at its time and then waits for the first moment its elevator can show it realistically (a
trapped passenger needs a car carrying one, an overspeed needs a long trip, ...); the controller
arms the car for that (it forces the next passenger call) and records in the ground truth when the
catalog condition actually starts and ends, in event time. One injection produces exactly one
catalog condition: secondary effects a real failure may have (an overtravel also opening the
safety chain) are deliberately not modelled, so tests can expect one incident per truth record.

Each injected condition holds longer than the catalog's hold time by a margin (the minimum
durations below); the car is fault-free before and after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import msgspec
import numpy as np
import yaml
from liftwatch.rules.catalog import CATALOG, Injection
from liftwatch.rules.thresholds import RuleSet
from liftwatch.schema import FaultCode
from liftwatch.simulators import fleet as fl
from liftwatch.simulators.errors import ScenarioError
from liftwatch.simulators.fleet import ElevatorSpec, Fleet

Variant = Literal["between_floors", "at_landing"]

_RULES = RuleSet()
"""The catalog's default thresholds: injections are made to cross them."""

OVERSPEED_THRESHOLD = _RULES.overspeed.factor
OVERSPEED_FACTOR = OVERSPEED_THRESHOLD + 0.10
"""Speed of an overspeeding car, as a multiple of its rated speed (above the rule's factor)."""
OVERTRAVEL_M = 0.12
"""How far past the terminal landing an overtravelling car stops (inside the door zone)."""
DOOR_FAULT_MIN_SPEED = 0.5
"""The door of a door_open_while_moving fault opens only while the car is faster than this."""
STUCK_MIN_FROM_LANDING_M = 0.45
"""A car stopped between floors is at least this far from a landing (door zone is 0.15 m)."""
MIN_REVERSALS = _RULES.door_reopen_loop.reversals
"""Door reversals the door_reopen_loop rule needs within its window."""
DEFAULT_REVERSALS = MIN_REVERSALS + 2
"""Door reversals of a door_reopen_loop injection (above what the rule needs)."""
FINE_MARGIN_S = 0.5


TIMINGS: dict[tuple[FaultCode, Variant | None], Injection] = {
    (spec.code, cast("Variant | None", injection.variant)): injection
    for spec in CATALOG
    for injection in spec.injections
}
"""Default and minimum duration of each injection, from the catalog (the minimum: the hold time plus a
margin, so the injected condition is always detectable)."""


def timing(code: FaultCode, variant: Variant | None) -> Injection:
    """Default and minimum duration of an injection."""
    if code is FaultCode.TRAPPED_PASSENGER:
        return TIMINGS[(code, variant or "between_floors")]
    return TIMINGS[(code, None)]


@dataclass(frozen=True, slots=True)
class FaultInjection:
    """One fault to inject: on which slot, from when (due time), for how long."""

    code: FaultCode
    at_s: float
    """Event seconds after the simulation start when the fault becomes due."""
    elevator: int | None
    """Slot of the elevator in the fleet; for ``unregistered_terminal`` None (the simulator adds a
    slot of its own, unknown to the registry, and fills this in)."""
    duration_s: float
    variant: Variant | None = None
    """``trapped_passenger`` only: between floors (default) or at a landing."""
    reversals: int = DEFAULT_REVERSALS
    """``door_reopen_loop`` only."""

    def __post_init__(self) -> None:
        if self.code is FaultCode.TRAPPED_PASSENGER and self.variant is None:
            object.__setattr__(self, "variant", "between_floors")
        if self.code is not FaultCode.TRAPPED_PASSENGER and self.variant is not None:
            raise ScenarioError(f"{self.code}: only trapped_passenger takes a variant")
        minimum = timing(self.code, self.variant).minimum_s
        if self.duration_s < minimum:
            raise ScenarioError(
                f"{self.code}: duration {self.duration_s} s is below {minimum} s (catalog hold time + margin)"
            )
        if self.code is FaultCode.DOOR_REOPEN_LOOP and self.reversals < MIN_REVERSALS:
            raise ScenarioError(f"door_reopen_loop needs at least {MIN_REVERSALS} reversals")
        if self.elevator is None and self.code is not FaultCode.UNREGISTERED_TERMINAL:
            raise ScenarioError(f"{self.code}: an elevator must be given")


class TruthRecord(msgspec.Struct, omit_defaults=True):
    """One line of the ground-truth log: a catalog condition the simulator produced."""

    elevator: str | None
    """Registration code of the elevator (None: a terminal the registry does not know)."""
    terminal: str
    """Terminal id."""
    code: FaultCode
    """Catalog code the platform should raise."""
    start_ms: int
    """Event time the condition became true (first sample showing it is within one sampling period)."""
    end_ms: int | None
    """Event time it stopped being true; None while still active at the end of the run."""
    scheduled_ms: int
    """Event time the injection became due (start_ms is later when it waited for an opportunity)."""
    variant: str | None = None
    """``between_floors`` / ``at_landing`` for ``trapped_passenger``."""


_truth_encoder = msgspec.json.Encoder()


def truth_line(record: TruthRecord) -> bytes:
    """A ground-truth record as one JSON line."""
    return _truth_encoder.encode(record) + b"\n"


def read_truth(path: Path) -> list[TruthRecord]:
    """Read a ground-truth log written by ``liftwatch simulate --truth``."""
    decoder = msgspec.json.Decoder(TruthRecord)
    return [decoder.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


# --- feasibility -----------------------------------------------------------------------------------


def overspeed_window_s(spec: ElevatorSpec) -> float:
    """Seconds above the overspeed threshold on a bottom-to-top trip at OVERSPEED_FACTOR."""
    a = float(np.clip(0.5 + 0.12 * spec.rated_speed, 0.6, 1.2))
    dist = (spec.top_floor - spec.bottom_floor) * fl.FLOOR_HEIGHT_M - fl.LEVEL_DISTANCE_M
    vmax = OVERSPEED_FACTOR * spec.rated_speed
    threshold = OVERSPEED_THRESHOLD * spec.rated_speed
    full = (2 * vmax**2 - fl.LEVEL_SPEED**2) / (2 * a)
    peak = vmax if dist >= full else math.sqrt(a * dist + fl.LEVEL_SPEED**2 / 2)
    if peak <= threshold:
        return 0.0
    cruise = max(dist - (2 * peak**2 - fl.LEVEL_SPEED**2) / (2 * a), 0.0) / peak
    return cruise + 2 * (peak - threshold) / a


def feasible(code: FaultCode, spec: ElevatorSpec, duration_s: float) -> bool:
    """Whether this elevator can show this fault (a one-landing car cannot travel between floors)."""
    if code is FaultCode.OVERSPEED:
        return overspeed_window_s(spec) >= duration_s + 0.2
    if code in (
        FaultCode.TRAPPED_PASSENGER,
        FaultCode.DOOR_OPEN_WHILE_MOVING,
        FaultCode.OVERTRAVEL_TOP,
        FaultCode.OVERTRAVEL_BOTTOM,
        FaultCode.STOPPED_OUTSIDE_DOOR_ZONE,
    ):
        return spec.top_floor - spec.bottom_floor >= 1
    return True


# --- the controller ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Active:
    injection: FaultInjection
    slot: int
    record: TruthRecord | None = None
    armed: bool = False
    end_s: float = math.inf
    reversals_base: int = 0
    fine_from: float = math.inf
    fine_to: float = -math.inf


@dataclass(slots=True)
class ControllerEvents:
    """What the controller did in one tick that the stream must act on."""

    offline: list[int] = field(default_factory=list)
    online: list[int] = field(default_factory=list)
    finished: list[TruthRecord] = field(default_factory=list)


class FaultController:
    """Turns due injections into car behaviour and records the ground truth. Plain code, no I/O."""

    def __init__(self, fleet: Fleet, start_ms: int, injections: list[FaultInjection]) -> None:
        self.fleet = fleet
        self.start_ms = start_ms
        self._pending: list[FaultInjection] = sorted(injections, key=lambda f: f.at_s)
        self._running: dict[int, _Active] = {}
        self.truth: list[TruthRecord] = []
        self.offline = np.zeros(fleet.n, dtype=bool)
        self._departed: set[int] = set()

    def add(self, injection: FaultInjection) -> None:
        """Schedule one more injection (the demo adds them as it goes)."""
        self._pending.append(injection)
        self._pending.sort(key=lambda f: f.at_s)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _ms(self, t: float) -> int:
        return self.start_ms + round(t * 1000)

    def _start_record(self, run: _Active, start_s: float) -> TruthRecord:
        spec = self.fleet.specs[run.slot]
        inj = run.injection
        record = TruthRecord(
            elevator=None if inj.code is FaultCode.UNREGISTERED_TERMINAL else spec.registration_code,
            terminal=spec.terminal_id,
            code=inj.code,
            start_ms=self._ms(start_s),
            end_ms=None,
            scheduled_ms=self._ms(inj.at_s),
            variant=inj.variant,
        )
        run.record = record
        self.truth.append(record)
        return record

    def next_due_s(self) -> float:
        """Event time of the next pending injection (inf if none)."""
        return self._pending[0].at_s if self._pending else math.inf

    def next_event_s(self) -> float:
        """Event time of the next due injection or end of a running one (inf if none)."""
        ends = [r.end_s for r in self._running.values()]
        return min([self.next_due_s(), *ends])

    def needs_fine(self, t_from: float, t_to: float) -> bool:
        """True if some car must be sampled at the fine rate during (t_from, t_to]."""
        return any(r.fine_from <= t_to and r.fine_to > t_from for r in self._running.values())

    def fine_slots(self, t: float) -> list[int]:
        """Cars sampled at the fine rate at ``t``."""
        return [r.slot for r in self._running.values() if r.fine_from <= t < r.fine_to]

    def update(self, t: float) -> ControllerEvents:
        """Start due injections whose opportunity has come, follow running ones; after Fleet.advance(t)."""
        events = ControllerEvents()
        if self._pending and self._pending[0].at_s <= t:
            waiting: list[FaultInjection] = []
            for inj in self._pending:
                assert inj.elevator is not None, "unregistered_terminal injections get a slot from the stream"
                if inj.at_s > t or inj.elevator in self._running:
                    waiting.append(inj)  # one fault at a time per car: later ones wait their turn
                else:
                    self._running[inj.elevator] = _Active(inj, inj.elevator)
            self._pending = waiting
        self._departed = set(self.fleet.departures) if self._running else set()
        for slot, run in list(self._running.items()):
            if self._step(run, t, events):
                del self._running[slot]
                if run.record is not None:
                    events.finished.append(run.record)
        return events

    def close(self) -> list[TruthRecord]:
        """Records still open at the end of the run (end_ms stays None)."""
        return [r.record for r in self._running.values() if r.record is not None]

    # One method per behaviour; each returns True when the injection is over.

    def _step(self, run: _Active, t: float, events: ControllerEvents) -> bool:
        code = run.injection.code
        if code is FaultCode.TRAPPED_PASSENGER and run.injection.variant == "at_landing":
            return self._trapped_at_landing(run, t)
        if code in (FaultCode.TRAPPED_PASSENGER, FaultCode.STOPPED_OUTSIDE_DOOR_ZONE):
            return self._stuck_between_floors(run, t, occupied=code is FaultCode.TRAPPED_PASSENGER)
        if code is FaultCode.OVERSPEED:
            return self._overspeed(run, t)
        if code is FaultCode.DOOR_OPEN_WHILE_MOVING:
            return self._door_open_moving(run, t)
        if code in (FaultCode.OVERTRAVEL_TOP, FaultCode.OVERTRAVEL_BOTTOM):
            return self._overtravel(run, t, up=code is FaultCode.OVERTRAVEL_TOP)
        if code in (FaultCode.SAFETY_CIRCUIT_OPEN, FaultCode.POWER_FAILURE):
            return self._idle_hold(
                run, t, self.fleet.fx_safety_open if code is FaultCode.SAFETY_CIRCUIT_OPEN else self.fleet.fx_power_off
            )
        if code is FaultCode.ALARM_BUTTON:
            return self._alarm(run, t)
        if code is FaultCode.DOOR_REOPEN_LOOP:
            return self._reopen_loop(run, t)
        if code is FaultCode.DOOR_HELD_OPEN:
            return self._held_open(run, t)
        if code is FaultCode.TERMINAL_OFFLINE:
            return self._offline(run, t, events)
        return self._unregistered(run, t)

    def _call_now(self, i: int, t: float, kind: int) -> None:
        """Make sure car ``i`` soon gets the kind of passenger call the fault needs."""
        f = self.fleet
        if f.phase[i] == fl.IDLE:
            f.call_kind[i] = kind
            f.phase_end[i] = min(f.phase_end[i], t)

    def _held_until_done(self, run: _Active, t: float) -> bool:
        """Common tail of hold-based faults: the record starts with the hold and ends with it."""
        f = self.fleet
        i = run.slot
        if run.record is None:
            if f.phase[i] != fl.HOLD:
                return False
            run.end_s = float(f.phase_end[i])
            self._start_record(run, float(f.phase_start[i]))
        if t >= run.end_s:
            assert run.record is not None
            run.record.end_ms = self._ms(run.end_s)
            return True
        return False

    def _stuck_between_floors(self, run: _Active, t: float, *, occupied: bool) -> bool:
        f = self.fleet
        i = run.slot
        if not run.armed:
            self._call_now(i, t, fl.CALL_LONG)
            carrying = f.leg[i] == 2 and f.occupied[i]
            empty_trip = f.leg[i] == 1 and not f.occupied[i]
            if f.phase[i] != fl.MOVING or not (carrying if occupied else empty_trip):
                return False
            v = float(f.speed[i])
            pos = float(f.pos[i])
            stop = v * v / (2 * fl.EMERGENCY_DECEL)
            remaining = abs(float(f.p1[i]) - pos) * fl.FLOOR_HEIGHT_M
            final = pos + float(f.sign[i]) * stop / fl.FLOOR_HEIGHT_M
            off_landing = abs(final - round(final)) * fl.FLOOR_HEIGHT_M
            if v < 0.3 or remaining < stop + 1.0 or off_landing < STUCK_MIN_FROM_LANDING_M:
                return False
            f.emergency_stop(i, t)
            f.hold_on_arrival[i] = run.injection.duration_s
            f.hold_after[i] = fl.AFTER_RELEVEL
            run.armed = True
            return False
        return self._held_until_done(run, t)

    def _trapped_at_landing(self, run: _Active, t: float) -> bool:
        f = self.fleet
        i = run.slot
        if not run.armed:
            self._call_now(i, t, fl.CALL_ANY)
            if f.phase[i] != fl.MOVING or f.leg[i] != 2 or not f.occupied[i]:
                return False
            f.hold_on_arrival[i] = run.injection.duration_s
            f.hold_after[i] = fl.AFTER_OPEN
            run.armed = True
            return False
        return self._held_until_done(run, t)

    def _overtravel(self, run: _Active, t: float, *, up: bool) -> bool:
        f = self.fleet
        i = run.slot
        if not run.armed:
            self._call_now(i, t, fl.CALL_EMPTY_TO_TOP if up else fl.CALL_EMPTY_TO_BOTTOM)
            terminal = f.top[i] if up else f.bottom[i]
            if i not in self._departed or f.leg[i] != 1 or f.target[i] != terminal or f.occupied[i]:
                return False
            # Re-plan the trip that just started (the car has barely moved) past the terminal landing.
            beyond = float(terminal) + (1 if up else -1) * OVERTRAVEL_M / fl.FLOOR_HEIGHT_M
            f.pos[i] = f.p0[i]
            f.plan_trips(np.array([i]), np.array([f.t0[i]]), np.array([beyond]), np.array([f.rated[i]]))
            f.hold_on_arrival[i] = run.injection.duration_s
            f.hold_after[i] = fl.AFTER_RELEVEL
            f.limit_on_arrival[i] = 1 if up else 2
            run.armed = True
            return False
        return self._held_until_done(run, t)

    def _overspeed(self, run: _Active, t: float) -> bool:
        f = self.fleet
        i = run.slot
        if run.record is None:
            self._call_now(i, t, fl.CALL_LONG)
            if i not in self._departed:
                return False
            rated = float(f.rated[i])
            saved = f.pos[i]
            f.pos[i] = f.p0[i]
            f.plan_trips(np.array([i]), np.array([f.t0[i]]), np.array([f.p1[i]]), np.array([OVERSPEED_FACTOR * rated]))
            window = f.trip_window_above(i, OVERSPEED_THRESHOLD * rated)
            if window is None or window[1] - window[0] < run.injection.duration_s or window[0] <= t:
                f.plan_trips(np.array([i]), np.array([f.t0[i]]), np.array([f.p1[i]]), np.array([rated]))
                f.pos[i] = saved
                return False
            f.pos[i] = saved
            run.end_s = window[1]
            run.fine_from, run.fine_to = window[0] - FINE_MARGIN_S, window[1] + FINE_MARGIN_S
            self._start_record(run, window[0])
        if t >= run.fine_to:
            assert run.record is not None
            run.record.end_ms = self._ms(run.end_s)
            return True
        return False

    def _door_open_moving(self, run: _Active, t: float) -> bool:
        f = self.fleet
        i = run.slot
        if run.record is None:
            self._call_now(i, t, fl.CALL_LONG)
            if i not in self._departed:
                return False
            a = float(f.a_acc[i])
            start = max(float(f.t0[i]) + DOOR_FAULT_MIN_SPEED / a, t + 0.05)
            fast_until = float(f.t0[i] + f.T2[i]) + (float(f.peak[i]) - DOOR_FAULT_MIN_SPEED) / float(f.a_dec[i])
            end = start + run.injection.duration_s
            if f.peak[i] <= DOOR_FAULT_MIN_SPEED or end > fast_until:
                return False
            f.fx_door_from[i], f.fx_door_to[i] = start, end
            run.end_s = end
            run.fine_from, run.fine_to = start - FINE_MARGIN_S, end + FINE_MARGIN_S
            self._start_record(run, start)
        if t >= run.end_s:
            f.fx_door_from[i] = f.fx_door_to[i] = math.inf
            assert run.record is not None
            run.record.end_ms = self._ms(run.end_s)
            return True
        return False

    def _idle_hold(self, run: _Active, t: float, flag: np.ndarray[Any, np.dtype[np.bool_]]) -> bool:
        f = self.fleet
        i = run.slot
        if run.record is None:
            if f.phase[i] != fl.IDLE:
                return False
            f.phase[i] = fl.HOLD
            f.phase_start[i] = t
            f.phase_end[i] = t + run.injection.duration_s
            f.hold_after[i] = fl.AFTER_IDLE
            flag[i] = True
            run.end_s = t + run.injection.duration_s
            self._start_record(run, t)
        if t >= run.end_s:
            flag[i] = False
            assert run.record is not None
            run.record.end_ms = self._ms(run.end_s)
            return True
        return False

    def _alarm(self, run: _Active, t: float) -> bool:
        f = self.fleet
        i = run.slot
        if run.record is None:
            self._call_now(i, t, fl.CALL_ANY)
            if not f.occupied[i]:
                return False
            f.fx_alarm[i] = True
            run.end_s = t + run.injection.duration_s
            self._start_record(run, t)
        if t >= run.end_s:
            f.fx_alarm[i] = False
            assert run.record is not None
            run.record.end_ms = self._ms(run.end_s)
            return True
        return False

    def _reopen_loop(self, run: _Active, t: float) -> bool:
        f = self.fleet
        i = run.slot
        if not run.armed:
            self._call_now(i, t, fl.CALL_ANY)
            if f.phase[i] != fl.OPEN or f.reversals_left[i] > 0:
                return False
            f.reversals_left[i] = run.injection.reversals
            run.reversals_base = int(f.reversals[i])
            run.armed = True
            return False
        done = int(f.reversals[i]) - run.reversals_base
        if run.record is None and done >= 1:
            self._start_record(run, float(f.phase_start[i]))
        if done >= run.injection.reversals and run.record is not None:
            run.record.end_ms = self._ms(float(f.phase_start[i]))
            return True
        return False

    def _held_open(self, run: _Active, t: float) -> bool:
        f = self.fleet
        i = run.slot
        if not run.armed:
            self._call_now(i, t, fl.CALL_ANY)
            if f.phase[i] != fl.OPENING or f.reversals_left[i] > 0:
                return False
            f.dwell_override[i] = run.injection.duration_s
            run.armed = True
            return False
        if run.record is None:
            if f.phase[i] != fl.OPEN:
                return False
            run.end_s = float(f.phase_end[i])
            self._start_record(run, float(f.phase_start[i]))
        if t >= run.end_s:
            assert run.record is not None
            run.record.end_ms = self._ms(run.end_s)
            return True
        return False

    def _offline(self, run: _Active, t: float, events: ControllerEvents) -> bool:
        i = run.slot
        if run.record is None:
            self.offline[i] = True
            events.offline.append(i)
            run.end_s = t + run.injection.duration_s
            self._start_record(run, t)
        if t >= run.end_s:
            self.offline[i] = False
            events.online.append(i)
            assert run.record is not None
            run.record.end_ms = self._ms(run.end_s)
            return True
        return False

    def _unregistered(self, run: _Active, t: float) -> bool:
        f = self.fleet
        i = run.slot
        if run.record is None:
            f.enabled[i] = True
            f.phase_end[i] = t
            run.end_s = t + run.injection.duration_s
            self._start_record(run, t)
        if t >= run.end_s:
            f.enabled[i] = False
            assert run.record is not None
            run.record.end_ms = self._ms(run.end_s)
            return True
        return False


# --- scenario files -------------------------------------------------------------------------------


_MAX_SECONDS = 10 * 365 * 24 * 3600.0
# Finite event seconds (NaN fails every bound); a scenario spans ten years at most.
EventSeconds = Annotated[float, msgspec.Meta(ge=0, le=_MAX_SECONDS)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0, le=_MAX_SECONDS)]
Count = Annotated[int, msgspec.Meta(ge=1, le=100_000)]


class FaultEntry(msgspec.Struct, forbid_unknown_fields=True):
    """A scenario line: inject ``count`` faults of ``code``."""

    code: FaultCode
    elevator: int | str = "random"
    """Slot index, registration code, terminal id, or ``random``."""
    at_s: EventSeconds | Literal["random"] = "random"
    """Event seconds after the start, or ``random`` (uniform over the scenario window)."""
    duration_s: PositiveSeconds | None = None
    variant: Variant | None = None
    count: Count = 1
    reversals: Annotated[int, msgspec.Meta(ge=1, le=1000)] = DEFAULT_REVERSALS


BadInputKindName = Literal[
    "malformed_json",
    "wrong_type",
    "out_of_range",
    "oversized",
    "duplicate",
    "out_of_order",
    "unknown_terminal",
    "topic_mismatch",
    "bad_topic",
]


class BadInputEntry(msgspec.Struct, forbid_unknown_fields=True):
    """A scenario line: send ``count`` bad inputs of ``kind``."""

    kind: BadInputKindName
    at_s: EventSeconds | Literal["random"] = "random"
    count: Count = 1


class Scenario(msgspec.Struct, forbid_unknown_fields=True):
    """A scenario file (YAML or JSON): a timeline of faults and bad inputs."""

    faults: list[FaultEntry] = []
    bad_input: list[BadInputEntry] = []
    window_s: PositiveSeconds | None = None
    """Span over which ``random`` times are drawn; default: the run's duration."""


@dataclass(frozen=True, slots=True)
class BadInputInjection:
    """One bad input to send at ``at_s``."""

    kind: BadInputKindName
    at_s: float


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file; a wrong field is a ScenarioError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ScenarioError(f"{path}: not UTF-8 ({error.reason} at byte {error.start})") from error
    try:
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else msgspec.json.decode(text)
        return msgspec.convert(data or {}, Scenario)
    except (yaml.YAMLError, msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ScenarioError(f"{path}: {error}") from error


def _slot_of(ref: int | str, specs: list[ElevatorSpec]) -> int | None:
    if isinstance(ref, int):
        return ref if 0 <= ref < len(specs) else None
    for i, spec in enumerate(specs):
        if ref in (spec.registration_code, spec.terminal_id):
            return i
    return None


def resolve_scenario(
    scenario: Scenario, specs: list[ElevatorSpec], window_s: float, rng: np.random.Generator
) -> tuple[list[FaultInjection], list[BadInputInjection]]:
    """Turn a scenario into concrete injections (random elevators and times drawn from ``rng``)."""
    window = scenario.window_s or window_s
    faults: list[FaultInjection] = []
    for entry in scenario.faults:
        duration = entry.duration_s if entry.duration_s is not None else timing(entry.code, entry.variant).default_s
        for _ in range(entry.count):
            at = float(rng.uniform(0, window)) if entry.at_s == "random" else float(entry.at_s)
            if entry.code is FaultCode.UNREGISTERED_TERMINAL:
                slot = None
            elif entry.elevator == "random":
                candidates = [i for i, s in enumerate(specs) if feasible(entry.code, s, duration)]
                if not candidates:
                    raise ScenarioError(f"{entry.code}: no elevator of the fleet can show it")
                slot = int(candidates[int(rng.integers(len(candidates)))])
            else:
                slot = _slot_of(entry.elevator, specs)
                if slot is None:
                    raise ScenarioError(f"{entry.code}: unknown elevator {entry.elevator!r}")
                if not feasible(entry.code, specs[slot], duration):
                    raise ScenarioError(f"{entry.code}: elevator {entry.elevator!r} cannot show it")
            faults.append(FaultInjection(entry.code, at, slot, duration, entry.variant, entry.reversals))
    bad: list[BadInputInjection] = []
    for bad_entry in scenario.bad_input:
        for _ in range(bad_entry.count):
            at = float(rng.uniform(0, window)) if bad_entry.at_s == "random" else float(bad_entry.at_s)
            bad.append(BadInputInjection(bad_entry.kind, at))
    return faults, bad


def random_faults(
    specs: list[ElevatorSpec],
    rng: np.random.Generator,
    count: int,
    window_s: float,
    codes: list[FaultCode] | None = None,
    start_s: float = 0.0,
) -> list[FaultInjection]:
    """``count`` faults of random codes on random (feasible) elevators at random times."""
    pool = codes or [c for c in FaultCode if c is not FaultCode.UNREGISTERED_TERMINAL]
    entries = [
        FaultEntry(code=pool[int(rng.integers(len(pool)))], at_s=float(start_s + rng.uniform(0, window_s)))
        for _ in range(count)
    ]
    faults, _ = resolve_scenario(Scenario(faults=entries), specs, window_s, rng)
    return faults
