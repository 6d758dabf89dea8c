"""The oracle: a plain per-sample Python implementation of the fault rules.

Written to be obviously right rather than fast: one terminal at a time, one sample at a time,
every rule a small state machine. The vectorized engine must produce exactly the same events.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from liftwatch.rules.engine import DAY_MS
from liftwatch.rules.params import TerminalInfo
from liftwatch.rules.thresholds import RuleSet, Thresholds

Event = tuple[str, str, str, int, int]
"""(terminal, code, transition, since_ms, at_ms)"""


@dataclass
class _Run:
    cond: bool | None = None
    since: int = 0
    count: int = 0

    def update(self, c: bool, ts: int) -> None:
        if c != self.cond:
            self.since, self.count = ts, 0
        self.cond = c
        self.count += 1


@dataclass
class _Fault:
    active: bool = False


@dataclass
class _Terminal:
    max_ts: int | None = None
    pending: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    runs: dict[str, _Run] = field(default_factory=dict)
    faults: dict[str, _Fault] = field(default_factory=dict)
    opened_since_stop: bool = False
    prev_door: str | None = None
    reversals: deque[int] = field(default_factory=deque)
    last_day: int = -1

    def run(self, name: str) -> _Run:
        return self.runs.setdefault(name, _Run())

    def fault(self, name: str) -> _Fault:
        return self.faults.setdefault(name, _Fault())


class Reference:
    """Feed samples one by one (arrival order); collect events."""

    def __init__(
        self,
        thresholds: Thresholds,
        registry: dict[str, TerminalInfo],
        *,
        lateness_ms: int = 5_000,
        day_offset_ms: int = 0,
    ) -> None:
        self.thresholds = thresholds
        self.registry = registry
        self.lateness_ms = lateness_ms
        self.day_offset_ms = day_offset_ms
        self.terminals: dict[str, _Terminal] = {}
        self.events: list[Event] = []
        self.late = 0
        self.evaluated = 0
        self._arrival = 0

    def feed(self, terminal: str, sample: dict[str, Any]) -> None:
        t = self.terminals.setdefault(terminal, _Terminal())
        ts = sample["ts"]
        if t.max_ts is not None and ts < t.max_ts - self.lateness_ms:
            self.late += 1
            return
        self._arrival += 1
        t.pending.append((ts, self._arrival, sample))
        t.max_ts = ts if t.max_ts is None else max(t.max_ts, ts)
        self._release(terminal, t, t.max_ts - self.lateness_ms)

    def flush(self) -> None:
        for terminal, t in self.terminals.items():
            self._release(terminal, t, None)

    def _release(self, terminal: str, t: _Terminal, below: int | None) -> None:
        ready = sorted(p for p in t.pending if below is None or p[0] < below)
        t.pending = [p for p in t.pending if not (below is None or p[0] < below)]
        for _, _, sample in ready:
            self._evaluate(terminal, t, sample)

    def _emit(self, terminal: str, code: str, transition: str, since: int, at: int) -> None:
        self.events.append((terminal, code, transition, since, at))

    def _machine(
        self, terminal: str, t: _Terminal, code: str, ready: bool, since: int, cond: _Run, clear_s: float, ts: int
    ) -> None:
        fault = t.fault(code)
        if ready and not fault.active:
            fault.active = True
            self._emit(terminal, code, "raised", since, ts)
        elif not cond.cond and fault.active and ts - cond.since >= round(clear_s * 1000):
            fault.active = False
            self._emit(terminal, code, "cleared", cond.since, ts)

    def _hold(
        self,
        terminal: str,
        t: _Terminal,
        code: str,
        c: bool,
        hold_s: float,
        clear_s: float,
        ts: int,
        enabled: bool,
        min_count: int = 1,
    ) -> None:
        run = t.run(code)
        run.update(c, ts)
        ready = enabled and c and ts - run.since >= round(hold_s * 1000) and run.count >= min_count
        self._machine(terminal, t, code, ready, run.since, run, clear_s, ts)

    def _evaluate(self, terminal: str, t: _Terminal, s: dict[str, Any]) -> None:
        self.evaluated += 1
        info = self.registry.get(terminal)
        rs: RuleSet = self.thresholds.for_model(info.model if info else None)
        notation = self.thresholds.notation
        ts = s["ts"]
        speed, door, mode, dz, occ = s["speed"], s["door"], s["mode"], s["door_zone"], s["occupied"]
        stopped = speed < notation.stopped_below_mps
        moving = speed >= notation.moving_from_mps
        normal = mode == "normal"
        closed = door == "closed"
        registered = info is not None
        if not registered:
            day = (ts + self.day_offset_ms) // DAY_MS
            if day > t.last_day:
                self._emit(terminal, "unregistered_terminal", "raised", ts, ts)
            t.last_day = day

        # trapped passenger
        if not stopped:
            t.opened_since_stop = False
        elif not closed:
            t.opened_since_stop = True
        base = occ and stopped and closed and normal
        a = base and not dz
        b = base and dz and not t.opened_since_stop
        tp = rs.trapped_passenger
        ra, rb, rt = t.run("trap_a"), t.run("trap_b"), t.run("trap")
        ra.update(a, ts)
        rb.update(b, ts)
        rt.update(a or b, ts)
        en = registered and tp.enabled
        ready_a = en and a and ts - ra.since >= round(tp.between_floors_hold_s * 1000)
        ready_b = en and b and ts - rb.since >= round(tp.at_landing_hold_s * 1000)
        since = ra.since if ready_a else rb.since
        self._machine(terminal, t, "trapped_passenger", ready_a or ready_b, since, rt, tp.clear_after_s, ts)

        limit = rs.overspeed.factor * info.rated_speed if info else float("inf")
        os = rs.overspeed
        self._hold(
            terminal,
            t,
            "overspeed",
            speed > limit,
            os.hold_s,
            os.clear_after_s,
            ts,
            registered and os.enabled,
            os.min_samples,
        )

        dw = rs.door_open_while_moving
        c = (
            (not closed)
            and (speed >= dw.speed_mps or (moving and not dz))
            and mode not in ("inspection", "maintenance")
        )
        self._hold(terminal, t, "door_open_while_moving", c, 0, dw.clear_after_s, ts, registered and dw.enabled)

        top = info.top_floor if info else 32767
        bottom = info.bottom_floor if info else -32768
        r = rs.overtravel_top
        self._hold(
            terminal,
            t,
            "overtravel_top",
            (s["limit_up"] or s["floor"] > top) and normal,
            0,
            r.clear_after_s,
            ts,
            registered and r.enabled,
        )
        r = rs.overtravel_bottom
        self._hold(
            terminal,
            t,
            "overtravel_bottom",
            (s["limit_down"] or s["floor"] < bottom) and normal,
            0,
            r.clear_after_s,
            ts,
            registered and r.enabled,
        )
        h = rs.stopped_outside_door_zone
        self._hold(
            terminal,
            t,
            "stopped_outside_door_zone",
            stopped and not dz and not occ and normal,
            h.hold_s,
            h.clear_after_s,
            ts,
            registered and h.enabled,
        )
        h2 = rs.safety_circuit_open
        self._hold(
            terminal,
            t,
            "safety_circuit_open",
            (not s["safety_circuit"]) and normal,
            h2.hold_s,
            h2.clear_after_s,
            ts,
            registered and h2.enabled,
        )

        loop = rs.door_reopen_loop
        if moving or not normal:  # a departure or a technician at work starts the count afresh
            t.reversals.clear()
        if t.prev_door == "closing" and door in ("opening", "open") and not moving and normal:
            t.reversals.append(ts)
        t.prev_door = door
        k = loop.reversals
        c = normal and len(t.reversals) >= k and ts - t.reversals[-k] < round(loop.window_s * 1000)
        self._hold(terminal, t, "door_reopen_loop", c, 0, loop.clear_after_s, ts, registered and loop.enabled)

        h3 = rs.door_held_open
        self._hold(
            terminal,
            t,
            "door_held_open",
            door == "open" and stopped and normal,
            h3.hold_s,
            h3.clear_after_s,
            ts,
            registered and h3.enabled,
        )
        h4 = rs.power_failure
        self._hold(
            terminal, t, "power_failure", not s["power"], h4.hold_s, h4.clear_after_s, ts, registered and h4.enabled
        )
        h5 = rs.alarm_button
        self._hold(
            terminal,
            t,
            "alarm_button",
            s["alarm_button"] and normal,
            h5.hold_s,
            h5.clear_after_s,
            ts,
            registered and h5.enabled,
        )


# --- random streams ---------------------------------------------------------------------------

_MODES = ("normal", "inspection", "maintenance", "fire")
_DOORS = ("open", "opening", "closing", "closed")
_DOOR_NEXT = {
    "closed": ("closed", "opening"),
    "opening": ("opening", "open", "closing"),
    "open": ("open", "closing"),
    "closing": ("closing", "closed", "opening", "open"),
}


def random_stream(
    rng: Any, terminals: list[str], samples_per_terminal: int, *, disorder_ms: int = 3_000, late_share: float = 0.01
) -> list[tuple[str, dict[str, Any]]]:
    """Sticky random telemetry for some terminals, near every threshold, interleaved in a jittered arrival order."""
    out: list[tuple[float, str, dict[str, Any]]] = []
    speeds = (0.0, 0.0, 0.0, 0.02, 0.049, 0.05, 0.07, 0.099, 0.1, 0.2, 0.299, 0.3, 1.0, 1.149, 1.151, 1.2, 2.0)
    for terminal in terminals:
        ts = 1_700_000_000_000 + int(rng.integers(0, 86_400_000))
        state = {
            "mode": "normal",
            "floor": 3,
            "door_zone": True,
            "speed": 0.0,
            "door": "closed",
            "occupied": False,
            "safety_circuit": True,
            "alarm_button": False,
            "power": True,
            "limit_up": False,
            "limit_down": False,
        }
        for _ in range(samples_per_terminal):
            gap = (
                int(rng.choice([100, 250, 500, 1000, 1000, 1000, 2000, 3000]))
                if rng.random() > 0.01
                else int(rng.integers(5_000, 40_000))
            )
            ts += gap if rng.random() > 0.02 else 0  # occasional duplicate timestamp
            if rng.random() < 0.02:
                state["mode"] = "normal" if rng.random() < 0.6 else str(rng.choice(_MODES))
            if rng.random() < 0.15:
                state["speed"] = float(rng.choice(speeds))
            if rng.random() < 0.3:
                state["door"] = str(rng.choice(_DOOR_NEXT[state["door"]]))
            if rng.random() < 0.05:
                state["floor"] = int(rng.integers(-3, 14))
            for name, p in (
                ("door_zone", 0.1),
                ("occupied", 0.05),
                ("safety_circuit", 0.03),
                ("alarm_button", 0.05),
                ("power", 0.02),
                ("limit_up", 0.01),
                ("limit_down", 0.01),
            ):
                if rng.random() < p:
                    state[name] = not state[name]
            for name, good in (("safety_circuit", True), ("power", True), ("limit_up", False), ("limit_down", False)):
                if state[name] != good and rng.random() < 0.05:
                    state[name] = good
            arrival = ts + (float(rng.exponential(disorder_ms)) if rng.random() < 0.3 else 0.0)
            if rng.random() < late_share:
                arrival += 20_000
            out.append((arrival, terminal, {"ts": ts, **state}))
    out.sort(key=lambda item: item[0])
    return [(terminal, sample) for _, terminal, sample in out]


def fast_thresholds() -> Thresholds:
    """Short holds so random streams raise and clear every rule often; one model with overrides."""
    from liftwatch.rules.thresholds import build

    return build(
        {
            "rules": {
                "trapped_passenger": {"between_floors_hold_s": 4, "at_landing_hold_s": 6, "clear_after_s": 3},
                "stopped_outside_door_zone": {"hold_s": 5},
                "door_held_open": {"hold_s": 8, "clear_after_s": 2},
                "door_reopen_loop": {"reversals": 3, "window_s": 20},
                "power_failure": {"hold_s": 2},
                "overspeed": {"clear_after_s": 4},
            },
            "models": {
                "M2": {
                    "overspeed": {"factor": 1.1, "min_samples": 3},
                    "door_reopen_loop": {"reversals": 4},
                    "alarm_button": {"enabled": False},
                    "safety_circuit_open": {"hold_s": 0},
                }
            },
        }
    )
