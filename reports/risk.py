"""Fleet risk lists and the per-elevator risk score: which elevators a regulator inspects next.

Five lists (``LISTS``), each a condition on an elevator's registry record, its terminal and its
recent incidents; a score adding points per condition (:data:`WEIGHTS`, :func:`score`), computed
in SQL from the same constants so a ranking over 300,000 elevators is one query. docs/statistics.md
("Fleet risk") states the definitions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from liftwatch.reports import stats
from psycopg import sql
from psycopg.rows import dict_row

RiskList = Literal["overdue", "uninsured", "old", "repeat", "offline"]
LISTS: tuple[RiskList, ...] = ("overdue", "uninsured", "old", "repeat", "offline")
OLD_YEARS = 15
"""In service this many years or more: the age of a safety assessment."""
REPEAT_LOOKBACK_DAYS = 90
"""Repeat faults detected in this many days make an elevator a repeat-fault elevator."""
OFFLINE_AFTER = dt.timedelta(hours=24)
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class Weights:
    """Points of the risk score; the sum over the conditions an elevator meets."""

    overdue: int = 30
    overdue_per_month: int = 2
    """Plus this much per whole 30 days past due ..."""
    overdue_extra_max: int = 20
    """... up to this much."""
    uninsured: int = 15
    age_10: int = 10
    """10 to 15 years in service."""
    age_15: int = 20
    """15 years or more ..."""
    age_per_year_over_15: int = 1
    age_extra_max: int = 10
    per_repeat: int = 10
    repeat_max: int = 30
    offline: int = 15


WEIGHTS = Weights()


@dataclass(frozen=True, slots=True)
class Facts:
    """What the score reads of one elevator."""

    days_overdue: int | None
    """Days past ``next_inspection_due`` (None or <= 0: not overdue)."""
    insured: bool | None
    age_years: int
    repeats: int
    offline: bool


def score(facts: Facts, weights: Weights = WEIGHTS) -> int:
    """The risk score of one elevator (the SQL in :func:`_facts_query` computes the same)."""
    points = 0
    if facts.days_overdue is not None and facts.days_overdue > 0:
        points += weights.overdue + min(
            weights.overdue_extra_max, weights.overdue_per_month * (facts.days_overdue // 30)
        )
    if facts.insured is not True:
        points += weights.uninsured
    if facts.age_years >= OLD_YEARS:
        points += weights.age_15 + min(weights.age_extra_max, weights.age_per_year_over_15 * (facts.age_years - 15))
    elif facts.age_years >= 10:
        points += weights.age_10
    points += min(weights.repeat_max, weights.per_repeat * facts.repeats)
    if facts.offline:
        points += weights.offline
    return points


def _score_sql(w: Weights) -> sql.Composable:
    return sql.SQL(
        "(CASE WHEN days_overdue > 0 THEN {o} + least({om}, {opm} * (days_overdue / 30)) ELSE 0 END"
        " + CASE WHEN insured IS NOT TRUE THEN {u} ELSE 0 END"
        " + CASE WHEN age_years >= {old} THEN {a15} + least({am}, {apy} * (age_years - {old}))"
        " WHEN age_years >= 10 THEN {a10} ELSE 0 END"
        " + least({rm}, {pr} * repeats)"
        " + CASE WHEN offline THEN {off} ELSE 0 END)"
    ).format(
        o=w.overdue,
        om=w.overdue_extra_max,
        opm=w.overdue_per_month,
        u=w.uninsured,
        old=OLD_YEARS,
        a15=w.age_15,
        am=w.age_extra_max,
        apy=w.age_per_year_over_15,
        a10=w.age_10,
        rm=w.repeat_max,
        pr=w.per_repeat,
        off=w.offline,
    )


_CONDITIONS: dict[RiskList, str] = {
    "overdue": "days_overdue > 0",
    "uninsured": "insured IS NOT TRUE",
    "old": f"age_years >= {OLD_YEARS}",
    "repeat": "repeats > 0",
    "offline": "offline",
}


@dataclass(frozen=True, slots=True)
class Filter:
    """Which elevators: a district, a firm (always set for a maintenance firm), or all."""

    district: str | None = None
    maintainer_id: int | None = None


def _facts_query(where: Filter) -> tuple[sql.Composed, dict[str, Any]]:
    clauses = [sql.SQL("TRUE")]
    params: dict[str, Any] = {}
    if where.district is not None:
        clauses.append(sql.SQL("e.district = %(district)s"))
        params["district"] = where.district
    if where.maintainer_id is not None:
        clauses.append(sql.SQL("e.maintainer_id = %(maintainer_id)s"))
        params["maintainer_id"] = where.maintainer_id
    query = sql.SQL(
        """
        WITH repeats AS (
            SELECT registration_code, count(*) AS repeats FROM (
                SELECT registration_code, detected_at, detected_at - lag(detected_at) OVER (
                           PARTITION BY registration_code, code ORDER BY detected_at, id) AS gap
                FROM incidents
                WHERE detected_at >= %(since)s - %(repeat_window)s AND status <> 'false_alarm'
                  AND registration_code IS NOT NULL
            ) r
            WHERE gap <= %(repeat_window)s AND detected_at >= %(since)s GROUP BY 1
        ), facts AS (
            SELECT e.registration_code, e.rescue_code, e.address, e.district, e.maintainer_id,
                   f.name AS maintainer, e.installed_on, e.next_inspection_due, e.insured,
                   t.terminal_id, t.last_seen_at,
                   (%(today)s::date - e.next_inspection_due) AS days_overdue,
                   extract(year FROM age(%(today)s::date, e.installed_on))::int AS age_years,
                   coalesce(r.repeats, 0)::int AS repeats,
                   t.terminal_id IS NOT NULL AND (t.last_seen_at IS NULL OR t.last_seen_at < %(offline_before)s)
                       AS offline
            FROM elevators e
            JOIN maintenance_firms f ON f.id = e.maintainer_id
            LEFT JOIN terminals t ON t.registration_code = e.registration_code
            LEFT JOIN repeats r ON r.registration_code = e.registration_code
            WHERE {where}
        ), scored AS (
            SELECT *, {score} AS score FROM facts
        )"""
    ).format(where=sql.SQL(" AND ").join(clauses), score=_score_sql(WEIGHTS))
    return query, params


def _times(today: dt.date, now: dt.datetime) -> dict[str, Any]:
    return {
        "today": today,
        "since": now - dt.timedelta(days=REPEAT_LOOKBACK_DAYS),
        "repeat_window": dt.timedelta(days=stats.REPEAT_WINDOW_DAYS),
        "offline_before": now - OFFLINE_AFTER,
    }


def risk(
    conn: psycopg.Connection[Any],
    where: Filter,
    chosen: RiskList | None,
    today: dt.date,
    now: dt.datetime,
    *,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Counts of every list (total and per district) and one page of ``chosen`` (None: the
    "inspect next" ranking of every elevator with a score above 0), highest score first."""
    base, params = _facts_query(where)
    params |= _times(today, now)
    counts = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE {}) AS {}").format(sql.SQL(_CONDITIONS[name]), sql.Identifier(name))
        for name in LISTS
    )
    # The lists an elevator is on, from the same conditions as the counts.
    lists = sql.SQL("array_remove(ARRAY[{}]::text[], NULL)").format(
        sql.SQL(", ").join(
            sql.SQL("CASE WHEN {} THEN {} END").format(sql.SQL(_CONDITIONS[name]), sql.Literal(name)) for name in LISTS
        )
    )
    condition = sql.SQL(_CONDITIONS[chosen]) if chosen is not None else sql.SQL("score > 0")
    # One statement: the scored fleet (a CTE read twice, so computed once) gives both the counts per
    # district and the page, instead of scoring 300,000 elevators twice.
    query = base + sql.SQL(
        """
        SELECT (SELECT coalesce(json_agg(d ORDER BY d.district), '[]')
                FROM (SELECT district, count(*) AS elevators, {counts} FROM scored GROUP BY district) d) AS districts,
               (SELECT coalesce(json_agg(i ORDER BY i.score DESC, i.registration_code), '[]')
                FROM (SELECT *, {lists} AS lists, count(*) OVER () AS total FROM scored WHERE {condition}
                      ORDER BY score DESC, registration_code LIMIT %(limit)s OFFSET %(offset)s) i) AS items"""
    ).format(counts=counts, lists=lists, condition=condition)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, {**params, "limit": limit, "offset": offset}).fetchone()
    assert row is not None
    districts: list[dict[str, Any]] = row["districts"]
    items: list[dict[str, Any]] = row["items"]
    total = int(items[0]["total"]) if items else 0
    for item in items:
        del item["total"]
    return {
        "today": today.isoformat(),
        "list": chosen,
        "counts": {name: sum(int(d[name]) for d in districts) for name in LISTS},
        "elevators": sum(int(d["elevators"]) for d in districts),
        "districts": [{k: (int(v) if k != "district" else v) for k, v in d.items()} for d in districts],
        "total": total,
        "items": items,
    }
