"""Refresh of the monthly rollup tables (migration 050) from incidents, the registry and activity.

A month is recomputed as a whole, in one transaction (delete + insert), so a refresh is
idempotent and a reader never sees half a month. Past months are refreshed once after they end
(``complete``); the current month is refreshed on demand when its rollup is older than
``max_age`` (see :func:`ensure_month`), and by ``liftwatch report refresh`` (cron or systemd timer).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from liftwatch.reports import stats
from psycopg import sql

log = logging.getLogger(__name__)

# A month is final this long after it ended: late acknowledgements and closes have landed by then.
COMPLETE_AFTER = dt.timedelta(days=2)
# The current month's rollup is recomputed on demand when older than this. `liftwatch report
# refresh` (every 10 min in compose) keeps it younger, so a request pays for a refresh (seconds at
# city scale) only when that job is not running.
DEFAULT_MAX_AGE = dt.timedelta(minutes=30)
# Serialises refreshes of one month across processes (CLI, API workers).
_LOCK_NAMESPACE = 0x52505254

# The rollup tables of a month (migrations 050, 052, 053), besides its row of ``report_months``.
_TABLES = (
    "report_fleet",
    "report_incident_counts",
    "report_entrapments",
    "report_elevator_incidents",
    "report_scope_fleet",
    "report_scope_counts",
    "report_elevator_scope_incidents",
)

# Days with data come from ``terminal_activity`` (migration 010): one row per terminal and site-local
# day, kept by the ingest writer, so coverage never scans raw telemetry.
_ACTIVITY = """
    SELECT t.registration_code, a.days
    FROM (SELECT terminal_id, count(*) AS days FROM terminal_activity
          WHERE day >= %(month)s::date AND day < %(next_month)s::date AND samples > 0
          GROUP BY terminal_id) a
    JOIN terminals t USING (terminal_id)
    WHERE t.registration_code IS NOT NULL"""


@dataclass(frozen=True, slots=True)
class MonthState:
    """A month's row of ``report_months``."""

    month: dt.date
    site_timezone: str
    refreshed_at: dt.datetime
    days_in_month: int
    days_observed: int
    complete: bool


# Whole years on the first day of the month (stats.age_band). Not `age(...) < interval '10 years'`:
# interval comparison counts a month as 30 days, so 9 years 11 months 30 days compares equal to
# 10 years and an elevator installed on March 2nd ten years ago fell into the 10-15 band.
_AGE_BAND = """CASE WHEN {installed} IS NULL THEN NULL
         WHEN {installed} > %(month)s::date - interval '10 years' THEN 0
         WHEN {installed} > %(month)s::date - interval '15 years' THEN 1
         ELSE 2 END"""


def read_state(conn: psycopg.Connection[Any], month: dt.date) -> MonthState | None:
    row = conn.execute(
        "SELECT month, site_timezone, refreshed_at, days_in_month, days_observed, complete"
        " FROM report_months WHERE month = %s",
        (month,),
    ).fetchone()
    if row is None:
        return None
    values = list(row.values()) if isinstance(row, dict) else list(row)
    return MonthState(*values)


def refresh_month(
    conn: psycopg.Connection[Any],
    month: dt.date,
    timezone: str,
    now: dt.datetime,
    *,
    unless_refreshed_since: dt.datetime | None = None,
) -> MonthState:
    """Recompute the rollup of ``month`` (site-local) in one transaction.

    With ``unless_refreshed_since``, a refresh that another process finished meanwhile (since that
    time) is taken as is: concurrent requests for a stale month compute it once.
    """
    start, end = stats.month_bounds(month, timezone)
    observed = stats.days_observed(month, now, timezone)
    params: dict[str, Any] = {
        "month": month,
        "next_month": stats.next_month(month),
        "tz": timezone,
        "start": start,
        "end": end,
        "lookback": start - dt.timedelta(days=stats.REPEAT_WINDOW_DAYS),
        "repeat_window": dt.timedelta(days=stats.REPEAT_WINDOW_DAYS),
        "min_days": stats.min_covered_days(observed) if observed else 1,
    }
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_NAMESPACE, month.year * 12 + month.month))
        # A city month groups a few hundred thousand rows: let them hash in memory instead of spilling.
        conn.execute("SET LOCAL work_mem = '256MB'")
        if unless_refreshed_since is not None:
            done = read_state(conn, month)
            if done is not None and done.site_timezone == timezone and done.refreshed_at >= unless_refreshed_since:
                return done
        for table in ("report_months", *_TABLES):
            conn.execute(sql.SQL("DELETE FROM {} WHERE month = %s").format(sql.Identifier(table)), (month,))
        conn.execute(
            "INSERT INTO report_months (month, site_timezone, refreshed_at, days_in_month, days_observed, complete)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (month, timezone, now, stats.days_in_month(month), observed, now >= end + COMPLETE_AFTER),
        )
        _refresh_fleet(conn, params, observed)
        _refresh_incidents(conn, params)
        _refresh_scopes(conn, params)
        # The month's rows were just replaced wholesale: without fresh statistics the planner
        # reads a city month with plans made for an empty table (a fraction of the refresh time).
        for table in _TABLES:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    state = read_state(conn, month)
    assert state is not None
    log.info("refreshed report month %s (%d days observed)", month, observed)
    return state


