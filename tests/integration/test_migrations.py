"""Migrations against a real PostgreSQL: complete, idempotent, plain-partitioning path."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from liftwatch import db

pytestmark = pytest.mark.integration


def test_migrate_applies_everything_once(empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url) as conn:
        first = db.migrate(conn)
        second = db.migrate(conn)
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert first, "a fresh schema gets every migration"
    assert second == [], "a second run applies nothing"
    assert versions == sorted({name.split("_", 1)[0] for name in first})


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
