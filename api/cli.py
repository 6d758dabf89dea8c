"""``liftwatch api`` (run the HTTP API and console) and ``liftwatch token`` (API tokens)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from liftwatch import db, i18n
from liftwatch.api.auth import ROLES, hash_token, new_token
from liftwatch.config import ApiSettings
from liftwatch.runtime import configure_logging, run_services

app = typer.Typer(help="HTTP API and operator console.", no_args_is_help=False)
token_app = typer.Typer(help="API tokens (bearer tokens for people and integrations).", no_args_is_help=True)


@app.callback(invoke_without_command=True)
def run_api(ctx: typer.Context) -> None:
    """Serve the API and the console until SIGINT/SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    from liftwatch.api.service import serve

    settings = ApiSettings()
    configure_logging(settings.log_level)
    settings.require_database_url()

    async def service(stop: asyncio.Event) -> None:
        await serve(settings, stop)

    run_services(service)


@token_app.command("create")
def create_token(
    role: Annotated[str, typer.Option(help="admin | operator | maintainer | regulator")],
    name: Annotated[str, typer.Option(help="Who holds it (shown in the audit trail).")],
    maintainer: Annotated[
        str | None, typer.Option(help="Maintenance firm's registered name (role maintainer only).")
    ] = None,
    days: Annotated[
        int | None,
        typer.Option(min=1, max=3650, help="Valid this many days (default: LIFTWATCH_API_TOKEN_DAYS, 90)."),
    ] = None,
    no_expiry: Annotated[
        bool, typer.Option("--no-expiry", help="Never expires (an integration's token; revoke it by hand).")
    ] = False,
) -> None:
    """Create a token and print it once (only its SHA-256 is stored); it expires unless --no-expiry."""
    if role not in ROLES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLES)}", param_hint="--role")
    if (role == "maintainer") != (maintainer is not None):
        raise typer.BadParameter("required for role maintainer, and only for it", param_hint="--maintainer")
    if not name.strip() or len(name) > 200:
        raise typer.BadParameter("1 to 200 characters", param_hint="--name")
    settings = ApiSettings()
    token = new_token()
    with db.connect(settings.require_database_url()) as conn:
        firm_id = None
        if maintainer is not None:
            row = conn.execute("SELECT id FROM maintenance_firms WHERE name = %s", (maintainer,)).fetchone()
            if row is None:
                typer.echo(f"no maintenance firm named {maintainer!r}", err=True)
                raise typer.Exit(2)
            firm_id = row[0]
        lifetime = None if no_expiry else (days if days is not None else settings.api_token_days) or None
        conn.execute(
            "INSERT INTO api_tokens (name, role, maintainer_id, token_hash, expires_at)"
            " VALUES (%s, %s, %s, %s, now() + make_interval(days => %s))",
            (name.strip(), role, firm_id, hash_token(token), lifetime),
        )
    typer.echo(token)


@token_app.command("list")
def list_tokens(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
) -> None:
    """Tokens by holder: role, firm, created, last used, revoked (never the tokens themselves)."""
    settings = ApiSettings()
    with db.connect(settings.require_database_url()) as conn:
        rows = conn.execute(
            "SELECT t.name, t.role, f.name AS firm, t.created_at, t.last_used_at, t.expires_at, t.revoked_at"
            " FROM api_tokens t"
            " LEFT JOIN maintenance_firms f ON f.id = t.maintainer_id"
            " WHERE %s OR t.revoked_at IS NULL ORDER BY t.name, t.created_at",
            (all_,),
        ).fetchall()
    zone = settings.site_timezone
    typer.echo("name\trole\tfirm\tcreated\tlast used\texpires\trevoked")
    for name, role, firm, created, used, expires, revoked in rows:
        times = (i18n.format_datetime(moment, zone) or "-" for moment in (created, used, expires, revoked))
        typer.echo("\t".join([name, role, firm or "-", *times]))


@token_app.command("revoke")
def revoke_token(name: Annotated[str, typer.Option(help="Holder name given at creation.")]) -> None:
    """Revoke every active token of a holder."""
    settings = ApiSettings()
    with db.connect(settings.require_database_url()) as conn:
        cur = conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (name,))
        typer.echo(f"revoked {cur.rowcount} token(s)")
