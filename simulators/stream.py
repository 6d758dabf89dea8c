"""From the motion model to what terminals send: sampling, batching, sequence numbers, faults, bad input.

:class:`FleetSimulator` advances the fleet tick by tick (event time) and returns, per tick, the
outbound items in order: :class:`~liftwatch.schema.TelemetryMessage` (valid telemetry),
:class:`StatusEvent` (``online``/``offline``) and :class:`RawMessage` (an injected bad payload).
It has no I/O: :mod:`liftwatch.simulators.publisher` sends these over MQTT, and tests use
:func:`simulate_fleet` to get the stream and the ground truth directly::

    run = simulate_fleet(specs, start_ms=..., duration_s=3600, seed=1, faults=[...])
    messages = list(run)          # TelemetryMessage, in sending order
    run.truth                     # list[TruthRecord]: the injected conditions
    run.statuses, run.bad_inputs  # status announcements and the bad inputs sent

Sampling: a terminal sends a sample when its discrete state changes (door, direction, occupancy,
safety chain, power, alarm, limit switches), every ``1/rate_hz`` s while the car is active (moving,
door not closed, held by a fault), at ``fine_rate_hz`` during faults that need it (overspeed),
and a heartbeat every ``heartbeat_s`` while idle. Samples are batched per terminal: a message
goes out when it holds ``batch`` samples or its oldest sample is ``linger_s`` old.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import msgspec
import numpy as np
from liftwatch.schema import DeadLetterReason, FaultCode, Sample, TelemetryMessage, TerminalStatus
from liftwatch.simulators.faults import (
    BadInputInjection,
    BadInputKindName,
    FaultController,
    FaultInjection,
    TruthRecord,
)
from liftwatch.simulators.fleet import DIRECTIONS, DOORS, ElevatorSpec, Fleet, Observation, where_true

OVERSIZED_BYTES = 300 * 1024
"""Size of an injected oversized payload (the gateway's default limit is 256 KiB)."""


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """How terminals sample and batch (event time)."""

    rate_hz: float = 2.0
    """Samples per second of an active car (moving, doors in use)."""
    heartbeat_s: float = 30.0
    """Longest silence of an idle car."""
    batch: int = 10
    """Most samples per message (1-100)."""
    linger_s: float = 1.0
    """Longest a sample waits in the terminal before its message is sent."""
    fine_rate_hz: float = 10.0
    """Sampling rate during faults that need it (overspeed, door open while moving)."""
    mean_idle_s: float = 90.0
    """Mean time between passenger calls of an idle car."""
    dense: bool = False
    """Load generation: every car sends a sample every tick."""

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= 100:
            raise ValueError("batch must be 1 to 100 samples")
        if self.rate_hz <= 0 or self.fine_rate_hz < self.rate_hz:
            raise ValueError("rates must be positive, fine_rate_hz >= rate_hz")
        if not 0 < self.heartbeat_s <= 30:
            raise ValueError("heartbeat_s must be within (0, 30] (the contract asks for one at least every 30 s)")


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A terminal's ``online``/``offline`` announcement (``lift/v1/{terminal}/status``)."""

    terminal: str
    status: TerminalStatus
    at_ms: int


@dataclass(frozen=True, slots=True)
class RawMessage:
    """An injected bad payload for ``lift/v1/{topic_terminal}/telemetry``."""

    topic_terminal: str
    payload: bytes
    kind: BadInputKindName
    at_ms: int


class BadInputRecord(msgspec.Struct):
    """What was sent as bad input, and what the gateway should do with it."""

    kind: BadInputKindName
    terminal: str
    """Terminal id of the topic."""
    at_ms: int
    seq: int | None
    expected: DeadLetterReason | None
    """Dead-letter reason the gateway should give; None = accepted (and deduplicated/reordered)."""


Outbound = TelemetryMessage | StatusEvent | RawMessage

_EXPECTED: dict[BadInputKindName, DeadLetterReason | None] = {
    "malformed_json": DeadLetterReason.UNDECODABLE,
    "wrong_type": DeadLetterReason.SCHEMA,
    "out_of_range": DeadLetterReason.SCHEMA,
    "oversized": DeadLetterReason.OVERSIZED,
    "topic_mismatch": DeadLetterReason.TOPIC_MISMATCH,
    "bad_topic": DeadLetterReason.BAD_TOPIC,
    "duplicate": None,
    "out_of_order": None,
    "unknown_terminal": None,
}

_json = msgspec.json.Encoder()


def _ghost_spec(seed: int, k: int) -> ElevatorSpec:
    return ElevatorSpec(f"UNREG-{seed}-{k}", "", 1.0, 1, 6)


class FleetSimulator:
    """The fleet, its terminals and the injections, advanced in ticks of event time. No I/O."""

    def __init__(
        self,
        specs: Sequence[ElevatorSpec],
        *,
        start_ms: int,
        seed: int,
        faults: Iterable[FaultInjection] = (),
        bad_inputs: Iterable[BadInputInjection] = (),
        config: SimulationConfig = SimulationConfig(),
    ) -> None:
        self.config = config
        self.start_ms = start_ms
        self.seed = seed
        registered = list(specs)
        all_specs = list(registered)
        injections: list[FaultInjection] = []
        for inj in faults:
            if inj.code is FaultCode.UNREGISTERED_TERMINAL and inj.elevator is None:
                all_specs.append(_ghost_spec(seed, len(all_specs) - len(registered)))
                inj = dataclasses.replace(inj, elevator=len(all_specs) - 1)
            injections.append(inj)
        self.registered = len(registered)
        self.fleet = Fleet(all_specs, np.random.default_rng(seed), mean_idle_s=config.mean_idle_s)
        self.fleet.enabled[self.registered :] = False
        self.controller = FaultController(self.fleet, start_ms, injections)
        self._bad_rng = np.random.default_rng([seed, 1])
        self._bad: list[BadInputInjection] = sorted(bad_inputs, key=lambda b: b.at_s)
        self.bad_inputs: list[BadInputRecord] = []
        n = self.fleet.n
        self.terminals = [s.terminal_id for s in all_specs]
        self.t_ms = 0
        self.period_ms = max(1, round(1000 / config.rate_hz))
        self.fine_ms = max(1, round(1000 / config.fine_rate_hz))
        # Ticks fall on the sampling grid (or between, during fine sampling): aiming one period
        # early keeps every heartbeat gap within heartbeat_s.
        self.heartbeat_ms = max(self.period_ms, round(config.heartbeat_s * 1000) - self.period_ms)
        self.linger_ms = round(config.linger_s * 1000)
        # Spread the heartbeats of idle cars over the period instead of all at once.
        self.next_sample = np.zeros(n, dtype=np.int64)
        self.next_heartbeat = np.random.default_rng([seed, 2]).integers(0, self.heartbeat_ms, n)
        self.last_signature = np.full(n, -1, dtype=np.int64)
        self.seq = np.zeros(n, dtype=np.int64)
        self.buffered = np.zeros(n, dtype=np.int64)
        self.buffer_since = np.zeros(n, dtype=np.int64)
        self._buffers: list[list[Sample]] = [[] for _ in range(n)]
        # Terminals are not synchronized: the first message of each is cut at a random size, so
        # a fleet's full batches spread over time instead of all leaving in the same tick.
        self.batch_target = np.random.default_rng([seed, 3]).integers(1, config.batch + 1, n)
        self._duplicate_next: set[int] = set()
        self._hold_next: set[int] = set()
        self._held: dict[int, TelemetryMessage] = {}
        self._unknown_count = 0
        self.samples_emitted = 0

    @property
    def truth(self) -> list[TruthRecord]:
        """Ground truth so far (records of running faults have ``end_ms`` None)."""
        return self.controller.truth

    def add_fault(self, injection: FaultInjection) -> None:
        """Schedule a fault on a registered elevator while running."""
        self.controller.add(injection)

    # --- ticks ---------------------------------------------------------------------------------

    def _next_tick_ms(self) -> int:
        t = self.t_ms
        nxt = (t // self.period_ms + 1) * self.period_ms
        if self.controller.needs_fine(t / 1000, nxt / 1000):
            return min(nxt, t + self.fine_ms)
        if self.config.dense:
            return nxt
        fleet = self.fleet
        enabled = fleet.enabled
        if self.buffered.any() or (fleet.is_active() & enabled).any():
            return nxt
        # Nothing moves: jump to the next thing that will happen (quiet small fleets run fast).
        candidates = [
            float(fleet.phase_end[enabled].min(initial=math.inf)) * 1000,
            float(self.next_heartbeat[enabled & ~self.controller.offline].min(initial=2**62)),
            self.controller.next_event_s() * 1000,
            self._bad[0].at_s * 1000 if self._bad else math.inf,
        ]
        soonest = min(candidates)
        if math.isinf(soonest):
            return nxt
        return max(nxt, math.ceil(soonest / self.period_ms) * self.period_ms)

    def step(self) -> list[Outbound]:
        """Advance to the next tick; the items the terminals send at it, in order."""
        self.t_ms = t_ms = self._next_tick_ms()
        t = t_ms / 1000
        now_ms = self.start_ms + t_ms
        fleet = self.fleet
        fleet.advance(t)
        events = self.controller.update(t)
        # A terminal coming back announces itself before its telemetry.
        out: list[Outbound] = [StatusEvent(self.terminals[i], "online", now_ms) for i in events.online]
        obs = fleet.observe(t)
        signature = obs.signature()
        sending = fleet.enabled & ~self.controller.offline
        if self.config.dense:
            emit = sending
        else:
            due = np.where(fleet.is_active(), t_ms >= self.next_sample, t_ms >= self.next_heartbeat)
            emit = due | (signature != self.last_signature)
            fine = self.controller.fine_slots(t)
            if fine:
                emit[fine] = True
            emit &= sending
        if events.offline:
            # A terminal going offline sends a last sample first: its silence starts now.
            emit[events.offline] = fleet.enabled[events.offline]
        idx = where_true(emit)
        if idx.size:
            self._append(idx, obs, now_ms)
            self.next_sample[idx] = t_ms + self.period_ms
            self.next_heartbeat[idx] = t_ms + self.heartbeat_ms
            self.last_signature[idx] = signature[idx]
        for i in events.offline:
            out.extend(self._flush(np.array([i])))
            out.append(StatusEvent(self.terminals[i], "offline", now_ms))
        while self._bad and self._bad[0].at_s <= t:
            out.extend(self._bad_input(self._bad.pop(0), obs, now_ms))
        full = (self.buffered >= self.batch_target) | (
            (self.buffered > 0) & (t_ms - self.buffer_since >= self.linger_ms)
        )
        out.extend(self._flush(where_true(full)))
        return out

    def run_until(self, t_ms: int) -> Iterator[list[Outbound]]:
        """Tick until event time ``t_ms`` (ms after the start); yields each tick's items."""
        while self.t_ms < t_ms:
            yield self.step()

    def close(self) -> list[Outbound]:
        """Send what the terminals still buffer (end of the run)."""
        out = self._flush(where_true(self.buffered > 0))
        for message in self._held.values():
            out.append(message)
        self._held.clear()
        return out

    # --- samples and messages ----------------------------------------------------------------

    def _append(self, idx: np.ndarray[Any, np.dtype[np.int64]], obs: Observation, now_ms: int) -> None:
        n = idx.size
        samples = list(
            map(
                Sample,
                repeat(now_ms, n),
                repeat("normal", n),
                obs.floor[idx].tolist(),
                obs.door_zone[idx].tolist(),
                DIRECTIONS[obs.direction[idx]].tolist(),
                obs.speed[idx].tolist(),
                DOORS[obs.door[idx]].tolist(),
                obs.occupied[idx].tolist(),
                obs.safety_circuit[idx].tolist(),
                obs.door_lock[idx].tolist(),
                obs.alarm_button[idx].tolist(),
                obs.power[idx].tolist(),
                repeat(None, n),
                obs.limit_up[idx].tolist(),
                obs.limit_down[idx].tolist(),
            )
        )
        buffers = self._buffers
        for i, sample in zip(idx.tolist(), samples, strict=True):
            buffers[i].append(sample)
        fresh = idx[self.buffered[idx] == 0]
        self.buffer_since[fresh] = now_ms - self.start_ms
        self.buffered[idx] += 1
        self.samples_emitted += n

    def _flush(self, idx: np.ndarray[Any, np.dtype[np.int64]]) -> list[Outbound]:
        out: list[Outbound] = []
        if idx.size == 0:
            return out
        buffers, terminals, seq = self._buffers, self.terminals, self.seq
        seqs = seq[idx].tolist()
        for i, s in zip(idx.tolist(), seqs, strict=True):
            message = TelemetryMessage(v=1, terminal=terminals[i], seq=s, samples=buffers[i])
            buffers[i] = []
            if self._duplicate_next or self._hold_next or self._held:
                out.extend(self._tamper(i, message))
            else:
                out.append(message)
        seq[idx] += 1
        self.buffered[idx] = 0
        self.batch_target[idx] = self.config.batch
        return out

    def _tamper(self, i: int, message: TelemetryMessage) -> list[Outbound]:
        """Duplicate or reorder this terminal's message if a bad input asked for it."""
        out: list[Outbound] = [message]
        if i in self._duplicate_next:
            self._duplicate_next.discard(i)
            out.append(message)
        if i in self._held:
            out.append(self._held.pop(i))
        elif i in self._hold_next:
            self._hold_next.discard(i)
            self._held[i] = message
            out.remove(message)
        return out

    # --- bad input -----------------------------------------------------------------------------

    def _bad_input(self, bad: BadInputInjection, obs: Observation, now_ms: int) -> list[Outbound]:
        candidates = where_true(self.fleet.enabled[: self.registered] & ~self.controller.offline[: self.registered])
        if candidates.size == 0:
            return []
        i = int(candidates[self._bad_rng.integers(candidates.size)])
        terminal = self.terminals[i]
        seq = int(self.seq[i])
        kind = bad.kind
        record = BadInputRecord(kind, terminal, now_ms, seq, _EXPECTED[kind])
        self.bad_inputs.append(record)
        if kind == "duplicate":
            self._duplicate_next.add(i)
            return []
        if kind == "out_of_order":
            self._hold_next.add(i)
            return []
        sample = self._sample_dict(i, obs, now_ms)
        message: dict[str, Any] = {"v": 1, "terminal": terminal, "seq": seq, "samples": [sample]}
        topic_terminal = terminal
        if kind == "malformed_json":
            payload = _json.encode(message)[:-7] + b",,}"
        elif kind == "wrong_type":
            sample["floor"] = str(sample["floor"])
            payload = _json.encode(message)
        elif kind == "out_of_range":
            sample["speed"] = 99.5
            payload = _json.encode(message)
        elif kind == "oversized":
            payload = _json.encode(message)
            payload += b" " * (OVERSIZED_BYTES - len(payload))
        elif kind == "topic_mismatch":
            message["terminal"] = f"{terminal}-X"
            payload = _json.encode(message)
        elif kind == "bad_topic":
            topic_terminal = f"{terminal}!bad"
            payload = _json.encode(message)
        else:  # unknown_terminal: valid telemetry from a terminal the registry does not know
            self._unknown_count += 1
            topic_terminal = message["terminal"] = f"UNKNOWN-{self.seed}-{self._unknown_count}"
            message["seq"] = 0
            payload = _json.encode(message)
            record.terminal = topic_terminal
            self.controller.truth.append(
                TruthRecord(None, topic_terminal, FaultCode.UNREGISTERED_TERMINAL, now_ms, now_ms, now_ms)
            )
        return [RawMessage(topic_terminal, payload, kind, now_ms)]

    def _sample_dict(self, i: int, obs: Observation, now_ms: int) -> dict[str, Any]:
        return {
            "ts": now_ms,
            "mode": "normal",
            "floor": int(obs.floor[i]),
            "door_zone": bool(obs.door_zone[i]),
            "direction": str(DIRECTIONS[obs.direction[i]]),
            "speed": float(obs.speed[i]),
            "door": str(DOORS[obs.door[i]]),
            "occupied": bool(obs.occupied[i]),
            "safety_circuit": bool(obs.safety_circuit[i]),
        }


class FleetRun:
    """Iterating yields the fleet's TelemetryMessages; truth, statuses and bad inputs fill as it goes."""

    def __init__(self, simulator: FleetSimulator, duration_ms: int) -> None:
        self.simulator = simulator
        self.duration_ms = duration_ms
        self.statuses: list[StatusEvent] = []
        self.raw: list[RawMessage] = []

    @property
    def truth(self) -> list[TruthRecord]:
        """The conditions injected so far."""
        return self.simulator.truth

    @property
    def bad_inputs(self) -> list[BadInputRecord]:
        return self.simulator.bad_inputs

    def __iter__(self) -> Iterator[TelemetryMessage]:
        sim = self.simulator
        for items in sim.run_until(self.duration_ms):
            yield from self._sort(items)
        yield from self._sort(sim.close())

    def _sort(self, items: list[Outbound]) -> Iterator[TelemetryMessage]:
        for item in items:
            if isinstance(item, TelemetryMessage):
                yield item
            elif isinstance(item, StatusEvent):
                self.statuses.append(item)
            else:
                self.raw.append(item)


def simulate_fleet(
    specs: Sequence[ElevatorSpec],
    *,
    start_ms: int,
    duration_s: float,
    seed: int,
    faults: Iterable[FaultInjection] = (),
    bad_inputs: Iterable[BadInputInjection] = (),
    config: SimulationConfig = SimulationConfig(),
) -> FleetRun:
    """The telemetry of a simulated fleet over ``duration_s`` of event time, without MQTT.

    Same arguments, same messages: the run is deterministic for a seed.
    """
    simulator = FleetSimulator(specs, start_ms=start_ms, seed=seed, faults=faults, bad_inputs=bad_inputs, config=config)
    return FleetRun(simulator, round(duration_s * 1000))
