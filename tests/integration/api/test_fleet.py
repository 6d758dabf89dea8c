"""GET /api/v1/fleet (live state, search) and /fleet/{code}/usage (trips, door cycles, availability)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.fixtures.api import RunningApi, World

pytestmark = pytest.mark.integration


def samples(conn: psycopg.Connection[Any], terminal: str, start: datetime, rows: list[tuple[str, str, str]]) -> None:
    """(mode, direction, door) every 10 s from ``start``."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO telemetry (terminal_id, ts, seq, idx, mode, floor, door_zone, direction, speed, door,"
            " occupied, safety_circuit, door_lock, alarm_button, power, load_pct, limit_up, limit_down, received_at)"
            " VALUES (%s, %s, %s, 0, %s, 3, true, %s, %s, %s, false, true, true, false, true, 0, false, false, now())",
            [
                (
                    terminal,
                    start + timedelta(seconds=10 * i),
                    i,
                    mode,
                    direction,
                    0.0 if direction == "stop" else 1.0,
                    door,
                )
                for i, (mode, direction, door) in enumerate(rows)
            ],
        )


def get(api: RunningApi, world: World, role: str, path: str, **params: Any) -> Any:
    return api.client.get(path, params=params, headers=world.headers(role))


def test_usage_counts_trips_door_cycles_and_time_in_normal_service(api_http: RunningApi, api_world: World) -> None:
    start = datetime.now(UTC) - timedelta(minutes=30)
    rows = [
        ("normal", "stop", "closed"),
        ("normal", "up", "closed"),  # trip 1
        ("normal", "up", "closed"),
        ("normal", "stop", "opening"),  # door cycle 1
        ("normal", "stop", "open"),
        ("normal", "stop", "closed"),
        ("normal", "down", "closed"),  # trip 2
        ("normal", "stop", "open"),  # door cycle 2
        ("maintenance", "stop", "closed"),
        ("maintenance", "stop", "closed"),
    ]
    with psycopg.connect(api_world.database_url, autocommit=True) as conn:
        samples(conn, api_world.terminals["a"], start, rows)
        # Two minutes of silence, then one more normal sample: the gap counts 60 s, not 120.
        samples(conn, api_world.terminals["a"], start + timedelta(seconds=90 + 120), [("normal", "up", "closed")] * 2)
    answer = get(api_http, api_world, "maintainer", f"/api/v1/fleet/{api_world.elevators['a']}/usage", days=7)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["per_day"]) == 7 and body["days"] == 7
    # 8 normal samples of 10 s; 2 maintenance, the second standing for the 60 s cap of the gap;
    # after the silence one normal sample of 10 s, and the last stands for nothing.
    assert (body["trips"], body["door_cycles"]) == (3, 2)  # the stop -> up after the silence is a third trip
    observed = 8 * 10 + 10 + 60 + 10
    assert sum(d["observed_s"] for d in body["per_day"]) == pytest.approx(observed)
    assert body["availability"] == pytest.approx((8 * 10 + 10) / observed)
    # Another firm's elevator: not found; a bad window: 422.
    other = get(api_http, api_world, "maintainer", f"/api/v1/fleet/{api_world.elevators['b']}/usage")
    assert (other.status_code, other.json()["error"]["code"]) == (404, "elevator_not_found")
    assert (
        get(api_http, api_world, "admin", f"/api/v1/fleet/{api_world.elevators['b']}/usage", days=91).status_code == 422
    )


def test_fleet_lists_live_state_and_a_firm_only_its_own(api_http: RunningApi, api_world: World) -> None:
    with psycopg.connect(api_world.database_url, autocommit=True) as conn:
        conn.execute("UPDATE terminals SET last_seen_at = now() WHERE terminal_id = %s", (api_world.terminals["a"],))
        samples(
            conn, api_world.terminals["a"], datetime.now(UTC) - timedelta(seconds=30), [("maintenance", "stop", "open")]
        )
        conn.execute(
            "INSERT INTO maintenance_windows (registration_code, starts_at, ends_at, reason, created_by)"
            " VALUES (%s, now() - interval '1 hour', now() + interval '1 hour', '年检', 'tech-ma')",
            (api_world.elevators["a"],),
        )
    everything = get(api_http, api_world, "regulator", "/api/v1/fleet").json()
    assert everything["total"] == 2
    rows = {r["registration_code"]: r for r in everything["items"]}
    a = rows[api_world.elevators["a"]]
    assert (a["online"], a["mode"], a["open_incidents"]) == (True, "maintenance", 2)
    assert a["maintenance_until"] is not None and rows[api_world.elevators["b"]]["maintenance_until"] is None
    assert rows[api_world.elevators["b"]]["online"] is False and rows[api_world.elevators["b"]]["mode"] is None
    mine = get(api_http, api_world, "maintainer_b", "/api/v1/fleet").json()
    assert [r["registration_code"] for r in mine["items"]] == [api_world.elevators["b"]]
    # Search: rescue code, registration code prefix, address words; never past the firm's own.
    for q in (api_world.rescue_codes["a"], api_world.elevators["a"], "世纪大道1号"):
        found = get(api_http, api_world, "admin", "/api/v1/fleet", q=q).json()["items"]
        assert [r["registration_code"] for r in found] == [api_world.elevators["a"]], q
    assert (
        get(api_http, api_world, "maintainer_b", "/api/v1/fleet", q=api_world.rescue_codes["a"]).json()["items"] == []
    )
