"""An elevator handed to another firm: each firm reads only the telemetry of its own time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.fixtures.api import RunningApi, World

pytestmark = pytest.mark.integration


def _sample(conn: psycopg.Connection[object], terminal: str, ts: datetime, floor: int) -> None:
    conn.execute(
        "INSERT INTO telemetry (terminal_id, ts, seq, idx, mode, floor, door_zone, direction, speed, door,"
        " occupied, safety_circuit, alarm_button, power, limit_up, limit_down, received_at) VALUES"
        " (%s, %s, %s, 0, 'normal', %s, true, 'stop', 0, 'closed', false, true, false, true, false, false, now())",
        (terminal, ts, int(ts.timestamp() * 1000), floor),
    )


def test_after_a_handover_the_previous_firm_reads_no_newer_sample(api_http: RunningApi, api_world: World) -> None:
    client, elevator, terminal = api_http.client, api_world.elevators["a"], api_world.terminals["a"]
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    with psycopg.connect(api_world.database_url) as conn:
        _sample(conn, terminal, before, floor=3)
        row = conn.execute("SELECT name FROM maintenance_firms WHERE id = %s", (api_world.firms["b"],)).fetchone()
    assert row is not None
    moved = client.patch(
        f"/api/v1/elevators/{elevator}", json={"maintainer": row[0]}, headers=api_world.headers("admin")
    )
    assert moved.status_code == 200 and moved.json()["maintainer_id"] == api_world.firms["b"]
    # Firm B's fleet shows its new elevator without firm A's last sample (none of its own yet).
    fleet = client.get("/api/v1/fleet", headers=api_world.headers("maintainer_b")).json()["items"]
    assert [(row["registration_code"], row["sample_at"]) for row in fleet if row["registration_code"] == elevator] == [
        (elevator, None)
    ]
    everyone_fleet = client.get("/api/v1/fleet", headers=api_world.headers("operator")).json()["items"]
    assert [row["floor"] for row in everyone_fleet if row["registration_code"] == elevator] == [3]
    after = datetime.now(UTC) + timedelta(seconds=1)
    with psycopg.connect(api_world.database_url) as conn:
        _sample(conn, terminal, after, floor=9)

    # Firm A still reads its incident (scoped by the firm at detection), but not firm B's samples.
    detail = client.get(f"/api/v1/incidents/{api_world.incidents['a']}", headers=api_world.headers("maintainer"))
    assert detail.status_code == 200
    assert detail.json()["latest_telemetry"]["floor"] == 3
    operator = client.get(f"/api/v1/incidents/{api_world.incidents['a']}", headers=api_world.headers("operator"))
    assert operator.json()["latest_telemetry"]["floor"] == 9

    # Firm B's chart of its new elevator starts at the handover; an operator's holds both.
    window = {"since": (before - timedelta(minutes=1)).isoformat(), "until": (after + timedelta(minutes=1)).isoformat()}
    url = f"/api/v1/elevators/{elevator}/telemetry"
    firm_b = client.get(url, params=window, headers=api_world.headers("maintainer_b")).json()
    assert [p["floor"] for p in firm_b["points"]] == [9]
    everyone = client.get(url, params=window, headers=api_world.headers("operator")).json()
    assert [p["floor"] for p in everyone["points"]] == [3, 9]
    # The history the triggers keep: firm A from the start until the handover, firm B since.
    with psycopg.connect(api_world.database_url) as conn:
        periods = conn.execute(
            "SELECT maintainer_id, since = '-infinity', until IS NULL FROM elevator_maintainers"
            " WHERE registration_code = %s ORDER BY since",
            (elevator,),
        ).fetchall()
    assert periods == [(api_world.firms["a"], True, False), (api_world.firms["b"], False, True)]