def _refresh_fleet(conn: psycopg.Connection[Any], params: dict[str, Any], observed: int) -> None:
    activity = _ACTIVITY if observed else "SELECT NULL::text AS registration_code, 0::bigint AS days"
    band = _AGE_BAND.format(installed="e.installed_on")
    conn.execute(
        sql.SQL(
            f"""
            INSERT INTO report_fleet
                (month, district, maintainer_id, use_unit_id, age_band, elevators, covered, active_days)
            SELECT %(month)s, e.district, e.maintainer_id, e.use_unit_id, {band},
                   count(*), count(*) FILTER (WHERE coalesce(a.days, 0) >= %(min_days)s),
                   coalesce(sum(a.days), 0)
            FROM elevators e LEFT JOIN ({activity}) a USING (registration_code)
            WHERE e.installed_on < %(next_month)s
            GROUP BY 1, 2, 3, 4, 5"""
        ),
        params,
    )


def _refresh_incidents(conn: psycopg.Connection[Any], params: dict[str, Any]) -> None:
    band = _AGE_BAND.format(installed="e.installed_on")
    conn.execute(
        sql.SQL(
            f"""
            CREATE TEMP TABLE report_facts ON COMMIT DROP AS
            WITH real_faults AS (
                SELECT id, detected_at - lag(detected_at) OVER (
                           PARTITION BY registration_code, code ORDER BY detected_at, id) AS gap
                FROM incidents
                WHERE detected_at >= %(lookback)s AND detected_at < %(end)s
                  AND status <> 'false_alarm' AND registration_code IS NOT NULL
            )
            -- The snapshot taken at detection wins; the registry fills it for incidents without one.
            SELECT i.id, i.registration_code, i.code, coalesce(i.district, e.district) AS district,
                   coalesce(i.maintainer_id, e.maintainer_id) AS maintainer_id,
                   coalesce(i.use_unit_id, e.use_unit_id) AS use_unit_id,
                   {band} AS age_band,
                   i.status = 'false_alarm' AS false_alarm,
                   i.code = 'trapped_passenger' AND i.status <> 'false_alarm' AS entrapment,
                   coalesce(r.gap <= %(repeat_window)s, false) AS repeat,
                   i.dispatch_deadline_missed, i.arrival_deadline_missed,
                   extract(epoch FROM i.acknowledged_at - i.detected_at)::double precision AS acknowledge_s,
                   extract(epoch FROM i.dispatched_at - i.detected_at)::double precision AS dispatch_s,
                   extract(epoch FROM i.arrived_at - i.detected_at)::double precision AS arrive_s,
                   extract(epoch FROM i.arrival_deadline_at - i.detected_at)::double precision AS arrival_target_s,
                   extract(epoch FROM i.released_at - i.detected_at)::double precision AS release_s
            FROM incidents i
            LEFT JOIN real_faults r USING (id)
            LEFT JOIN elevators e ON e.registration_code = i.registration_code
            WHERE i.detected_at >= %(start)s AND i.detected_at < %(end)s"""
        ),
        params,
    )
    conn.execute("ANALYZE report_facts")
    conn.execute(
        """
        INSERT INTO report_incident_counts
            (month, district, maintainer_id, use_unit_id, age_band, code, incidents, entrapments, false_alarms,
             dispatch_missed, arrival_missed, repeats)
        SELECT %(month)s, district, maintainer_id, use_unit_id, age_band, code, count(*),
               count(*) FILTER (WHERE entrapment), count(*) FILTER (WHERE false_alarm),
               count(*) FILTER (WHERE dispatch_deadline_missed), count(*) FILTER (WHERE arrival_deadline_missed),
               count(*) FILTER (WHERE repeat)
        FROM report_facts GROUP BY 2, 3, 4, 5, 6""",
        params,
    )
    conn.execute(
        """
        INSERT INTO report_entrapments
            (month, incident_id, district, maintainer_id, use_unit_id, acknowledge_s, dispatch_s, arrive_s, release_s,
             arrival_target_s)
        SELECT %(month)s, id, district, maintainer_id, use_unit_id, acknowledge_s, dispatch_s, arrive_s, release_s,
               arrival_target_s
        FROM report_facts WHERE entrapment""",
        params,
    )
    conn.execute(
        """
        INSERT INTO report_elevator_incidents
            (month, registration_code, district, maintainer_id, use_unit_id, incidents, entrapments, repeats)
        SELECT %(month)s, registration_code, min(district), min(maintainer_id), min(use_unit_id),
               count(*), count(*) FILTER (WHERE entrapment), count(*) FILTER (WHERE repeat)
        FROM report_facts WHERE registration_code IS NOT NULL AND NOT false_alarm
        GROUP BY registration_code""",
        params,
    )
    conn.execute(
        """
        INSERT INTO report_elevator_scope_incidents
            (month, registration_code, district, maintainer_id, use_unit_id, incidents, entrapments, repeats)
        SELECT %(month)s, registration_code, district, maintainer_id, use_unit_id,
               count(*), count(*) FILTER (WHERE entrapment), count(*) FILTER (WHERE repeat)
        FROM report_facts WHERE registration_code IS NOT NULL AND NOT false_alarm
        GROUP BY registration_code, district, maintainer_id, use_unit_id""",
        params,
    )
    # ON COMMIT DROP does not fire when the caller's transaction wraps ours (a savepoint).
    conn.execute("DROP TABLE report_facts")


