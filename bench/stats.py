"""Regulator statistics at city scale: a month of 300,000 elevators, rollup vs raw incidents.

    .venv/bin/python bench/stats.py                        # 300,000 elevators, ~1 incident each
    .venv/bin/python bench/stats.py --elevators 30000 --incidents-per-elevator 2
    .venv/bin/python bench/stats.py --quick                # 20,000 elevators: a smoke run

Generates the registry (elevators, terminals, firms, use units) and a month of incidents with
COPY, and the per-terminal per-day activity with one INSERT ... SELECT generate_series, in a
private schema of the database (LIFTWATCH_DATABASE_URL, default the local PostgreSQL), then:

- ``refresh``: building the month's rollup (``liftwatch report refresh``; done once per month
  for past months, every few minutes for the current one);
- ``rollup``: the full monthly report (every table: codes, rescue percentiles, coverage, top
  elevators, ages, firms) for the city, one district, one firm and one use unit, read from the
  rollup; then, with the month's rollup copied into the 11 months before it (a city a year into
  operation), the city report with the 12-month trend the PDF prints, and the PDF itself;
- ``baseline``: the same numbers computed naively from the raw tables in the same run.

The target is the rollup answer under 2 s at 300,000 elevators; ratio = baseline / rollup.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from liftwatch import db  # noqa: E402
from liftwatch.reports import export, monthly, rollup, stats  # noqa: E402

TZ = "Asia/Shanghai"
MONTH = dt.date(2026, 3, 1)
AFTER = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
CODES = [
    "trapped_passenger", "door_held_open", "power_failure", "terminal_offline", "stopped_outside_door_zone",
    "alarm_button", "door_reopen_loop", "safety_circuit_open", "overspeed", "door_open_while_moving",
]  # fmt: skip
CODE_WEIGHTS = np.array([0.06, 0.25, 0.15, 0.25, 0.08, 0.1, 0.06, 0.03, 0.01, 0.01])
DISTRICTS = [f"D{i:02d}" for i in range(16)]
FIRMS = 400
UNITS = 20_000


def generate(conn: psycopg.Connection[object], elevators: int, per_elevator: float, seed: int) -> int:
    rng = np.random.default_rng(seed)
    with conn.cursor().copy("COPY maintenance_firms (name) FROM STDIN") as copy:
        for i in range(FIRMS):
            copy.write_row((f"Firm {i:03d}",))
    with conn.cursor().copy("COPY use_units (name) FROM STDIN") as copy:
        for i in range(UNITS):
            copy.write_row((f"Unit {i:05d}",))
    district = rng.integers(0, len(DISTRICTS), elevators)
    firm = rng.integers(1, FIRMS + 1, elevators)
    unit = rng.integers(1, UNITS + 1, elevators)
    installed = rng.integers(0, 25 * 365, elevators)
    codes = [f"3110{i:016d}" for i in range(elevators)]
    with conn.cursor().copy(
        "COPY elevators (registration_code, rescue_code, kind, address, district, use_unit_id, maintainer_id,"
        " installed_on, rated_speed, bottom_floor, top_floor) FROM STDIN"
    ) as copy:
        for i in range(elevators):
            copy.write_row(
                (codes[i], f"{100000 + i:06d}"[-6:] if i < 900_000 else str(i), "traction", "addr",
                 DISTRICTS[district[i]], int(unit[i]), int(firm[i]),
                 MONTH - dt.timedelta(days=int(installed[i])), 1.75, -1, 20)
            )  # fmt: skip
    with conn.cursor().copy("COPY terminals (terminal_id, registration_code) FROM STDIN") as copy:
        for i in range(elevators):
            copy.write_row((f"T{i}", codes[i]))
    # 95% of terminals report every day, 4% miss a few days, 1% are dark.
    conn.execute(
        """
        INSERT INTO terminal_activity (terminal_id, day, samples, first_ts, last_ts)
        SELECT 'T' || e, d::date, 86400, d, d + interval '23 hours'
        FROM generate_series(0, %(n)s - 1) AS e,
             generate_series(%(month)s::date, %(month)s::date + 30, interval '1 day') AS d
        WHERE e %% 100 < 95 OR (e %% 100 < 99 AND (e + extract(day FROM d)::int) %% 7 <> 0)""",
        {"n": elevators, "month": MONTH},
    )
    count = int(elevators * per_elevator)
    who = rng.integers(0, elevators, count)
    code = rng.choice(len(CODES), count, p=CODE_WEIGHTS / CODE_WEIGHTS.sum())
    start, end = stats.month_bounds(MONTH, TZ)
    offsets = rng.uniform(0, (end - start).total_seconds(), count)
    steps = np.cumsum(rng.exponential([45, 150, 1000, 600], (count, 4)), axis=1)
    status = np.where(rng.random(count) < 0.03, "false_alarm", "closed")
    with conn.cursor().copy(
        "COPY incidents (registration_code, terminal_id, code, severity, status, maintainer_id, district, use_unit_id,"
        " detected_at, last_seen_at, acknowledged_at, dispatched_at, arrived_at, released_at,"
        " arrival_deadline_missed) FROM STDIN"
    ) as copy:
        for k in range(count):
            i = int(who[k])
            detected = start + dt.timedelta(seconds=float(offsets[k]))
            stamps = [detected + dt.timedelta(seconds=float(s)) for s in steps[k]]
            copy.write_row(
                (codes[i], f"T{i}", CODES[code[k]], "critical" if code[k] == 0 else "major", status[k],
                 int(firm[i]), DISTRICTS[district[i]], int(unit[i]), detected, detected, *stamps,
                 bool(steps[k][2] > 1800))
            )  # fmt: skip
    conn.execute("ANALYZE")
    return count


BASELINE = [
    # per code
    """SELECT code, count(*), count(*) FILTER (WHERE code = 'trapped_passenger' AND status <> 'false_alarm'),
              count(*) FILTER (WHERE status = 'false_alarm')
       FROM incidents WHERE detected_at >= %(start)s AND detected_at < %(end)s {scope} GROUP BY code""",
    # fleet
    """SELECT count(*) FROM elevators WHERE installed_on < %(next)s {escope}""",
    # rescue percentiles
    """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - detected_at)),
              percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - detected_at)),
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - detected_at)),
              percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - detected_at)),
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM arrived_at - detected_at)),
              percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM arrived_at - detected_at)),
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM released_at - detected_at)),
              percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM released_at - detected_at))
       FROM incidents WHERE detected_at >= %(start)s AND detected_at < %(end)s {scope}
         AND code = 'trapped_passenger' AND status <> 'false_alarm'""",
    # coverage
    """SELECT count(*) FILTER (WHERE coalesce(a.days, 0) >= 28), sum(a.days)
       FROM elevators e LEFT JOIN (SELECT t.registration_code, count(*) AS days FROM terminal_activity ta
                                   JOIN terminals t USING (terminal_id)
                                   WHERE ta.day >= %(month)s AND ta.day < %(next)s GROUP BY 1) a
            USING (registration_code)
       WHERE e.installed_on < %(next)s {escope_e}""",
    # top elevators
    """SELECT registration_code, count(*) FROM incidents
       WHERE detected_at >= %(start)s AND detected_at < %(end)s AND status <> 'false_alarm' {scope}
       GROUP BY 1 ORDER BY 2 DESC LIMIT 10""",
    # age bands
    """SELECT CASE WHEN age(%(month)s, e.installed_on) < interval '10 years' THEN 0
                   WHEN age(%(month)s, e.installed_on) < interval '15 years' THEN 1 ELSE 2 END, count(*)
       FROM incidents i JOIN elevators e USING (registration_code)
       WHERE i.detected_at >= %(start)s AND i.detected_at < %(end)s {scope_i} GROUP BY 1""",
    # firms with repeats
    """WITH r AS (SELECT maintainer_id, detected_at >= %(start)s AS inside,
                         detected_at - lag(detected_at) OVER (PARTITION BY registration_code, code
                                                              ORDER BY detected_at) <= interval '30 days' AS rep
                  FROM incidents WHERE detected_at >= %(start)s - interval '30 days' AND detected_at < %(end)s
                    AND status <> 'false_alarm' {scope})
       SELECT maintainer_id, count(*) FILTER (WHERE inside), count(*) FILTER (WHERE inside AND rep)
       FROM r GROUP BY 1""",
]


def history(conn: psycopg.Connection[object], months: int = 11) -> None:
    """Copy the month's rollup into the ``months`` before it (final months of the same size)."""
    for table in ("report_months", *rollup._TABLES):
        columns = [
            str(row[0])  # type: ignore[index]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
                (table,),
            ).fetchall()
        ]
        values = ", ".join("(month - make_interval(months => k))::date" if c == "month" else c for c in columns)
        conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values}"
            f" FROM {table}, generate_series(1, %s) AS k WHERE month = %s".encode(),
            (months, MONTH),
        )
    conn.execute("ANALYZE")


