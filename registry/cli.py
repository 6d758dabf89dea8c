"""``liftwatch registry import FILE``: import a registry CSV with a progress bar and a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from liftwatch import db
from liftwatch.config import CommonSettings
from liftwatch.registry.importer import ImportResult, import_registry
from liftwatch.runtime import configure_logging
from rich import progress as rich_progress
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Equipment registry.", no_args_is_help=True)

_PROGRESS_MIN_BYTES = 1_000_000
_TABLE_MAX_ERRORS = 500


def import_registry_file(database_url: str, path: Path) -> int:
    """Import a registry CSV and print a report.

    The exit code is 0 when imported, 1 when the file was rejected (nothing changed), 2 when the
    database could not be reached or is not migrated.
    """
    console = Console(highlight=False)
    data = path.read_bytes()
    try:
        with db.connect(database_url) as conn:
            if console.is_terminal and len(data) >= _PROGRESS_MIN_BYTES:
                result = _import_with_progress_bar(console, conn, data)
            else:
                result = import_registry(conn, data)
    except psycopg.OperationalError as error:
        console.print(f"cannot reach the database, nothing was imported: {error}", markup=False, soft_wrap=True)
        return 2
    except psycopg.errors.UndefinedTable as error:
        console.print(
            f"the database has no registry tables (run `liftwatch db migrate` first), nothing was imported: {error}",
            markup=False,
            soft_wrap=True,
        )
        return 2
    _print_report(console, path, result)
    return 0 if result.ok else 1


def _import_with_progress_bar(console: Console, conn: psycopg.Connection[Any], data: bytes) -> ImportResult:
    with rich_progress.Progress(
        rich_progress.TextColumn("{task.description:<9}"),
        rich_progress.BarColumn(),
        rich_progress.MofNCompleteColumn(),
        rich_progress.TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, rich_progress.TaskID] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                # One bar per phase; "applying" has no known total and shows as a pulse.
                for task in tasks.values():
                    bar.update(task, visible=False)
                tasks[phase] = bar.add_task(phase, total=total or None)
            bar.update(tasks[phase], completed=done)

        return import_registry(conn, data, progress=report)


def _print_report(console: Console, path: Path, result: ImportResult) -> None:
    if result.ok:
        console.print(
            f"{path.name}: imported {result.rows} elevator(s): {result.inserted} new, {result.updated} updated, "
            f"{result.unchanged} unchanged; {result.maintenance_firms_created} maintenance firm(s) and "
            f"{result.use_units_created} use unit(s) added; terminals: {result.terminals_attached} fitted, "
            f"{result.terminals_detached} removed."
        )
        return
    bad_lines = len({error.line for error in result.errors})
    console.print(
        f"{path.name} rejected, nothing was changed: {len(result.errors)} error(s) on {bad_lines} line(s).",
        style="bold red" if console.is_terminal else None,
    )
    if console.is_terminal and len(result.errors) <= _TABLE_MAX_ERRORS:
        table = Table("line", "column", "reason")
        for error in result.errors:
            table.add_row(str(error.line), error.column, error.reason)
        console.print(table)
    else:
        # One error per line: stable for scripts and fast for very many errors.
        for error in result.errors:
            console.print(
                f"line {error.line}, column {error.column or '-'}: {error.reason}", markup=False, soft_wrap=True
            )


@app.command("import")
def registry_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Registry CSV file.")],
) -> None:
    """Import (or update) elevators from a registry CSV: all rows or none."""
    configure_logging("WARNING")
    settings = CommonSettings()
    raise typer.Exit(import_registry_file(settings.require_database_url(), file))
