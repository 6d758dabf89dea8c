"""The motion model of an elevator fleet: numpy arrays, one slot per elevator, advanced in vectorized ticks.

Each car cycles through ``idle -> (call) -> travel -> door opening -> open (dwell) -> closing ->
travel / idle``. Travel follows an analytic trapezoidal profile (accelerate, cruise at the rated
speed, decelerate, level at creep speed), so a car's position and speed at any instant are closed
formulas of the time since departure: ticks can be of any length and the samples stay exact.

Everything a terminal reports (``floor``, ``door_zone``, ``direction``, ``speed``, ``door``,
``occupied``, ``safety_circuit``, ...) is derived from this state in :meth:`Fleet.observe`; faults
(see :mod:`liftwatch.simulators.faults`) act only through the ``fx_*`` effect arrays and the trip
planners, never by writing the reported fields directly.

No I/O, no clock: time is a float of seconds since the simulation start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# --- physical constants of the model -----------------------------------------------------------

FLOOR_HEIGHT_M = 3.0
"""Distance between landings."""
DOOR_ZONE_M = 0.15
"""Half-height of the unlocking zone around a landing (EN 81-20 allows up to 0.2 m)."""
LEVEL_SPEED = 0.1
"""Creep speed of the final levelling approach, m/s."""
LEVEL_DISTANCE_M = 0.05
"""Length of the levelling approach."""
RESCUE_SPEED = 0.3
"""Speed of a re-levelling (rescue) move to the nearest landing after a stop between floors."""
EMERGENCY_DECEL = 1.2
"""Deceleration of an emergency stop, m/s^2."""
DOOR_REVERSAL_DWELL_S = 1.5
"""Dwell after a door reopens because something blocked it."""
MIN_DWELL_S, MAX_DWELL_S = 3.0, 7.0
"""Dwell of an open door at a stop (passengers boarding or leaving)."""
MIN_DOOR_S, MAX_DOOR_S = 2.0, 3.0
"""Door opening/closing time of a car (fixed per car)."""
NATURAL_REVERSAL_P = 0.03
"""Chance that someone blocks a closing door; at most one such reversal per car per minute,
so normal traffic never looks like ``door_reopen_loop``."""
NATURAL_REVERSAL_GAP_S = 60.0

# --- phases and reported codes -------------------------------------------------------------------

IDLE, OPENING, OPEN, CLOSING, MOVING, HOLD = 0, 1, 2, 3, 4, 5
"""Phase of a car; HOLD = stopped and held by an injected fault."""
AFTER_RELEVEL, AFTER_OPEN, AFTER_IDLE = 0, 1, 2
"""What a car does when a hold ends: move to the nearest landing, open the door, or go idle."""
DIR_STOP, DIR_UP, DIR_DOWN = 0, 1, 2
DIRECTIONS = np.array(["stop", "up", "down"], dtype=object)
DOOR_CLOSED, DOOR_OPENING, DOOR_OPEN, DOOR_CLOSING = 0, 1, 2, 3
DOORS = np.array(["closed", "opening", "open", "closing"], dtype=object)
_PHASE_DOOR = np.array([DOOR_CLOSED, DOOR_OPENING, DOOR_OPEN, DOOR_CLOSING, DOOR_CLOSED, DOOR_CLOSED], dtype=np.int64)
"""Door state of each phase (MOVING and HOLD keep the door closed)."""
CALL_ANY, CALL_LONG, CALL_EMPTY_TO_TOP, CALL_EMPTY_TO_BOTTOM = 0, 1, 2, 3
"""How the next passenger call is drawn; faults force the trips they need."""

_NEVER = math.inf


def where_true(mask: BoolArray) -> IntArray:
    """Indices of the true entries (np.flatnonzero without its wrapper overhead)."""
    found: IntArray = mask.nonzero()[0]
    return found


@dataclass(frozen=True, slots=True)
class ElevatorSpec:
    """What the simulator needs to know of one elevator (a subset of a registry row)."""

    terminal_id: str
    """Id of the monitoring terminal (MQTT topic segment)."""
    registration_code: str
    """Registration code of the elevator."""
    rated_speed: float
    """Rated speed, m/s."""
    bottom_floor: int
    """Lowest landing."""
    top_floor: int
    """Highest landing."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What the terminals of the fleet would report at one instant (one entry per slot)."""

    floor: IntArray
    door_zone: BoolArray
    direction: IntArray
    speed: FloatArray
    door: IntArray
    door_lock: BoolArray
    occupied: BoolArray
    safety_circuit: BoolArray
    power: BoolArray
    alarm_button: BoolArray
    limit_up: BoolArray
    limit_down: BoolArray

    def signature(self) -> IntArray:
        """The discrete state a terminal reports on change (not floor/zone: those follow motion)."""
        return (
            self.door
            | (self.direction << 2)
            | (self.occupied.astype(np.int64) << 4)
            | (self.safety_circuit.astype(np.int64) << 5)
            | (self.power.astype(np.int64) << 6)
            | (self.alarm_button.astype(np.int64) << 7)
            | (self.limit_up.astype(np.int64) << 8)
            | (self.limit_down.astype(np.int64) << 9)
        )


