"""Registry import against real PostgreSQL: all or nothing, re-import updates, conflicts, terminals."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from liftwatch.launcher.cli import app
from liftwatch.registry import cli as registry_cli
from liftwatch.registry.importer import import_registry
from liftwatch.registry.model import REGISTRY_COLUMNS, RegistryRow, registry_csv_text, row_cells
from liftwatch.simulators.registry import generate_registry
from rich.console import Console
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


def _replace(row: RegistryRow, **changes: Any) -> RegistryRow:
    return msgspec.structs.replace(row, **changes)


def _snapshot(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    tables = {
        "elevators": "SELECT * FROM elevators ORDER BY registration_code",
        "terminals": "SELECT terminal_id, registration_code FROM terminals ORDER BY terminal_id",
        "maintenance_firms": "SELECT id, name FROM maintenance_firms ORDER BY id",
        "use_units": "SELECT id, name FROM use_units ORDER BY id",
    }
    return {name: conn.execute(query).fetchall() for name, query in tables.items()}


def _fitted(conn: psycopg.Connection[Any]) -> dict[str, str | None]:
    return dict(conn.execute("SELECT terminal_id, registration_code FROM terminals").fetchall())


def test_good_file_is_imported_with_every_column(database_url: str) -> None:
    rows = generate_registry(300, 11)
    with psycopg.connect(database_url) as conn:
        result = import_registry(conn, registry_csv_text(rows).encode())
        assert result.ok
        assert (result.rows, result.inserted, result.updated, result.unchanged) == (300, 300, 0, 0)
        assert result.terminals_attached == 300
        assert result.maintenance_firms_created == len({row.maintainer for row in rows})
        stored = conn.execute(
            "SELECT e.registration_code, e.rescue_code, t.terminal_id, e.kind, e.address, e.district, e.latitude,"
            " e.longitude, u.name, m.name, e.manufacturer, e.model, e.installed_on, e.rated_speed, e.rated_load,"
            " e.bottom_floor, e.top_floor, e.last_inspection, e.next_inspection_due, e.insured"
            " FROM elevators e JOIN use_units u ON u.id = e.use_unit_id"
            " JOIN maintenance_firms m ON m.id = e.maintainer_id"
            " LEFT JOIN terminals t ON t.registration_code = e.registration_code ORDER BY e.registration_code"
        ).fetchall()
    expected = sorted((tuple(msgspec.structs.astuple(row)) for row in rows), key=lambda values: values[0])
    assert [tuple(values) for values in stored] == expected


def test_bad_file_reports_every_error_and_changes_nothing(database_url: str) -> None:
    existing = generate_registry(20, 12)
    rows = [row_cells(row) for row in generate_registry(30, 13)]
    kind, rescue, top = (REGISTRY_COLUMNS.index(c) for c in ("kind", "rescue_code", "top_floor"))
    rows[2][kind] = "paternoster"
    rows[7][rescue] = "12"
    rows[7][top] = "-9"
    rows[20][rescue] = rows[3][rescue]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([list(REGISTRY_COLUMNS), *rows])
    with psycopg.connect(database_url) as conn:
        assert import_registry(conn, existing).ok
        before = _snapshot(conn)
        result = import_registry(conn, buffer.getvalue())
        assert not result.ok
        assert [(e.line, e.column) for e in result.errors] == [
            (4, "kind"),
            (9, "rescue_code"),
            (9, "top_floor"),
            (22, "rescue_code"),
        ]
        assert "already on line 5" in result.errors[3].reason
        assert _snapshot(conn) == before


def test_reimport_updates_changed_rows_and_keeps_the_rest(database_url: str) -> None:
    rows = generate_registry(50, 14)
    changed = list(rows)
    changed[0] = _replace(rows[0], address="上海市浦东新区世纪大道1号", maintainer="上海新维保电梯有限公司")
    changed[1] = _replace(rows[1], rated_speed=2.5, insured=None, rescue_code="99999")
    extra = _replace(rows[2], registration_code="31103101152026999999", rescue_code="99998", terminal_id="T-NEW")
    with psycopg.connect(database_url) as conn:
        assert import_registry(conn, rows).ok
        result = import_registry(conn, [*changed, extra])
        assert (result.inserted, result.updated, result.unchanged) == (1, 2, 48)
        assert result.maintenance_firms_created == 1
        first = conn.execute(
            "SELECT e.address, m.name FROM elevators e JOIN maintenance_firms m ON m.id = e.maintainer_id"
            " WHERE registration_code = %s",
            (rows[0].registration_code,),
        ).fetchone()
        assert first == ("上海市浦东新区世纪大道1号", "上海新维保电梯有限公司")
        second = conn.execute(
            "SELECT rated_speed, insured, rescue_code FROM elevators WHERE registration_code = %s",
            (rows[1].registration_code,),
        ).fetchone()
        assert second == (2.5, None, "99999")
        assert conn.execute("SELECT count(*) FROM elevators").fetchone() == (51,)


def test_codes_held_by_other_elevators_are_conflicts_and_change_nothing(database_url: str) -> None:
    rows = generate_registry(10, 16)
    newcomer = generate_registry(12, 17)[11]
    stealing_rescue = _replace(newcomer, rescue_code=rows[3].rescue_code, terminal_id="T-OTHER")
    stealing_terminal = _replace(
        generate_registry(13, 18)[12], registration_code="31103101152026888888", terminal_id=rows[5].terminal_id
    )
    with psycopg.connect(database_url) as conn:
        assert import_registry(conn, rows).ok
        before = _snapshot(conn)
        result = import_registry(conn, [stealing_rescue, stealing_terminal])
        assert [(e.line, e.column) for e in result.errors] == [(2, "rescue_code"), (3, "terminal_id")]
        assert rows[3].registration_code in result.errors[0].reason
        assert rows[5].registration_code in result.errors[1].reason
        assert _snapshot(conn) == before


def test_terminals_move_and_codes_swap_between_elevators_of_one_file(database_url: str) -> None:
    a, b, c = generate_registry(3, 20)
    assert a.terminal_id and b.terminal_id and c.terminal_id
    with psycopg.connect(database_url) as conn:
        assert import_registry(conn, [a, b, c]).ok
        # a and b swap terminals and rescue codes; c gets a new terminal and its old one is detached.
        result = import_registry(
            conn,
            [
                _replace(a, terminal_id=b.terminal_id, rescue_code=b.rescue_code),
                _replace(b, terminal_id=a.terminal_id, rescue_code=a.rescue_code),
                _replace(c, terminal_id="T-REPLACED"),
            ],
        )
        assert result.ok, result.errors
        assert (result.terminals_attached, result.terminals_detached) == (3, 1)
        assert _fitted(conn) == {
            a.terminal_id: b.registration_code,
            b.terminal_id: a.registration_code,
            c.terminal_id: None,
            "T-REPLACED": c.registration_code,
        }
        rescue: dict[str, str] = dict(conn.execute("SELECT registration_code, rescue_code FROM elevators").fetchall())
        assert (rescue[a.registration_code], rescue[b.registration_code]) == (b.rescue_code, a.rescue_code)
        # An empty terminal cell removes the terminal; the terminal itself stays known.
        assert import_registry(conn, [_replace(c, terminal_id=None)]).terminals_detached == 1
        assert _fitted(conn)["T-REPLACED"] is None


def test_terminal_moved_from_an_elevator_not_in_the_file_is_refused(database_url: str) -> None:
    a, b = generate_registry(2, 21)
    with psycopg.connect(database_url) as conn:
        assert import_registry(conn, [a, b]).ok
        result = import_registry(conn, [_replace(b, terminal_id=a.terminal_id)])
        assert [(e.line, e.column) for e in result.errors] == [(2, "terminal_id")]


def test_file_without_the_terminal_column_keeps_fitted_terminals(database_url: str) -> None:
    rows = generate_registry(5, 22)
    columns = [c for c in REGISTRY_COLUMNS if c not in ("terminal_id", "insured")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        dict(zip(REGISTRY_COLUMNS, row_cells(_replace(row, address="新地址")), strict=True)) for row in rows
    )
    with psycopg.connect(database_url) as conn:
        assert import_registry(conn, rows).ok
        fitted = _fitted(conn)
        insured = conn.execute("SELECT registration_code, insured FROM elevators").fetchall()
        result = import_registry(conn, buffer.getvalue())
        assert result.ok and result.updated == 5
        assert _fitted(conn) == fitted
        assert conn.execute("SELECT registration_code, insured FROM elevators").fetchall() == insured


def test_import_inside_a_caller_transaction_rolls_back_with_it(database_url: str) -> None:
    rows = generate_registry(5, 23)
    with psycopg.connect(database_url) as conn:
        with conn.transaction(force_rollback=True):
            assert import_registry(conn, rows).ok
            assert import_registry(conn, rows).unchanged == 5
        assert conn.execute("SELECT count(*) FROM elevators").fetchone() == (0,)


def test_cli_imports_a_good_file_and_rejects_a_bad_one(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "registry.csv"
    good.write_text(registry_csv_text(generate_registry(40, 24)), encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text(encoding="utf-8").replace(",traction,", ",rocket,", 2), encoding="utf-8")
    monkeypatch.setenv("LIFTWATCH_DATABASE_URL", database_url)
    runner = CliRunner()

    done = runner.invoke(app, ["registry", "import", str(good)])
    assert done.exit_code == 0, done.output
    assert "imported 40 elevator(s): 40 new" in done.output

    done = runner.invoke(app, ["registry", "import", str(bad)])
    assert done.exit_code == 1, done.output
    assert "rejected, nothing was changed: 2 error(s)" in done.output
    assert "column kind: 'rocket' is not one of traction" in done.output
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM elevators").fetchone() == (40,)


def test_cli_says_when_the_database_is_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(registry_csv_text(generate_registry(3, 25)), encoding="utf-8")
    monkeypatch.setenv("LIFTWATCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
    done = CliRunner().invoke(app, ["registry", "import", str(path)])
    assert done.exit_code == 2
    assert "cannot reach the database, nothing was imported" in done.output


def test_progress_is_reported_phase_by_phase_and_shown_as_a_bar(database_url: str) -> None:
    data = registry_csv_text(generate_registry(6_000, 26)).encode()
    seen: list[tuple[str, int, int]] = []
    with psycopg.connect(database_url) as conn, conn.transaction(force_rollback=True):
        assert import_registry(conn, data, progress=lambda *step: seen.append(step)).ok
    phases = list(dict.fromkeys(phase for phase, _, _ in seen))
    assert phases == ["parsing", "copying", "applying"]
    for phase in ("parsing", "copying"):
        done = [d for p, d, _ in seen if p == phase]
        assert done == sorted(done) and len(done) >= 2, (phase, done)
    assert ("copying", 6_000, 6_000) in seen
    # The command shows it as a bar on a terminal (for files over 1 MB).
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with psycopg.connect(database_url) as conn, conn.transaction(force_rollback=True):
        result = registry_cli._import_with_progress_bar(console, conn, data[: data.index(b"\n", 50_000) + 1])
    assert result.ok and result.inserted > 100
    assert "applying" in screen.getvalue()


def test_cli_says_when_the_database_is_not_migrated(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(registry_csv_text(generate_registry(3, 27)), encoding="utf-8")
    monkeypatch.setenv("LIFTWATCH_DATABASE_URL", empty_database_url)
    done = CliRunner().invoke(app, ["registry", "import", str(path)])
    assert done.exit_code == 2
    assert "run `liftwatch db migrate` first" in done.output
