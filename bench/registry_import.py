"""Registry import benchmark: 300,000 generated elevators into a fresh PostgreSQL schema.

Generates the rows with the seeded simulator, writes them as a registry CSV, and times
``import_registry`` (parse + validate, binary COPY into a staging table, set-based upserts) on
the file, then a re-import of the same file (every row unchanged). The baseline, in the same
run, is the naive importer: the same parsing, then row-by-row ``executemany`` INSERTs of a
5,000-row slice into another fresh schema, extrapolated to the full size; the ratio compares
the two.

    .venv/bin/python bench/registry_import.py                 # 300,000 rows
    .venv/bin/python bench/registry_import.py --rows 20000    # a quick run

The database is ``--database-url``, else ``LIFTWATCH_DATABASE_URL``, else the local trust-auth
PostgreSQL on 127.0.0.1:5432. The benchmark schemas are dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
from liftwatch import db
from liftwatch.launcher import services
from liftwatch.registry.importer import ImportResult, import_registry
from liftwatch.registry.model import registry_csv_text
from liftwatch.registry.parse import parse_registry
from liftwatch.simulators.registry import generate_registry, write_registry_csv


@contextlib.contextmanager
def fresh_schema(server_url: str) -> Iterator[str]:
    """A migrated private schema; yields a URL whose search_path points at it."""
    schema = f"bench_registry_{secrets.token_hex(3)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in server_url else "?"
    url = f"{server_url}{sep}options={quote(f'-csearch_path={schema}')}"
    try:
        with psycopg.connect(url) as conn:
            db.migrate(conn)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def timed_import(url: str, data: bytes) -> tuple[float, dict[str, float], ImportResult]:
    """Seconds for one import of ``data``, the seconds spent in each phase, and the result."""
    starts: dict[str, float] = {}

    def progress(phase: str, done: int, total: int) -> None:
        starts.setdefault(phase, time.perf_counter())

    with psycopg.connect(url) as conn:
        began = time.perf_counter()
        result = import_registry(conn, data, progress=progress)
        ended = time.perf_counter()
    marks = [*starts.items(), ("end", ended)]
    phases = {name: marks[i + 1][1] - at for i, (name, at) in enumerate(marks[:-1])}
    return ended - began, phases, result


def naive_import(url: str, data: bytes) -> float:
    """The baseline: same parsing, then one INSERT per firm, use unit, elevator and terminal."""
    began = time.perf_counter()
    parsed = parse_registry(data)
    assert not parsed.errors, parsed.errors[:5]
    rows = parsed.rows
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        names = ("maintenance_firms", {row.maintainer for row in rows}), ("use_units", {row.use_unit for row in rows})
        for table, values in names:
            cur.executemany(
                f"INSERT INTO {table} (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", [(v,) for v in values]
            )
        cur.executemany(
            """INSERT INTO elevators (registration_code, rescue_code, kind, address, district, latitude, longitude,
                   use_unit_id, maintainer_id, manufacturer, model, installed_on, rated_speed, rated_load,
                   bottom_floor, top_floor, last_inspection, next_inspection_due, insured)
               VALUES (%s, %s, %s, %s, %s, %s, %s, (SELECT id FROM use_units WHERE name = %s),
                   (SELECT id FROM maintenance_firms WHERE name = %s), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (registration_code) DO UPDATE SET rescue_code = EXCLUDED.rescue_code""",
            [
                (
                    r.registration_code,
                    r.rescue_code,
                    r.kind.value,
                    r.address,
                    r.district,
                    r.latitude,
                    r.longitude,
                    r.use_unit,
                    r.maintainer,
                    r.manufacturer,
                    r.model,
                    r.installed_on,
                    r.rated_speed,
                    r.rated_load,
                    r.bottom_floor,
                    r.top_floor,
                    r.last_inspection,
                    r.next_inspection_due,
                    r.insured,
                )
                for r in rows
            ],
        )
        cur.executemany(
            "INSERT INTO terminals (terminal_id, registration_code) VALUES (%s, %s)"
            " ON CONFLICT (terminal_id) DO UPDATE SET registration_code = EXCLUDED.registration_code",
            [(r.terminal_id, r.registration_code) for r in rows if r.terminal_id],
        )
        conn.commit()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--baseline-rows", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get("LIFTWATCH_DATABASE_URL"))
    args = parser.parse_args()
    server_url = args.database_url or services.local_postgres_url()
    if server_url is None:
        sys.exit("no PostgreSQL: pass --database-url or start one on 127.0.0.1:5432")

    began = time.perf_counter()
    rows = generate_registry(args.rows, args.seed)
    generated = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "registry.csv"
        write_registry_csv(rows, path)
        data = path.read_bytes()
    print(f"generated {len(rows):,} rows in {generated:.1f} s; CSV {len(data) / 1e6:.1f} MB")

    with fresh_schema(server_url) as url:
        seconds, phases, result = timed_import(url, data)
        assert result.ok and result.inserted == len(rows), result
        breakdown = ", ".join(f"{name} {value:.1f} s" for name, value in phases.items())
        print(f"import:    {seconds:6.1f} s  {len(rows) / seconds:9,.0f} rows/s  ({breakdown})")
        again, _, result = timed_import(url, data)
        assert result.ok and result.unchanged == len(rows), result
        print(f"re-import: {again:6.1f} s  {len(rows) / again:9,.0f} rows/s  (every row unchanged)")

    sample = rows[: args.baseline_rows]
    with fresh_schema(server_url) as url:
        naive = naive_import(url, registry_csv_text(sample).encode())
    naive_full = naive * len(rows) / len(sample)
    print(
        f"baseline:  {naive:6.1f} s for {len(sample):,} rows, row-by-row executemany  "
        f"{len(sample) / naive:9,.0f} rows/s  -> {naive_full:.0f} s extrapolated to {len(rows):,}"
    )
    print(f"ratio:     {naive_full / seconds:.1f}x faster than row-by-row; under a minute: {seconds < 60}")


if __name__ == "__main__":
    main()
