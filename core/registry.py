"""The equipment registry: parsing, validating and importing the registry CSV.

The format is ``docs/protocol/registry.md`` (the shared contract). Parsing is pure: text in,
typed :class:`RegistryRow` values or every :class:`RowError` out. The import writes a whole file
in one transaction (COPY into a temporary table, then set-based upserts), so a file with any bad
row changes nothing. Decisions the contract leaves open are in ``docs/registry.md``.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import enum
import gc
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO

import msgspec
import psycopg
from liftwatch import db
from liftwatch.ids import REGISTRATION_CODE, RESCUE_CODE, TERMINAL_ID, IdPattern
from rich import progress as rich_progress
from rich.console import Console
from rich.table import Table


class ElevatorKind(enum.StrEnum):
    """What kind of lift equipment a registry row describes."""

    TRACTION = "traction"
    HYDRAULIC = "hydraulic"
    ESCALATOR = "escalator"
    MOVING_WALK = "moving_walk"


class RegistryRow(msgspec.Struct, frozen=True):
    """One elevator of the registry; the fields are the CSV columns, in the contract's order."""

    registration_code: str
    """设备注册代码: 20 characters ``[0-9A-Z]``."""
    rescue_code: str
    """应急救援识别码: 5 or 6 digits, unique in the city."""
    terminal_id: str | None
    """The monitoring terminal fitted to the elevator (its MQTT topic id), if any."""
    kind: ElevatorKind
    address: str
    district: str
    latitude: float | None
    """WGS-84 degrees."""
    longitude: float | None
    use_unit: str
    """使用单位: the owner or property company."""
    maintainer: str
    """维保单位: the maintenance firm's registered name."""
    manufacturer: str | None
    model: str | None
    installed_on: date
    rated_speed: float
    """m/s."""
    rated_load: int | None
    """kg."""
    bottom_floor: int
    top_floor: int
    last_inspection: date | None
    next_inspection_due: date | None
    insured: bool | None
    """Elevator liability insurance in force."""


REGISTRY_COLUMNS: tuple[str, ...] = RegistryRow.__struct_fields__
"""Every column of the registry CSV, in the contract's order."""

REQUIRED_COLUMNS: frozenset[str] = frozenset(
    {
        "registration_code",
        "rescue_code",
        "kind",
        "address",
        "district",
        "use_unit",
        "maintainer",
        "installed_on",
        "rated_speed",
        "bottom_floor",
        "top_floor",
    }
)


def format_cell(value: object) -> str:
    """The CSV text of one typed value (empty for None, ``true``/``false``, ISO dates)."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def row_cells(row: RegistryRow) -> list[str]:
    """The CSV cells of a row, in column order."""
    return [format_cell(value) for value in msgspec.structs.astuple(row)]


def _csv_values(row: RegistryRow) -> tuple[object, ...]:
    # Fast path for the csv module, which writes None as "" and str() of the rest (ISO dates,
    # StrEnum values); only the boolean needs its contract spelling.
    values = msgspec.structs.astuple(row)
    insured = values[-1]
    return (*values[:-1], "" if insured is None else ("true" if insured else "false"))


def write_registry_csv(rows: Iterable[RegistryRow], file: TextIO | Path | str) -> None:
    """Write rows as a registry CSV (header first) to an open text file or a path."""
    if isinstance(file, (str, Path)):
        with Path(file).open("w", encoding="utf-8", newline="") as handle:
            write_registry_csv(rows, handle)
        return
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(REGISTRY_COLUMNS)
    writer.writerows(_csv_values(row) for row in rows)


def registry_csv_text(rows: Iterable[RegistryRow]) -> str:
    """The registry CSV of ``rows`` as a string."""
    buffer = io.StringIO()
    write_registry_csv(rows, buffer)
    return buffer.getvalue()


# --- Parsing and validation ---------------------------------------------------------------------

MAX_TEXT_LENGTH = 500
"""Longest accepted free-text cell (addresses, company names)."""
_EARLIEST_DATE = date(1900, 1, 1)
_LATEST_DATE = date(2099, 12, 31)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_INTEGER_RE = re.compile(r"-?[0-9]{1,9}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_KINDS = {kind.value: kind for kind in ElevatorKind}
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem of a registry file: where (line, column) and why."""

    line: int
    """1-based line of the file where the row starts (the header is line 1)."""
    column: str
    """The column at fault; empty when the whole row or file is."""
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedRegistry:
    """A parsed registry file: its valid rows, or every error found."""

    rows: tuple[RegistryRow, ...]
    lines: tuple[int, ...]
    """The file line of each row."""
    columns: frozenset[str]
    """The columns the header names (an absent optional column leaves stored values alone)."""
    errors: tuple[RowError, ...]


