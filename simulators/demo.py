"""The simulated side of ``liftwatch demo``: a generated registry in the database and a live fleet with faults.

``prepare_demo`` imports the seeded registry of N elevators; ``fleet_service`` returns a service
(``async (stop) -> None``) running the fleet over MQTT in real time (or ``speedup`` times faster),
with an entrapment every few minutes and another random fault in between, so the console always
has something to show.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import numpy as np
from liftwatch import db
from liftwatch.config import CommonSettings
from liftwatch.mqtt import MqttClient
from liftwatch.registry.importer import import_registry
from liftwatch.runtime import Service
from liftwatch.schema import FaultCode
from liftwatch.simulators.errors import ScenarioError
from liftwatch.simulators.faults import FaultInjection, Variant, feasible, timing
from liftwatch.simulators.publisher import FleetPublisher, run_fleet
from liftwatch.simulators.specs import generated_registry, specs_from_rows
from liftwatch.simulators.stream import FleetSimulator, SimulationConfig

log = logging.getLogger(__name__)

ENTRAPMENT_EVERY_S = 240.0
"""Event seconds between injected entrapments (the first comes after a minute)."""
OTHER_FAULT_EVERY_S = 90.0
"""Event seconds between other random faults."""
_DEMO_CODES = [
    code
    for code in FaultCode
    if code not in (FaultCode.TRAPPED_PASSENGER, FaultCode.UNREGISTERED_TERMINAL, FaultCode.TERMINAL_OFFLINE)
]


def prepare_demo(settings: CommonSettings, *, elevators: int, seed: int) -> None:
    """Import the generated registry of ``elevators`` rows into the database (idempotent)."""
    rows = generated_registry(elevators, seed)
    with db.connect(settings.require_database_url()) as conn:
        result = import_registry(conn, rows)
    if not result.ok:
        raise ScenarioError(f"the generated demo registry was refused: {result.errors[:3]}")
    log.info(
        "demo registry: %d elevators (%d new, %d updated; seed %d)", result.rows, result.inserted, result.updated, seed
    )


class DemoFaults:
    """Adds faults to a running simulation: an entrapment every few minutes, other faults between."""

    def __init__(self, simulator: FleetSimulator, seed: int) -> None:
        self.simulator = simulator
        self.rng = np.random.default_rng([seed, 5])
        self.next_entrapment_s = 60.0
        self.next_other_s = 30.0

    def _pick(self, code: FaultCode, duration: float) -> int | None:
        specs = self.simulator.fleet.specs[: self.simulator.registered]
        for _ in range(20):
            slot = int(self.rng.integers(len(specs)))
            if feasible(code, specs[slot], duration):
                return slot
        return None

    def __call__(self, simulator: FleetSimulator) -> None:
        t = simulator.t_ms / 1000
        if t >= self.next_entrapment_s:
            self.next_entrapment_s += ENTRAPMENT_EVERY_S
            variant: Variant = "at_landing" if self.rng.random() < 0.3 else "between_floors"
            duration = float(self.rng.uniform(120, 600))
            slot = self._pick(FaultCode.TRAPPED_PASSENGER, duration)
            if slot is not None:
                simulator.add_fault(FaultInjection(FaultCode.TRAPPED_PASSENGER, t, slot, duration, variant))
        if t >= self.next_other_s:
            self.next_other_s += OTHER_FAULT_EVERY_S
            code = _DEMO_CODES[int(self.rng.integers(len(_DEMO_CODES)))]
            duration = timing(code, None).default_s
            slot = self._pick(code, duration)
            if slot is not None:
                simulator.add_fault(FaultInjection(code, t, slot, duration))


def fleet_service(settings: CommonSettings, *, elevators: int, speedup: float, seed: int) -> Service:
    """The demo fleet as a service: publishes until ``stop`` is set."""

    async def service(stop: asyncio.Event) -> None:
        specs = specs_from_rows(generated_registry(elevators, seed))
        simulator = FleetSimulator(specs, start_ms=int(time.time() * 1000), seed=seed, config=SimulationConfig())
        client = MqttClient(
            settings.require_mqtt(), f"liftwatch-demo-fleet-{os.getpid()}", receive_maximum=65535, tls=settings.mqtt_tls
        )
        await client.connect()
        try:
            publisher = FleetPublisher(client, topic_root=settings.mqtt_topic_root)
            await publisher.announce_online([s.terminal_id for s in specs])
            log.info("demo fleet: %d cars, speedup %g", len(specs), speedup)
            await run_fleet(simulator, publisher, stop, speedup=speedup, on_tick=DemoFaults(simulator, seed))
        finally:
            await client.disconnect()

    return service
