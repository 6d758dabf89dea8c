"""Importing a parsed registry into PostgreSQL: a whole file in one transaction, or nothing.

COPY into a temporary table, then set-based upserts, so a file with any bad row (or a conflict
with what the database holds) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg
from liftwatch.registry.model import REGISTRY_COLUMNS, RegistryRow, registry_csv_text
from liftwatch.registry.parse import PROGRESS_EVERY, ParsedRegistry, Progress, RowError, gc_paused, parse_registry

# Serialises registry imports (the conflict checks read what the upserts then write).
_IMPORT_LOCK_KEY = 0x52454749
_STAGE = "_registry_import"
# Columns of the elevators table filled from the CSV (use_unit/maintainer become ids).
_ELEVATOR_COLUMNS = tuple(c for c in REGISTRY_COLUMNS if c not in ("terminal_id", "use_unit", "maintainer"))
# PostgreSQL type of each non-text column of the staging table (names COPY's set_types knows).
_STAGE_TYPES = {
    "latitude": "float8",
    "longitude": "float8",
    "rated_speed": "float8",
    "rated_load": "int4",
    "bottom_floor": "int4",
    "top_floor": "int4",
    "installed_on": "date",
    "last_inspection": "date",
    "next_inspection_due": "date",
    "insured": "bool",
}


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did, or every reason it changed nothing."""

    rows: int
    errors: tuple[RowError, ...] = ()
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    maintenance_firms_created: int = 0
    use_units_created: int = 0
    terminals_attached: int = 0
    """Terminals newly fitted to an elevator of the file (new, or moved from another elevator)."""
    terminals_detached: int = 0
    """Terminals no longer fitted to any elevator because the file gave their elevator another one."""

    @property
    def ok(self) -> bool:
        """True when the file was imported."""
        return not self.errors


def import_registry(
    conn: psycopg.Connection[Any],
    source: bytes | str | Iterable[RegistryRow],
    *,
    progress: Progress | None = None,
) -> ImportResult:
    """Import a registry (CSV bytes/text, or rows) in one transaction: every row or none.

    Rows given as :class:`RegistryRow` are checked like a file (line numbers as in the CSV that
    :func:`write_registry_csv` would write). Existing registration codes are updated; elevators
    absent from the source are left alone.
    """
    if not isinstance(source, (bytes, str)):
        source = registry_csv_text(source)
    parsed = parse_registry(source, progress=progress)
    if parsed.errors:
        return ImportResult(rows=0, errors=parsed.errors)
    try:
        with gc_paused():
            return _apply(conn, parsed, progress)
    except psycopg.errors.UniqueViolation as error:
        # A concurrent change (not an import: those are serialised) took a code we checked.
        constraint = error.diag.constraint_name or ""
        return ImportResult(
            len(parsed.rows), (RowError(0, constraint, f"conflicts with a concurrent change: {error}"),)
        )


class _Rejected(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} conflicts")
        self.errors = errors


def _apply(conn: psycopg.Connection[Any], parsed: ParsedRegistry, progress: Progress | None) -> ImportResult:
    rows, columns = parsed.rows, parsed.columns
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_IMPORT_LOCK_KEY,))
            _stage(cur, parsed, progress)
            if progress is not None:
                progress("applying", 0, 0)
            conflicts = _conflicts(cur, "terminal_id" in columns)
            if conflicts:
                raise _Rejected(conflicts)
            firms = _upsert_names(cur, "maintenance_firms", "maintainer")
            units = _upsert_names(cur, "use_units", "use_unit")
            inserted, updated = _upsert_elevators(cur, columns)
            attached = detached = 0
            if "terminal_id" in columns:
                attached, detached = _upsert_terminals(cur)
            cur.execute(f"DROP TABLE {_STAGE}")
    except _Rejected as rejected:
        return ImportResult(len(rows), tuple(rejected.errors))
    return ImportResult(
        rows=len(rows),
        inserted=inserted,
        updated=updated,
        unchanged=len(rows) - inserted - updated,
        maintenance_firms_created=firms,
        use_units_created=units,
        terminals_attached=attached,
        terminals_detached=detached,
    )


