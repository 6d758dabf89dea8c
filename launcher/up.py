"""``liftwatch up`` and ``liftwatch demo``: the whole platform in one process.

``up`` uses the services configured in the environment and starts an embedded one for each
that is not configured (see :mod:`liftwatch.launcher.services`), migrates the database, creates the Kafka
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
from liftwatch import db
from liftwatch.api.auth import hash_token, new_token
from liftwatch.config import PlatformSettings
from liftwatch.kafka import ensure_topics
from liftwatch.launcher import services
from liftwatch.runtime import Service, configure_logging, serve_until_signal
from liftwatch.simulators.demo import fleet_service, prepare_demo
from prometheus_client import CollectorRegistry

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
            if services.local_postgres_url() is not None:
                updates["database_url"] = services.ensure_local_database("liftwatch")
            else:
                svc = services.start_pgserver(state / "pgdata")
                started.append(svc)
                updates["database_url"] = svc.url
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


def platform_processes(settings: PlatformSettings, registry: CollectorRegistry) -> dict[str, Service]:
    """Every liftwatch process bound to the settings, all counting on one metrics ``registry``.

    The API's ``/metrics`` serves that registry, so one scrape sees the whole platform.
    """
    found: dict[str, Service] = {}
    for name, module_name in PROCESSES.items():
        serve: Callable[..., Awaitable[None]] = importlib.import_module(module_name).serve

        def bound(stop: asyncio.Event, serve: Callable[..., Awaitable[None]] = serve) -> Awaitable[None]:
            return serve(settings, stop, registry=registry)

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
        processes = platform_processes(settings, CollectorRegistry())
        log.info("running %s", ", ".join(processes))
        asyncio.run(serve_until_signal(*processes.values(), *(extra(settings) if extra else [])))


def create_demo_tokens(settings: PlatformSettings) -> dict[str, tuple[str, str]]:
    """Fresh sign-in tokens for the demo, one per role (the previous demo's are revoked).

    Returns role -> (holder name, token); the maintainer token belongs to the firm with the most elevators.
    """
    with db.connect(settings.require_database_url()) as conn:
        conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name LIKE 'demo %%' AND revoked_at IS NULL")
        firm = conn.execute(
            "SELECT f.id, f.name FROM maintenance_firms f JOIN elevators e ON e.maintainer_id = f.id"
            " GROUP BY f.id, f.name ORDER BY count(*) DESC, f.name LIMIT 1"
        ).fetchone()
        holders: dict[str, tuple[str, int | None]] = {"operator": ("demo operator", None)}
        if firm is not None:
            holders["maintainer"] = (f"demo maintainer ({firm[1]})", firm[0])
        holders |= {"regulator": ("demo regulator", None), "admin": ("demo admin", None)}
        tokens: dict[str, tuple[str, str]] = {}
        for role, (holder, firm_id) in holders.items():
            token = new_token()
            conn.execute(
                "INSERT INTO api_tokens (name, role, maintainer_id, token_hash) VALUES (%s, %s, %s, %s)",
                (holder, role, firm_id, hash_token(token)),
            )
            tokens[role] = (holder, token)
    return tokens


def demo_banner(settings: PlatformSettings, tokens: dict[str, tuple[str, str]], elevators: int) -> str:
    """What the newcomer needs: where the console is and how to sign in."""
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host  # noqa: S104
    base = f"http://{host}:{settings.api_port}"
    lines = [
        "",
        f"liftwatch demo: {elevators} simulated elevators, an entrapment every few minutes.",
        f"  operator console   {base}/   (paste a token below to sign in)",
        f"  API docs           {base}/docs",
        f"  metrics            {base}/metrics",
        *(f"  {role:<10} token  {token}   ({holder})" for role, (holder, token) in tokens.items()),
        "  Ctrl+C stops everything (embedded brokers included).",
        "",
    ]
    return "\n".join(lines)


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
    """Run the platform with a simulated fleet and print the console URL and sign-in tokens."""
    settings = PlatformSettings()
    configure_logging(settings.log_level)

    def after_prepare(prepared: PlatformSettings) -> None:
        prepare_demo(prepared, elevators=elevators, seed=seed)
        typer.echo(demo_banner(prepared, create_demo_tokens(prepared), elevators))

    run_platform(
        settings,
        extra=lambda s: [fleet_service(s, elevators=elevators, speedup=speedup, seed=seed)],
        after_prepare=after_prepare,
    )