# One row per scope of the city and of each district, and firm (and age band, code): what every
# report of a city, district or firm scope sums (migration 052). A NULL district (incidents of
# unregistered terminals) belongs to the city only.
_SCOPE = """CASE WHEN GROUPING(district) = 1 THEN 'city' ELSE 'district:' || district END"""
_SCOPE_SETS = "GROUPING SETS ((), (district))"
_NOT_A_SCOPE = "GROUPING(district) = 0 AND district IS NULL"


def _refresh_scopes(conn: psycopg.Connection[Any], params: dict[str, Any]) -> None:
    conn.execute(
        sql.SQL(f"""
        INSERT INTO report_scope_fleet
            (month, scope, maintainer_id, age_band, elevators, covered, active_days)
        SELECT %(month)s, {_SCOPE}, maintainer_id, age_band, sum(elevators), sum(covered), sum(active_days)
        FROM report_fleet WHERE month = %(month)s
        GROUP BY maintainer_id, age_band, {_SCOPE_SETS}
        HAVING NOT ({_NOT_A_SCOPE})"""),
        params,
    )
    conn.execute(
        sql.SQL(f"""
        INSERT INTO report_scope_counts
            (month, scope, maintainer_id, age_band, code, incidents, entrapments, false_alarms,
             dispatch_missed, arrival_missed, repeats)
        SELECT %(month)s, {_SCOPE}, maintainer_id, age_band, code, sum(incidents), sum(entrapments),
               sum(false_alarms), sum(dispatch_missed), sum(arrival_missed), sum(repeats)
        FROM report_incident_counts WHERE month = %(month)s
        GROUP BY maintainer_id, age_band, code, {_SCOPE_SETS}
        HAVING NOT ({_NOT_A_SCOPE})"""),
        params,
    )


def ensure_month(
    conn: psycopg.Connection[Any],
    month: dt.date,
    timezone: str,
    now: dt.datetime,
    max_age: dt.timedelta = DEFAULT_MAX_AGE,
) -> MonthState:
    """The month's rollup, refreshed first if missing, stale (not complete and older than max_age)
    or computed for another site time zone."""
    state = read_state(conn, month)
    if state is not None and state.site_timezone == timezone and (state.complete or now - state.refreshed_at < max_age):
        return state
    return refresh_month(conn, month, timezone, now, unless_refreshed_since=now - max_age)


def refresh_due(
    conn: psycopg.Connection[Any], timezone: str, now: dt.datetime, months_back: int = 13
) -> list[MonthState]:
    """What ``liftwatch report refresh`` does: recompute the current month and every month of the
    last ``months_back`` that is not final yet (or has incidents and was never computed)."""
    current = now.astimezone(ZoneInfo(timezone)).date().replace(day=1)
    refreshed = []
    for back in range(months_back, -1, -1):
        month = stats.previous_month(current, back)
        state = read_state(conn, month)
        if state is not None and state.complete and state.site_timezone == timezone:
            continue
        if state is None and back:
            start, end = stats.month_bounds(month, timezone)
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM incidents WHERE detected_at >= %s AND detected_at < %s)", (start, end)
            ).fetchone()
            if row is None or not (row["exists"] if isinstance(row, dict) else row[0]):
                continue
        refreshed.append(refresh_month(conn, month, timezone, now))
    return refreshed
