"""The city map's data: elevators clustered on a grid over a bounding box, open incidents as points.

Clustering is done in the database (one ``GROUP BY`` over grid cells), so the browser draws a few
hundred cells whether the city has 3,000 or 300,000 elevators; a cell holding one elevator
carries its registration code so the map can open it. Coordinates come from the registry
(elevators without them are counted apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from liftwatch.alerts.lifecycle import OPEN_SQL
from psycopg.rows import dict_row

MAX_CELLS = 80
"""Grid cells along the longer side of the box at most (a cell is then ~10 px on a wide screen)."""
MAX_INCIDENT_POINTS = 2_000


@dataclass(frozen=True, slots=True)
class Box:
    west: float
    south: float
    east: float
    north: float

    def valid(self) -> bool:
        return -180 <= self.west < self.east <= 180 and -90 <= self.south < self.north <= 90


def clusters(
    conn: psycopg.Connection[Any], box: Box, cells: int, maintainer_id: int | None, today: Any
) -> dict[str, Any]:
    """Grid cells of ``box`` with their elevators, open incidents and overdue inspections."""
    dx = (box.east - box.west) / cells
    dy = (box.north - box.south) / cells
    firm = "AND e.maintainer_id = %(firm)s" if maintainer_id is not None else ""
    params = {"w": box.west, "s": box.south, "e": box.east, "n": box.north, "dx": dx, "dy": dy,
              "firm": maintainer_id, "today": today, "points": MAX_INCIDENT_POINTS}  # fmt: skip
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"""
            WITH open_incidents AS (
                SELECT registration_code, count(*) AS n, bool_or(code = 'trapped_passenger') AS trapped
                FROM incidents WHERE {OPEN_SQL}
                  AND registration_code IS NOT NULL GROUP BY 1
            )
            SELECT floor((e.longitude - %(w)s) / %(dx)s)::int AS gx, floor((e.latitude - %(s)s) / %(dy)s)::int AS gy,
                   count(*) AS elevators, avg(e.longitude) AS lon, avg(e.latitude) AS lat,
                   coalesce(sum(o.n), 0)::int AS incidents, bool_or(coalesce(o.trapped, false)) AS trapped,
                   count(*) FILTER (WHERE e.next_inspection_due < %(today)s) AS overdue,
                   CASE WHEN count(*) = 1 THEN min(e.registration_code) END AS registration_code
            FROM elevators e LEFT JOIN open_incidents o USING (registration_code)
            WHERE e.longitude >= %(w)s AND e.longitude < %(e)s AND e.latitude >= %(s)s AND e.latitude < %(n)s {firm}
            GROUP BY 1, 2""",
            params,
        ).fetchall()
        incidents = cur.execute(
            f"""
            SELECT i.id, i.code, i.severity, i.status, i.registration_code, e.longitude AS lon, e.latitude AS lat,
                   e.address
            FROM incidents i JOIN elevators e USING (registration_code)
            WHERE i.{OPEN_SQL} AND e.longitude IS NOT NULL
              AND e.longitude >= %(w)s AND e.longitude < %(e)s AND e.latitude >= %(s)s AND e.latitude < %(n)s {firm}
            ORDER BY i.severity = 'critical' DESC, i.id DESC LIMIT %(points)s""",
            params,
        ).fetchall()
        unplaced = cur.execute(
            f"SELECT count(*) AS n FROM elevators e WHERE (e.longitude IS NULL OR e.latitude IS NULL) {firm}", params
        ).fetchone()
    return {
        "box": [box.west, box.south, box.east, box.north],
        "cells": cells,
        "clusters": [
            {k: r[k] for k in ("lon", "lat", "elevators", "incidents", "trapped", "overdue", "registration_code")}
            for r in rows
        ],
        "elevators": sum(int(r["elevators"]) for r in rows),
        "incidents": incidents,
        "unplaced": int(unplaced["n"]) if unplaced else 0,
    }
