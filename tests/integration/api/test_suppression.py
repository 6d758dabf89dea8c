"""Maintenance windows, shelves and out of service over HTTP: who may do what, limits, and the
board's view of incidents that are recorded but not notified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fixtures.api import RunningApi, World

pytestmark = pytest.mark.integration


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def _suppressed(api: RunningApi, world: World, incident: int, role: str = "operator") -> object:
    return api.client.get(f"/api/v1/incidents/{incident}", headers=world.headers(role)).json()["incident"]["suppressed"]


def test_a_firm_declares_a_window_for_its_own_elevator_only(api_http: RunningApi, api_world: World) -> None:
    client = api_http.client
    window = {"registration_code": api_world.elevators["a"], "ends_at": _iso(timedelta(hours=2)), "reason": "年检"}
    created = client.post("/api/v1/maintenance-windows", json=window, headers=api_world.headers("maintainer"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["created_by"], body["active"], body["reason"]) == ("tech-ma", True, "年检")
    # The power failure open on that elevator is now "in maintenance"; its entrapment is not.
    assert _suppressed(api_http, api_world, api_world.dispatched["a"]) == "maintenance"
    assert _suppressed(api_http, api_world, api_world.incidents["a"]) is None
    listed = client.get("/api/v1/incidents?open=true", headers=api_world.headers("maintainer")).json()["items"]
    assert {i["id"]: i["suppressed"] for i in listed}[api_world.dispatched["a"]] == "maintenance"
    other = {**window, "registration_code": api_world.elevators["b"]}
    refused = client.post("/api/v1/maintenance-windows", json=other, headers=api_world.headers("maintainer"))
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "elevator_not_found"
    assert (
        client.post("/api/v1/maintenance-windows", json=other, headers=api_world.headers("regulator")).status_code
        == 403
    )
    assert (
        client.post("/api/v1/maintenance-windows", json=other, headers=api_world.headers("operator")).status_code == 201
    )
    # Each firm lists its own; the centre and the regulator all.
    mine = client.get("/api/v1/maintenance-windows", headers=api_world.headers("maintainer")).json()
    assert [w["registration_code"] for w in mine] == [api_world.elevators["a"]]
    assert len(client.get("/api/v1/maintenance-windows", headers=api_world.headers("regulator")).json()) == 2
    theirs = client.get("/api/v1/maintenance-windows", headers=api_world.headers("maintainer_b")).json()
    assert (
        client.delete(
            f"/api/v1/maintenance-windows/{body['id']}", headers=api_world.headers("maintainer_b")
        ).status_code
        == 404
    )
    assert [w["registration_code"] for w in theirs] == [api_world.elevators["b"]]
    ended = client.delete(f"/api/v1/maintenance-windows/{body['id']}", headers=api_world.headers("maintainer"))
    assert ended.status_code == 204
    assert _suppressed(api_http, api_world, api_world.dispatched["a"]) is None
    history = client.get("/api/v1/maintenance-windows?current=false", headers=api_world.headers("maintainer")).json()
    assert history[0]["ended_by"] == "tech-ma" and history[0]["active"] is False


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"starts_at": _iso(timedelta(minutes=-30)), "ends_at": _iso(timedelta(minutes=-10))}, "already over"),
        ({"ends_at": _iso(timedelta(hours=-1))}, "after starts_at"),
        ({"starts_at": _iso(timedelta(hours=-3))}, "ago"),
        ({"ends_at": _iso(timedelta(hours=80))}, "out of service"),
        ({"reason": "   "}, "reason"),
        ({"ends_at": "2026-01-01T10:00:00"}, "offset"),
    ],
)
def test_unsound_windows_are_refused(
    api_http: RunningApi, api_world: World, change: dict[str, str], problem: str
) -> None:
    window = {
        "registration_code": api_world.elevators["a"],
        "ends_at": _iso(timedelta(hours=2)),
        "reason": "x",
        **change,
    }
    answer = api_http.client.post("/api/v1/maintenance-windows", json=window, headers=api_world.headers("operator"))
    assert answer.status_code == 422, answer.text
    assert problem in answer.json()["error"]["message"]


def test_the_centre_shelves_a_nuisance_alarm_for_at_most_8_hours(api_http: RunningApi, api_world: World) -> None:
    client = api_http.client
    shelf = {"registration_code": api_world.elevators["a"], "code": "power_failure", "minutes": 480, "reason": "抖动"}
    created = client.post("/api/v1/shelves", json=shelf, headers=api_world.headers("operator"))
    assert created.status_code == 201, created.text
    expires = datetime.fromisoformat(created.json()["expires_at"])
    assert timedelta(hours=7, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=8)
    assert _suppressed(api_http, api_world, api_world.dispatched["a"], "maintainer") == "shelved"
    trail = client.get(f"/api/v1/incidents/{api_world.dispatched['a']}", headers=api_world.headers("regulator")).json()
    assert (trail["events"][-1]["kind"], trail["events"][-1]["note"]) == ("shelved", "抖动")
    for role, status in (("maintainer", 403), ("regulator", 403)):
        assert client.post("/api/v1/shelves", json=shelf, headers=api_world.headers(role)).status_code == status
    for bad in ({"minutes": 481}, {"minutes": 0}, {"code": "trapped_passenger"}, {"code": "overspeed"}, {"reason": ""}):
        assert (
            client.post("/api/v1/shelves", json={**shelf, **bad}, headers=api_world.headers("operator")).status_code
            == 422
        )
    visible = client.get("/api/v1/shelves", headers=api_world.headers("maintainer")).json()
    assert [s["code"] for s in visible] == ["power_failure"]
    assert client.get("/api/v1/shelves", headers=api_world.headers("maintainer_b")).json() == []
    removed = client.delete(f"/api/v1/shelves/{created.json()['id']}", headers=api_world.headers("admin"))
    assert removed.status_code == 204
    assert _suppressed(api_http, api_world, api_world.dispatched["a"]) is None
    assert client.get("/api/v1/shelves", headers=api_world.headers("operator")).json() == []
    assert (
        client.get("/api/v1/shelves?current=false", headers=api_world.headers("operator")).json()[0]["ended_by"]
        == "admin-alice"
    )


def test_the_firm_or_the_regulator_takes_an_elevator_out_of_service(api_http: RunningApi, api_world: World) -> None:
    client = api_http.client
    url = f"/api/v1/elevators/{api_world.elevators['a']}/out-of-service"
    assert client.put(url, json={"reason": "x"}, headers=api_world.headers("operator")).status_code == 403
    assert client.put(url, json={"reason": "x"}, headers=api_world.headers("maintainer_b")).status_code == 404
    first = client.put(url, json={"reason": "水浸"}, headers=api_world.headers("maintainer"))
    again = client.put(url, json={"reason": "still"}, headers=api_world.headers("regulator"))
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"] and again.json()["set_by"] == "tech-ma"
    assert _suppressed(api_http, api_world, api_world.dispatched["a"]) == "out_of_service"
    assert _suppressed(api_http, api_world, api_world.incidents["a"]) is None  # an entrapment always pages
    listed = client.get("/api/v1/out-of-service", headers=api_world.headers("operator")).json()
    assert [o["registration_code"] for o in listed] == [api_world.elevators["a"]]
    assert client.get("/api/v1/out-of-service", headers=api_world.headers("maintainer_b")).json() == []
    assert client.delete(url, headers=api_world.headers("regulator")).status_code == 204
    assert _suppressed(api_http, api_world, api_world.dispatched["a"]) is None