class _CellError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Column:
    """How to read one column: per cell (with a reason on failure) and for a whole column at once.

    ``bulk`` converts a list of non-empty cells with C-level loops (``map``, one regex over a
    joined column) and raises on the first problem; the column is then read again cell by cell
    to report every problem with its line. Valid files only ever take the fast path.
    """

    cell: Callable[[str], object]
    bulk: Callable[[list[str]], list[Any]]


def _code(pattern: IdPattern) -> _Column:
    def cell(text: str) -> str:
        if not pattern.matches(text):
            raise _CellError(f"{text[:40]!r} is not {pattern.rule}")
        return text

    def bulk(cells: list[str]) -> list[Any]:
        if not all(map(pattern.matches, cells)):
            raise _CellError(pattern.rule)
        return cells

    return _Column(cell, bulk)


def _text_cell(text: str) -> str:
    if len(text) > MAX_TEXT_LENGTH:
        raise _CellError(f"longer than {MAX_TEXT_LENGTH} characters")
    if _CONTROL_RE.search(text):
        raise _CellError("contains control characters (line breaks, tabs or NUL)")
    return text


def _text_bulk(cells: list[str]) -> list[Any]:
    if max(map(len, cells), default=0) > MAX_TEXT_LENGTH or _CONTROL_RE.search("".join(cells)):
        raise _CellError("text")
    return cells


def _kind_cell(text: str) -> ElevatorKind:
    kind = _KINDS.get(text)
    if kind is None:
        raise _CellError(f"{text[:40]!r} is not one of {', '.join(_KINDS)}")
    return kind


def _number(
    pattern: re.Pattern[str], convert: Callable[[str], Any], what: str, low: float, high: float, low_exclusive: bool
) -> _Column:
    bound = f"> {low:g}" if low_exclusive else f">= {low:g}"

    def in_range(value: float) -> bool:
        return (low < value if low_exclusive else low <= value) and value <= high

    def cell(text: str) -> object:
        if pattern.fullmatch(text) is None:
            raise _CellError(f"{text[:40]!r} is not {what}")
        value = convert(text)
        if not in_range(value):
            raise _CellError(f"{text} is out of range (must be {bound} and <= {high:g})")
        return value

    def bulk(cells: list[str]) -> list[Any]:
        if not all(map(pattern.fullmatch, cells)):
            raise _CellError(what)
        values = list(map(convert, cells))
        if values and not (in_range(min(values)) and in_range(max(values))):
            raise _CellError("range")
        return values

    return _Column(cell, bulk)


def _decimal(low: float, high: float, *, low_exclusive: bool = False) -> _Column:
    return _number(_DECIMAL_RE, float, "a decimal number", low, high, low_exclusive)


def _integer(low: int, high: int) -> _Column:
    return _number(_INTEGER_RE, int, "an integer", low, high, False)


def _date_cell(text: str) -> date:
    if _DATE_RE.fullmatch(text) is None:
        raise _CellError(f"{text[:40]!r} is not a date YYYY-MM-DD")
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise _CellError(f"{text} is not a real date") from None
    if not _EARLIEST_DATE <= value <= _LATEST_DATE:
        raise _CellError(f"{text} is outside {_EARLIEST_DATE.year}..{_LATEST_DATE.year}")
    return value


def _date_bulk(cells: list[str]) -> list[Any]:
    if not all(map(_DATE_RE.fullmatch, cells)):
        raise _CellError("date")
    values = list(map(date.fromisoformat, cells))
    if values and not (min(values) >= _EARLIEST_DATE and max(values) <= _LATEST_DATE):
        raise _CellError("range")
    return values


def _boolean_cell(text: str) -> bool:
    value = _BOOLEANS.get(text.lower())
    if value is None:
        raise _CellError(f"{text[:40]!r} is not true or false")
    return value