def _stage(cur: psycopg.Cursor[Any], parsed: ParsedRegistry, progress: Progress | None) -> None:
    """COPY the rows into a temporary table (binary COPY: no text round trip)."""
    definitions = ", ".join(f"{name} {_STAGE_TYPES.get(name, 'text')}" for name in REGISTRY_COLUMNS)
    cur.execute(f"DROP TABLE IF EXISTS pg_temp.{_STAGE}")
    cur.execute(f"CREATE TEMPORARY TABLE {_STAGE} (line integer NOT NULL, {definitions}) ON COMMIT DROP")
    types = ["int4", *(_STAGE_TYPES.get(name, "text") for name in REGISTRY_COLUMNS)]
    total = len(parsed.rows)
    with cur.copy(f"COPY {_STAGE} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for count, (line, row) in enumerate(zip(parsed.lines, parsed.rows, strict=True)):
            values = msgspec.structs.astuple(row)
            copy.write_row((line, values[0], values[1], values[2], values[3].value, *values[4:]))
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress("copying", count, total)
    if progress is not None:
        progress("copying", total, total)
    cur.execute(f"ANALYZE {_STAGE}")


def _conflicts(cur: psycopg.Cursor[Any], with_terminals: bool) -> list[RowError]:
    """Codes the file gives that other elevators (not in the file) hold in the database."""
    errors: list[RowError] = []
    cur.execute(
        f"""SELECT i.line, i.rescue_code, e.registration_code
            FROM {_STAGE} i JOIN elevators e ON e.rescue_code = i.rescue_code
            WHERE e.registration_code <> i.registration_code
              AND NOT EXISTS (SELECT 1 FROM {_STAGE} j WHERE j.registration_code = e.registration_code)
            ORDER BY i.line"""
    )
    for line, code, holder in cur.fetchall():
        errors.append(RowError(line, "rescue_code", f"{code} already belongs to elevator {holder}"))
    if with_terminals:
        cur.execute(
            f"""SELECT i.line, i.terminal_id, t.registration_code
                FROM {_STAGE} i JOIN terminals t ON t.terminal_id = i.terminal_id
                WHERE t.registration_code <> i.registration_code
                  AND NOT EXISTS (SELECT 1 FROM {_STAGE} j WHERE j.registration_code = t.registration_code)
                ORDER BY i.line"""
        )
        for line, terminal, holder in cur.fetchall():
            errors.append(RowError(line, "terminal_id", f"{terminal} is fitted to elevator {holder}"))
    errors.sort(key=lambda error: error.line)
    return errors


def _upsert_names(cur: psycopg.Cursor[Any], table: str, column: str) -> int:
    cur.execute(f"INSERT INTO {table} (name) SELECT DISTINCT {column} FROM {_STAGE} ON CONFLICT (name) DO NOTHING")
    return cur.rowcount


def _upsert_elevators(cur: psycopg.Cursor[Any], columns: frozenset[str]) -> tuple[int, int]:
    """Insert new elevators, update changed ones; return (inserted, updated)."""
    targets = [*_ELEVATOR_COLUMNS, "use_unit_id", "maintainer_id"]
    sources = [f"i.{name}" for name in _ELEVATOR_COLUMNS] + ["u.id", "m.id"]
    # Only the columns the file has are updated: an absent optional column keeps stored values.
    updated = [name for name in _ELEVATOR_COLUMNS if name in columns] + ["use_unit_id", "maintainer_id"]
    assignments = ", ".join(f"{name} = EXCLUDED.{name}" for name in updated)
    current = ", ".join(f"elevators.{name}" for name in updated)
    proposed = ", ".join(f"EXCLUDED.{name}" for name in updated)
    stored = ", ".join(f"e.{name}" for name in updated)
    given = ", ".join(source for name, source in zip(targets, sources, strict=True) if name in updated)
    # Unchanged rows are filtered out before the INSERT: ON CONFLICT DO UPDATE would lock (and
    # so write) every conflicting row even when its WHERE is false.
    cur.execute(
        f"""WITH upserted AS (
                INSERT INTO elevators ({", ".join(targets)})
                SELECT {", ".join(sources)}
                FROM {_STAGE} i
                JOIN use_units u ON u.name = i.use_unit
                JOIN maintenance_firms m ON m.name = i.maintainer
                LEFT JOIN elevators e ON e.registration_code = i.registration_code
                WHERE e.registration_code IS NULL OR ({stored}) IS DISTINCT FROM ({given})
                ON CONFLICT (registration_code) DO UPDATE SET {assignments}, updated_at = now()
                WHERE ({current}) IS DISTINCT FROM ({proposed})
                RETURNING (xmax = 0) AS inserted
            )
            SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted"""
    )
    row = cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _upsert_terminals(cur: psycopg.Cursor[Any]) -> tuple[int, int]:
    """Fit each file elevator with its terminal; return (attached, detached)."""
    # First release what the file's elevators no longer have, so that moving a terminal between
    # two elevators of the file never holds it twice (the unique constraint is per statement).
    cur.execute(
        f"""WITH released AS (
                UPDATE terminals t SET registration_code = NULL
                FROM {_STAGE} i
                WHERE t.registration_code = i.registration_code AND t.terminal_id IS DISTINCT FROM i.terminal_id
                RETURNING t.terminal_id
            )
            SELECT count(*) FROM released r
            WHERE NOT EXISTS (SELECT 1 FROM {_STAGE} i WHERE i.terminal_id = r.terminal_id)"""
    )
    row = cur.fetchone()
    detached = int(row[0]) if row else 0
    cur.execute(
        f"""INSERT INTO terminals (terminal_id, registration_code)
            SELECT i.terminal_id, i.registration_code FROM {_STAGE} i
            WHERE i.terminal_id IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM terminals t
                WHERE t.terminal_id = i.terminal_id AND t.registration_code = i.registration_code
            )
            ON CONFLICT (terminal_id) DO UPDATE SET registration_code = EXCLUDED.registration_code
            WHERE terminals.registration_code IS DISTINCT FROM EXCLUDED.registration_code"""
    )
    return cur.rowcount, detached