class Fleet:
    """State of every car, as arrays indexed by slot, and the transitions between phases."""

    def __init__(
        self,
        specs: Sequence[ElevatorSpec],
        rng: np.random.Generator,
        *,
        mean_idle_s: float = 90.0,
    ) -> None:
        n = len(specs)
        self.specs = list(specs)
        self.n = n
        self.rng = rng
        self.mean_idle_s = mean_idle_s
        self.rated = np.array([s.rated_speed for s in specs], dtype=np.float64)
        self.bottom = np.array([s.bottom_floor for s in specs], dtype=np.int64)
        self.top = np.array([s.top_floor for s in specs], dtype=np.int64)
        # Faster cars accelerate harder (typical 0.6 m/s^2 at 1 m/s up to 1.2 m/s^2 at 6 m/s).
        self.accel = np.clip(0.5 + 0.12 * self.rated, 0.6, 1.2)
        self.door_s = rng.uniform(MIN_DOOR_S, MAX_DOOR_S, n)
        # Cars start parked at their main landing (floor 1, or the bottom one if higher).
        lobby = np.clip(1, self.bottom, self.top)
        self.lobby = lobby
        self.pos = lobby.astype(np.float64)
        self.phase = np.full(n, IDLE, dtype=np.int64)
        self.phase_start = np.zeros(n)
        self.phase_end = rng.exponential(mean_idle_s, n)
        self.occupied = np.zeros(n, dtype=bool)
        self.board_at = np.full(n, _NEVER)
        self.board_value = np.zeros(n, dtype=bool)
        self.leg = np.zeros(n, dtype=np.int64)  # 0 none, 1 to the pickup landing, 2 carrying to dest
        self.pickup = lobby.copy()
        self.dest = lobby.copy()
        self.target = lobby.copy()
        self.call_kind = np.full(n, CALL_ANY, dtype=np.int64)
        self.reversals_left = np.zeros(n, dtype=np.int64)
        self.reversals = np.zeros(n, dtype=np.int64)
        self.last_natural_reversal = np.full(n, -_NEVER)
        self.dwell_override = np.zeros(n)  # > 0: the next dwell lasts this long (door_held_open)
        # Trip profile (see plan_trips): start time, origin, sign, segment ends and distances.
        self.t0 = np.zeros(n)
        self.p0 = self.pos.copy()
        self.p1 = self.pos.copy()
        self.sign = np.ones(n)
        self.a_acc = self.accel.copy()
        self.a_dec = self.accel.copy()
        self.peak = np.zeros(n)
        self.v_l = np.zeros(n)
        self.T1 = np.zeros(n)
        self.T2 = np.zeros(n)
        self.T3 = np.zeros(n)
        self.T4 = np.zeros(n)
        self.S1 = np.zeros(n)
        self.S2 = np.zeros(n)
        self.S3 = np.zeros(n)
        self.speed = np.zeros(n)
        # What happens on arrival: 0 = normal stop, else hold for that long (fault) then hold_after.
        self.hold_on_arrival = np.zeros(n)
        self.hold_after = np.full(n, AFTER_OPEN, dtype=np.int64)
        self.limit_on_arrival = np.zeros(n, dtype=np.int64)  # 1 up, 2 down
        # Fault effects on what the terminal reports.
        self.fx_limit = np.zeros(n, dtype=np.int64)
        self.fx_safety_open = np.zeros(n, dtype=bool)
        self.fx_power_off = np.zeros(n, dtype=bool)
        self.fx_alarm = np.zeros(n, dtype=bool)
        self.fx_door_from = np.full(n, _NEVER)
        self.fx_door_to = np.full(n, _NEVER)
        self.enabled = np.ones(n, dtype=bool)  # slot exists at this time (unregistered terminals)
        self.arrivals: list[int] = []  # slots that arrived (started their door/hold) in the last tick
        self.departures: list[int] = []  # slots that planned a passenger trip in the last tick

    # --- trip planning -----------------------------------------------------------------------

    def plan_trips(
        self,
        idx: IntArray,
        t0: FloatArray,
        dest_pos: FloatArray,
        vmax: FloatArray,
        *,
        level: bool = True,
    ) -> None:
        """Start trips of cars ``idx`` at ``t0`` from rest to ``dest_pos`` (landing units)."""
        if idx.size == 0:
            return
        a = self.accel[idx]
        p0 = self.pos[idx]
        delta = dest_pos - p0
        dist = np.abs(delta) * FLOOR_HEIGHT_M
        v_l = np.full(idx.size, LEVEL_SPEED if level else 0.0)
        lev = np.where(v_l > 0, LEVEL_DISTANCE_M, 0.0)
        lev = np.minimum(lev, dist)
        dp = dist - lev
        full = (2 * vmax**2 - v_l**2) / (2 * a)
        peak = np.where(dp >= full, vmax, np.sqrt(np.maximum(a * dp + v_l**2 / 2, 1e-12)))
        v_l = np.minimum(v_l, peak)
        cruise = np.maximum(dp - (2 * peak**2 - v_l**2) / (2 * a), 0.0)
        T1 = peak / a
        S1 = peak**2 / (2 * a)
        T2 = T1 + cruise / peak
        S2 = S1 + cruise
        T3 = T2 + (peak - v_l) / a
        S3 = S2 + (peak**2 - v_l**2) / (2 * a)
        T4 = T3 + np.where(v_l > 0, lev / np.maximum(v_l, 1e-9), 0.0)
        self.t0[idx] = t0
        self.p0[idx] = p0
        self.p1[idx] = dest_pos
        self.sign[idx] = np.where(delta >= 0, 1.0, -1.0)
        self.a_acc[idx] = a
        self.a_dec[idx] = a
        self.peak[idx] = peak
        self.v_l[idx] = v_l
        self.T1[idx], self.T2[idx], self.T3[idx], self.T4[idx] = T1, T2, T3, T4
        self.S1[idx], self.S2[idx], self.S3[idx] = S1, S2, S3
        self.phase[idx] = MOVING
        self.phase_start[idx] = t0
        self.phase_end[idx] = t0 + T4

    def emergency_stop(self, i: int, t: float) -> float:
        """Stop car ``i`` (moving) from its state at ``t`` at EMERGENCY_DECEL; returns the stop position."""
        pos, v = self.kinematics_at(i, t)
        stop_dist = v * v / (2 * EMERGENCY_DECEL)
        self.t0[i] = t
        self.p0[i] = pos
        self.p1[i] = pos + self.sign[i] * stop_dist / FLOOR_HEIGHT_M
        self.a_dec[i] = EMERGENCY_DECEL
        self.peak[i] = v
        self.v_l[i] = 0.0
        self.T1[i] = self.T2[i] = 0.0
        self.S1[i] = self.S2[i] = 0.0
        self.T3[i] = self.T4[i] = v / EMERGENCY_DECEL
        self.S3[i] = stop_dist
        self.phase_start[i] = t
        self.phase_end[i] = t + self.T4[i]
        return float(self.p1[i])

    def kinematics_at(self, i: int, t: float) -> tuple[float, float]:
        """Position (landing units) and speed of moving car ``i`` at ``t``."""
        pos, speed = self._profile(np.array([i]), np.array([t]))
        return float(pos[0]), float(speed[0])

    def _profile(self, idx: IntArray, t: FloatArray) -> tuple[FloatArray, FloatArray]:
        tau = t - self.t0[idx]
        T1, T2, T3, T4 = self.T1[idx], self.T2[idx], self.T3[idx], self.T4[idx]
        a_acc, a_dec, peak, v_l = self.a_acc[idx], self.a_dec[idx], self.peak[idx], self.v_l[idx]
        u = tau - T2
        w = tau - T3
        v = np.where(
            tau < T1,
            a_acc * tau,
            np.where(tau < T2, peak, np.where(tau < T3, peak - a_dec * u, np.where(tau < T4, v_l, 0.0))),
        )
        s = np.where(
            tau < T1,
            a_acc * tau * tau / 2,
            np.where(
                tau < T2,
                self.S1[idx] + peak * (tau - T1),
                np.where(tau < T3, self.S2[idx] + peak * u - a_dec * u * u / 2, self.S3[idx] + v_l * w),
            ),
        )
        pos = np.where(tau >= T4, self.p1[idx], self.p0[idx] + self.sign[idx] * s / FLOOR_HEIGHT_M)
        return pos, np.maximum(v, 0.0)

    def trip_window_above(self, i: int, threshold: float) -> tuple[float, float] | None:
        """Start and end time of the planned trip of ``i`` during which speed > threshold."""
        if self.peak[i] <= threshold:
            return None
        start = self.t0[i] + threshold / self.a_acc[i]
        end = self.t0[i] + self.T2[i] + (self.peak[i] - threshold) / self.a_dec[i]
        return float(start), float(end)

    # --- phase transitions -------------------------------------------------------------------

    def advance(self, t: float) -> None:
        """Apply every phase transition due by ``t`` and move the cars to their state at ``t``."""
        self.arrivals = []
        self.departures = []
        for _ in range(8):  # a long tick may chain several short phases
            if not self._transitions(t):
                break
        moving = where_true(self.phase == MOVING)
        if moving.size:
            pos, speed = self._profile(moving, np.full(moving.size, t))
            self.pos[moving] = pos
            self.speed[moving] = speed
        board = self.board_at <= t
        if board.any():
            self.occupied[board] = self.board_value[board]
            self.board_at[board] = _NEVER

    def _transitions(self, t: float) -> bool:
        reversing = False
        if self.reversals_left.any():
            # Reversals happen half-way through closing, so before that closing could end.
            reverse_at = self.phase_start + self.door_s / 2
            mask = (self.phase == CLOSING) & (self.reversals_left > 0) & (reverse_at <= t) & self.enabled
            reversing = bool(mask.any())
            if reversing:
                self._reverse(where_true(mask), reverse_at)
        if self.phase_end.min() > t:
            return reversing
        due = (self.phase_end <= t) & self.enabled
        if not due.any():
            return reversing
        # Split by phase first: a car must not pass two phases on one end time.
        end = self.phase_end.copy()
        due_idx = due.nonzero()[0]
        phase = self.phase[due_idx]
        moving = due_idx[phase == MOVING]
        opening = due_idx[phase == OPENING]
        open_ = due_idx[phase == OPEN]
        closing = due_idx[phase == CLOSING]
        held = due_idx[phase == HOLD]
        idle = due_idx[phase == IDLE]
        self._arrive(moving, end)
        self._opened(opening, end)
        self._start_closing(open_, end)
        self._closed(closing, end)
        self._end_hold(held, end)
        self._call(idle, end)
        return True

    def _arrive(self, idx: IntArray, end: FloatArray) -> None:
        if idx.size == 0:
            return
        t = end[idx]
        self.pos[idx] = self.p1[idx]
        self.speed[idx] = 0.0
        self.arrivals.extend(idx.tolist())
        hold = self.hold_on_arrival[idx] > 0
        held = idx[hold]
        if held.size:
            self.phase[held] = HOLD
            self.phase_start[held] = t[hold]
            self.phase_end[held] = t[hold] + self.hold_on_arrival[held]
            self.fx_limit[held] = self.limit_on_arrival[held]
            self.hold_on_arrival[held] = 0.0
            self.limit_on_arrival[held] = 0
        self._start_opening(idx[~hold], t[~hold])

    def _start_opening(self, idx: IntArray, t: FloatArray) -> None:
        self.phase[idx] = OPENING
        self.phase_start[idx] = t
        self.phase_end[idx] = t + self.door_s[idx]

    def _opened(self, idx: IntArray, end: FloatArray) -> None:
        if idx.size == 0:
            return
        t = end[idx]
        floor = np.rint(self.pos[idx]).astype(np.int64)
        dwell = self.rng.uniform(MIN_DWELL_S, MAX_DWELL_S, idx.size)
        override = self.dwell_override[idx]
        dwell = np.where(override > 0, override, dwell)
        self.dwell_override[idx] = 0.0
        boarding = (self.leg[idx] == 1) & (floor == self.pickup[idx])
        alighting = ((self.leg[idx] == 2) & (floor == self.dest[idx])) | (self.leg[idx] == 3)
        board = idx[boarding]
        self.board_at[board] = t[boarding] + dwell[boarding] / 2
        self.board_value[board] = True
        self.target[board] = self.dest[board]
        self.leg[board] = 2
        alight = idx[alighting]
        self.board_at[alight] = t[alighting] + dwell[alighting] / 2
        self.board_value[alight] = False
        self.leg[alight] = 0
        self.target[alight] = floor[alighting]
        self.phase[idx] = OPEN
        self.phase_start[idx] = t
        self.phase_end[idx] = t + dwell

    def _start_closing(self, idx: IntArray, end: FloatArray) -> None:
        if idx.size == 0:
            return
        t = end[idx]
        self.phase[idx] = CLOSING
        self.phase_start[idx] = t
        self.phase_end[idx] = t + self.door_s[idx]
        # Now and then someone blocks the door; never twice within a minute on one car.
        natural = (
            (self.rng.random(idx.size) < NATURAL_REVERSAL_P)
            & (self.reversals_left[idx] == 0)
            & (t - self.last_natural_reversal[idx] > NATURAL_REVERSAL_GAP_S)
        )
        chosen = idx[natural]
        self.reversals_left[chosen] = 1
        self.last_natural_reversal[chosen] = t[natural]

    def _reverse(self, idx: IntArray, at: FloatArray) -> None:
        if idx.size == 0:
            return
        t = at[idx]
        self.reversals_left[idx] -= 1
        self.reversals[idx] += 1
        self.phase[idx] = OPENING
        self.phase_start[idx] = t
        self.phase_end[idx] = t + self.door_s[idx] / 2
        self.dwell_override[idx] = np.where(
            self.dwell_override[idx] > 0, self.dwell_override[idx], DOOR_REVERSAL_DWELL_S
        )

    def _closed(self, idx: IntArray, end: FloatArray) -> None:
        if idx.size == 0:
            return
        t = end[idx]
        floor = np.rint(self.pos[idx]).astype(np.int64)
        go = (self.leg[idx] == 2) & (self.target[idx] != floor)
        leaving = idx[go]
        self.departures.extend(leaving.tolist())
        self.plan_trips(leaving, t[go], self.target[leaving].astype(np.float64), self.rated[leaving])
        self._go_idle(idx[~go], t[~go])

    def _go_idle(self, idx: IntArray, t: FloatArray) -> None:
        self.phase[idx] = IDLE
        self.phase_start[idx] = t
        self.phase_end[idx] = t + self.rng.exponential(self.mean_idle_s, idx.size)

    def _end_hold(self, idx: IntArray, end: FloatArray) -> None:
        if idx.size == 0:
            return
        t = end[idx]
        self.fx_limit[idx] = 0
        after = self.hold_after[idx]
        relevel = idx[after == AFTER_RELEVEL]
        if relevel.size:
            nearest = np.clip(np.rint(self.pos[relevel]), self.bottom[relevel], self.top[relevel])
            # A passenger on board leaves at the landing the car is brought to.
            self.leg[relevel] = np.where(self.occupied[relevel] | (self.leg[relevel] == 2), 3, self.leg[relevel])
            self.plan_trips(
                relevel, t[after == AFTER_RELEVEL], nearest, np.full(relevel.size, RESCUE_SPEED), level=False
            )
        opening = after == AFTER_OPEN
        self._start_opening(idx[opening], t[opening])
        idle = after == AFTER_IDLE
        self._go_idle(idx[idle], t[idle])
        self.hold_after[idx] = AFTER_OPEN

    def _call(self, idx: IntArray, end: FloatArray) -> None:
        """A passenger calls idle cars ``idx``: pick-up and destination landings."""
        single = self.top[idx] == self.bottom[idx]
        if single.any():  # one landing: nowhere to go, the car stays parked
            self._go_idle(idx[single], end[idx[single]])
            idx = idx[~single]
        if idx.size == 0:
            return
        t = end[idx]
        bottom, top, lobby = self.bottom[idx], self.top[idx], self.lobby[idx]
        here = np.rint(self.pos[idx]).astype(np.int64)
        span = top - bottom + 1
        random_floor = bottom + (self.rng.random(idx.size) * span).astype(np.int64)
        # Half the trips start at the main landing, half end there (residential/office pattern).
        from_lobby = self.rng.random(idx.size) < 0.5
        pickup = np.where(from_lobby, lobby, random_floor)
        dest = np.where(from_lobby, random_floor, lobby)
        same = dest == pickup
        dest = np.where(same, np.where(pickup == top, bottom, top), dest)
        kind = self.call_kind[idx]
        long = kind == CALL_LONG
        far_end = np.where(np.abs(here - bottom) >= np.abs(top - here), bottom, top)
        pickup = np.where(long, far_end, pickup)
        dest = np.where(long, np.where(far_end == bottom, top, bottom), dest)
        to_top = kind == CALL_EMPTY_TO_TOP
        pickup = np.where(to_top & (here != top), top, pickup)
        dest = np.where(to_top & (here != top), bottom, dest)
        to_bottom = kind == CALL_EMPTY_TO_BOTTOM
        pickup = np.where(to_bottom & (here != bottom), bottom, pickup)
        dest = np.where(to_bottom & (here != bottom), top, dest)
        self.call_kind[idx] = np.where((to_top & (here == top)) | (to_bottom & (here == bottom)), kind, CALL_ANY)
        self.pickup[idx] = pickup
        self.dest[idx] = dest
        self.target[idx] = pickup
        self.leg[idx] = 1
        at_pickup = pickup == here
        self._start_opening(idx[at_pickup], t[at_pickup])
        travel = idx[~at_pickup]
        self.departures.extend(travel.tolist())
        self.plan_trips(travel, t[~at_pickup], pickup[~at_pickup].astype(np.float64), self.rated[travel])

    # --- what the terminals see ----------------------------------------------------------------

    def observe(self, t: float) -> Observation:
        """The reported state of every slot at ``t`` (after :meth:`advance`)."""
        phase = self.phase
        moving = phase == MOVING
        speed: FloatArray = np.round(np.where(moving, self.speed, 0.0), 2).astype(np.float64)
        pos = self.pos
        nearest = np.rint(pos)
        door_zone = np.abs(pos - nearest) * FLOOR_HEIGHT_M <= DOOR_ZONE_M
        direction = np.where(moving & (speed > 0), np.where(self.sign > 0, DIR_UP, DIR_DOWN), DIR_STOP).astype(np.int64)
        door = _PHASE_DOOR[phase]
        if self.fx_door_from.min() <= t:
            forced_open = (self.fx_door_from <= t) & (t < self.fx_door_to)
            door = np.where(forced_open, DOOR_OPEN, door)
        return Observation(
            floor=nearest.astype(np.int64),
            door_zone=door_zone,
            direction=direction,
            speed=speed,
            door=door,
            door_lock=door == DOOR_CLOSED,
            occupied=self.occupied.copy(),
            safety_circuit=~self.fx_safety_open,
            power=~self.fx_power_off,
            alarm_button=self.fx_alarm.copy(),
            limit_up=self.fx_limit == 1,
            limit_down=self.fx_limit == 2,
        )

    def is_active(self) -> BoolArray:
        """Cars whose state is changing (moving or door in motion/open): sampled at the full rate."""
        active: BoolArray = self.phase != IDLE
        return active
