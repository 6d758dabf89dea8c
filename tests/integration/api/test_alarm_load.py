"""The alarm-load report over HTTP: a desk's districts only, JSON and CSV, who may read it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.fixtures.api import RunningApi, World

pytestmark = pytest.mark.integration

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)


def test_a_desks_alarm_load_from_its_districts(api_http: RunningApi, api_world: World) -> None:
    client = api_http.client
    desk = client.put("/api/v1/desks/=East desk", json={"districts": ["浦东新区"]}, headers=api_world.headers("admin"))
    assert desk.status_code == 200, desk.text
    assert (
        client.put("/api/v1/desks/x", json={"districts": ["a"]}, headers=api_world.headers("operator")).status_code
        == 403
    )
    with psycopg.connect(api_world.database_url) as conn:
        # A flood in 浦东新区 (firm a's elevator) at 09:00 yesterday; one alarm in 黄浦区 at the same time.
        opened = [("a", DAY + timedelta(hours=9, seconds=30 * i)) for i in range(12)] + [
            ("b", DAY + timedelta(hours=9))
        ]
        for key, at in opened:
            incident = conn.execute(
                "INSERT INTO incidents (registration_code, terminal_id, code, severity, status, maintainer_id,"
                " district, detected_at, opened_at, last_seen_at) SELECT registration_code, %s, 'door_held_open',"
                " 'minor', 'closed', maintainer_id, district, %s, %s, %s FROM elevators"
                " WHERE registration_code = %s RETURNING id",
                (api_world.terminals[key], at, at, at, api_world.elevators[key]),
            ).fetchone()[0]  # type: ignore[index]
            conn.execute(
                "INSERT INTO incident_events (incident_id, at, kind, status_after, actor)"
                " VALUES (%s, %s, 'opened', 'detected', 'system')",
                (incident, at),
            )
    params = {"desk": "=East desk", "from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}
    report = client.get("/api/v1/alarm-load", params=params, headers=api_world.headers("operator"))
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["districts"] == ["浦东新区"] and body["alarms"] == 12  # not 黄浦区's
    assert (body["peak_per_10_min"], body["flood_minutes"]) == (12, 10)
    assert body["bad_actors"] == [
        {"registration_code": api_world.elevators["a"], "code": "door_held_open", "alarms": 12}
    ]
    assert body["stale"] == 0 and body["average_per_10_min"] == round(12 / 144, 3)
    exported = client.get(
        "/api/v1/alarm-load", params={**params, "format": "csv"}, headers=api_world.headers("regulator")
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0] == ["metric", "value", "alarms"]
    assert ["desk", "'=East desk", ""] in rows  # a spreadsheet does not run it as a formula
    assert ["flood_minutes", "10", ""] in rows
    assert client.get("/api/v1/alarm-load", params=params, headers=api_world.headers("maintainer")).status_code == 403
    assert client.get("/api/v1/alarm-load", params={**params, "desk": "nope"},
                      headers=api_world.headers("operator")).status_code == 404  # fmt: skip
    for bad in (
        {"to": params["from"]},
        {"to": (DAY + timedelta(days=40)).isoformat()},
        {"from": "2026-01-01T00:00:00"},
    ):
        assert client.get("/api/v1/alarm-load", params={**params, **bad},
                          headers=api_world.headers("operator")).status_code == 422  # fmt: skip
    listed = client.get("/api/v1/desks", headers=api_world.headers("regulator")).json()
    assert listed == [{"name": "=East desk", "districts": ["浦东新区"]}]
