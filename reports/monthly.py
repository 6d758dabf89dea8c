"""The regulators' monthly statistics for one month and scope, read from the rollup tables.

:func:`monthly_report` is what the API, the CLI exports and the dashboards' numbers agree on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from liftwatch.reports import rollup, stats
from psycopg import sql
from psycopg.rows import dict_row

TOP_ELEVATORS = 10
ENTRAPMENT_STEPS = ("acknowledge", "dispatch", "arrive", "release")


@dataclass(frozen=True, slots=True)
class CodeRow:
    code: str
    incidents: int
    per_10k: float | None
    entrapments: int
    false_alarms: int


@dataclass(frozen=True, slots=True)
class StepTimes:
    """Seconds from detection to one rescue step over the month's entrapments."""

    step: str
    count: int
    median_s: float | None
    p90_s: float | None


@dataclass(frozen=True, slots=True)
class Rescue:
    entrapments: int
    steps: list[StepTimes]
    arrived_within_30min: int
    arrived_within_30min_share: float | None


@dataclass(frozen=True, slots=True)
class Coverage:
    elevators: int
    covered: int
    coverage: float | None
    online_rate: float | None
    days_observed: int


@dataclass(frozen=True, slots=True)
class ElevatorRow:
    registration_code: str
    district: str | None
    maintainer_id: int | None
    incidents: int
    entrapments: int
    repeats: int


@dataclass(frozen=True, slots=True)
class AgeRow:
    band: str
    elevators: int
    incidents: int
    per_10k: float | None
    entrapments: int


@dataclass(frozen=True, slots=True)
class FirmRow:
    maintainer_id: int
    name: str
    elevators: int
    incidents: int
    per_100: float | None
    entrapments: int
    dispatch_missed: int
    arrival_missed: int
    repeats: int
    false_alarms: int


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One month of a scope's trend: the headline figures of that month's own report."""

    month: str
    incidents: int
    entrapments: int
    per_10k: float | None
    elevators: int = 0
    entrapments_per_10k: float | None = None
    arrive_median_s: float | None = None
    arrive_p90_s: float | None = None
    arrived_within_30min_share: float | None = None
    codes: dict[str, int] = field(default_factory=dict)
    """Incidents per fault code."""
    age_bands: dict[str, float | None] = field(default_factory=dict)
    """Incidents per 10,000 elevators per age band (``lt10``, ``10to15``, ``ge15``)."""


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    month: str
    scope: str
    site_timezone: str
    refreshed_at: str
    complete: bool
    elevators: int
    incidents: int
    per_10k: float | None
    entrapments: int
    false_alarms: int
    codes: list[CodeRow]
    rescue: Rescue
    coverage: Coverage
    top_elevators: list[ElevatorRow]
    age_bands: list[AgeRow]
    firms: list[FirmRow]
    trend: list[TrendPoint] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _where(scope: stats.Scope, prefix: str = "") -> tuple[sql.Composable, dict[str, Any]]:
    """Filter of the per-row tables (entrapments, elevators) on the scope's column."""
    column = scope.column
    if column is None:
        return sql.SQL(""), {}
    return sql.SQL(" AND {} = %(scope_value)s").format(sql.Identifier(*([prefix, column] if prefix else [column]))), {
        "scope_value": scope.value
    }


def _sources(scope: stats.Scope, months: sql.Composable) -> tuple[sql.Composable, sql.Composable, dict[str, Any]]:
    """``FROM ... WHERE ...`` of the fleet and the incident counts of ``scope`` over ``months``.

    City and district scopes read their pre-summed rows (migration 052), a firm the city rows of
    that firm, a use unit the base rollup through its index: a few thousand rows at most.
    """
    if scope.kind == "use_unit":
        where = sql.SQL(" WHERE {} AND use_unit_id = %(scope_value)s").format(months)
        return (
            sql.SQL("report_fleet") + where,
            sql.SQL("report_incident_counts") + where,
            {"scope_value": scope.value},
        )
    params: dict[str, Any] = {"scope_key": scope.text if scope.kind == "district" else "city"}
    where = sql.SQL(" WHERE {} AND scope = %(scope_key)s").format(months)
    if scope.kind == "maintainer":
        where += sql.SQL(" AND maintainer_id = %(scope_value)s")
        params["scope_value"] = scope.value
    return sql.SQL("report_scope_fleet") + where, sql.SQL("report_scope_counts") + where, params


