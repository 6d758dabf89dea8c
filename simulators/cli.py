"""``liftwatch simulate``: run a simulated fleet over MQTT, print a matching registry, generate load."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, BinaryIO

import numpy as np
import typer
from liftwatch.config import CommonSettings
from liftwatch.mqtt import MqttClient
from liftwatch.runtime import configure_logging, serve_until_signal
from liftwatch.simulators.errors import ScenarioError
from liftwatch.simulators.faults import (
    BadInputInjection,
    FaultInjection,
    load_scenario,
    random_faults,
    resolve_scenario,
    truth_line,
)
from liftwatch.simulators.fleet import ElevatorSpec
from liftwatch.simulators.publisher import FleetPublisher, run_fleet
from liftwatch.simulators.specs import generated_registry, generated_specs, read_registry_specs
from liftwatch.simulators.stream import FleetSimulator, SimulationConfig

log = logging.getLogger(__name__)

app = typer.Typer(help="Simulated elevator fleet: telemetry over MQTT, fault injection, load.")


def _start_ms(start: str | None, speedup: float, duration_s: float | None) -> int:
    """Event time of the start: given, or chosen so that the simulated period ends about when the run does."""
    if start is not None:
        try:
            parsed = datetime.fromisoformat(start)
        except ValueError:
            raise typer.BadParameter("not an ISO time, e.g. 2026-01-05T08:00:00+08:00", param_hint="--start") from None
        if parsed.tzinfo is None:
            raise typer.BadParameter("give a time zone, e.g. 2026-01-05T08:00:00+08:00", param_hint="--start")
        return int(parsed.timestamp() * 1000)
    now = int(time.time() * 1000)
    if duration_s is None or speedup <= 1:
        return now
    # Replay the past: the last simulated sample is stamped about when it is sent, never in the future.
    return now + int(duration_s / speedup * 1000) - int(duration_s * 1000)


def _shard(
    fleet: list[ElevatorSpec], faults: list[FaultInjection], bad: list[BadInputInjection], shard: str
) -> tuple[list[ElevatorSpec], list[FaultInjection], list[BadInputInjection]]:
    """The cars of shard ``I/N`` and their injections (terminal-less ones go to shard 0)."""
    index_text, _, count_text = shard.partition("/")
    if not (index_text.isdigit() and count_text.isdigit() and 0 <= int(index_text) < int(count_text)):
        raise typer.BadParameter("must be I/N with 0 <= I < N", param_hint="--shard")
    index, count = int(index_text), int(count_text)
    specs = fleet[index::count]
    if not specs:
        raise ScenarioError(f"shard {shard} has no car")
    mine = [
        dataclasses.replace(f, elevator=f.elevator // count) if f.elevator is not None else f
        for f in faults
        if (f.elevator is None and index == 0) or (f.elevator is not None and f.elevator % count == index)
    ]
    return specs, mine, bad if index == 0 else []


class _TruthWriter:
    """Appends finished ground-truth records to a JSON-lines file as they end."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.written = 0

    def __call__(self, simulator: FleetSimulator) -> None:
        truth = simulator.truth
        while self.written < len(truth) and truth[self.written].end_ms is not None:
            self.file.write(truth_line(truth[self.written]))
            self.written += 1
        self.file.flush()

    def finish(self, simulator: FleetSimulator) -> None:
        for record in simulator.truth[self.written :]:
            self.file.write(truth_line(record))
        self.written = len(simulator.truth)
        self.file.flush()


# The options of a fleet run, shared by `liftwatch simulate` itself and `liftwatch simulate run`.
RegistryOption = Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Registry CSV of the fleet.")]
ElevatorsOption = Annotated[int, typer.Option(min=1, max=300_000, help="Generated fleet size (without --registry).")]
SeedOption = Annotated[int, typer.Option(help="Seed of the fleet, its traffic and random faults.")]
SpeedupOption = Annotated[float, typer.Option(min=0.01, help="Event time runs this many times faster than real time.")]
DurationOption = Annotated[float | None, typer.Option(min=1, help="Event seconds to simulate; default: until Ctrl-C.")]
StartOption = Annotated[str | None, typer.Option(help="ISO time of the first sample (default: see docs).")]
ScenarioOption = Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="YAML/JSON fault timeline.")]
RandomFaultsOption = Annotated[float, typer.Option(min=0, max=10_000, help="Extra random faults per event hour.")]
TruthOption = Annotated[Path | None, typer.Option(dir_okay=False, help="Write the ground-truth log (JSON lines).")]
BatchOption = Annotated[int, typer.Option(min=1, max=100, help="Most samples per message.")]
RateOption = Annotated[float, typer.Option(min=0.1, max=50, help="Samples per second of a moving car.")]
LingerOption = Annotated[float, typer.Option(min=0, help="Longest a sample waits for its message, s.")]
AnnounceOption = Annotated[bool, typer.Option(help="Publish a retained 'online' for every terminal first.")]
ShardOption = Annotated[str, typer.Option(help="I/N: simulate every N-th car from the I-th (run N processes).")]


