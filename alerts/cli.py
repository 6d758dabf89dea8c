"""``liftwatch alerts`` (the service) and its administration: webhooks and their deliveries.

Webhook receivers live in the ``alerts_webhooks`` table (not in environment variables) because
they come and go with maintenance contracts and must be changed without restarting anything;
the service reads them for every routed batch.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import time
from typing import Annotated, Any

import psycopg
import typer
from liftwatch.alerts.errors import AlertsConfigError
from liftwatch.alerts.notifiers import CHANNELS
from liftwatch.alerts.routing import Target
from liftwatch.alerts.secrets import SecretUnreadable, box_of
from liftwatch.alerts.targets import TargetRefused, check_url, redact
from liftwatch.config import AlertsSettings
from liftwatch.runtime import configure_logging, run_services
from psycopg.rows import dict_row

app = typer.Typer(help="Alert service: incidents, rescue deadlines, notifications.")
webhook_app = typer.Typer(
    help="Outbound webhooks (maintenance firms, emergency centres, rescue).", no_args_is_help=True
)
deliveries_app = typer.Typer(help="Webhook deliveries: dead letters and retries.", no_args_is_help=True)
app.add_typer(webhook_app, name="webhook")
app.add_typer(deliveries_app, name="deliveries")


@app.callback(invoke_without_command=True)
def alerts(ctx: typer.Context) -> None:
    """Run the alert service until SIGINT/SIGTERM (several instances may run: a consumer group)."""
    if ctx.invoked_subcommand is not None:
        return
    from liftwatch.alerts import service

    settings = AlertsSettings()
    configure_logging(settings.log_level)
    try:  # fail fast, before any connection, on a fault code or change kind that does not exist
        service.deadline_policy(settings)
        service.routing_policy(settings)
        service.storm_policy(settings)
    except AlertsConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error

    async def run(stop: asyncio.Event) -> None:
        await service.serve(settings, stop)

    run_services(run)


def _connect() -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(AlertsSettings().require_database_url(), row_factory=dict_row)


@webhook_app.command("add")
def webhook_add(
    name: Annotated[str, typer.Argument(help="Unique name, e.g. 'Futian emergency centre'.")],
    target: Annotated[Target, typer.Option(help="Who receives it (routing).")],
    url: Annotated[
        str,
        typer.Option(help="https:// URL the JSON body is POSTed to (http:// and private hosts: see --help of alerts)."),
    ],
    firm: Annotated[str | None, typer.Option(help="Maintenance firm name (target maintenance_firm).")] = None,
    district: Annotated[str | None, typer.Option(help="Only incidents of this district (default: all).")] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            help="HMAC key of X-Liftwatch-Signature (webhook; default: a new random one, printed),"
            " or a DingTalk robot's signing secret."
        ),
    ] = None,
    channel: Annotated[
        str,
        typer.Option(
            help="webhook (signed JSON), email (mailto:...), wecom, dingtalk (robots), sms, voice (tel:+...)."
        ),
    ] = "webhook",
    language: Annotated[str, typer.Option(help="Language of e-mail and robot messages: zh or en.")] = "zh",
    quiet: Annotated[
        str | None, typer.Option(help="Quiet hours HH:MM-HH:MM (site time): non-critical changes wait until they end.")
    ] = None,
) -> None:
    """Add a receiver: a signed webhook, an e-mail address or a WeCom / DingTalk group robot."""
    if channel not in CHANNELS:
        raise typer.BadParameter(f"one of {', '.join(CHANNELS)}", param_hint="--channel")
    if language not in ("zh", "en"):
        raise typer.BadParameter("zh or en", param_hint="--language")
    quiet_hours = _quiet_hours(quiet)
    if channel == "email":
        if re.fullmatch(r"mailto:[^@\s]+@[^@\s]+", url) is None:
            raise typer.BadParameter("an e-mail receiver's URL is mailto:<address>", param_hint="--url")
    elif channel in ("sms", "voice"):
        if re.fullmatch(r"tel:\+[0-9]{6,15}", url) is None:
            raise typer.BadParameter("a phone receiver's URL is tel:+<digits>", param_hint="--url")
    else:
        try:  # what the URL's text already refuses; the addresses it resolves to are checked at each call
            check_url(url, allow_private=AlertsSettings().webhook_allow_private)
        except TargetRefused as error:
            hint = "" if error.reason == "bad_url" else " (LIFTWATCH_WEBHOOK_ALLOW_PRIVATE=true allows it)"
            raise typer.BadParameter(f"{error}{hint}", param_hint="--url") from None
    if (target is Target.MAINTENANCE_FIRM) != (firm is not None):
        raise typer.BadParameter("--firm is required for, and only for, --target maintenance_firm")
    if secret is not None and len(secret) < 16:
        raise typer.BadParameter("at least 16 characters (or leave it out for a random one)", param_hint="--secret")
    # Only webhooks sign with a key of ours; a DingTalk robot signs with the robot's own secret.
    key = secret or (secrets.token_urlsafe(32) if channel == "webhook" else None)
    settings = AlertsSettings()
    stored = box_of(settings.secrets_key, settings.secrets_key_previous).seal(key) if key is not None else None
    with _connect() as conn:
        firm_id = None
        if firm is not None:
            row = conn.execute("SELECT id FROM maintenance_firms WHERE name = %s", (firm,)).fetchone()
            if row is None:
                typer.echo(f"error: no maintenance firm named {firm!r}", err=True)
                raise typer.Exit(1)
            firm_id = row["id"]
        try:
            row = conn.execute(
                "INSERT INTO alerts_webhooks (name, target, maintainer_id, district, url, secret, channel, language,"
                " quiet_from, quiet_to) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (name, target.value, firm_id, district, url, stored, channel, language, *quiet_hours),
            ).fetchone()
        except psycopg.errors.UniqueViolation:
            typer.echo(f"error: a webhook named {name!r} exists", err=True)
            raise typer.Exit(1) from None
    assert row is not None
    typer.echo(f"webhook {row['id']} added")
    if secret is None and key is not None:
        typer.echo(f"secret: {key}")


def _quiet_hours(value: str | None) -> tuple[time | None, time | None]:
    if value is None:
        return None, None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError:
        raise typer.BadParameter("HH:MM-HH:MM, e.g. 22:00-07:00", param_hint="--quiet") from None
    if start == end:
        raise typer.BadParameter("start and end differ", param_hint="--quiet")
    return start, end


@webhook_app.command("list")
def webhook_list() -> None:
    """List webhook receivers (secrets are not shown)."""
    with _connect() as conn:
        rows = conn.execute(
            "SELECT w.id, w.name, w.target, f.name AS firm, w.district, w.url, w.enabled, w.channel"
            " FROM alerts_webhooks w LEFT JOIN maintenance_firms f ON f.id = w.maintainer_id ORDER BY w.id"
        ).fetchall()
    for row in rows:
        scope = row["firm"] or row["district"] or "all districts"
        state = "" if row["enabled"] else " (disabled)"
        where = row["url"] if row["channel"] in ("email", "sms", "voice") else redact(row["url"])
        typer.echo(f"{row['id']:>4}  {row['name']}  {row['channel']}  {row['target']}  {scope}  {where}{state}")


@webhook_app.command("reencrypt")
def webhook_reencrypt() -> None:
    """Seal every receiver secret under LIFTWATCH_SECRETS_KEY: plain-text ones (stored before it was
    set) and ones sealed under LIFTWATCH_SECRETS_KEY_PREVIOUS (key rotation). One transaction."""
    settings = AlertsSettings()
    if settings.secrets_key is None:
        typer.echo("error: set LIFTWATCH_SECRETS_KEY first", err=True)
        raise typer.Exit(2)
    box = box_of(settings.secrets_key, settings.secrets_key_previous)
    changed = 0
    with _connect() as conn, conn.transaction():
        rows = conn.execute("SELECT id, name, secret FROM alerts_webhooks WHERE secret IS NOT NULL FOR UPDATE")
        for row in rows.fetchall():
            if not box.needs_sealing(row["secret"]):
                continue
            try:
                plain = box.open(row["secret"])
            except SecretUnreadable:
                typer.echo(f"error: the secret of {row['name']!r} opens with neither key; nothing changed", err=True)
                raise typer.Exit(1) from None
            conn.execute("UPDATE alerts_webhooks SET secret = %s WHERE id = %s", (box.seal(plain), row["id"]))
            changed += 1
    typer.echo(f"{changed} secret(s) sealed under the current key")


@webhook_app.command("remove")
def webhook_remove(name: Annotated[str, typer.Argument()]) -> None:
    """Disable a webhook (kept for the delivery history; pending deliveries are dead-lettered)."""
    with _connect() as conn:
        cur = conn.execute("UPDATE alerts_webhooks SET enabled = false WHERE name = %s", (name,))
    if cur.rowcount == 0:
        typer.echo(f"error: no webhook named {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"webhook {name!r} disabled")


@deliveries_app.command("dead")
def deliveries_dead(limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """List dead-lettered deliveries, newest first."""
    with _connect() as conn:
        rows = conn.execute(
            "SELECT d.id, d.idempotency_key, w.name, d.attempts, d.dead_at, d.last_error FROM alerts_deliveries d"
            " JOIN alerts_webhooks w ON w.id = d.webhook_id WHERE d.status = 'dead' ORDER BY d.dead_at DESC LIMIT %s",
            (limit,),
        ).fetchall()
    for row in rows:
        typer.echo(
            f"{row['id']:>6}  {row['idempotency_key']}  {row['name']}  attempts={row['attempts']}"
            f"  {row['dead_at']:%Y-%m-%d %H:%M:%S}  {row['last_error']}"
        )


@deliveries_app.command("retry")
def deliveries_retry(
    delivery_id: Annotated[list[int] | None, typer.Argument(help="Delivery ids; none = every dead letter.")] = None,
) -> None:
    """Send dead-lettered deliveries again (a fresh set of attempts)."""
    with _connect() as conn:
        cur = conn.execute(
            "UPDATE alerts_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), dead_at = NULL"
            " WHERE status = 'dead' AND (%s::bigint[] IS NULL OR id = ANY(%s))",
            (delivery_id or None, delivery_id or None),
        )
    typer.echo(f"{cur.rowcount} delivery(ies) queued again")
