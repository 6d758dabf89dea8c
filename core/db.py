"""PostgreSQL access: connection pools and versioned migrations.

Migrations are the ``migrations/NNN_name.sql`` files of this package, applied in order, each in
its own transaction, and recorded in ``schema_migrations`` of the current schema (so a test can
migrate a private schema). A migration may come in two variants, ``NNN_name.timescale.sql`` and
``NNN_name.plain.sql``: the first is used when the database can run TimescaleDB, the second
otherwise. Nobody sets a flag; the database says what it can do. The choice is made once, when
the first variant migration is applied, and later migrations follow the recorded one (installing
TimescaleDB later does not mix a hypertable migration into a partitioned schema).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

log = logging.getLogger(__name__)

# Serialises concurrent `db migrate` runs (two processes starting at once).
_MIGRATION_LOCK_KEY = 0x4C494654


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file chosen for this database."""

    version: str
    name: str
    sql: str


def _migration_files() -> dict[str, dict[str, str]]:
    """version -> {variant: filename}, variant in {"", "plain", "timescale"}."""
    found: dict[str, dict[str, str]] = {}
    for entry in resources.files("liftwatch").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        stem = entry.name[: -len(".sql")]
        variant = ""
        for candidate in ("plain", "timescale"):
            if stem.endswith("." + candidate):
                variant = candidate
                stem = stem[: -len(candidate) - 1]
        version = stem.split("_", 1)[0]
        found.setdefault(version, {})[variant] = entry.name
    return found


def timescaledb_available(conn: psycopg.Connection[Any]) -> bool:
    """True when this database can use TimescaleDB: the extension is created, or installed and preloaded.

    An installed but not preloaded extension is not enough: ``CREATE EXTENSION timescaledb`` then
    fails ("must be preloaded"), so such a server gets the plain variant.
    """
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),"
        " current_setting('shared_preload_libraries')"
    ).fetchone()
    assert row is not None
    created, installed, preload = row
    preloaded = "timescaledb" in (name.strip().strip("'\"") for name in preload.split(","))
    return bool(created or (installed and preloaded))


def recorded_storage_mode(conn: psycopg.Connection[Any]) -> bool | None:
    """The variant earlier migrations used (True = timescale), None before the first variant migration."""
    for (name,) in conn.execute("SELECT name FROM schema_migrations ORDER BY version"):
        if name.endswith(".timescale.sql"):
            return True
        if name.endswith(".plain.sql"):
            return False
    return None


def planned_migrations(use_timescale: bool) -> list[Migration]:
    """Every migration, in order, with the variant suited to the database."""
    plan: list[Migration] = []
    base = resources.files("liftwatch").joinpath("migrations")
    for version, variants in sorted(_migration_files().items()):
        name = variants.get("") or variants["timescale" if use_timescale else "plain"]
        plan.append(Migration(version, name, base.joinpath(name).read_text(encoding="utf-8")))
    return plan


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply pending migrations in the connection's current schema; return the names applied."""
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        use_timescale = recorded_storage_mode(conn)
        if use_timescale is None:
            use_timescale = timescaledb_available(conn)
            log.info("telemetry storage: %s", "TimescaleDB hypertable" if use_timescale else "plain partitions")
        applied: list[str] = []
        for migration in planned_migrations(use_timescale):
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            log.info("applied migration %s", migration.name)
            applied.append(migration.name)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_KEY,))


def like_escape(text: str) -> str:
    """``text`` matched literally by LIKE/ILIKE (PostgreSQL's default escape character is ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A plain synchronous connection (CLI commands, migrations)."""
    return psycopg.connect(url, **kwargs)


def sync_pool(url: str, *, min_size: int = 1, max_size: int = 4, name: str = "liftwatch") -> ConnectionPool:
    """A synchronous pool returning dict rows."""
    return ConnectionPool(
        url, min_size=min_size, max_size=max_size, name=name, open=True, kwargs={"row_factory": dict_row}
    )


async def async_pool(url: str, *, min_size: int = 1, max_size: int = 8, name: str = "liftwatch") -> AsyncConnectionPool:
    """An opened asyncio pool returning dict rows."""
    pool = AsyncConnectionPool(
        url, min_size=min_size, max_size=max_size, name=name, open=False, kwargs={"row_factory": dict_row}
    )
    await pool.open(wait=True, timeout=30)
    return pool
