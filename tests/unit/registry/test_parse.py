"""Parsing a registry CSV: every bad cell is reported with its line, column and reason."""

from __future__ import annotations

import csv
import io
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.registry import parse as registry_parse
from liftwatch.registry.model import REGISTRY_COLUMNS, REQUIRED_COLUMNS, RegistryRow, registry_csv_text, row_cells
from liftwatch.registry.parse import RowError, parse_registry
from liftwatch.simulators.registry import generate_registry


def _csv(rows: list[list[str]], header: list[str] | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header if header is not None else REGISTRY_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()


def _with(row: RegistryRow, **cells: str) -> list[str]:
    values = row_cells(row)
    for column, cell in cells.items():
        values[REGISTRY_COLUMNS.index(column)] = cell
    return values


def test_generated_file_parses_back_to_the_same_rows() -> None:
    rows = generate_registry(500, 3)
    parsed = parse_registry(registry_csv_text(rows))
    assert parsed.errors == ()
    assert list(parsed.rows) == rows
    assert parsed.lines == tuple(range(2, 502))
    assert parsed.columns == frozenset(REGISTRY_COLUMNS)


def test_bom_and_bytes_are_accepted(registry_rows: list[RegistryRow]) -> None:
    data = "\ufeff".encode() + registry_csv_text(registry_rows).encode()
    assert list(parse_registry(data).rows) == registry_rows


@pytest.mark.parametrize(
    ("column", "cell", "reason"),
    [
        ("registration_code", "", "required"),
        ("registration_code", "3110310115201500000", "is not 20 characters"),
        ("registration_code", "3110310115201500000a", "is not 20 characters"),
        ("rescue_code", "1234", "is not 5 or 6 digits"),
        ("rescue_code", "1234567", "is not 5 or 6 digits"),
        ("rescue_code", "12a45", "is not 5 or 6 digits"),
        ("rescue_code", "", "required"),
        ("terminal_id", "T/1", "is not 1-64 characters"),
        ("terminal_id", "T" * 65, "is not 1-64 characters"),
        ("kind", "lift", "is not one of traction"),
        ("kind", "Traction", "is not one of"),
        ("kind", "", "required"),
        ("address", "", "required"),
        ("address", "a\nb", "control characters"),
        ("address", "x\x00", "control characters"),
        ("address", "长" * 501, "longer than 500"),
        ("district", "", "required"),
        ("use_unit", "", "required"),
        ("maintainer", "", "required"),
        ("latitude", "north", "is not a decimal number"),
        ("latitude", "91", "out of range"),
        ("latitude", "nan", "is not a decimal number"),
        ("longitude", "-180.5", "out of range"),
        ("longitude", "1e2", "is not a decimal number"),
        ("installed_on", "", "required"),
        ("installed_on", "2020/01/01", "is not a date YYYY-MM-DD"),
        ("installed_on", "2021-02-30", "is not a real date"),
        ("installed_on", "1850-01-01", "outside 1900..2099"),
        ("rated_speed", "0", "out of range (must be > 0"),
        ("rated_speed", "-1.5", "out of range"),
        ("rated_speed", "1750", "out of range"),
        ("rated_speed", "fast", "is not a decimal number"),
        ("rated_speed", "", "required"),
        ("rated_load", "1000.5", "is not an integer"),
        ("rated_load", "0", "out of range"),
        ("bottom_floor", "B1", "is not an integer"),
        ("bottom_floor", "", "required"),
        ("top_floor", "1_000", "is not an integer"),
        ("top_floor", "", "required"),
        ("last_inspection", "yesterday", "is not a date"),
        ("next_inspection_due", "2026-13-01", "is not a real date"),
        ("insured", "yes", "is not true or false"),
        ("insured", "1", "is not true or false"),
    ],
)
def test_each_invalid_cell_is_reported_with_line_column_and_reason(
    registry_rows: list[RegistryRow], column: str, cell: str, reason: str
) -> None:
    good = [row_cells(row) for row in registry_rows[:3]]
    text = _csv([good[0], _with(registry_rows[1], **{column: cell}), good[2]])
    parsed = parse_registry(text)
    assert parsed.rows == ()
    assert len(parsed.errors) == 1
    error = parsed.errors[0]
    assert (error.line, error.column) == (3, column)
    assert reason in error.reason


def test_optional_cells_may_be_empty_and_booleans_ignore_case(registry_rows: list[RegistryRow]) -> None:
    optional = sorted(set(REGISTRY_COLUMNS) - REQUIRED_COLUMNS)
    empty = _with(registry_rows[0], **dict.fromkeys(optional, ""))
    parsed = parse_registry(_csv([empty, _with(registry_rows[1], insured="TRUE")]))
    assert parsed.errors == ()
    assert all(getattr(parsed.rows[0], column) is None for column in optional)
    assert parsed.rows[1].insured is True


def test_every_bad_row_is_reported_not_only_the_first(registry_rows: list[RegistryRow]) -> None:
    rows = [
        _with(registry_rows[0], rescue_code="12", kind="lift"),
        row_cells(registry_rows[1]),
        _with(registry_rows[2], bottom_floor="5", top_floor="3"),
        _with(registry_rows[3], latitude="31.2", longitude=""),
        _with(registry_rows[4], registration_code=registry_rows[1].registration_code),
        _with(
            registry_rows[5], rescue_code=registry_rows[1].rescue_code, terminal_id=str(registry_rows[0].terminal_id)
        ),
        row_cells(registry_rows[6])[:-1],
    ]
    parsed = parse_registry(_csv(rows))
    assert parsed.rows == ()
    assert [(e.line, e.column) for e in parsed.errors] == [
        (2, "rescue_code"),
        (2, "kind"),
        (4, "top_floor"),
        (5, "longitude"),
        (6, "registration_code"),
        (7, "rescue_code"),
        (7, "terminal_id"),
        (8, ""),
    ]
    assert "already on line 3" in parsed.errors[4].reason
    assert "19 cells but the header has 20 columns" in parsed.errors[7].reason


def test_header_problems_are_reported_on_line_1(registry_rows: list[RegistryRow]) -> None:
    header = [*REGISTRY_COLUMNS, "colour", "kind"]
    header.remove("rescue_code")
    header.remove("top_floor")
    first, second = (
        [c for c, n in zip(row_cells(r), REGISTRY_COLUMNS, strict=True) if n in header] for r in registry_rows[:2]
    )
    second[header.index("kind")] = "lift"
    parsed = parse_registry(_csv([[*first, "red", "x"], [*second, "red", "y"]], header=header))
    assert set(parsed.errors) == {
        RowError(1, "colour", "unknown column"),
        RowError(1, "kind", "column appears twice"),
        RowError(1, "rescue_code", "required column is missing"),
        RowError(1, "top_floor", "required column is missing"),
        RowError(3, "kind", "'lift' is not one of traction, hydraulic, escalator, moving_walk"),
    }


def test_absent_optional_columns_are_allowed(registry_rows: list[RegistryRow]) -> None:
    header = [c for c in REGISTRY_COLUMNS if c not in ("terminal_id", "insured")]
    body = [
        [c for c, name in zip(row_cells(r), REGISTRY_COLUMNS, strict=True) if name in header] for r in registry_rows
    ]
    parsed = parse_registry(_csv(body, header=header))
    assert parsed.errors == ()
    assert "terminal_id" not in parsed.columns
    assert all(row.terminal_id is None for row in parsed.rows)


def test_multi_line_quoted_cells_report_the_line_where_the_row_starts(registry_rows: list[RegistryRow]) -> None:
    text = _csv([_with(registry_rows[0], address="line one\nline two"), _with(registry_rows[1], kind="x")])
    parsed = parse_registry(text)
    assert [(e.line, e.column) for e in parsed.errors] == [(2, "address"), (4, "kind")]


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"", 1, "empty file"),
        (b"registration_code\n\xff\xfe\n", 2, "not UTF-8"),
        (b'registration_code\n"open', 2, "unreadable CSV"),
    ],
)
def test_unreadable_files_are_refused_with_a_reason(data: bytes, line: int, reason: str) -> None:
    errors = parse_registry(data).errors
    assert errors[-1].line == line
    assert reason in errors[-1].reason


