"""Notify-relay benchmark: routing a district power cut with and without storm handling.

Every elevator of one district raises ``power_failure``, then ``stopped_outside_door_zone``
(folded with ``faults_store.record_faults`` as the service does); then the notify relay routes all the
changes (``relay.route_changes``, 500 per batch) to a firm webhook, a centre webhook and a
district robot: once with grouping and inhibition off (one notification per change and
receiver, the previous behaviour) and once with the defaults (one group per code, derived
faults inhibited). Prints changes/s of the relay and the deliveries it queued.

    .venv/bin/python bench/alerts_storm.py                   # 3,000 elevators
    .venv/bin/python bench/alerts_storm.py --elevators 300   # smoke run
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
from liftwatch.alerts import faults_store, outbox, relay
from liftwatch.alerts.routing import RoutingPolicy
from liftwatch.alerts.storms import GroupRule
from liftwatch.launcher import services
from liftwatch.schema import FAULT_SEVERITY, FaultCode, FaultEvent, fault_event_id

T0_MS = 1_772_438_400_000
NOW = datetime.fromtimestamp(T0_MS / 1000 + 60, tz=UTC)


def seed(url: str, elevators: int) -> None:
    with psycopg.connect(url) as conn:
        firm = conn.execute("INSERT INTO maintenance_firms (name) VALUES ('Firm') RETURNING id").fetchone()[0]  # type: ignore[index]
        unit = conn.execute("INSERT INTO use_units (name) VALUES ('Unit') RETURNING id").fetchone()[0]  # type: ignore[index]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO elevators (registration_code, rescue_code, kind, address, district, use_unit_id,"
                " maintainer_id, installed_on, rated_speed, bottom_floor, top_floor)"
                " VALUES (%s, %s, 'traction', 'Rd', 'Futian', %s, %s, '2015-01-01', 1.75, -1, 20)",
                [(f"3110{i:016d}", f"{100000 + i}", unit, firm) for i in range(elevators)],
            )
            cur.executemany(
                "INSERT INTO terminals (terminal_id, registration_code) VALUES (%s, %s)",
                [(f"b-{i}", f"3110{i:016d}") for i in range(elevators)],
            )
        for name, target, firm_id, district in (("firm", "maintenance_firm", firm, None),
                                                 ("centre", "emergency_centre", None, None),
                                                 ("district", "emergency_centre", None, "Futian")):  # fmt: skip
            conn.execute(
                "INSERT INTO alerts_webhooks (name, target, maintainer_id, district, url, secret)"
                " VALUES (%s, %s, %s, %s, 'https://hooks.example/x', 'secret-0123456789')",
                (name, target, firm_id, district),
            )


def events(elevators: int) -> list[FaultEvent]:
    out = []
    for code, offset in ((FaultCode.POWER_FAILURE, 0), (FaultCode.STOPPED_OUTSIDE_DOOR_ZONE, 10_000)):
        for i in range(elevators):
            since = T0_MS + offset + i
            out.append(FaultEvent(event_id=fault_event_id(f"b-{i}", code, "raised", since), transition="raised",
                                  code=code, severity=FAULT_SEVERITY[code], terminal=f"b-{i}",
                                  registration_code=f"3110{i:016d}", since_ms=since, at_ms=since + 1_000,
                                  evidence={}))  # fmt: skip
    return out


async def run(url: str, elevators: int, storms: relay.StormPolicy) -> tuple[float, int, int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        batch = events(elevators)
        for start in range(0, len(batch), 500):
            async with conn.transaction():
                await outbox.lock_outbox(conn)
                await faults_store.record_faults(conn, batch[start : start + 500], now=NOW)
        policy = RoutingPolicy(emergency_severities=frozenset({"critical", "major"}))
        changes = deliveries = 0
        started = time.perf_counter()
        while True:
            routed = await relay.route_changes(conn, policy=policy, default_secret="", now=NOW, limit=500,
                                               storms=storms, timezone="Asia/Shanghai")  # fmt: skip
            if routed.changes == 0:
                break
            changes += routed.changes
            deliveries += routed.deliveries
        return time.perf_counter() - started, changes, deliveries


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
    parser.add_argument("--elevators", type=int, default=3_000)
    args = parser.parse_args()
    if not services.debian_postgres_start():
        raise SystemExit("needs PostgreSQL on 127.0.0.1:5432")
    base = services.local_postgres_url()
    assert base is not None
    schemas = []
    try:
        for label, storms in (("storms off", relay.StormPolicy(group=GroupRule(window_s=0), inhibit=())),
                              ("storms on (defaults)", relay.StormPolicy())):  # fmt: skip
            schema, url = fresh_schema(base)
            schemas.append(schema)
            seed(url, args.elevators)
            seconds, changes, deliveries = asyncio.run(run(url, args.elevators, storms))
            grouped = ""
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT count(DISTINCT group_id), count(inhibited_by) FROM incidents").fetchone()
                assert row is not None
                grouped = f", groups {row[0]}, inhibited {row[1]}"
            print(f"{label:>22}: {changes} changes routed in {seconds:.2f} s ({changes / seconds:,.0f}/s),"
                  f" {deliveries} deliveries queued{grouped}")  # fmt: skip
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
