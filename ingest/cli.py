"""Commands of the ingest package: ``liftwatch gateway``, ``liftwatch writer``, ``liftwatch terminals``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from liftwatch import db
from liftwatch.config import CommonSettings, GatewaySettings, WriterSettings
from liftwatch.runtime import configure_logging, run_services, settle_for_streaming

from .credentials import Role, export_broker_files, provision_account, provision_terminals, remove_account
from .errors import CredentialError

gateway_app = typer.Typer(help="MQTT gateway: terminals' telemetry and status into Kafka.")
writer_app = typer.Typer(help="Telemetry writer: Kafka into PostgreSQL.")
terminals_app = typer.Typer(help="Terminal and service MQTT credentials, broker password file and ACL.")

_DEFAULT_BROKER_DIR = Path("deploy/mosquitto")
OutOption = Annotated[
    Path, typer.Option("--out", help="Folder receiving the mosquitto `passwd` and `acl` files (then SIGHUP mosquitto).")
]


@gateway_app.callback(invoke_without_command=True)
def gateway(
    leave: Annotated[
        bool,
        typer.Option(
            "--leave",
            help=(
                "Retire this client id's session for good (scale-down): unsubscribe, deliver what it had"
                " queued, end the session, exit."
            ),
        ),
    ] = False,
) -> None:
    """Run a gateway until SIGINT/SIGTERM (scale out: several share the subscription)."""
    from . import gateway as service

    settings = GatewaySettings()
    configure_logging(settings.log_level)

    async def run(stop: asyncio.Event) -> None:
        await service.serve(settings, stop, leave=leave)

    settle_for_streaming()
    run_services(run)


@writer_app.callback(invoke_without_command=True)
def writer() -> None:
    """Run a writer until SIGINT/SIGTERM (scale out: a consumer group up to the partition count)."""
    from . import writer as service

    settings = WriterSettings()
    configure_logging(settings.log_level)

    async def run(stop: asyncio.Event) -> None:
        await service.serve(settings, stop)

    run_services(run)


@terminals_app.command("provision")
def provision(
    terminal_ids: Annotated[list[str], typer.Argument(help="Terminal ids to create credentials for.")],
    out: OutOption = _DEFAULT_BROKER_DIR,
    rotate: Annotated[bool, typer.Option(help="Replace existing passwords.")] = False,
) -> None:
    """Create terminal credentials (passwords printed once) and rewrite the broker files."""
    settings = CommonSettings()
    with db.connect(settings.require_database_url()) as conn:
        try:
            issued = provision_terminals(conn, terminal_ids, rotate=rotate)
            passwd, acl = export_broker_files(conn, out, settings.mqtt_topic_root)
        except CredentialError as error:
            raise typer.BadParameter(str(error)) from error
    for item in issued:
        typer.echo(f"{item.username}\t{item.password}")
    typer.echo(f"wrote {passwd} and {acl}; reload mosquitto (SIGHUP) to apply", err=True)


@terminals_app.command("account")
def account(
    username: Annotated[
        str, typer.Argument(help="Account name with a dot, which terminal ids never have (gateway.1, sim.load).")
    ],
    role: Annotated[str, typer.Option(help="gateway (reads all terminals) or publisher (writes for all).")] = "gateway",
    out: OutOption = _DEFAULT_BROKER_DIR,
    rotate: Annotated[bool, typer.Option(help="Replace the existing password.")] = False,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Take the password (24+ characters) from standard input instead of making one."
        ),
    ] = False,
) -> None:
    """Create a service account for the broker (password printed once) and rewrite the broker files.

    The account is also one MQTT session (the broker uses the user name as client id): give every
    gateway and every concurrently running publisher its own account.
    """
    if role not in ("gateway", "publisher"):
        raise typer.BadParameter("role must be gateway or publisher")
    chosen: Role = "gateway" if role == "gateway" else "publisher"
    settings = CommonSettings()
    with db.connect(settings.require_database_url()) as conn:
        try:
            chosen_password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
            issued = provision_account(conn, username, chosen, rotate=rotate, password=chosen_password)
            passwd, acl = export_broker_files(conn, out, settings.mqtt_topic_root)
        except CredentialError as error:
            raise typer.BadParameter(str(error)) from error
    if not password_stdin:  # the caller knows the one it chose; never echo it
        typer.echo(f"{issued.username}\t{issued.password}")
    typer.echo(f"wrote {passwd} and {acl}; reload mosquitto (SIGHUP) to apply", err=True)


@terminals_app.command("remove-account")
def remove_account_command(
    username: Annotated[str, typer.Argument(help="Service account to delete.")],
    out: OutOption = _DEFAULT_BROKER_DIR,
) -> None:
    """Delete a service account and rewrite the broker files (retire a gateway with `gateway --leave` first)."""
    settings = CommonSettings()
    with db.connect(settings.require_database_url()) as conn:
        try:
            remove_account(conn, username)
            passwd, acl = export_broker_files(conn, out, settings.mqtt_topic_root)
        except CredentialError as error:
            raise typer.BadParameter(str(error)) from error
    typer.echo(f"wrote {passwd} and {acl}; reload mosquitto (SIGHUP) to apply", err=True)


@terminals_app.command("export")
def export(out: OutOption = _DEFAULT_BROKER_DIR) -> None:
    """Rewrite the broker password file and ACL from the database (refused if a user would appear twice)."""
    settings = CommonSettings()
    with db.connect(settings.require_database_url()) as conn:
        try:
            passwd, acl = export_broker_files(conn, out, settings.mqtt_topic_root)
        except CredentialError as error:
            raise typer.BadParameter(str(error)) from error
    typer.echo(f"wrote {passwd} and {acl}")