_TEXT = _Column(_text_cell, _text_bulk)
_COLUMNS: dict[str, _Column] = {
    "registration_code": _code(REGISTRATION_CODE),
    "rescue_code": _code(RESCUE_CODE),
    "terminal_id": _code(TERMINAL_ID),
    "kind": _Column(_kind_cell, lambda cells: list(map(_KINDS.__getitem__, cells))),
    "address": _TEXT,
    "district": _TEXT,
    "latitude": _decimal(-90.0, 90.0),
    "longitude": _decimal(-180.0, 180.0),
    "use_unit": _TEXT,
    "maintainer": _TEXT,
    "manufacturer": _TEXT,
    "model": _TEXT,
    "installed_on": _Column(_date_cell, _date_bulk),
    "rated_speed": _decimal(0.0, 25.0, low_exclusive=True),
    "rated_load": _integer(1, 100_000),
    "bottom_floor": _integer(-20, 200),
    "top_floor": _integer(-20, 200),
    "last_inspection": _Column(_date_cell, _date_bulk),
    "next_inspection_due": _Column(_date_cell, _date_bulk),
    "insured": _Column(_boolean_cell, lambda cells: [_BOOLEANS[cell.lower()] for cell in cells]),
}
_UNIQUE_COLUMNS = ("registration_code", "rescue_code", "terminal_id")
_PROGRESS_EVERY = 5000
_CHUNK_ROWS = 20_000
_DECODE_STEP = 1 << 20
# Text columns whose values repeat across rows (one string object kept per distinct value).
_REPEATED_TEXT = ("kind", "address", "district", "use_unit", "maintainer", "manufacturer", "model")
_BAD = object()
"""Marks a cell that failed to parse (already reported), so cross-cell checks skip it."""

Progress = Callable[[str, int, int], None]
"""Called with (phase, done, total) during long imports; total 0 means unknown."""


def _open(data: bytes | str) -> tuple[TextIO, int, RowError | None]:
    """A text stream over the file (decoded as read, not copied), its line count, or why not."""
    if isinstance(data, str):
        return io.StringIO(data.removeprefix("\ufeff")), data.count("\n"), None
    # Check the whole file is UTF-8 first, a megabyte at a time (no second copy of the file).
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for offset in range(0, len(data), _DECODE_STEP):
            decoder.decode(data[offset : offset + _DECODE_STEP])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            reason = f"not UTF-8 (byte 0x{data[error.start]:02x}); save the file as CSV UTF-8"
            return io.StringIO(), 0, RowError(line, "", reason)
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    return stream, data.count(b"\n"), None


def _check_header(header: list[str], line: int) -> tuple[dict[str, int], list[RowError]]:
    errors: list[RowError] = []
    positions: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = raw.strip()
        if name not in _COLUMNS:
            errors.append(RowError(line, name, "unknown column"))
        elif name in positions:
            errors.append(RowError(line, name, "column appears twice"))
        else:
            positions[name] = index
    for name in REGISTRY_COLUMNS:
        if name in REQUIRED_COLUMNS and name not in positions:
            errors.append(RowError(line, name, "required column is missing"))
    return positions, errors


def _failed(errors: list[RowError], columns: dict[str, int] | None = None) -> ParsedRegistry:
    return ParsedRegistry((), (), frozenset(columns or ()), tuple(errors))


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of acyclic objects.

    Every few hundred new lists or tuples would otherwise trigger a collection that walks the
    whole growing heap: that halves the CPU time of a 300,000-row file.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_registry(data: bytes | str, *, progress: Progress | None = None) -> ParsedRegistry:
    """Parse and validate a registry CSV; every bad row is reported, none is kept if any is bad."""
    with _gc_paused():
        return _parse(data, progress)


def _parse(data: bytes | str, progress: Progress | None) -> ParsedRegistry:
    stream, total, decode_error = _open(data)
    if decode_error is not None:
        return _failed([decode_error])
    with stream:
        reader = csv.reader(stream, strict=True)
        header: list[str] = []
        try:
            for header in reader:
                if header:
                    break
        except csv.Error as error:
            return _failed([RowError(reader.line_num, "", f"unreadable CSV: {error}")])
        if not header:
            return _failed([RowError(1, "", "empty file: a header row is required")])
        positions, errors = _check_header(header, reader.line_num)
        # Column-wise, a chunk of rows at a time: the raw cells of one chunk at most are alive.
        values: list[list[Any]] = [[] for _ in REGISTRY_COLUMNS]
        lines: list[int] = []
        shared: dict[str, dict[Any, Any]] = {name: {} for name in _REPEATED_TEXT}
        for chunk_lines, records in _read_chunks(reader, len(header), errors, progress, total):
            by_column = list(zip(*records, strict=True))
            for name, position in positions.items():
                column = _read_column(name, by_column[position], chunk_lines, errors)
                if name in shared:
                    # Many rows repeat a firm, owner or address: keep one string object of each.
                    column = list(map(shared[name].setdefault, column, column))
                values[_INDEX[name]].extend(column)
            lines.extend(chunk_lines)
    for name in REGISTRY_COLUMNS:
        if name not in positions:
            values[_INDEX[name]] = [None] * len(lines)
    _check_rows(values, lines, errors)
    if errors:
        errors.sort(key=_error_order)
        return _failed(errors, positions)
    rows = tuple(map(RegistryRow, *values)) if lines else ()
    return ParsedRegistry(rows, tuple(lines), frozenset(positions), ())