_ONE_MONTH = sql.SQL("month = %(month)s")


def _rows(conn: psycopg.Connection[Any], query: sql.Composed, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def scope_exists(conn: psycopg.Connection[Any], scope: stats.Scope) -> bool:
    """True when the scope names something in the registry (the city always exists)."""
    queries = {
        "district": "SELECT 1 FROM elevators WHERE district = %s LIMIT 1",
        "maintainer": "SELECT 1 FROM maintenance_firms WHERE id = %s",
        "use_unit": "SELECT 1 FROM use_units WHERE id = %s",
    }
    if scope.kind == "city":
        return True
    return conn.execute(queries[scope.kind], (scope.value,)).fetchone() is not None


def monthly_report(
    conn: psycopg.Connection[Any],
    month: dt.date,
    scope: stats.Scope,
    timezone: str,
    now: dt.datetime,
    *,
    trend_months: int = 0,
    max_age: dt.timedelta = rollup.DEFAULT_MAX_AGE,
) -> MonthlyReport:
    """Statistics of ``month`` for ``scope`` (refreshing the rollup first when it is stale)."""
    state = rollup.ensure_month(conn, month, timezone, now, max_age)
    where, extra = _where(scope)
    params = {"month": month, **extra}
    fleet_from, counts_from, source_params = _sources(scope, _ONE_MONTH)
    totals = {"month": month, **source_params}

    fleet = _rows(
        conn,
        sql.SQL(
            "SELECT coalesce(sum(elevators), 0)::bigint AS elevators, coalesce(sum(covered), 0)::bigint AS covered,"
            " coalesce(sum(active_days), 0)::bigint AS active_days FROM {}"
        ).format(fleet_from),
        totals,
    )[0]
    elevators = int(fleet["elevators"])

    code_rows = _rows(
        conn,
        sql.SQL(
            "SELECT code, sum(incidents)::bigint AS incidents, sum(entrapments)::bigint AS entrapments,"
            " sum(false_alarms)::bigint AS false_alarms FROM {} GROUP BY code ORDER BY incidents DESC, code"
        ).format(counts_from),
        totals,
    )
    codes = [
        CodeRow(
            r["code"],
            int(r["incidents"]),
            stats.per_10k(int(r["incidents"]), elevators),
            int(r["entrapments"]),
            int(r["false_alarms"]),
        )
        for r in code_rows
    ]
    incidents = sum(c.incidents for c in codes)

    percentiles = ", ".join(
        f"count({s}_s) AS {s}_n, percentile_cont(0.5) WITHIN GROUP (ORDER BY {s}_s) AS {s}_median,"
        f" percentile_cont(0.9) WITHIN GROUP (ORDER BY {s}_s) AS {s}_p90"
        for s in ENTRAPMENT_STEPS
    )
    rescue_row = _rows(
        conn,
        sql.SQL(
            "SELECT count(*) AS entrapments, count(*) FILTER (WHERE arrive_s <= arrival_target_s) AS within, "
            + percentiles
            + " FROM report_entrapments WHERE month = %(month)s{}"
        ).format(where),
        params,
    )[0]
    entrapments = int(rescue_row["entrapments"])
    rescue = Rescue(
        entrapments=entrapments,
        steps=[
            StepTimes(s, int(rescue_row[f"{s}_n"]), rescue_row[f"{s}_median"], rescue_row[f"{s}_p90"])
            for s in ENTRAPMENT_STEPS
        ],
        arrived_within_30min=int(rescue_row["within"]),
        arrived_within_30min_share=stats.share(int(rescue_row["within"]), entrapments),
    )

    coverage = Coverage(
        elevators=elevators,
        covered=int(fleet["covered"]),
        coverage=stats.share(int(fleet["covered"]), elevators),
        online_rate=stats.share(int(fleet["active_days"]), elevators * state.days_observed),
        days_observed=state.days_observed,
    )

    top = [
        ElevatorRow(
            r["registration_code"], r["district"], r["maintainer_id"], r["incidents"], r["entrapments"], r["repeats"]
        )
        for r in _rows(conn, _top_query(scope, where), {**params, "limit": TOP_ELEVATORS})
    ]

    age_fleet = {
        r["age_band"]: int(r["n"])
        for r in _rows(
            conn,
            sql.SQL("SELECT age_band, sum(elevators)::bigint AS n FROM {} GROUP BY 1").format(fleet_from),
            totals,
        )
    }
    age_incidents = {
        r["age_band"]: r
        for r in _rows(
            conn,
            sql.SQL(
                "SELECT age_band, sum(incidents)::bigint AS incidents, sum(entrapments)::bigint AS entrapments"
                " FROM {} AND age_band IS NOT NULL GROUP BY 1"
            ).format(counts_from),
            totals,
        )
    }
    ages = []
    for band in stats.AgeBand:
        n = age_fleet.get(band.value, 0)
        row = age_incidents.get(band.value, {"incidents": 0, "entrapments": 0})
        ages.append(
            AgeRow(band.key, n, int(row["incidents"]), stats.per_10k(int(row["incidents"]), n), int(row["entrapments"]))
        )

    firms = _firms(conn, totals, fleet_from, counts_from)
    trend = _trend(conn, month, scope, timezone, now, trend_months, max_age) if trend_months else []
    return MonthlyReport(
        month=f"{month:%Y-%m}",
        scope=scope.text,
        site_timezone=timezone,
        refreshed_at=state.refreshed_at.isoformat(),
        complete=state.complete,
        elevators=elevators,
        incidents=incidents,
        per_10k=stats.per_10k(incidents, elevators),
        entrapments=sum(c.entrapments for c in codes),
        false_alarms=sum(c.false_alarms for c in codes),
        codes=codes,
        rescue=rescue,
        coverage=coverage,
        top_elevators=top,
        age_bands=ages,
        firms=firms,
        trend=trend,
    )


def _top_query(scope: stats.Scope, where: sql.Composable) -> sql.Composed:
    """The elevators with most incidents: the city's in index order, a scope's over its own rows."""
    if scope.kind == "city":
        return sql.SQL(
            "SELECT registration_code, district, maintainer_id, incidents, entrapments, repeats"
            " FROM report_elevator_incidents WHERE month = %(month)s"
            " ORDER BY incidents DESC, entrapments DESC, registration_code LIMIT %(limit)s"
        ).format()
    # Only the incidents the elevator had in this scope (it may have changed firm during the month).
    return sql.SQL(
        "SELECT registration_code, min(district) AS district, min(maintainer_id) AS maintainer_id,"
        " sum(incidents)::int AS incidents, sum(entrapments)::int AS entrapments, sum(repeats)::int AS repeats"
        " FROM report_elevator_scope_incidents WHERE month = %(month)s{}"
        " GROUP BY registration_code ORDER BY 4 DESC, 5 DESC, registration_code LIMIT %(limit)s"
    ).format(where)


def _firms(
    conn: psycopg.Connection[Any], params: dict[str, Any], fleet_from: sql.Composable, counts_from: sql.Composable
) -> list[FirmRow]:
    rows = _rows(
        conn,
        sql.SQL(
            """
            WITH fleet AS (
                SELECT maintainer_id, sum(elevators)::bigint AS elevators FROM {fleet_from} GROUP BY 1
            ), counts AS (
                SELECT maintainer_id, sum(incidents)::bigint AS incidents, sum(entrapments)::bigint AS entrapments,
                       sum(dispatch_missed)::bigint AS dispatch_missed, sum(arrival_missed)::bigint AS arrival_missed,
                       sum(repeats)::bigint AS repeats, sum(false_alarms)::bigint AS false_alarms
                FROM {counts_from} AND maintainer_id IS NOT NULL GROUP BY 1
            )
            SELECT f.id AS maintainer_id, f.name, coalesce(fl.elevators, 0) AS elevators,
                   coalesce(c.incidents, 0) AS incidents, coalesce(c.entrapments, 0) AS entrapments,
                   coalesce(c.dispatch_missed, 0) AS dispatch_missed, coalesce(c.arrival_missed, 0) AS arrival_missed,
                   coalesce(c.repeats, 0) AS repeats, coalesce(c.false_alarms, 0) AS false_alarms
            FROM fleet fl FULL JOIN counts c USING (maintainer_id)
            JOIN maintenance_firms f ON f.id = coalesce(fl.maintainer_id, c.maintainer_id)"""
        ).format(fleet_from=fleet_from, counts_from=counts_from),
        params,
    )
    firms = [
        FirmRow(
            int(r["maintainer_id"]),
            r["name"],
            int(r["elevators"]),
            int(r["incidents"]),
            stats.per_100(int(r["incidents"]), int(r["elevators"])),
            int(r["entrapments"]),
            int(r["dispatch_missed"]),
            int(r["arrival_missed"]),
            int(r["repeats"]),
            int(r["false_alarms"]),
        )
        for r in rows
    ]
    # Worst first: the ranking a regulator reads when deciding a blacklist.
    firms.sort(key=lambda f: (-(f.per_100 or 0.0), -f.arrival_missed, f.name))
    return firms


def _trend(
    conn: psycopg.Connection[Any],
    month: dt.date,
    scope: stats.Scope,
    timezone: str,
    now: dt.datetime,
    months: int,
    max_age: dt.timedelta,
) -> list[TrendPoint]:
    first = stats.previous_month(month, months - 1)
    for back in range(months - 1, 0, -1):
        rollup.ensure_month(conn, stats.previous_month(month, back), timezone, now, max_age)
    span = sql.SQL("month BETWEEN %(first)s AND %(month)s")
    fleet_from, counts_from, source_params = _sources(scope, span)
    where, where_params = _where(scope)
    params = {"first": first, "month": month, **source_params, **where_params}
    counts: dict[dt.date, dict[str, int]] = {}
    band_counts: dict[tuple[dt.date, int], int] = {}
    for r in _rows(
        conn,
        sql.SQL(
            "SELECT month, code, age_band, sum(incidents)::bigint AS incidents,"
            " sum(entrapments)::bigint AS entrapments FROM {} GROUP BY month, code, age_band"
        ).format(counts_from),
        params,
    ):
        month_counts = counts.setdefault(r["month"], {"incidents": 0, "entrapments": 0})
        month_counts["incidents"] += int(r["incidents"])
        month_counts["entrapments"] += int(r["entrapments"])
        month_counts[f"code:{r['code']}"] = month_counts.get(f"code:{r['code']}", 0) + int(r["incidents"])
        if r["age_band"] is not None:
            key = (r["month"], int(r["age_band"]))
            band_counts[key] = band_counts.get(key, 0) + int(r["incidents"])
    fleet: dict[dt.date, int] = {}
    band_fleet: dict[tuple[dt.date, int], int] = {}
    for r in _rows(
        conn,
        sql.SQL("SELECT month, age_band, sum(elevators)::bigint AS n FROM {} GROUP BY month, age_band").format(
            fleet_from
        ),
        params,
    ):
        fleet[r["month"]] = fleet.get(r["month"], 0) + int(r["n"])
        band_fleet[(r["month"], int(r["age_band"]))] = int(r["n"])
    rescue = {
        r["month"]: r
        for r in _rows(
            conn,
            sql.SQL(
                "SELECT month, count(*) AS entrapments, count(*) FILTER (WHERE arrive_s <= arrival_target_s) AS within,"
                " percentile_cont(0.5) WITHIN GROUP (ORDER BY arrive_s) AS median,"
                " percentile_cont(0.9) WITHIN GROUP (ORDER BY arrive_s) AS p90"
                " FROM report_entrapments WHERE month BETWEEN %(first)s AND %(month)s{} GROUP BY month"
            ).format(where),
            params,
        )
    }
    points = []
    for back in range(months - 1, -1, -1):
        current = stats.previous_month(month, back)
        row = counts.get(current, {"incidents": 0, "entrapments": 0})
        elevators = fleet.get(current, 0)
        times = rescue.get(current)
        points.append(
            TrendPoint(
                f"{current:%Y-%m}",
                row["incidents"],
                row["entrapments"],
                stats.per_10k(row["incidents"], elevators),
                elevators=elevators,
                entrapments_per_10k=stats.per_10k(row["entrapments"], elevators),
                arrive_median_s=None if times is None else times["median"],
                arrive_p90_s=None if times is None else times["p90"],
                arrived_within_30min_share=None
                if times is None
                else stats.share(int(times["within"]), int(times["entrapments"])),
                codes={key[5:]: value for key, value in sorted(row.items()) if key.startswith("code:")},
                age_bands={
                    band.key: stats.per_10k(
                        band_counts.get((current, band.value), 0), band_fleet.get((current, band.value), 0)
                    )
                    for band in stats.AgeBand
                },
            )
        )
    return points