def test_gbk_file_is_refused_with_a_hint() -> None:
    data = registry_csv_text(generate_registry(2, 1)).encode("gbk", errors="replace")
    (error,) = parse_registry(data).errors
    assert "CSV UTF-8" in error.reason


def test_blank_lines_are_skipped(registry_rows: list[RegistryRow]) -> None:
    text = registry_csv_text(registry_rows[:2]).replace("\n", "\n\n", 1)
    parsed = parse_registry(text)
    assert parsed.errors == ()
    assert parsed.lines == (3, 4)


_ROWS = generate_registry(60, 5)
_BAD_CELLS = {
    "registration_code": "SHORT",
    "rescue_code": "12",
    "terminal_id": "T 1",
    "kind": "lift",
    "address": "",
    "latitude": "95",
    "longitude": "east",
    "use_unit": "",
    "installed_on": "2020-02-30",
    "rated_speed": "0",
    "rated_load": "-5",
    "bottom_floor": "B2",
    "top_floor": "",
    "last_inspection": "2020/01/01",
    "insured": "yes",
}


@settings(max_examples=40, deadline=None)
@given(
    chunk=st.integers(1, 70),
    damage=st.lists(st.tuples(st.integers(0, 59), st.sampled_from(sorted(_BAD_CELLS))), max_size=12, unique=True),
)
def test_exactly_the_damaged_cells_are_reported(chunk: int, damage: list[tuple[int, str]]) -> None:
    rows = [row_cells(row) for row in _ROWS]
    for index, column in damage:
        rows[index][REGISTRY_COLUMNS.index(column)] = _BAD_CELLS[column]
    # Whatever the chunk size of the column-wise reading, the same errors come out.
    with mock.patch.object(registry_parse, "_CHUNK_ROWS", chunk):
        parsed = parse_registry(_csv(rows).encode())
    reported = [(error.line, error.column) for error in parsed.errors]
    expected = sorted((index + 2, column) for index, column in damage)
    assert sorted(reported) == expected
    assert reported == sorted(reported, key=lambda item: (item[0], REGISTRY_COLUMNS.index(item[1])))
    assert (parsed.rows == ()) == bool(damage)
