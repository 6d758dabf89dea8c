"""``liftwatch rules`` (the engine process) and ``liftwatch rules replay`` (judge thresholds on history)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from liftwatch.config import RulesSettings
from liftwatch.rules.errors import RulesConfigError
from liftwatch.runtime import configure_logging, run_services

app = typer.Typer(help="Fault rule engine: telemetry in, fault events out.")


@app.callback(invoke_without_command=True)
def rules(ctx: typer.Context) -> None:
    """Run the rule engine until SIGINT/SIGTERM (scale out: a consumer group up to the partition count)."""
    if ctx.invoked_subcommand is not None:
        return
    from liftwatch.rules import service

    settings = RulesSettings()
    configure_logging(settings.log_level)
    try:
        from liftwatch.rules import thresholds

        thresholds.load(settings.rules_overrides)  # fail fast, with the file's error, before any connection
    except RulesConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error

    from liftwatch.rules.allocator import keep_freed_memory

    keep_freed_memory()  # a dedicated engine process: batch-sized temporaries are reused, not re-faulted

    async def run(stop: asyncio.Event) -> None:
        await service.serve(settings, stop)

    run_services(run)


def _parse_time(text: str, timezone: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise typer.BadParameter(f"{text!r} is not an ISO date/time (e.g. 2026-11-23T08:00)") from error
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone))
    return value


@app.command("replay")
def replay(
    start: Annotated[str, typer.Option("--from", help="Start (ISO date/time; site time zone unless given).")],
    end: Annotated[str, typer.Option("--to", help="End, exclusive.")],
    assignments: Annotated[
        list[str] | None, typer.Option("--set", help="Threshold override rule.param=value (repeatable).")
    ] = None,
    terminal: Annotated[list[str] | None, typer.Option("--terminal", help="Only these terminals.")] = None,
    limit: Annotated[int, typer.Option(help="Events listed at most (counts cover all).")] = 200,
) -> None:
    """Run the rules over stored telemetry and print the fault events they would raise, with counts per code."""
    from liftwatch import db
    from liftwatch.rules import thresholds as thresholds_mod
    from liftwatch.rules.replay import replay_events
    from liftwatch.rules.service import site_day_offset_ms
    from rich.console import Console
    from rich.table import Table

    settings = RulesSettings()
    configure_logging("WARNING")
    t1 = _parse_time(start, settings.site_timezone)
    t2 = _parse_time(end, settings.site_timezone)
    if t2 <= t1:
        raise typer.BadParameter("--to must be after --from")
    try:
        config = thresholds_mod.with_settings(thresholds_mod.load(settings.rules_overrides), assignments or [])
    except RulesConfigError as error:
        raise typer.BadParameter(str(error)) from error
    with db.connect(settings.require_database_url()) as conn:
        result = replay_events(
            conn,
            config,
            t1,
            t2,
            terminals=terminal,
            lateness_ms=settings.allowed_lateness_ms,
            day_offset_ms=site_day_offset_ms(settings.site_timezone),  # site days, as the live engine counts them
        )
    console = Console()
    tz = ZoneInfo(settings.site_timezone)

    def fmt(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

    table = Table(title=f"Fault events {t1.isoformat()} .. {t2.isoformat()}")
    for column in ("terminal", "elevator", "code", "transition", "since", "at", "evidence"):
        table.add_column(column)
    for event in result.events[:limit]:
        evidence: dict[str, Any] = dict(event.evidence)
        table.add_row(
            event.terminal,
            event.registration_code or "-",
            event.code.value,
            event.transition,
            fmt(event.since_ms),
            fmt(event.at_ms),
            ", ".join(f"{k}={v}" for k, v in evidence.items() if k not in ("ts",)),
        )
    console.print(table)
    if len(result.events) > limit:
        console.print(f"... {len(result.events) - limit} more events not listed (--limit)")
    counts: Counter[tuple[str, str]] = Counter((e.code.value, e.transition) for e in result.events)
    summary = Table(title=f"Counts per code ({result.samples:,} samples, {result.late:,} late)")
    summary.add_column("code")
    summary.add_column("raised", justify="right")
    summary.add_column("cleared", justify="right")
    for code in sorted({c for c, _ in counts}):
        summary.add_row(code, str(counts[(code, "raised")]), str(counts[(code, "cleared")]))
    console.print(summary)
