"""The registry generator gives plausible, unique, deterministic rows the importer accepts."""

from __future__ import annotations

import csv
import io
import re

from liftwatch.registry.model import REGISTRY_COLUMNS, ElevatorKind
from liftwatch.simulators.registry import generate_registry, write_registry_csv


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    assert generate_registry(200, 7) == generate_registry(200, 7)
    assert generate_registry(200, 7) != generate_registry(200, 8)


def test_rows_are_unique_and_well_formed() -> None:
    rows = generate_registry(3000, 1)
    assert len(rows) == 3000
    for attribute in ("registration_code", "rescue_code", "terminal_id"):
        assert len({getattr(row, attribute) for row in rows}) == len(rows)
    assert all(re.fullmatch(r"[0-9A-Z]{20}", row.registration_code) for row in rows)
    assert all(re.fullmatch(r"[0-9]{5,6}", row.rescue_code) for row in rows)
    assert all(row.terminal_id and re.fullmatch(r"T[0-9]{6,}", row.terminal_id) for row in rows)
    assert all(row.bottom_floor <= row.top_floor for row in rows)
    lifts = [row for row in rows if row.kind is ElevatorKind.TRACTION]
    assert len(lifts) > 0.8 * len(rows)
    assert all(-3 <= row.bottom_floor <= 1 and 5 <= row.top_floor <= 60 for row in lifts)
    assert {row.rated_speed for row in lifts} <= {1.0, 1.5, 1.75, 2.0, 2.5, 4.0}
    assert 5 <= len({row.district for row in rows}) <= 12
    assert any(row.installed_on.year < 2010 for row in rows)


def test_without_terminal_leaves_some_elevators_unequipped() -> None:
    rows = generate_registry(1000, 2, without_terminal=0.2)
    missing = sum(row.terminal_id is None for row in rows)
    assert 100 < missing < 300


def test_written_csv_has_the_contract_header() -> None:
    buffer = io.StringIO()
    write_registry_csv(generate_registry(5, 3), buffer)
    lines = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert lines[0] == list(REGISTRY_COLUMNS)
    assert len(lines) == 6
    assert all(len(line) == len(REGISTRY_COLUMNS) for line in lines)
