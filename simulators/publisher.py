"""Thin I/O: sends what :class:`~liftwatch.simulators.stream.FleetSimulator` produces over MQTT, paced.

One MQTT client per process carries every terminal of the fleet (QoS 1). Back-pressure: after
each tick the publisher waits until fewer than ``max_in_flight`` messages await their PUBACK, so a
slow broker slows the simulation instead of growing memory.

Last will: MQTT allows one will per connection, and one connection carries thousands of
terminals, so per-terminal wills are impossible here. The simulator instead announces every
terminal ``online`` (retained) when it starts, and publishes explicit ``offline``/``online``
status messages for injected ``terminal_offline`` faults (what the broker would publish for a
real terminal's will). When the simulator itself stops, its terminals simply fall silent (the
platform's silence rule then reports them offline).

Pacing: event time advances ``speedup`` times faster than the wall clock; if publishing cannot
keep up, the simulation runs as fast as it can and ``lag_s`` says by how much it is behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from liftwatch.mqtt import MqttClient
from liftwatch.schema import TelemetryMessage
from liftwatch.simulators.stream import FleetSimulator, Outbound, RawMessage, StatusEvent

log = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 2000
"""Publishes awaiting PUBACK before the simulator waits (bounds memory, keeps latency sane)."""


@dataclass(slots=True)
class PublishStats:
    """What was sent (counted when handed to the client; ``flush`` waits for the acks)."""

    messages: int = 0
    samples: int = 0
    statuses: int = 0
    bad_inputs: int = 0
    lag_s: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        """Samples per wall-clock second since the start."""
        return self.samples / max(time.monotonic() - self.started, 1e-9)


class FleetPublisher:
    """Serializes outbound items and publishes them on one MQTT client."""

    def __init__(self, client: MqttClient, *, topic_root: str = "", max_in_flight: int = DEFAULT_MAX_IN_FLIGHT):
        self.client = client
        self.root = topic_root
        self.max_in_flight = max_in_flight
        self.stats = PublishStats()
        self._encoder = msgspec.json.Encoder()
        self._topics: dict[str, str] = {}

    def telemetry_topic(self, terminal: str) -> str:
        topic = self._topics.get(terminal)
        if topic is None:
            topic = self._topics[terminal] = f"{self.root}lift/v1/{terminal}/telemetry"
        return topic

    def status_topic(self, terminal: str) -> str:
        return f"{self.root}lift/v1/{terminal}/status"

    async def send(self, items: list[Outbound]) -> None:
        """Publish one tick's items in order, then wait for the broker if too many are unacknowledged."""
        publish, encode, stats = self.client.publish, self._encoder.encode, self.stats
        for item in items:
            if isinstance(item, TelemetryMessage):
                publish(self.telemetry_topic(item.terminal), encode(item), 1)
                stats.messages += 1
                stats.samples += len(item.samples)
            elif isinstance(item, StatusEvent):
                publish(self.status_topic(item.terminal), item.status.encode(), 1, True)
                stats.statuses += 1
            elif isinstance(item, RawMessage):
                publish(self.telemetry_topic(item.topic_terminal), item.payload, 1)
                stats.bad_inputs += 1
        if self.client.pending_publishes >= self.max_in_flight:
            await self.client.wait_below(self.max_in_flight)

    async def announce_online(self, terminals: list[str]) -> None:
        """Publish a retained ``online`` for every terminal (what each would do on connecting)."""
        for start in range(0, len(terminals), 1000):
            for terminal in terminals[start : start + 1000]:
                self.client.publish(self.status_topic(terminal), b"online", 1, True)
            await self.client.wait_below(self.max_in_flight)

    async def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until the broker has acknowledged everything; False on timeout."""
        try:
            await asyncio.wait_for(self.client.wait_below(1), timeout_s)
        except TimeoutError:
            return False
        return True


async def run_fleet(
    simulator: FleetSimulator,
    publisher: FleetPublisher,
    stop: asyncio.Event,
    *,
    speedup: float = 1.0,
    duration_s: float | None = None,
    on_tick: Callable[[FleetSimulator], None] | None = None,
) -> PublishStats:
    """Run the simulation until ``stop`` (or ``duration_s`` of event time), publishing as it goes."""
    loop = asyncio.get_running_loop()
    wall0 = loop.time()
    end_ms = None if duration_s is None else round(duration_s * 1000)
    stats = publisher.stats
    stats.started = time.monotonic()
    while not stop.is_set() and (end_ms is None or simulator.t_ms < end_ms):
        items = simulator.step()
        if on_tick is not None:
            on_tick(simulator)
        await publisher.send(items)
        delay = wall0 + simulator.t_ms / 1000 / speedup - loop.time()
        stats.lag_s = max(-delay, 0.0)
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        else:
            await asyncio.sleep(0)
    await publisher.send(simulator.close())
    return stats