@app.callback(invoke_without_command=True)
def simulate(
    ctx: typer.Context,
    registry: RegistryOption = None,
    elevators: ElevatorsOption = 100,
    seed: SeedOption = 1,
    speedup: SpeedupOption = 1.0,
    duration: DurationOption = None,
    start: StartOption = None,
    scenario: ScenarioOption = None,
    random_faults_per_hour: RandomFaultsOption = 0.0,
    truth: TruthOption = None,
    batch: BatchOption = 10,
    rate: RateOption = 2.0,
    linger: LingerOption = 1.0,
    announce: AnnounceOption = True,
    shard: ShardOption = "0/1",
) -> None:
    """Simulated elevator fleet: without a command, run one (the options of `run`)."""
    if ctx.invoked_subcommand is None:
        run(
            registry, elevators, seed, speedup, duration, start, scenario, random_faults_per_hour, truth, batch,
            rate, linger, announce, shard,
        )  # fmt: skip


@app.command()
def run(
    registry: RegistryOption = None,
    elevators: ElevatorsOption = 100,
    seed: SeedOption = 1,
    speedup: SpeedupOption = 1.0,
    duration: DurationOption = None,
    start: StartOption = None,
    scenario: ScenarioOption = None,
    random_faults_per_hour: RandomFaultsOption = 0.0,
    truth: TruthOption = None,
    batch: BatchOption = 10,
    rate: RateOption = 2.0,
    linger: LingerOption = 1.0,
    announce: AnnounceOption = True,
    shard: ShardOption = "0/1",
) -> None:
    """Run a simulated fleet, publishing its telemetry over MQTT (LIFTWATCH_MQTT_URL)."""
    settings = CommonSettings()
    configure_logging(settings.log_level)
    url = settings.require_mqtt()
    window = duration or 3600.0
    rng = np.random.default_rng([seed, 4])
    faults: list[FaultInjection] = []
    bad: list[BadInputInjection] = []
    try:
        fleet = read_registry_specs(registry) if registry else generated_specs(elevators, seed)
        # Every shard draws the same injections over the whole fleet and keeps those of its cars.
        if scenario is not None:
            faults, bad = resolve_scenario(load_scenario(scenario), fleet, window, rng)
        if random_faults_per_hour:
            faults += random_faults(fleet, rng, round(random_faults_per_hour * window / 3600), window)
        specs, faults, bad = _shard(fleet, faults, bad, shard)
    except ScenarioError as error:
        raise typer.BadParameter(str(error)) from error
    config = SimulationConfig(rate_hz=rate, fine_rate_hz=max(10.0, rate), batch=batch, linger_s=linger)
    start_ms = _start_ms(start, speedup, duration)
    simulator = FleetSimulator(specs, start_ms=start_ms, seed=seed, faults=faults, bad_inputs=bad, config=config)
    log.info("simulating %d cars, %d faults, %d bad inputs, speedup %g", len(specs), len(faults), len(bad), speedup)

    async def service(stop: asyncio.Event) -> None:
        client = MqttClient(
            url, f"liftwatch-sim-{socket.gethostname()}-{os.getpid()}", receive_maximum=65535, tls=settings.mqtt_tls
        )
        await client.connect()
        publisher = FleetPublisher(client, topic_root=settings.mqtt_topic_root)
        truth_file = truth.open("wb") if truth else None
        writer = _TruthWriter(truth_file) if truth_file else None
        try:
            if announce:
                await publisher.announce_online([s.terminal_id for s in specs])
            stats = await run_fleet(simulator, publisher, stop, speedup=speedup, duration_s=duration, on_tick=writer)
            await publisher.flush()
            log.info("sent %d samples in %d messages (%.0f samples/s)", stats.samples, stats.messages, stats.rate())
        finally:
            if writer is not None and truth_file is not None:
                writer.finish(simulator)
                truth_file.close()
            await client.disconnect()
        stop.set()

    asyncio.run(serve_until_signal(service))


@app.command("registry")
def registry_command(
    elevators: Annotated[int, typer.Option(min=1, max=990_000, help="Rows to generate.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same registry.")] = 1,
) -> None:
    """Print a plausible registry CSV (docs/protocol/registry.md) of the simulated fleet to stdout."""
    from liftwatch.registry.model import write_registry_csv

    write_registry_csv(generated_registry(elevators, seed), sys.stdout)


@app.command()
def load(
    rate: Annotated[float, typer.Option(min=1, max=10_000_000, help="Target samples per second.")] = 100_000,
    duration: Annotated[float, typer.Option(min=1, help="Wall-clock seconds.")] = 10.0,
    batch: Annotated[int, typer.Option(min=1, max=100, help="Samples per message.")] = 100,
    cars: Annotated[
        int | None, typer.Option(min=1, max=300_000, help="Simulated cars (default: rate / batch, at most 300,000).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Publish fleet telemetry at a target rate and report the achieved rate (acknowledged samples/s)."""
    from liftwatch.simulators.load import run_load

    settings = CommonSettings()
    configure_logging(settings.log_level)
    report = asyncio.run(
        run_load(
            settings.require_mqtt(),
            rate=rate,
            duration_s=duration,
            batch=batch,
            cars=cars,
            topic_root=settings.mqtt_topic_root,
            client_id=f"liftwatch-load-{os.getpid()}",
            tls=settings.mqtt_tls,
        )
    )
    if as_json:
        typer.echo(json.dumps({name: getattr(report, name) for name in report.__slots__}))
        return
    typer.echo(
        f"target {report.target_rate:,.0f} samples/s, achieved {report.achieved_rate:,.0f} samples/s "
        f"({report.samples:,} samples in {report.messages:,} messages of <= {report.batch}, {report.cars} cars, "
        f"{report.elapsed_s:.1f} s{'' if report.acknowledged else ', NOT all acknowledged'})"
    )
