"""Alert-service benchmark: folding fault events into incidents on PostgreSQL.

A fault storm (a city-wide power cut: every terminal raises ``power_failure``, repeats it and
clears it) is folded with ``faults_store.record_faults`` the way the service does it, ``--batch`` events
per transaction under the outbox lock, and then replayed (every event a duplicate, as after a
crash before the offset commit). The baseline, in the same run on a fresh schema, is one
transaction per event; for comparison one event per call (a batch of one, in a savepoint of its
own) is run ``--batch`` per transaction too. Prints events/s and the ratios.

    .venv/bin/python bench/alerts.py                 # 3,000 terminals
    .venv/bin/python bench/alerts.py --terminals 300 # a short smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from datetime import UTC, datetime
from urllib.parse import quote

import psycopg
from liftwatch import db
from liftwatch.alerts import faults_store, outbox
from liftwatch.alerts.incidents import Outcome
from liftwatch.launcher import services
from liftwatch.schema import FaultCode, FaultEvent, Severity, fault_event_id

T0_MS = 1_772_438_400_000


def storm(terminals: int) -> list[FaultEvent]:
    """raise, repeat, clear per terminal, interleaved across terminals as a partition would be."""
    events: list[FaultEvent] = []
    for step, (transition, offset_ms) in enumerate((("raised", 0), ("raised", 90_000), ("cleared", 200_000))):
        for i in range(terminals):
            terminal = f"bench-{i}"
            since = T0_MS + offset_ms + i + step
            events.append(
                FaultEvent(
                    event_id=fault_event_id(terminal, FaultCode.POWER_FAILURE, transition, since),
                    transition=transition,  # type: ignore[arg-type]
                    code=FaultCode.POWER_FAILURE,
                    severity=Severity.MAJOR,
                    terminal=terminal,
                    registration_code=None,
                    since_ms=since,
                    at_ms=since + 5_000,
                    evidence={"power": False},
                )
            )
    return events


async def fold_all(url: str, events: list[FaultEvent], batch: int, *, per_event: bool = False) -> float:
    """Seconds to fold ``events``, ``batch`` per transaction.

    ``faults_store.record_faults`` (set-based, what the service runs), with ``per_event`` called
    once per event (a savepoint and five statements each).
    """
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        started = time.perf_counter()
        for start in range(0, len(events), batch):
            async with conn.transaction():
                await outbox.lock_outbox(conn)
                calls = (
                    [[event] for event in events[start : start + batch]]
                    if per_event
                    else [events[start : start + batch]]
                )
                for call in calls:
                    results = await faults_store.record_faults(conn, call, now=now)
                    assert all(isinstance(result, Outcome) for result in results), results
        return time.perf_counter() - started


def fresh_schema(base: str) -> tuple[str, str]:
    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{base}?options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(url) as conn:
        db.migrate(conn)
    return schema, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terminals", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--skip-per-event", action="store_true", help="skip one event per call (slow)")
    args = parser.parse_args()
    if not services.debian_postgres_start():
        raise SystemExit("needs PostgreSQL on 127.0.0.1:5432")
    base = services.local_postgres_url()
    assert base is not None
    events = storm(args.terminals)
    schemas: list[str] = []
    try:
        schema, url = fresh_schema(base)
        schemas.append(schema)
        batched = asyncio.run(fold_all(url, events, args.batch))
        replay = asyncio.run(fold_all(url, events, args.batch))
        schema, url = fresh_schema(base)
        schemas.append(schema)
        single = asyncio.run(fold_all(url, events, 1))
        per_event = None
        if not args.skip_per_event:
            schema, url = fresh_schema(base)
            schemas.append(schema)
            per_event = asyncio.run(fold_all(url, events, args.batch, per_event=True))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    n = len(events)
    print(f"fault storm, {args.terminals:,} terminals, {n:,} events (raise, repeat, clear), events/s:")
    print(f"  batched, {args.batch}/transaction (record_faults)   {n / batched:>9,.0f}")
    print(f"  replay, all duplicates                    {n / replay:>9,.0f}")
    print(f"  one event per transaction                 {n / single:>9,.0f}")
    print(f"  ratio batched / one per transaction       {single / batched:>9.1f}x")
    if per_event is not None:
        print(f"  one event per call, {args.batch}/transaction        {n / per_event:>9,.0f}")
        print(f"  ratio batched / one event per call        {per_event / batched:>9.1f}x")


if __name__ == "__main__":
    main()
