"""A fleet's elevators with their live state, and one elevator's usage: the firms' "My fleet" and
every role's elevator page.

``GET /api/v1/fleet``: elevators (a firm: its own) with terminal state, latest sample, open
incidents, a maintenance window in force (migration 081), out of service, inspection due date
and recent repeat faults, searchable by rescue code,
registration code or address. ``GET /api/v1/fleet/{registration_code}/usage``: trips and door
cycles per day and the share of time in normal service over the last days. Another firm's
elevator answers 404, as everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from liftwatch.alerts.lifecycle import OPEN_SQL
from liftwatch.api import access
from liftwatch.api.app import state
from liftwatch.api.deps import Reader
from liftwatch.api.errors import not_found
from liftwatch.api.models import RegistrationCode
from liftwatch.db import like_escape
from liftwatch.reports import stats
from psycopg.rows import dict_row

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"])

ONLINE_WITHIN = timedelta(minutes=5)
"""A terminal seen this recently is online (terminals report every few seconds and keep alive)."""
LATEST_WITHIN = timedelta(days=1)
"""The latest sample is looked for this far back (bounds the partitions a lookup touches)."""
REPEAT_DAYS = 90
GAP_CAP_S = 60.0
"""A sample stands for the time until the next one, at most this long: a silent terminal's gap is
not counted as time in any mode (it is time not observed)."""
MAX_USAGE_DAYS = 90


@router.get("", summary="Elevators with their live state")
async def fleet(
    request: Request,
    principal: Reader,
    q: Annotated[str | None, Query(max_length=200, description="Rescue code, registration code or address.")] = None,
    district: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """Elevators ordered by open incidents, then overdue inspection, then registration code."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    access.restrict(principal, "e.maintainer_id", where, params)
    if q:
        where.append("(e.rescue_code = %s OR e.registration_code LIKE %s OR e.address ILIKE %s)")
        params += [q.strip(), like_escape(q.strip().upper()) + "%", "%" + like_escape(q.strip()) + "%"]
    if district:
        where.append("e.district = %s")
        params.append(district)
    now = datetime.now(UTC)
    own_samples, own_params = access.since_handover(principal, "e.registration_code")
    # The page is chosen first (open incidents per elevator are few: one grouped scan), and only its
    # rows look up their latest sample, repeats and windows: a 300,000-elevator fleet sorts once.
    query = f"""
        WITH open_counts AS (
            SELECT registration_code, count(*) AS n FROM incidents
            WHERE {OPEN_SQL} AND registration_code IS NOT NULL
            GROUP BY 1
        ), page AS (
            SELECT e.registration_code, e.rescue_code, e.address, e.district, e.maintainer_id,
                   e.next_inspection_due, e.installed_on, coalesce(o.n, 0) AS open_incidents,
                   count(*) OVER () AS total
            FROM elevators e LEFT JOIN open_counts o USING (registration_code)
            WHERE {" AND ".join(where)}
            ORDER BY open_incidents DESC, e.next_inspection_due NULLS LAST, e.registration_code
            LIMIT %s OFFSET %s
        )
        SELECT e.*, f.name AS maintainer, t.terminal_id, t.last_seen_at,
               coalesce(t.last_seen_at >= %s, false) AS online,
               s.ts AS sample_at, s.mode, s.floor,
               (SELECT count(*) FROM (
                    SELECT detected_at - lag(detected_at) OVER (PARTITION BY code ORDER BY detected_at, id) AS gap,
                           detected_at
                    FROM incidents i WHERE i.registration_code = e.registration_code
                      AND i.status <> 'false_alarm' AND i.detected_at >= %s) r
                WHERE r.gap <= %s AND r.detected_at >= %s) AS repeats,
               (SELECT max(w.ends_at) FROM maintenance_windows w WHERE w.registration_code = e.registration_code
                  AND now() >= w.starts_at AND now() < w.ends_at AND w.ended_at IS NULL) AS maintenance_until,
               EXISTS (SELECT 1 FROM out_of_service x WHERE x.registration_code = e.registration_code
                  AND x.ended_at IS NULL) AS out_of_service
        FROM page e
        JOIN maintenance_firms f ON f.id = e.maintainer_id
        LEFT JOIN terminals t ON t.registration_code = e.registration_code
        LEFT JOIN LATERAL (
            SELECT ts, mode, floor FROM telemetry
            WHERE terminal_id = t.terminal_id AND ts >= %s AND {own_samples} ORDER BY ts DESC LIMIT 1) s ON true
        ORDER BY e.open_incidents DESC, e.next_inspection_due NULLS LAST, e.registration_code"""
    since = now - timedelta(days=REPEAT_DAYS)
    window = timedelta(days=stats.REPEAT_WINDOW_DAYS)
    async with state(request).pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            query,
            [
                *params,
                limit,
                offset,
                now - ONLINE_WITHIN,
                since - window,
                window,
                since,
                now - LATEST_WITHIN,
                *own_params,
            ],
        )
        rows = await cur.fetchall()
    total = int(rows[0]["total"]) if rows else 0
    for row in rows:
        del row["total"]
    return {"total": total, "items": rows}


