"""A random fleet month, reported for every scope, equals a plain-Python reading of the definitions.

The hand-computed month of ``tests/fixtures/reports.py`` pins each definition on a few rows; here a
few hundred random rows (elevators installed around the age-band edges and after the month,
activity on random days, incidents before, inside and after the site-local month, false alarms,
missing rescue steps, unregistered terminals, elevators that changed firm since) go through the
SQL rollup, and every number of every scope's report is compared with an oracle that reads the
raw rows with the definitions of ``docs/statistics.md`` and ``reports/stats.py``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from dataclasses import astuple, dataclass
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from liftwatch.config import AlertsSettings
from liftwatch.reports import monthly, stats

pytestmark = pytest.mark.integration

TZ_NAME = "Asia/Shanghai"
TZ = ZoneInfo(TZ_NAME)
MONTH = dt.date(2026, 3, 1)
AFTER = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
CODES = ["trapped_passenger", "door_held_open", "power_failure", "overspeed", "alarm_button"]
DISTRICTS = ["Xuhui", "Pudong", "Jingan"]
STEPS = ("acknowledge", "dispatch", "arrive", "release")

# The deadline the database stamps on these incidents (the shipped policy: none was saved).
ARRIVAL_S = AlertsSettings.model_fields["arrival_deadline_s"].default


@dataclass
class Elevator:
    code: str
    district: str
    firm: int
    unit: int
    installed: dt.date


@dataclass
class Incident:
    id: int
    elevator: Elevator | None
    code: str
    detected: dt.datetime
    status: str
    district: str | None
    firm: int | None
    unit: int | None
    steps: list[float | None]
    dispatch_missed: bool
    arrival_missed: bool


def _build(url: str, seed: int) -> tuple[list[Elevator], dict[str, int], list[Incident], list[int], list[int]]:
    rng = random.Random(seed)
    start, end = stats.month_bounds(MONTH, TZ_NAME)
    with psycopg.connect(url) as conn:
        firms = [
            conn.execute("INSERT INTO maintenance_firms (name) VALUES (%s) RETURNING id", (f"Firm {i}",)).fetchone()[0]  # type: ignore[index]
            for i in range(4)
        ]
        units = [
            conn.execute("INSERT INTO use_units (name) VALUES (%s) RETURNING id", (f"Unit {i}",)).fetchone()[0]  # type: ignore[index]
            for i in range(5)
        ]
        edges = [
            dt.date(2016, 3, 1),
            dt.date(2016, 3, 2),
            dt.date(2011, 3, 1),
            dt.date(2011, 3, 2),
            dt.date(2026, 3, 31),
        ]
        elevators = []
        for i in range(90):
            installed = (
                rng.choice(edges)
                if i % 6 == 0
                else dt.date(2026, 4, 2)  # registered after the month: not in its fleet
                if i % 29 == 0
                else MONTH - dt.timedelta(days=rng.randrange(0, 25 * 365))
            )
            e = Elevator(f"3110{i:016d}", rng.choice(DISTRICTS), rng.choice(firms), rng.choice(units), installed)
            elevators.append(e)
            conn.execute(
                "INSERT INTO elevators (registration_code, rescue_code, kind, address, district, use_unit_id,"
                " maintainer_id, installed_on, rated_speed, bottom_floor, top_floor)"
                " VALUES (%s, %s, 'traction', 'addr', %s, %s, %s, %s, 1.75, -1, 20)",
                (e.code, f"{20000 + i}", e.district, e.unit, e.firm, e.installed),
            )
            conn.execute("INSERT INTO terminals (terminal_id, registration_code) VALUES (%s, %s)", (f"T{i}", e.code))
        active: dict[str, int] = {}
        with conn.cursor().copy(
            "COPY terminal_activity (terminal_id, day, samples, first_ts, last_ts) FROM STDIN"
        ) as copy:
            for i, e in enumerate(elevators):
                days = rng.choice([31, 31, 30, 28, 27, 15, 0, rng.randrange(0, 32)])
                chosen = rng.sample(range(1, 32), days)
                active[e.code] = len(chosen)
                for day in chosen:
                    ts = dt.datetime(2026, 3, day, 12, tzinfo=TZ)
                    copy.write_row((f"T{i}", ts.date(), rng.randrange(1, 100), ts, ts))
                idle = next((d for d in range(1, 32) if d not in chosen), None)
                if idle is not None:  # a row without samples is not a day with data
                    copy.write_row((f"T{i}", dt.date(2026, 3, idle), 0, start, start))
                # A day with no samples and days outside March do not count.
                copy.write_row((f"T{i}", dt.date(2026, 2, 28), 5, start, start))
                copy.write_row((f"T{i}", dt.date(2026, 4, 1), 5, end, end))
        incidents = []
        open_keys: set[tuple[str, str]] = set()
        window = (end - start).total_seconds()
        for _ in range(420):
            elevator = None if rng.random() < 0.04 else rng.choice(elevators)
            # Mostly inside the month; some in the 30-day look-back, some just after, some at the edges.
            offset = rng.uniform(-35 * 86400, window + 3 * 86400) if rng.random() < 0.25 else rng.uniform(0, window)
            detected = start + dt.timedelta(seconds=offset)
            if rng.random() < 0.03:
                detected = rng.choice([start, end - dt.timedelta(microseconds=1), end])
            code = "unregistered_terminal" if elevator is None else rng.choice(CODES)
            status = rng.choice(["closed", "closed", "closed", "false_alarm", "dispatched", "arrived", "detected"])
            if status in ("dispatched", "arrived", "detected"):  # one open incident per elevator and code
                key = (elevator.code if elevator else "X9", code)
                status = "closed" if key in open_keys else status
                open_keys.add(key)
            durations: list[float | None] = []
            total = 0.0
            for _ in STEPS:
                total += rng.expovariate(1 / 600)
                durations.append(round(total, 3) if rng.random() < 0.85 else None)
            moved = elevator is not None and rng.random() < 0.1  # snapshot of an elevator since moved
            incident_firm = rng.choice(firms) if moved else (elevator.firm if elevator else None)
            row = conn.execute(
                "INSERT INTO incidents (registration_code, terminal_id, code, severity, status, maintainer_id,"
                " district, use_unit_id, detected_at, last_seen_at, acknowledged_at, dispatched_at, arrived_at,"
                " released_at, dispatch_deadline_missed, arrival_deadline_missed)"
                " VALUES (%s, %s, %s, 'major', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    elevator.code if elevator else None,
                    f"T{elevators.index(elevator)}" if elevator else "X9",
                    code,
                    status,
                    incident_firm,
                    elevator.district if elevator else None,
                    elevator.unit if elevator else None,
                    detected,
                    detected,
                    *[None if d is None else detected + dt.timedelta(seconds=d) for d in durations],
                    rng.random() < 0.2,
                    rng.random() < 0.2,
                ),
            ).fetchone()
            assert row is not None
            incidents.append(
                Incident(
                    row[0],
                    elevator,
                    code,
                    detected,
                    status,
                    elevator.district if elevator else None,
                    incident_firm,
                    elevator.unit if elevator else None,
                    durations,
                    False,
                    False,
                )
            )
        # Read the flags back rather than tracking the random draws.
        flags = {
            r[0]: (r[1], r[2])
            for r in conn.execute("SELECT id, dispatch_deadline_missed, arrival_deadline_missed FROM incidents")
        }
        for incident in incidents:
            incident.dispatch_missed, incident.arrival_missed = flags[incident.id]
    return elevators, active, incidents, firms, units


def _oracle(
    scope: stats.Scope,
    elevators: list[Elevator],
    active: dict[str, int],
    incidents: list[Incident],
    names: dict[int, str],
) -> dict[str, Any]:
    start, end = stats.month_bounds(MONTH, TZ_NAME)
    registered = [e for e in elevators if e.installed < stats.next_month(MONTH)]

    def fleet_in(e: Elevator) -> bool:
        return {
            "city": True,
            "district": e.district == scope.value,
            "maintainer": e.firm == scope.value,
            "use_unit": e.unit == scope.value,
        }[scope.kind]

    def incident_in(i: Incident) -> bool:
        return {
            "city": True,
            "district": i.district == scope.value,
            "maintainer": i.firm == scope.value,
            "use_unit": i.unit == scope.value,
        }[scope.kind]

    # Repeats: same elevator and code, previous real fault within 30 days (across the month start).
    real = sorted(
        (i for i in incidents if i.status != "false_alarm" and i.elevator is not None and i.detected < end),
        key=lambda i: (i.detected, i.id),
    )
    last: dict[tuple[str, str], dt.datetime] = {}
    repeat: set[int] = set()
    for i in real:
        assert i.elevator is not None
        key = (i.elevator.code, i.code)
        if key in last and i.detected - last[key] <= dt.timedelta(days=stats.REPEAT_WINDOW_DAYS):
            repeat.add(i.id)
        last[key] = i.detected

    fleet = [e for e in registered if fleet_in(e)]
    month = [i for i in incidents if start <= i.detected < end and incident_in(i)]
    entrapment = [i for i in month if i.code == "trapped_passenger" and i.status != "false_alarm"]
    n = len(fleet)
    codes = Counter(i.code for i in month)
    code_rows = sorted(
        (
            (
                code,
                count,
                stats.per_10k(count, n),
                sum(1 for i in month if i.code == code and i in entrapment),
                sum(1 for i in month if i.code == code and i.status == "false_alarm"),
            )
            for code, count in codes.items()
        ),
        key=lambda r: (-r[1], r[0]),
    )
    steps = []
    for k, step in enumerate(STEPS):
        values = [d for i in entrapment if (d := i.steps[k]) is not None]
        steps.append((step, len(values), stats.percentile(values, 0.5), stats.percentile(values, 0.9)))
    within = sum(1 for i in entrapment if i.steps[2] is not None and i.steps[2] <= ARRIVAL_S)
    covered = sum(1 for e in fleet if stats.covered(active[e.code], 31))
    per_elevator: dict[str, list[Incident]] = defaultdict(list)
    for i in month:
        if i.elevator is not None and i.status != "false_alarm":
            per_elevator[i.elevator.code].append(i)
    top = sorted(
        (
            (code, len(items), sum(1 for i in items if i in entrapment), sum(1 for i in items if i.id in repeat))
            for code, items in per_elevator.items()
        ),
        key=lambda r: (-r[1], -r[2], r[0]),
    )[: monthly.TOP_ELEVATORS]
    bands = []
    for band in stats.AgeBand:
        in_band = [i for i in month if i.elevator is not None and stats.age_band(i.elevator.installed, MONTH) is band]
        elevators_in_band = sum(1 for e in fleet if stats.age_band(e.installed, MONTH) is band)
        bands.append(
            (
                band.key,
                elevators_in_band,
                len(in_band),
                stats.per_10k(len(in_band), elevators_in_band),
                sum(1 for i in in_band if i in entrapment),
            )
        )
    firm_ids = {e.firm for e in fleet} | {i.firm for i in month if i.firm is not None}
    firms = []
    for firm in firm_ids:
        mine = [i for i in month if i.firm == firm]
        maintained = sum(1 for e in fleet if e.firm == firm)
        firms.append(
            (
                firm,
                maintained,
                len(mine),
                stats.per_100(len(mine), maintained),
                sum(1 for i in mine if i in entrapment),
                sum(1 for i in mine if i.dispatch_missed),
                sum(1 for i in mine if i.arrival_missed),
                sum(1 for i in mine if i.id in repeat),
                sum(1 for i in mine if i.status == "false_alarm"),
            )
        )
    firms.sort(key=lambda f: (-(f[3] or 0.0), -f[6], names[f[0]]))
    return {
        "elevators": n,
        "incidents": len(month),
        "entrapments": len(entrapment),
        "false_alarms": sum(1 for i in month if i.status == "false_alarm"),
        "codes": code_rows,
        "steps": steps,
        "within": (within, stats.share(within, len(entrapment))),
        "coverage": (covered, stats.share(covered, n), stats.share(sum(active[e.code] for e in fleet), n * 31)),
        "top": top,
        "bands": bands,
        "firms": [f[1:] for f in firms],
    }


def _rounded(value: Any) -> Any:
    """Floats to 9 decimals (percentiles interpolate in floating point), recursively."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _as_oracle(report: monthly.MonthlyReport) -> dict[str, Any]:
    return {
        "elevators": report.elevators,
        "incidents": report.incidents,
        "entrapments": report.entrapments,
        "false_alarms": report.false_alarms,
        "codes": [(c.code, c.incidents, c.per_10k, c.entrapments, c.false_alarms) for c in report.codes],
        "steps": [(s.step, s.count, s.median_s, s.p90_s) for s in report.rescue.steps],
        "within": (report.rescue.arrived_within_30min, report.rescue.arrived_within_30min_share),
        "coverage": (report.coverage.covered, report.coverage.coverage, report.coverage.online_rate),
        "top": [(e.registration_code, e.incidents, e.entrapments, e.repeats) for e in report.top_elevators],
        "bands": [(a.band, a.elevators, a.incidents, a.per_10k, a.entrapments) for a in report.age_bands],
        "firms": [astuple(f)[2:] for f in report.firms],  # all but the maintainer's id and name
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_every_scope_of_a_random_month_matches_the_oracle(database_url: str, seed: int) -> None:
    elevators, active, incidents, firms, units = _build(database_url, seed)
    scopes = (
        [stats.Scope("city")]
        + [stats.Scope("district", d) for d in DISTRICTS]
        + [stats.Scope("maintainer", f) for f in firms]
        + [stats.Scope("use_unit", u) for u in units]
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        for scope in scopes:
            report = monthly.monthly_report(conn, MONTH, scope, TZ_NAME, AFTER)
            names = {f: f"Firm {k}" for k, f in enumerate(firms)}
            expected = _oracle(scope, elevators, active, incidents, names)
            assert _rounded(_as_oracle(report)) == _rounded(expected), scope.text
