"""The SQL conditions built from the lifecycle let PostgreSQL use the partial indexes written with
the same text (core/migrations): a condition that only means the same would not."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from liftwatch.alerts import lifecycle

QUERIES = [
    (f"SELECT id FROM incidents i WHERE i.{lifecycle.OPEN_SQL} ORDER BY id DESC LIMIT 50", "incidents_open_id"),
    (f"SELECT id FROM incidents WHERE {lifecycle.FINAL_SQL} AND NOT deadlines_settled", "incidents_unsettled"),
]


def _indexes(plan: dict[str, Any]) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= _indexes(child)
    return found


@pytest.mark.parametrize(("query", "index"), QUERIES)
def test_lifecycle_conditions_use_the_partial_indexes(database_url: str, query: str, index: str) -> None:
    with psycopg.connect(database_url) as conn:
        # Many settled, closed incidents and a few open ones: the partial index is the cheap path.
        conn.execute(
            "INSERT INTO incidents (terminal_id, code, severity, status, detected_at, opened_at, last_seen_at,"
            " closed_at, deadlines_settled)"
            " SELECT 'T' || g, 'door_held_open', 'minor', CASE WHEN g % 500 = 0 THEN 'detected' ELSE 'closed' END,"
            " now(), now(), now(), CASE WHEN g % 500 = 0 THEN NULL ELSE now() END, g % 500 <> 1"
            " FROM generate_series(1, 5000) AS g"
        )
        conn.execute("ANALYZE incidents")
        row = conn.execute(f"EXPLAIN (FORMAT JSON) {query}").fetchone()
        assert row is not None
        plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
        assert index in _indexes(plan[0]["Plan"]), plan
