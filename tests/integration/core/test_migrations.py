"""Migrations against a real PostgreSQL: complete, idempotent, plain-partitioning path."""

from __future__ import annotations

import datetime as dt
import re

import psycopg
import pytest
from liftwatch import db

pytestmark = pytest.mark.integration


def test_migrate_applies_everything_once(empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url) as conn:
        first = db.migrate(conn)
        second = db.migrate(conn)
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        tables = {
            name: conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone() == (True,)
            for name in (
                "elevators",
                "maintenance_firms",
                "use_units",
                "terminals",
                "telemetry",
                "incidents",
                "incident_events",
                "dead_letters",
                "api_tokens",
            )
        }
    assert first, "a fresh schema gets every migration"
    assert second == [], "a second run applies nothing"
    assert versions == sorted({name.split("_", 1)[0] for name in first})
    assert all(tables.values()), tables


def test_plain_path_creates_daily_partitions_ahead(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        mode = conn.execute("SELECT mode FROM storage_mode").fetchone()
        parts = [
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'telemetry' "
                "AND p.relnamespace = current_schema()::regnamespace"
            )
        ]
        again = conn.execute("SELECT liftwatch_ensure_telemetry_partitions(2, 7)").fetchone()
    assert mode == ("plain",)
    today = dt.datetime.now(dt.UTC).date()
    for offset in range(-2, 8):
        assert f"telemetry_{(today + dt.timedelta(days=offset)):%Y%m%d}" in parts
    assert "telemetry_default" in parts
    assert again == (0,)


def test_sample_identity_prevents_duplicates(database_url: str) -> None:
    row = (
        "T1",
        dt.datetime.now(dt.UTC),
        7,
        0,
        "normal",
        3,
        True,
        "stop",
        0.0,
        "closed",
        False,
        True,
        None,
        False,
        True,
        None,
        False,
        False,
        dt.datetime.now(dt.UTC),
    )
    insert = (
        "INSERT INTO telemetry VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING"
    )
    with psycopg.connect(database_url) as conn:
        conn.execute(insert, row)
        conn.execute(insert, row)
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone() == (1,)


_INSERT = (
    "INSERT INTO telemetry VALUES (%s, %s, 1, 0, 'normal', 3, true, 'stop', 0, 'closed', false, true,"
    " NULL, false, true, NULL, false, false, now()) ON CONFLICT DO NOTHING"
)


def _partition_of(conn: psycopg.Connection[tuple[object, ...]], terminal: str) -> str:
    row = conn.execute("SELECT tableoid::regclass::text FROM telemetry WHERE terminal_id = %s", (terminal,)).fetchone()
    assert row is not None
    return str(row[0])


def test_samples_land_in_their_day_and_missing_days_are_created_again(database_url: str) -> None:
    today = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    ahead = today + dt.timedelta(days=7)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_INSERT, ("T1", today))
        assert _partition_of(conn, "T1") == f"telemetry_{today:%Y%m%d}"
        # A day that went missing (dropped by hand, or never created) is created by the next call.
        conn.execute(f"DROP TABLE telemetry_{ahead:%Y%m%d}")
        assert conn.execute("SELECT liftwatch_ensure_telemetry_partitions(2, 7)").fetchone() == (1,)
        conn.execute(_INSERT, ("T2", ahead))
        assert _partition_of(conn, "T2") == f"telemetry_{ahead:%Y%m%d}"


def test_rows_parked_in_the_default_partition_move_into_a_new_day(database_url: str) -> None:
    # Samples for days without a partition yet go to the default partition; PostgreSQL would then
    # refuse to create those days. The function moves the rows instead (and creates later days too).
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    early = today + dt.timedelta(days=9, hours=1)
    late = today + dt.timedelta(days=9, hours=23, minutes=59)
    other = today + dt.timedelta(days=11)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for terminal, ts in (("T1", early), ("T2", late), ("T3", other)):
            conn.execute(_INSERT, (terminal, ts))
        assert {_partition_of(conn, t) for t in ("T1", "T2", "T3")} == {"telemetry_default"}
        created = conn.execute("SELECT liftwatch_ensure_telemetry_partitions(0, 12)").fetchone()
        assert created == (5,)  # days 8 to 12 (0 to 7 existed)
        assert _partition_of(conn, "T1") == _partition_of(conn, "T2") == f"telemetry_{early:%Y%m%d}"
        assert _partition_of(conn, "T3") == f"telemetry_{other:%Y%m%d}"
        assert conn.execute("SELECT count(*) FROM telemetry_default").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone() == (3,)
        # The moved-into partition has the parent's indexes: a re-delivered sample is still refused.
        conn.execute(_INSERT, ("T1", early))
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone() == (3,)
        indexes = {
            row[0]
            for row in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
                (f"telemetry_{early:%Y%m%d}",),
            )
        }
        assert any("brin" in definition for definition in indexes)
        assert any("UNIQUE" in definition for definition in indexes)


