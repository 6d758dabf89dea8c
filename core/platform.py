"""``liftwatch up`` and ``liftwatch demo``: the whole platform in one process.

``up`` uses the services configured in the environment and starts an embedded one for each
that is not configured (see :mod:`liftwatch.services`), migrates the database, creates the Kafka
topics and runs every liftwatch process in one asyncio loop (fine for a small site or a demo;
production runs them as separate, scalable processes, see ``compose.yaml``). ``demo`` does the
same, imports a generated registry and starts the fleet simulator.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from liftwatch import db, services
from liftwatch.config import PlatformSettings
from liftwatch.kafka import ensure_topics
from liftwatch.runtime import Service, configure_logging, serve_until_signal

log = logging.getLogger(__name__)

up_app = typer.Typer(help="Run the whole platform in one process (starting missing services).")
demo_app = typer.Typer(help="Run the platform with a simulated fleet, on embedded defaults.")

# Process name -> module exposing ``async def serve(settings, stop)``.
PROCESSES: dict[str, str] = {
    "gateway": "liftwatch.ingest.gateway",
    "writer": "liftwatch.ingest.writer",
    "rules": "liftwatch.rules.service",
    "alerts": "liftwatch.alerts.service",
    "api": "liftwatch.api.service",
}


def provision_infrastructure(settings: PlatformSettings) -> tuple[PlatformSettings, list[services.StartedService]]:
    """Start what is not configured; return settings pointing at everything, and what we started."""
    started: list[services.StartedService] = []
    updates: dict[str, Any] = {}
    state = settings.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    try:
        if settings.database_url is None:
            local = services.local_postgres_url()
            if local is None:
                svc = services.start_pgserver(state / "pgdata")
                started.append(svc)
                local = svc.url
            updates["database_url"] = local
        if settings.kafka_bootstrap is None:
            svc = services.start_tansu(log_file=state / "tansu.log")
            started.append(svc)
            updates["kafka_bootstrap"] = svc.url
        if settings.mqtt_url is None:
            svc = services.start_mqtt()
            started.append(svc)
            updates["mqtt_url"] = svc.url
    except Exception:
        for svc in reversed(started):
            svc.stop()
        raise
    for svc in started:
        log.info("started %s at %s", svc.name, svc.url)
    return settings.model_copy(update=updates), started


def available_processes(settings: PlatformSettings) -> dict[str, Service]:
    """Every process whose package provides ``serve``, bound to the settings."""
    found: dict[str, Service] = {}
    for name, module_name in PROCESSES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                log.warning("process %s is not available in this build", name)
                continue
            raise
        serve: Callable[[Any, asyncio.Event], Awaitable[None]] = module.serve

        def bound(
            stop: asyncio.Event, serve: Callable[[Any, asyncio.Event], Awaitable[None]] = serve
        ) -> Awaitable[None]:
            return serve(settings, stop)

        found[name] = bound
    return found


async def prepare(settings: PlatformSettings) -> None:
    """Migrate the database and create the topics."""
    with db.connect(settings.require_database_url()) as conn:
        db.migrate(conn)
    await ensure_topics(settings)


def run_platform(
    settings: PlatformSettings,
    extra: Callable[[PlatformSettings], list[Service]] | None = None,
    after_prepare: Callable[[PlatformSettings], None] | None = None,
) -> None:
    """Provision, prepare and run everything (plus ``extra`` services) until a signal."""
    settings, started = provision_infrastructure(settings)
    with services.stopping(started):
        asyncio.run(prepare(settings))
        if after_prepare is not None:
            after_prepare(settings)
        processes = available_processes(settings)
        log.info("running %s", ", ".join(processes) or "no process")
        asyncio.run(serve_until_signal(*processes.values(), *(extra(settings) if extra else [])))


@up_app.callback(invoke_without_command=True)
def up(
    state_dir: Annotated[Path | None, typer.Option(help="Folder for embedded services' data.")] = None,
) -> None:
    """Run the whole platform in one process."""
    settings = PlatformSettings()
    if state_dir is not None:
        settings = settings.model_copy(update={"state_dir": state_dir})
    configure_logging(settings.log_level)
    run_platform(settings)


@demo_app.callback(invoke_without_command=True)
def demo(
    elevators: Annotated[int, typer.Option(min=1, max=300_000, help="Simulated fleet size.")] = 200,
    speedup: Annotated[float, typer.Option(min=1.0, help="Event-time acceleration of the simulator.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
) -> None:
    """Run the platform with a simulated fleet and print the console URL."""
    settings = PlatformSettings()
    configure_logging(settings.log_level)
    try:
        demo_setup = importlib.import_module("liftwatch.simulators.demo")
    except ModuleNotFoundError:
        demo_setup = None
    if demo_setup is None:
        run_platform(settings)
        return
    run_platform(
        settings,
        extra=lambda s: [demo_setup.fleet_service(s, elevators=elevators, speedup=speedup, seed=seed)],
        after_prepare=lambda s: demo_setup.prepare_demo(s, elevators=elevators, seed=seed),
    )
