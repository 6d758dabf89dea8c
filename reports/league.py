"""The maintenance firm league: each firm's record over a rolling window of months, and the flags.

Read from the monthly rollup (the same rows and definitions as the monthly report, city scope),
so a firm's league figures are the sum of its monthly figures. :func:`flags` is the pure rule
that marks a firm for the regulator's blacklist review; :func:`evidence` lists the incidents
behind a firm's figures, one click from the league table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import psycopg
from liftwatch.config import LeagueThresholds
from liftwatch.reports import rollup, stats
from psycopg.rows import dict_row

WINDOWS = (3, 6, 12)
"""Rolling windows, in months, the league offers."""


@dataclass(frozen=True, slots=True)
class FirmRecord:
    """One firm over the window (counts summed over its months)."""

    maintainer_id: int
    name: str
    elevators: int
    """Elevators maintained in the window's last month."""
    elevator_months: int
    """Sum of the monthly fleets: the denominator of the monthly rates."""
    incidents: int
    entrapments: int
    dispatch_missed: int
    arrival_missed: int
    repeats: int
    false_alarms: int
    dispatch_missed_share: float | None
    arrival_missed_share: float | None
    repeat_share: float | None
    false_alarm_share: float | None
    entrapments_per_10k: float | None
    """Entrapments per 10,000 elevators per month (per 10,000 elevator-months)."""
    flags: list[str] = field(default_factory=list)
    """Thresholds crossed (names of :class:`LeagueThresholds` fields); empty: not flagged."""


@dataclass(frozen=True, slots=True)
class League:
    first_month: str
    last_month: str
    months: int
    thresholds: dict[str, float]
    firms: list[FirmRecord]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def flags(record: FirmRecord, bounds: LeagueThresholds) -> list[str]:
    """The thresholds ``record`` crosses (strictly above; shares only with enough cases)."""
    crossed = []
    if record.entrapments >= bounds.min_entrapments:
        for name in ("dispatch_missed_share", "arrival_missed_share"):
            value = getattr(record, name)
            if value is not None and value > getattr(bounds, name):
                crossed.append(name)
    if record.incidents >= bounds.min_incidents:
        for name in ("repeat_share", "false_alarm_share"):
            value = getattr(record, name)
            if value is not None and value > getattr(bounds, name):
                crossed.append(name)
    if record.entrapments_per_10k is not None and record.entrapments_per_10k > bounds.entrapments_per_10k:
        crossed.append("entrapments_per_10k")
    return crossed


def record(row: dict[str, Any], bounds: LeagueThresholds) -> FirmRecord:
    """A firm's record from its summed counts, with its flags."""
    incidents, entrapments = int(row["incidents"]), int(row["entrapments"])
    elevator_months = int(row["elevator_months"])
    plain = FirmRecord(
        maintainer_id=int(row["maintainer_id"]),
        name=row["name"],
        elevators=int(row["elevators"]),
        elevator_months=elevator_months,
        incidents=incidents,
        entrapments=entrapments,
        dispatch_missed=int(row["dispatch_missed"]),
        arrival_missed=int(row["arrival_missed"]),
        repeats=int(row["repeats"]),
        false_alarms=int(row["false_alarms"]),
        dispatch_missed_share=stats.share(int(row["dispatch_missed"]), entrapments),
        arrival_missed_share=stats.share(int(row["arrival_missed"]), entrapments),
        repeat_share=stats.share(int(row["repeats"]), incidents),
        false_alarm_share=stats.share(int(row["false_alarms"]), incidents),
        entrapments_per_10k=stats.per_10k(entrapments, elevator_months),
    )
    return replace(plain, flags=flags(plain, bounds))