@router.get("/{registration_code}/usage", summary="Trips, door cycles and availability per day")
async def usage(
    request: Request,
    principal: Reader,
    registration_code: Annotated[RegistrationCode, Path()],
    days: Annotated[int, Query(ge=1, le=MAX_USAGE_DAYS)] = 30,
) -> dict[str, Any]:
    """Per site-local day of the last ``days``: trips (a start from standstill), door cycles (the
    door leaving "closed"), seconds observed and seconds in normal mode; and their totals."""
    where, params = ["e.registration_code = %s"], [registration_code]
    access.restrict(principal, "e.maintainer_id", where, params)
    api = state(request)
    zone = api.settings.site_timezone
    async with api.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT t.terminal_id FROM elevators e LEFT JOIN terminals t ON t.registration_code = e.registration_code"
            f" WHERE {' AND '.join(where)}",
            params,
        )
        elevator = await cur.fetchone()
        if elevator is None:
            raise not_found("elevator_not_found")
        # Whole site-local days: today and the days - 1 before it.
        now = datetime.now(UTC)
        today = now.astimezone(ZoneInfo(zone)).date()
        since = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), ZoneInfo(zone))
        rows: list[dict[str, Any]] = []
        if elevator["terminal_id"] is not None:
            # A firm counts only its own time with the elevator (not the previous firm's).
            own_samples, own_params = access.since_handover(principal, "%(elevator)s", "%(firm)s")
            await cur.execute(
                f"""
                WITH s AS (
                    SELECT ts, mode, direction, door,
                           lag(direction) OVER w AS prev_direction, lag(door) OVER w AS prev_door,
                           -- least() would turn the last sample's NULL into the cap: it stands for nothing.
                           CASE WHEN lead(ts) OVER w IS NOT NULL
                                THEN least(extract(epoch FROM lead(ts) OVER w - ts), %(cap)s) ELSE 0 END AS seconds
                    FROM telemetry WHERE terminal_id = %(terminal)s AND ts >= %(since)s AND {own_samples}
                    WINDOW w AS (ORDER BY ts, seq, idx)
                )
                SELECT (ts AT TIME ZONE %(zone)s)::date AS day,
                       count(*) FILTER (WHERE direction <> 'stop' AND prev_direction = 'stop') AS trips,
                       count(*) FILTER (WHERE door <> 'closed' AND prev_door = 'closed') AS door_cycles,
                       coalesce(sum(seconds), 0)::float AS observed_s,
                       coalesce(sum(seconds) FILTER (WHERE mode = 'normal'), 0)::float AS normal_s
                FROM s GROUP BY 1 ORDER BY 1""",
                {
                    "cap": GAP_CAP_S,
                    "terminal": elevator["terminal_id"],
                    "since": since,
                    "zone": zone,
                    "elevator": registration_code,
                    "firm": own_params[0] if own_params else None,
                },
            )
            rows = await cur.fetchall()
    found = {row["day"]: row for row in rows}
    per_day = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        row = found.get(day, {"trips": 0, "door_cycles": 0, "observed_s": 0.0, "normal_s": 0.0})
        per_day.append(
            {"day": day.isoformat(), **{k: row[k] for k in ("trips", "door_cycles", "observed_s", "normal_s")}}
        )
    observed = sum(d["observed_s"] for d in per_day)
    normal = sum(d["normal_s"] for d in per_day)
    return {
        "registration_code": registration_code,
        "terminal_id": elevator["terminal_id"],
        "days": days,
        "trips": sum(int(d["trips"]) for d in per_day),
        "door_cycles": sum(int(d["door_cycles"]) for d in per_day),
        "availability": normal / observed if observed else None,
        "observed_share": observed / (now - since).total_seconds(),
        "per_day": per_day,
    }