def baseline(conn: psycopg.Connection[object], district: str | None) -> None:
    start, end = stats.month_bounds(MONTH, TZ)
    params = {"start": start, "end": end, "month": MONTH, "next": stats.next_month(MONTH), "district": district}
    where = "AND district = %(district)s" if district else ""
    where_i = "AND i.district = %(district)s" if district else ""
    where_e = "AND e.district = %(district)s" if district else ""
    for query in BASELINE:
        text = query.format(scope=where, escope=where, escope_e=where_e, scope_i=where_i)
        conn.execute(text.encode(), params).fetchall()


def timed(label: str, action: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        action()  # type: ignore[operator]
        best = min(best, time.perf_counter() - began)
    print(f"  {label:<50} {best * 1000:9.1f} ms (best of {repeat})", flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elevators", type=int, default=300_000)
    parser.add_argument("--incidents-per-elevator", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="20,000 elevators (a smoke run).")
    parser.add_argument("--keep", action="store_true", help="Keep the schema (to explore it).")
    args = parser.parse_args()
    if args.quick:
        args.elevators = 20_000
    base = os.environ.get("LIFTWATCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    schema = f"bench_stats_{secrets.token_hex(3)}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}')}"
    try:
        with psycopg.connect(url) as conn:
            db.migrate(conn)
        with psycopg.connect(url, autocommit=True) as conn:
            began = time.perf_counter()
            with conn.transaction():
                count = generate(conn, args.elevators, args.incidents_per_elevator, args.seed)
            print(f"generated {args.elevators:,} elevators, {count:,} incidents, a month of activity "
                  f"in {time.perf_counter() - began:.1f} s")  # fmt: skip
            refresh = timed("refresh (rollup of the month)", lambda: rollup.refresh_month(conn, MONTH, TZ, AFTER), 1)
            city = timed(
                "rollup: full report, city",
                lambda: monthly.monthly_report(conn, MONTH, stats.Scope("city"), TZ, AFTER),
            )
            district = timed(
                "rollup: full report, one district",
                lambda: monthly.monthly_report(conn, MONTH, stats.Scope("district", "D03"), TZ, AFTER),
            )
            firm = timed(
                "rollup: full report, one firm",
                lambda: monthly.monthly_report(conn, MONTH, stats.Scope("maintainer", 7), TZ, AFTER),
            )
            unit = timed(
                "rollup: full report, one use unit",
                lambda: monthly.monthly_report(conn, MONTH, stats.Scope("use_unit", 123), TZ, AFTER),
            )
            with conn.transaction():
                history(conn)
            report: list[monthly.MonthlyReport] = []
            trend = timed(
                "rollup: city report + 12-month trend (PDF's data)",
                lambda: report.append(
                    monthly.monthly_report(conn, MONTH, stats.Scope("city"), TZ, AFTER, trend_months=12)
                ),
            )
            pdf = timed("render the city PDF (zh)", lambda: export.render(report[-1], "pdf", "zh", AFTER), 1)
            naive_city = timed("baseline: raw tables, city", lambda: baseline(conn, None))
            naive_district = timed("baseline: raw tables, one district", lambda: baseline(conn, "D03"))
        print(
            f"refresh {refresh:.2f} s; city report {city * 1000:.0f} ms, district {district * 1000:.0f} ms,"
            f" firm {firm * 1000:.0f} ms, use unit {unit * 1000:.0f} ms, city with trend {trend * 1000:.0f} ms"
            f" (target < 2000 ms); PDF rendering {pdf:.1f} s"
        )
        print(f"ratio baseline/rollup: city {naive_city / city:.1f}x, district {naive_district / district:.1f}x")
    finally:
        if not args.keep:
            with psycopg.connect(base, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