def league(
    conn: psycopg.Connection[Any],
    last: dt.date,
    months: int,
    bounds: LeagueThresholds,
    timezone: str,
    now: dt.datetime,
    *,
    maintainer_id: int | None = None,
) -> League:
    """Every firm's record over the ``months`` months ending with ``last`` (one firm's when given)."""
    first = stats.previous_month(last, months - 1)
    for back in range(months - 1, -1, -1):
        rollup.ensure_month(conn, stats.previous_month(last, back), timezone, now)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """
            WITH fleet AS (
                SELECT maintainer_id, sum(elevators)::bigint AS elevator_months,
                       sum(elevators) FILTER (WHERE month = %(last)s)::bigint AS elevators
                FROM report_scope_fleet
                WHERE scope = 'city' AND month BETWEEN %(first)s AND %(last)s GROUP BY 1
            ), counts AS (
                SELECT maintainer_id, sum(incidents)::bigint AS incidents, sum(entrapments)::bigint AS entrapments,
                       sum(dispatch_missed)::bigint AS dispatch_missed, sum(arrival_missed)::bigint AS arrival_missed,
                       sum(repeats)::bigint AS repeats, sum(false_alarms)::bigint AS false_alarms
                FROM report_scope_counts
                WHERE scope = 'city' AND month BETWEEN %(first)s AND %(last)s AND maintainer_id IS NOT NULL
                GROUP BY 1
            )
            SELECT f.id AS maintainer_id, f.name, coalesce(fl.elevators, 0) AS elevators,
                   coalesce(fl.elevator_months, 0) AS elevator_months,
                   coalesce(c.incidents, 0) AS incidents, coalesce(c.entrapments, 0) AS entrapments,
                   coalesce(c.dispatch_missed, 0) AS dispatch_missed, coalesce(c.arrival_missed, 0) AS arrival_missed,
                   coalesce(c.repeats, 0) AS repeats, coalesce(c.false_alarms, 0) AS false_alarms
            FROM fleet fl FULL JOIN counts c USING (maintainer_id)
            JOIN maintenance_firms f ON f.id = coalesce(fl.maintainer_id, c.maintainer_id)
            WHERE %(firm)s::bigint IS NULL OR f.id = %(firm)s::bigint
            ORDER BY f.name""",
            {"first": first, "last": last, "firm": maintainer_id},
        ).fetchall()
    firms = [record(r, bounds) for r in rows]
    # Flagged firms first, then the most entrapments per 10,000: the order a review reads them in.
    firms.sort(key=lambda f: (not f.flags, -(f.entrapments_per_10k or 0.0), f.name))
    return League(f"{first:%Y-%m}", f"{last:%Y-%m}", months, bounds.model_dump(), firms)


def evidence(
    conn: psycopg.Connection[Any], maintainer_id: int, last: dt.date, months: int, timezone: str
) -> list[dict[str, Any]]:
    """The firm's incidents of the window that count against it, each with its reasons.

    Reasons: ``dispatch_missed``, ``arrival_missed``, ``repeat`` (same elevator and code within
    30 days before, false alarms ignored: the rollup's rule), ``false_alarm``.
    """
    first = stats.previous_month(last, months - 1)
    start, _ = stats.month_bounds(first, timezone)
    _, end = stats.month_bounds(last, timezone)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            WITH real_faults AS (
                SELECT id, detected_at - lag(detected_at) OVER (
                           PARTITION BY registration_code, code ORDER BY detected_at, id) AS gap
                FROM incidents
                WHERE detected_at >= %(lookback)s AND detected_at < %(end)s
                  AND status <> 'false_alarm' AND registration_code IS NOT NULL
            ), facts AS (
                SELECT i.id, i.registration_code, i.code, i.status, i.detected_at,
                       coalesce(i.district, e.district) AS district,
                       array_remove(ARRAY[
                           CASE WHEN i.dispatch_deadline_missed THEN 'dispatch_missed' END,
                           CASE WHEN i.arrival_deadline_missed THEN 'arrival_missed' END,
                           CASE WHEN r.gap <= %(window)s THEN 'repeat' END,
                           CASE WHEN i.status = 'false_alarm' THEN 'false_alarm' END], NULL) AS reasons
                FROM incidents i
                LEFT JOIN real_faults r USING (id)
                LEFT JOIN elevators e ON e.registration_code = i.registration_code
                WHERE i.detected_at >= %(start)s AND i.detected_at < %(end)s
                  AND coalesce(i.maintainer_id, e.maintainer_id) = %(firm)s
            )
            SELECT * FROM facts WHERE cardinality(reasons) > 0 ORDER BY detected_at DESC, id DESC LIMIT 1000""",
            {
                "start": start,
                "end": end,
                "lookback": start - dt.timedelta(days=stats.REPEAT_WINDOW_DAYS),
                "window": dt.timedelta(days=stats.REPEAT_WINDOW_DAYS),
                "firm": maintainer_id,
            },
        ).fetchall()
