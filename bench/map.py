"""Map benchmark: the city map over 300,000 elevators, API and browser.

Migrates a fresh schema, inserts N elevators (default 300,000) scattered around Shanghai's
district centres with 1,000 open incidents, starts ``liftwatch api`` (no Kafka) and measures:

* ``GET /api/v1/stats/map`` for the whole city and for a zoomed box (p50 / max of 10);
* the other fleet-wide reads: My fleet's first page and an address search (as admin), the risk
  ranking and the overdue list (p50 / max of 5);
* in headless Chromium, the console's ``#/map``: from navigation to the drawn map (outlines,
  clusters, incidents), 5 loads, and the page's own fetch-to-drawn time (``data-load-ms``).

Target (issue 18): the map of 300,000 elevators loads in under 2 s on this machine.

    .venv/bin/python bench/map.py                 # 300,000 elevators (about a minute)
    .venv/bin/python bench/map.py --elevators 30000
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from liftwatch import db
from liftwatch.launcher import services

CENTRES = [(31.221, 121.544), (31.231, 121.484), (31.188, 121.437), (31.220, 121.424), (31.229, 121.448),
           (31.249, 121.397), (31.264, 121.505), (31.260, 121.526), (31.113, 121.382), (31.405, 121.489),
           (31.375, 121.265)]  # fmt: skip


def seed(database_url: str, elevators: int) -> None:
    started = time.perf_counter()
    centres = ", ".join(f"({lat}, {lon})" for lat, lon in CENTRES)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO use_units (name) VALUES ('物业')")
        conn.execute("INSERT INTO maintenance_firms (name) SELECT '维保' || g FROM generate_series(1, 400) g")
        conn.execute(
            f"""
            WITH c(i, lat, lon) AS (SELECT row_number() OVER () - 1, * FROM (VALUES {centres}) v(lat, lon))
            INSERT INTO elevators (registration_code, rescue_code, kind, address, district, use_unit_id,
                                   maintainer_id, installed_on, rated_speed, bottom_floor, top_floor,
                                   latitude, longitude, next_inspection_due)
            SELECT lpad(g::text, 20, '0'), (100000 + g)::text, 'traction', '路' || g || '号', '区' || (g %% 11), 1,
                   1 + g %% 400, '2010-01-01', 1.75, 1, 20,
                   c.lat + (random() - 0.5) * 0.12, c.lon + (random() - 0.5) * 0.12,
                   date '2026-06-01' + (g %% 365)
            FROM generate_series(1, %s) g JOIN c ON c.i = g %% 11""",
            (elevators,),
        )
        conn.execute(
            "INSERT INTO incidents (registration_code, terminal_id, code, severity, status, maintainer_id, district,"
            " detected_at, last_seen_at) SELECT lpad((g * 97)::text, 20, '0'), 'T' || g,"
            " CASE WHEN g % 5 = 0 THEN 'trapped_passenger' ELSE 'door_held_open' END,"
            " CASE WHEN g % 5 = 0 THEN 'critical' ELSE 'major' END, 'detected', 1, '区1', now(), now()"
            " FROM generate_series(1, 1000) g"
        )
        conn.execute("ANALYZE")
    print(f"seeded {elevators:,} elevators in {time.perf_counter() - started:.1f} s")


def timed_get(client: httpx.Client, path: str, n: int = 10) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        answer = client.get(path)
        answer.raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
    return out


def browser_loads(url: str, token: str, n: int) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    total, inner = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.goto(url)
        page.get_by_test_id("login-token").fill(token)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("nav").wait_for()
        for i in range(n):
            page.goto(f"{url}/#/board")  # away, then to the map: a full render each time
            started = time.perf_counter()
            page.goto(f"{url}/#/map?box=120.8,30.6,122.0,31.9{'&' * (i % 2)}")
            page.wait_for_selector("#page[data-load-ms] svg.city-map g.cluster")
            total.append((time.perf_counter() - started) * 1000)
            inner.append(float(page.locator("#page").get_attribute("data-load-ms") or 0))
            page.evaluate("document.getElementById('page').removeAttribute('data-load-ms')")
        browser.close()
    return total, inner


def main(elevators: int) -> None:
    pg = services.local_postgres_url()
    if pg is None:
        raise SystemExit("PostgreSQL on 127.0.0.1:5432 is needed")
    schema = f"bench_map_{secrets.token_hex(3)}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    database_url = f"{pg}?options=-csearch_path%3D{schema}"
    api = None
    try:
        with psycopg.connect(database_url) as conn:
            db.migrate(conn)
        seed(database_url, elevators)
        token = "lw_bench_" + secrets.token_urlsafe(24)
        port = services.free_port()
        env = {**os.environ, "LIFTWATCH_DATABASE_URL": database_url, "LIFTWATCH_API_PORT": str(port),
               "LIFTWATCH_ADMIN_TOKEN": token, "LIFTWATCH_LOG_LEVEL": "WARNING"}  # fmt: skip
        for name in ("LIFTWATCH_MQTT_URL", "LIFTWATCH_KAFKA_BOOTSTRAP"):
            env.pop(name, None)
        api = subprocess.Popen([sys.executable, "-m", "liftwatch", "api"], env=env, cwd=Path(__file__).parents[1])
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            for _ in range(300):
                try:
                    if client.get("/healthz").status_code in (200, 503):
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            city = timed_get(client, "/api/v1/stats/map?cells=60")
            zoom = timed_get(client, "/api/v1/stats/map?west=121.40&south=31.18&east=121.50&north=31.26&cells=60")
            body = client.get("/api/v1/stats/map?cells=60").json()
            # The other pages that read the whole fleet: My fleet (as admin) and the risk ranking.
            others = {
                "GET /api/v1/fleet (first page)": timed_get(client, "/api/v1/fleet?limit=100", 5),
                "GET /api/v1/fleet?q=<address>": timed_get(client, "/api/v1/fleet?q=%E8%B7%AF12345%E5%8F%B7", 5),
                "GET /api/v1/stats/risk (ranking)": timed_get(client, "/api/v1/stats/risk?limit=100", 5),
                "GET /api/v1/stats/risk?list=overdue": timed_get(client, "/api/v1/stats/risk?list=overdue", 5),
            }
        print(f"city view: {body['elevators']:,} elevators in {len(body['clusters'])} cells, "
              f"{len(body['incidents'])} incidents")  # fmt: skip
        print(f"{'GET /api/v1/stats/map':<34} {'p50 ms':>8} {'max ms':>8}")
        print(f"{'  whole city':<34} {statistics.median(city):8.0f} {max(city):8.0f}")
        print(f"{'  zoomed box':<34} {statistics.median(zoom):8.0f} {max(zoom):8.0f}")
        for name, times in others.items():
            print(f"{name:<34} {statistics.median(times):8.0f} {max(times):8.0f}")
        total, inner = browser_loads(url, token, 5)
        label = "#/map in Chromium (navigation -> drawn)"
        print(f"{label:<40} p50 {statistics.median(total):6.0f} ms, max {max(total):6.0f}")
        print(f"{'  of which fetch + draw (data-load-ms)':<40} p50 {statistics.median(inner):6.0f} ms")
        when = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
        print(f"(measured {when} UTC on {os.cpu_count()} CPUs, API, database and browser on one host)")
    finally:
        if api is not None:
            api.terminate()
            api.wait(15)
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elevators", type=int, default=300_000)
    main(parser.parse_args().elevators)
