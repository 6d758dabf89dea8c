"""Load generation: publish real fleet telemetry at a target rate of samples per second, report what was achieved.

The load is the fleet model itself in *dense* mode (every car sends a sample every tick), not
random bytes, so the gateway, rules and writer see realistic payloads. The target rate is reached
by compressing event time: ``speedup = rate / (cars * rate_hz)``. The achieved rate counts only
samples the broker acknowledged (QoS 1), over the wall-clock time until the last acknowledgement.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from liftwatch.config import MqttTls
from liftwatch.mqtt import MqttClient
from liftwatch.simulators.fleet import ElevatorSpec
from liftwatch.simulators.publisher import FleetPublisher, run_fleet
from liftwatch.simulators.stream import FleetSimulator, SimulationConfig

LOAD_RATE_HZ = 2.0
"""Samples per second of each simulated car in load mode (event time)."""


@dataclass(frozen=True, slots=True)
class LoadReport:
    """Outcome of a load run."""

    target_rate: float
    achieved_rate: float
    samples: int
    messages: int
    elapsed_s: float
    cars: int
    batch: int
    acknowledged: bool
    """False if the broker did not acknowledge everything within the flush timeout."""


MAX_LOAD_CARS = 300_000


def load_fleet(cars: int) -> list[ElevatorSpec]:
    """A synthetic fleet for load runs (no registry needed): mid-rise cars of common speeds."""
    speeds = (1.0, 1.5, 1.75, 2.0, 2.5)
    return [ElevatorSpec(f"LOAD{i:06d}", f"LOAD{i:016d}", speeds[i % len(speeds)], 1, 8 + i % 24) for i in range(cars)]


async def run_load(
    url: str,
    *,
    rate: float,
    duration_s: float,
    batch: int = 100,
    cars: int | None = None,
    topic_root: str = "",
    seed: int = 1,
    client_id: str = "liftwatch-load",
    tls: MqttTls | None = None,
) -> LoadReport:
    """Publish ``rate`` samples/s for ``duration_s`` wall seconds on one MQTT connection."""
    # About one full message per car per wall second: big batches, bounded tick work.
    # One car per message in flight per tick, within the simulator's fleet range (1-300,000 cars).
    cars = cars or min(MAX_LOAD_CARS, max(10, int(rate / batch)))
    speedup = rate / (cars * LOAD_RATE_HZ)
    config = SimulationConfig(
        rate_hz=LOAD_RATE_HZ, fine_rate_hz=LOAD_RATE_HZ * 5, batch=batch, linger_s=batch / LOAD_RATE_HZ, dense=True
    )
    event_span_ms = int(duration_s * speedup * 1000)
    # Past timestamps ending now: a gateway would refuse samples from the future.
    start_ms = int(time.time() * 1000) - event_span_ms
    simulator = FleetSimulator(load_fleet(cars), start_ms=start_ms, seed=seed, config=config)
    client = MqttClient(url, client_id, receive_maximum=65535, tls=tls)
    await client.connect()
    try:
        publisher = FleetPublisher(client, topic_root=topic_root)
        began = time.monotonic()
        stats = await run_fleet(simulator, publisher, asyncio.Event(), speedup=speedup, duration_s=event_span_ms / 1000)
        acknowledged = await publisher.flush()
        elapsed = time.monotonic() - began
    finally:
        await client.disconnect()
    return LoadReport(rate, stats.samples / elapsed, stats.samples, stats.messages, elapsed, cars, batch, acknowledged)