def test_storage_mode_is_detected_once_and_then_followed(empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        assert db.timescaledb_available(conn) is False  # this server has no TimescaleDB
        db.migrate(conn)
        assert db.recorded_storage_mode(conn) is False
        # Later migrations follow the recorded choice whatever the server offers by then.
        conn.execute("UPDATE schema_migrations SET name = '002_telemetry.timescale.sql' WHERE version = '002'")
        assert db.recorded_storage_mode(conn) is True
        conn.execute("DELETE FROM schema_migrations WHERE name LIKE '%.plain.sql' OR name LIKE '%.timescale.sql'")
        assert db.recorded_storage_mode(conn) is None


# TimescaleDB's functions with their documented 2.x signatures (names and types of the arguments
# our migrations pass), so the hypertable variant runs here as far as plain PostgreSQL can take it.
_TIMESCALE_STUBS = """
CREATE FUNCTION create_hypertable(relation regclass, time_column_name name, partitioning_column name = NULL,
    number_partitions integer = NULL, associated_schema_name name = NULL, associated_table_prefix name = NULL,
    chunk_time_interval anyelement = NULL::bigint, create_default_indexes boolean = true,
    if_not_exists boolean = false) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION add_compression_policy(hypertable regclass, compress_after anyelement = NULL::interval,
    if_not_exists boolean = false, schedule_interval interval = NULL) RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION add_retention_policy(relation regclass, drop_after anyelement = NULL::interval,
    if_not_exists boolean = false, schedule_interval interval = NULL) RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;
"""


def test_timescaledb_variant_is_sane_sql(empty_database_url: str) -> None:
    plan = [m for m in db.planned_migrations(use_timescale=True) if m.name.endswith(".timescale.sql")]
    assert plan, "the TimescaleDB branch exists"
    covered: set[str] = set()
    with psycopg.connect(empty_database_url) as conn:
        conn.execute(_TIMESCALE_STUBS)
        for migration in plan:
            sql = migration.sql.replace("CREATE EXTENSION IF NOT EXISTS timescaledb;", "")
            # Plain PostgreSQL rejects the timescaledb.* storage options; check them against the table.
            options = re.search(r"ALTER TABLE telemetry SET \((timescaledb\.compress.*?)\);", sql, re.DOTALL)
            if options is not None:
                sql = sql.replace(options.group(0), "")
                settings = dict(re.findall(r"timescaledb\.(compress_\w+) = '([^']*)'", options.group(1)))
                covered |= {c.strip() for v in settings.values() for c in v.split(",")}
            conn.execute(sql.encode())
        key = conn.execute(
            "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = ANY (i.indkey) WHERE i.indrelid = 'telemetry'::regclass AND i.indisprimary"
        ).fetchone()
        assert key is not None and set(key[0]) == covered  # the primary key is all in segmentby + orderby
        assert conn.execute("SELECT mode FROM storage_mode").fetchone() == ("timescaledb",)
        assert conn.execute("SELECT liftwatch_ensure_telemetry_partitions(2, 7)").fetchone() == (0,)
        conn.rollback()


def test_db_migrate_command_applies_then_reports_nothing_to_do(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from liftwatch.errors import InvalidSettings
    from liftwatch.launcher.cli import app
    from typer.testing import CliRunner

    runner = CliRunner()
    monkeypatch.setenv("LIFTWATCH_DATABASE_URL", empty_database_url)
    first = runner.invoke(app, ["db", "migrate"])
    assert first.exit_code == 0, first.output
    count = len(db.planned_migrations(use_timescale=False))
    assert f"applied {count} migration(s): 001_registry.sql, 002_telemetry.plain.sql" in first.output
    again = runner.invoke(app, ["db", "migrate"])
    assert (again.exit_code, again.output.strip()) == (0, "applied 0 migration(s)")
    monkeypatch.setenv("LIFTWATCH_DATABASE_URL", "mysql://localhost/liftwatch")
    wrong = runner.invoke(app, ["db", "migrate"])
    assert wrong.exit_code != 0 and isinstance(wrong.exception, InvalidSettings)
    assert "LIFTWATCH_DATABASE_URL='mysql://localhost/liftwatch': must be a postgresql:// URL" in str(wrong.exception)