def _read_chunks(
    reader: Any, width: int, errors: list[RowError], progress: Progress | None, total: int
) -> Iterator[tuple[list[int], list[list[str]]]]:
    """Chunks of rows with the header's width and the line each starts on; other rows are errors."""
    lines: list[int] = []
    records: list[list[str]] = []
    line = reader.line_num
    try:
        for count, cells in enumerate(reader):
            start, line = line + 1, reader.line_num
            if len(cells) == width:
                lines.append(start)
                records.append(cells)
            elif cells and (len(cells) > 1 or cells[0].strip()):
                errors.append(RowError(start, "", f"{len(cells)} cells but the header has {width} columns"))
            # else: a blank line, skipped
            if len(records) == _CHUNK_ROWS:
                yield lines, records
                lines, records = [], []
            if progress is not None and count % _PROGRESS_EVERY == 0:
                progress("parsing", line, total)
    except csv.Error as error:
        errors.append(RowError(reader.line_num, "", f"unreadable CSV, stopped reading here: {error}"))
    if records:
        yield lines, records


def _read_column(name: str, raw: tuple[str, ...], lines: list[int], errors: list[RowError]) -> list[Any]:
    """Typed values of one column (None for empty cells, _BAD for refused ones)."""
    column = _COLUMNS[name]
    cells = list(map(str.strip, raw))
    required = name in REQUIRED_COLUMNS
    if "" not in cells:
        with contextlib.suppress(_CellError, KeyError, ValueError):
            return column.bulk(cells)
    elif not required:
        present = [cell for cell in cells if cell]
        with contextlib.suppress(_CellError, KeyError, ValueError):
            converted = iter(column.bulk(present))
            return [next(converted) if cell else None for cell in cells]
    # Slow path: find and report every bad cell of the column.
    values: list[Any] = []
    for line, cell in zip(lines, cells, strict=True):
        if not cell:
            if required:
                errors.append(RowError(line, name, "required"))
            values.append(_BAD if required else None)
            continue
        try:
            values.append(column.cell(cell))
        except _CellError as error:
            errors.append(RowError(line, name, str(error)))
            values.append(_BAD)
    return values


_INDEX = {name: index for index, name in enumerate(REGISTRY_COLUMNS)}


def _error_order(error: RowError) -> tuple[int, int]:
    return error.line, _INDEX.get(error.column, -1 if not error.column else len(_INDEX))


def _check_rows(values: list[list[Any]], lines: list[int], errors: list[RowError]) -> None:
    """Checks across cells of a row (only between cells that parsed) and across rows (duplicates)."""
    bottoms, tops = values[_INDEX["bottom_floor"]], values[_INDEX["top_floor"]]
    for line, bottom, top in zip(lines, bottoms, tops, strict=True):
        if isinstance(bottom, int) and isinstance(top, int) and bottom > top:
            errors.append(RowError(line, "top_floor", f"top floor {top} is below bottom floor {bottom}"))
    latitudes, longitudes = values[_INDEX["latitude"]], values[_INDEX["longitude"]]
    for line, latitude, longitude in zip(lines, latitudes, longitudes, strict=True):
        if (latitude is None) != (longitude is None) and _BAD not in (latitude, longitude):
            missing = "latitude" if latitude is None else "longitude"
            errors.append(RowError(line, missing, "latitude and longitude go together: give both or neither"))
    for name in _UNIQUE_COLUMNS:
        column = values[_INDEX[name]]
        codes = [code for code in column if isinstance(code, str)]
        if len(set(codes)) == len(codes):
            continue
        first_line: dict[str, int] = {}
        for line, code in zip(lines, column, strict=True):
            if isinstance(code, str):
                first = first_line.setdefault(code, line)
                if first != line:
                    errors.append(RowError(line, name, f"{code} already on line {first}"))


# --- Import into PostgreSQL ----------------------------------------------------------------------

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
        with _gc_paused():
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
            if progress is not None and count % _PROGRESS_EVERY == 0:
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


# --- The `liftwatch registry import` command -----------------------------------------------------

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
