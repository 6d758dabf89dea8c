"""Parsing and validating a registry CSV: pure, text in, typed rows or every row error out.

Columns are parsed a chunk at a time, column by column (one parser per column, applied to a whole
chunk's cells), which is what makes a 300,000-row file parse in seconds.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gc
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, TextIO

from liftwatch.ids import REGISTRATION_CODE, RESCUE_CODE, TERMINAL_ID, IdPattern
from liftwatch.registry.model import REGISTRY_COLUMNS, REQUIRED_COLUMNS, ElevatorKind, RegistryRow

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
PROGRESS_EVERY = 5000
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
def gc_paused() -> Iterator[None]:
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
    with gc_paused():
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
            if progress is not None and count % PROGRESS_EVERY == 0:
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
