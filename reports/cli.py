"""``liftwatch report``: monthly statistics files for regulators, and the rollup refresh."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from liftwatch import db
from liftwatch.config import CommonSettings
from liftwatch.reports import export, rollup, stats
from liftwatch.reports.errors import ReportError
from liftwatch.reports.monthly import monthly_report, scope_exists
from liftwatch.runtime import configure_logging

app = typer.Typer(
    help="Regulator statistics: monthly reports (CSV, XLSX, PDF) and rollup refresh.", no_args_is_help=True
)

TREND_MONTHS = 12


class FileFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    pdf = "pdf"


class Lang(StrEnum):
    zh = "zh"
    en = "en"


@app.command("monthly")
def monthly(
    month: Annotated[str, typer.Option(help="Site-local month, YYYY-MM.")],
    output: Annotated[Path, typer.Option(help="File to write.", dir_okay=False)],
    fmt: Annotated[FileFormat, typer.Option("--format", help="csv, xlsx or pdf.")] = FileFormat.pdf,
    lang: Annotated[Lang | None, typer.Option(help="zh or en (default: LIFTWATCH_DEFAULT_LANGUAGE).")] = None,
    scope: Annotated[str, typer.Option(help="city | district:<name> | maintainer:<id> | use_unit:<id>.")] = "city",
) -> None:
    """Write the monthly report of one scope (refreshing the month's rollup first if it is stale)."""
    configure_logging("WARNING")
    settings = CommonSettings()
    try:
        first = stats.parse_month(month)
        chosen = stats.parse_scope(scope)
    except ReportError as error:
        raise typer.BadParameter(str(error)) from error
    language = lang.value if lang is not None else settings.default_language
    url = settings.require_database_url()
    try:
        with db.connect(url, autocommit=True) as conn:
            if not scope_exists(conn, chosen):
                typer.echo(f"unknown scope: {scope}", err=True)
                raise typer.Exit(2)
            report = monthly_report(
                conn, first, chosen, settings.site_timezone, dt.datetime.now(dt.UTC), trend_months=TREND_MONTHS
            )
    except psycopg.OperationalError as error:
        typer.echo(f"cannot reach the database, no report written: {error}", err=True)
        raise typer.Exit(2) from error
    export.write(report, fmt.value, language, output)
    typer.echo(f"wrote {output} ({fmt.value}, {language}, {report.scope}, {report.month})")


@app.command("refresh")
def refresh(
    month: Annotated[str | None, typer.Option(help="Recompute only this month (YYYY-MM), even if complete.")] = None,
) -> None:
    """Recompute the rollup of every month that is not final yet (run it from cron, e.g. every 10 min)."""
    configure_logging("INFO")
    settings = CommonSettings()
    now = dt.datetime.now(dt.UTC)
    try:
        first = stats.parse_month(month) if month is not None else None
    except ReportError as error:
        raise typer.BadParameter(str(error)) from error
    url = settings.require_database_url()
    try:
        with db.connect(url, autocommit=True) as conn:
            if first is not None:
                states = [rollup.refresh_month(conn, first, settings.site_timezone, now)]
            else:
                states = rollup.refresh_due(conn, settings.site_timezone, now)
    except psycopg.OperationalError as error:
        typer.echo(f"cannot reach the database, nothing refreshed: {error}", err=True)
        raise typer.Exit(2) from error
    for state in states:
        final = "final" if state.complete else "provisional"
        typer.echo(f"{state.month:%Y-%m}: refreshed ({state.days_observed}/{state.days_in_month} days, {final})")
