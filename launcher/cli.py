"""The ``liftwatch`` command: one sub-command per process, plus administration.

Each package contributes its own sub-commands in its ``cli.py`` (a ``typer.Typer``); this module
only wires them under their names, so the command list reads like the architecture. Process
commands (gateway, writer, rules, alerts, api) run until SIGINT/SIGTERM and then stop cleanly.
"""

from __future__ import annotations

import importlib
import logging

import typer
from liftwatch import db
from liftwatch.config import CommonSettings
from liftwatch.errors import ConfigError, ServiceUnavailable
from liftwatch.runtime import configure_logging

app = typer.Typer(
    name="liftwatch",
    help="Remote monitoring of elevators: ingest, fault rules, incidents, rescue, statistics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")

# name -> "module:attribute" of a typer app contributed by a package.
_SUBCOMMANDS: dict[str, str] = {
    "gateway": "liftwatch.ingest.cli:gateway_app",
    "writer": "liftwatch.ingest.cli:writer_app",
    "terminals": "liftwatch.ingest.cli:terminals_app",
    "rules": "liftwatch.rules.cli:app",
    "alerts": "liftwatch.alerts.cli:app",
    "api": "liftwatch.api.cli:app",
    "token": "liftwatch.api.cli:token_app",
    "simulate": "liftwatch.simulators.cli:app",
    "report": "liftwatch.reports.cli:app",
    "dashboards": "liftwatch.dashboards.cli:app",
    "registry": "liftwatch.registry.cli:app",
    "up": "liftwatch.launcher.up:up_app",
    "demo": "liftwatch.launcher.up:demo_app",
}


def _wire_subcommands() -> None:
    for name, target in _SUBCOMMANDS.items():
        module_name, _, attribute = target.partition(":")
        # Every package ships with the command: a target that does not import is a bug, said loudly.
        sub = getattr(importlib.import_module(module_name), attribute)
        app.add_typer(sub, name=name)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending database migrations (idempotent)."""
    configure_logging("INFO")
    settings = CommonSettings()
    with db.connect(settings.require_database_url()) as conn:
        applied = db.migrate(conn)
    typer.echo(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


_wire_subcommands()


def main() -> None:
    """Entry point of the ``liftwatch`` command and ``python -m liftwatch``.

    A wrong setting or a service that cannot be reached is the operator's to fix, not a bug: it
    is printed as one clear message (exit 2 and 3), without a traceback.
    """
    logging.captureWarnings(True)
    try:
        app()
    except ConfigError as error:
        typer.echo(f"liftwatch: configuration error:\n{error}", err=True)
        raise SystemExit(2) from None
    except ServiceUnavailable as error:
        typer.echo(f"liftwatch: {error}", err=True)
        raise SystemExit(3) from None
