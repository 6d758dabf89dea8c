"""API benchmark: incident list and transition latency at scale, and SSE fan-out to 500 clients.

Migrates a fresh PostgreSQL schema, bulk-inserts 100,000 closed and 1,000 open incidents (over
5,000 elevators of 50 firms) and starts ``liftwatch api`` as a subprocess wired to a private tansu.
Then, over HTTP from this process:

* p50/p99 of ``GET /api/v1/incidents`` (open board, newest page, firm-scoped, filtered by code),
  ``GET /api/v1/incidents/{id}`` and ``POST /api/v1/incidents/{id}/acknowledge`` then ``/dispatch``
  (on the same open incidents, so each is a real transition); the baseline is
  ``GET /api/v1/me`` (same authentication and framework, no query) and the ratio is each p50
  against it.
* SSE fan-out: 500 clients connected to ``/api/v1/incidents/stream``; an incident change is
  published on the incidents topic (as the alert service's relay does) and the time to delivery
  at the last client is measured, 10 times; the baseline is the same with 1 client.

    .venv/bin/python bench/api.py            # full run (about a minute)
    .venv/bin/python bench/api.py --quick    # fewer requests and 100 SSE clients
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from liftwatch import db, kafka
from liftwatch.api.auth import hash_token, new_token
from liftwatch.config import CommonSettings
from liftwatch.launcher import services
from liftwatch.schema import FaultCode, IncidentChange, Severity, encode_record

FIRMS = 50
ELEVATORS = 5_000
CLOSED = 100_000
OPEN = 1_000


def seed(database_url: str) -> dict[str, str]:
    """Registry, incidents and tokens; returns tokens by role."""
    started = time.perf_counter()
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO use_units (name) VALUES ('物业')")
        conn.execute(f"INSERT INTO maintenance_firms (name) SELECT '维保' || g FROM generate_series(1, {FIRMS}) g")
        conn.execute(
            "INSERT INTO elevators (registration_code, rescue_code, kind, address, district, use_unit_id,"
            " maintainer_id, installed_on, rated_speed, bottom_floor, top_floor)"
            f" SELECT lpad(g::text, 20, '0'), (100000 + g)::text, 'traction', '路' || g || '号', '区' || (g % 16),"
            f" 1, 1 + g % {FIRMS}, '2015-01-01', 1.75, 1, 20 FROM generate_series(1, {ELEVATORS}) g"
        )
        conn.execute(
            "INSERT INTO terminals (terminal_id, registration_code)"
            f" SELECT 'T' || g, lpad(g::text, 20, '0') FROM generate_series(1, {ELEVATORS}) g"
        )
        codes = "ARRAY['trapped_passenger','overspeed','door_held_open','power_failure','terminal_offline']"
        severities = "ARRAY['critical','critical','minor','major','minor']"
        common = (
            "lpad((1 + g % {n})::text, 20, '0'), 'T' || (1 + g % {n}), ({c})[1 + g % 5], ({s})[1 + g % 5],"
            " {status}, 1 + (1 + g % {n}) % {f}, '区' || ((1 + g % {n}) % 16)"
        )
        conn.execute(
            "INSERT INTO incidents (registration_code, terminal_id, code, severity, status, maintainer_id, district,"
            " detected_at, last_seen_at, closed_at, close_cause) SELECT "
            + common.format(n=ELEVATORS, c=codes, s=severities, status="'closed'", f=FIRMS)
            + ", now() - (g || ' minutes')::interval - interval '2 days', now() - interval '1 day',"
            f" now() - interval '1 day', 'unknown' FROM generate_series(1, {CLOSED}) g"
        )
        # Open incidents: at most one per (terminal, code), as the real index demands.
        conn.execute(
            "INSERT INTO incidents (registration_code, terminal_id, code, severity, status, maintainer_id, district,"
            " detected_at, last_seen_at) SELECT "
            + common.format(n=ELEVATORS, c=codes, s=severities, status="'detected'", f=FIRMS)
            + f", now() - (g || ' seconds')::interval, now() FROM generate_series(1, {OPEN}) g"
        )
        conn.execute(
            "INSERT INTO incident_events (incident_id, kind, status_after, actor, at)"
            " SELECT id, 'opened', status, 'system', detected_at FROM incidents"
        )
        conn.execute("ANALYZE")
        tokens = {}
        for role, firm in (("operator", None), ("maintainer", 1), ("regulator", None)):
            tokens[role] = new_token()
            conn.execute(
                "INSERT INTO api_tokens (name, role, maintainer_id, token_hash) VALUES (%s, %s, %s, %s)",
                (f"bench-{role}", role, firm, hash_token(tokens[role])),
            )
    print(f"seeded {CLOSED:,} closed + {OPEN:,} open incidents in {time.perf_counter() - started:.1f} s")
    return tokens


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = await client.request(method, path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.text[:300])
    return samples


async def http_latency(url: str, tokens: dict[str, str], database_url: str, n: int) -> None:
    operator = {"Authorization": f"Bearer {tokens['operator']}"}
    firm = {"Authorization": f"Bearer {tokens['maintainer']}"}
    with psycopg.connect(database_url) as conn:
        open_ids = [r[0] for r in conn.execute("SELECT id FROM incidents WHERE status = 'detected' ORDER BY id")]
        closed_id = conn.execute("SELECT min(id) FROM incidents").fetchone()[0]  # type: ignore[index]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await timed(client, "GET", "/api/v1/incidents?open=true&limit=100", operator, 20)  # warm up
        cases = [
            ("baseline GET /api/v1/me", "/api/v1/me", operator, n),
            ("GET incidents?open=true&limit=100", "/api/v1/incidents?open=true&limit=100", operator, n),
            ("GET incidents?open=true&limit=500", "/api/v1/incidents?open=true&limit=500", operator, n // 4),
            ("GET incidents?limit=100 (all, newest)", "/api/v1/incidents?limit=100", operator, n),
            ("GET incidents?code=overspeed&limit=100", "/api/v1/incidents?code=overspeed&limit=100", operator, n),
            ("GET incidents (firm-scoped)", "/api/v1/incidents?limit=100", firm, n),
            ("GET incidents/{id} (closed)", f"/api/v1/incidents/{closed_id}", operator, n),
        ]
        rows = [(name, await timed(client, "GET", path, headers, count)) for name, path, headers, count in cases]
        chosen = open_ids[: min(n, len(open_ids))]
        for action, body in (("acknowledge", {"note": "b"}), ("dispatch", {"note": "firm called"})):
            transitions = []
            for incident in chosen:
                started = time.perf_counter()
                response = await client.post(f"/api/v1/incidents/{incident}/{action}", json=body, headers=operator)
                transitions.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
            rows.append((f"POST incidents/{{id}}/{action}", transitions))
        detail = await timed(client, "GET", f"/api/v1/incidents/{chosen[0]}", operator, n)
        rows.append(("GET incidents/{id} (open, 3 trail rows)", detail))
    base = statistics.median(rows[0][1])
    print(f"\n{'endpoint':42} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50/baseline':>13}")
    for name, samples in rows:
        p50 = statistics.median(samples)
        print(f"{name:42} {len(samples):5d} {p50:8.2f} {pct(samples, 0.99):8.2f} {p50 / base:13.2f}")


async def sse_fanout(url: str, token: str, settings: CommonSettings, clients: int, rounds: int) -> list[float]:
    """Per round: ms from publishing a change to its delivery at the last of ``clients``."""
    received: list[dict[int, float]] = [dict() for _ in range(clients)]
    arrivals: dict[int, int] = {}
    everyone = asyncio.Event()
    connected = asyncio.Semaphore(0)
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(60, read=None), limits=limits) as client:

        async def listen(index: int) -> None:
            async with client.stream("GET", f"/api/v1/incidents/stream?access_token={token}") as response:
                connected.release()
                async for line in response.aiter_lines():
                    if line.startswith("id:"):
                        change = int(line[3:])
                        received[index][change] = time.perf_counter()
                        arrivals[change] = arrivals.get(change, 0) + 1
                        if arrivals[change] == clients:
                            everyone.set()

        tasks = [asyncio.create_task(listen(i)) for i in range(clients)]
        for _ in range(clients):
            await connected.acquire()
        await asyncio.sleep(1.0)
        producer = kafka.make_producer(settings, linger_ms=0)
        await producer.start()
        results = []
        try:
            for r in range(rounds):
                change_id = 10_000_000 + r
                change = IncidentChange(
                    change_id=change_id, incident_id=1, kind="updated", status="detected",
                    code=FaultCode.TRAPPED_PASSENGER, severity=Severity.CRITICAL, registration_code="1".zfill(20),
                    terminal="T1", maintainer="维保2", district="区1", at_ms=int(time.time() * 1000), actor="system",
                    maintainer_id=2,
                )  # fmt: skip
                everyone.clear()
                started = time.perf_counter()
                await producer.send_and_wait(settings.topic("incidents"), encode_record(change))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(everyone.wait(), 30)
                missing = sum(change_id not in got for got in received)
                if missing:
                    raise RuntimeError(f"{missing} clients did not receive change {change_id}")
                results.append((max(got[change_id] for got in received) - started) * 1000)
                await asyncio.sleep(0.2)
        finally:
            await producer.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def main(quick: bool) -> None:
    pg = services.local_postgres_url()
    if pg is None:
        raise SystemExit("PostgreSQL on 127.0.0.1:5432 is needed")
    schema = f"bench_api_{secrets.token_hex(3)}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    database_url = f"{pg}?options=-csearch_path%3D{schema}"
    tansu = services.start_tansu()
    api: asyncio.subprocess.Process | None = None
    try:
        with psycopg.connect(database_url) as conn:
            db.migrate(conn)
        tokens = seed(database_url)
        port = services.free_port()
        prefix = f"bench{secrets.token_hex(3)}."
        settings = CommonSettings(kafka_bootstrap=tansu.url, topic_prefix=prefix)
        env = {
            **os.environ,
            "LIFTWATCH_DATABASE_URL": database_url,
            "LIFTWATCH_KAFKA_BOOTSTRAP": tansu.url,
            "LIFTWATCH_TOPIC_PREFIX": prefix,
            "LIFTWATCH_API_PORT": str(port),
            "LIFTWATCH_LOG_LEVEL": "WARNING",
            # 500 clients of one token: the fan-out is measured, not the per-token stream cap.
            "LIFTWATCH_SSE_STREAMS_PER_TOKEN": "1000",
        }
        env.pop("LIFTWATCH_MQTT_URL", None)
        api = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "liftwatch", "api", env=env, cwd=Path(__file__).parents[1]
        )
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).json()["checks"]["kafka"] == "ok":
                        break
                except (httpx.TransportError, KeyError, ValueError):
                    pass
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("the API did not become ready")
        await http_latency(url, tokens, database_url, 100 if quick else 500)

        fan = 100 if quick else 500
        rounds = 5 if quick else 10
        single = await sse_fanout(url, tokens["operator"], settings, 1, rounds)
        many = await sse_fanout(url, tokens["operator"], settings, fan, rounds)
        print(f"\nSSE change -> delivery at the last client ({rounds} changes each)")
        print(f"{'clients':>8} {'p50 ms':>8} {'max ms':>8}")
        print(f"{1:8d} {statistics.median(single):8.1f} {max(single):8.1f}   (baseline)")
        print(f"{fan:8d} {statistics.median(many):8.1f} {max(many):8.1f}")
        print(f"ratio {fan} clients / 1 client (p50): {statistics.median(many) / statistics.median(single):.1f}")
        print(
            f"(measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, API and clients on one host)"
        )
    finally:
        if api is not None:
            api.terminate()
            await asyncio.wait_for(api.wait(), 15)
        tansu.stop()
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
