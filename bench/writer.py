"""Writer storage benchmark: PostgreSQL CPU per stored telemetry row, by way of storing a batch.

Stores batches of 10-sample messages of a registered fleet into a fresh database of the local
PostgreSQL with :func:`liftwatch.ingest.writer.store_batch`'s COPY, and measures the CPU of the
connection's backend (``/proc/<pg_backend_pid()>/stat``) and of this process per stored row, for
each way of moving the staged rows into ``telemetry``, interleaved batch by batch so that load from
elsewhere on the machine falls on all of them alike:

- ``sql``: the insert accounts for its rows in SQL (``RETURNING`` into CTEs that upsert
  ``terminal_activity`` and ``terminals.last_seen_at``), without ``ON CONFLICT``, in a session
  with the server's settings: the writer before issue 20, the baseline;
- ``fast, server settings``: ``store_batch``'s way (a plain insert; the activity computed from the
  arrays and upserted in the same statement) in a session with the server's settings;
- ``fast``: ``store_batch`` in a session of ``prepare_session`` (no JIT), every terminal's
  ``last_seen_at`` written (a writer's first batch);
- ``fast, seen remembered``: ``store_batch`` as the writer runs it, with its memory of the
  ``last_seen_at`` values written (:class:`~liftwatch.ingest.rows.LastSeenMarks`) holding every
  terminal's current 30 s mark, so no ``last_seen_at`` is updated (the steady state of a fleet
  that reports more often than every 30 s; at every 10 s, two batches in three);
- ``idempotent``: the re-delivery way (``ON CONFLICT DO NOTHING``, accounted in SQL), likewise.

    .venv/bin/python bench/writer.py [--messages 2000] [--terminals 2000] [--rounds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from typing import Any

import numpy as np
import psycopg
from harness import cpu_seconds
from liftwatch import db
from liftwatch.columnar import DIRECTION_SHIFT, DOOR_SHIFT, MODE_SHIFT, TelemetryArrays
from liftwatch.ingest import writer
from liftwatch.ingest.rows import Batch, LastSeenMarks, staging_copy
from liftwatch.launcher import services
from liftwatch.presence import last_seen_mark
from liftwatch.schema import DIRECTIONS, DOOR_STATES, MODES

SAMPLES_PER_MESSAGE = 10
ZONE = "Asia/Shanghai"
WAYS = ("sql", "fast, server settings", "fast", "fast, seen remembered", "idempotent")
WRITER_SESSION = {"fast", "fast, seen remembered", "idempotent"}  # the others keep the server's settings
_SQL_ACCOUNTED = writer._MERGE.replace("    ON CONFLICT DO NOTHING\n", "")
assert _SQL_ACCOUNTED != writer._MERGE


def fleet_batch(terminals: int, messages: int, first_seq: int, now_ms: int) -> Batch:
    """``messages`` new messages from random terminals of the fleet, 10 samples each, 100 ms apart."""
    rng = np.random.default_rng(first_seq)
    samples = messages * SAMPLES_PER_MESSAGE
    code = rng.integers(0, 1 << 8, samples)  # the flags; then valid mode, door and direction
    for shift, values in ((MODE_SHIFT, MODES), (DOOR_SHIFT, DOOR_STATES), (DIRECTION_SHIFT, DIRECTIONS)):
        code |= rng.integers(0, len(values), samples) << shift
    # As a decoded batch has them: the ids of the terminals it holds, indexed by its messages.
    present, terminal = np.unique(rng.integers(0, terminals, messages), return_inverse=True)
    arrays = TelemetryArrays(
        terminals=[f"LW-{i:06d}" for i in present.tolist()],
        terminal=terminal.astype(np.uint32),
        seq=np.arange(first_seq, first_seq + messages, dtype=np.int64),
        received_ms=np.full(messages, now_ms + 1000, np.int64),
        count=np.full(messages, SAMPLES_PER_MESSAGE, np.uint16),
        ts=now_ms + np.tile(np.arange(SAMPLES_PER_MESSAGE, dtype=np.int64) * 100, messages),
        floor=rng.integers(-2, 40, samples).astype(np.int16),
        speed=rng.random(samples) * 3,
        load_pct=np.where(rng.random(samples) < 0.2, np.nan, rng.random(samples) * 100),
        code=code.astype(np.uint16),
    )
    return Batch(parts=[arrays], records=1)


async def store(conn: psycopg.AsyncConnection[Any], way: str, batch: Batch, marks: LastSeenMarks) -> int:
    if way == "fast, seen remembered":
        return await writer.store_batch(conn, batch, ZONE, marks)
    if way.startswith("fast"):
        return await writer.store_batch(conn, batch, ZONE)
    telemetry = batch.telemetry()
    async with conn.transaction(), conn.cursor() as cur:
        async with cur.copy(writer._COPY) as copy:
            await copy.write(staging_copy(telemetry))
        statement = _SQL_ACCOUNTED if way == "sql" else writer._MERGE
        await cur.execute(statement, {"terminals": telemetry.terminals, "tz": ZONE})
        result = await cur.fetchone()
        return int(result[0]) if result else 0


async def backend_pid(conn: psycopg.AsyncConnection[Any]) -> int:
    row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
    await conn.commit()
    assert row is not None
    return int(row[0])


async def main_async(args: argparse.Namespace) -> None:
    server = services.local_postgres_url()
    if server is None:
        raise SystemExit("the benchmark needs the PostgreSQL on 127.0.0.1:5432")
    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{server.rpartition('/')[0]}/{name}"
    try:
        with psycopg.connect(url) as setup:
            db.migrate(setup)
            setup.execute(
                "INSERT INTO terminals (terminal_id) SELECT format('LW-%%s', lpad(i::text, 6, '0'))"
                " FROM generate_series(0, %s - 1) i",
                (args.terminals,),
            )
        async with (
            await psycopg.AsyncConnection.connect(url) as plain,
            await psycopg.AsyncConnection.connect(url) as prepared,
        ):
            await plain.execute(writer._STAGING_DDL)
            await plain.commit()
            await writer.prepare_session(prepared)
            backends = {conn: await backend_pid(conn) for conn in (plain, prepared)}
            spent = {way: [0.0, 0.0, 0] for way in WAYS}  # backend s, client s, rows
            now_ms, seq = int(time.time() * 1000), 0
            # As a writer that met every terminal of the fleet within the current 30 s: a fleet that
            # reports more often than that (fleet_batch stamps every batch of the run alike).
            marks = LastSeenMarks()
            fleet = [f"LW-{i:06d}" for i in range(args.terminals)]
            marks.remember(dict.fromkeys(fleet, last_seen_mark(now_ms + 1000)))
            for round_ in range(args.rounds + 1):  # the first round warms up
                for way in WAYS:
                    conn = prepared if way in WRITER_SESSION else plain
                    batch = fleet_batch(args.terminals, args.messages, seq, now_ms)
                    seq += args.messages
                    backend_before, client_before = cpu_seconds(backends[conn]), time.process_time()
                    stored = await store(conn, way, batch, marks)
                    assert stored == batch.samples
                    if round_:
                        spent[way][0] += cpu_seconds(backends[conn]) - backend_before
                        spent[way][1] += time.process_time() - client_before
                        spent[way][2] += stored
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    load = os.getloadavg()[0]
    print(
        f"{args.rounds} rounds of {args.messages} messages x {SAMPLES_PER_MESSAGE} samples, "
        f"{args.terminals} terminals, zone {ZONE}; load average {load:.1f}"
    )
    per_row = {way: (b / n * 1e6, c / n * 1e6) for way, (b, c, n) in spent.items()}
    for way, (backend_us, client_us) in per_row.items():
        ratio = backend_us / per_row["sql"][0]
        print(f"{way:>22}: PostgreSQL {backend_us:5.2f} µs/row ({ratio:.2f}x sql), writer {client_us:5.2f} µs/row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per batch (transaction)")
    parser.add_argument("--terminals", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=12)
    asyncio.run(main_async(parser.parse_args()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
