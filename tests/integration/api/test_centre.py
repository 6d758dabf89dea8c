"""The centre's endpoints over HTTP: calls open or join, comments, assignment, each role's view."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from tests.fixtures.api import RunningApi, World, add_elevator

pytestmark = pytest.mark.integration


def _trail(api: RunningApi, world: World, incident_id: int, role: str = "operator") -> list[dict[str, object]]:
    answer = api.client.get(f"/api/v1/incidents/{incident_id}", headers=world.headers(role))
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]  # type: ignore[no-any-return]


def test_a_call_opens_an_incident_or_joins_the_open_one(api_http: RunningApi, api_world: World) -> None:
    client, headers = api_http.client, api_world.headers("operator")
    rescue = api_world.rescue_codes["a"]
    # An entrapment is already open on elevator a: the call joins it.
    joined = client.post(
        "/api/v1/incidents",
        json={"rescue_code": rescue, "code": "trapped_passenger", "caller_phone": "138 0013 8000", "note": "3 inside"},
        headers=headers,
    )
    assert joined.status_code == 200, joined.text
    assert joined.json()["joined"] is True and joined.json()["incident"]["id"] == api_world.incidents["a"]
    call_row = _trail(api_http, api_world, api_world.incidents["a"])[-1]
    assert (call_row["kind"], call_row["actor"], call_row["note"]) == ("called", "operator-olivia", "3 inside")
    assert call_row["data"] == {"source": "call", "caller_phone": "13800138000"}
    # Nothing open for this code: a new incident, opened by the call, with its clocks from now.
    opened = client.post(
        "/api/v1/incidents",
        json={"registration_code": api_world.elevators["b"], "code": "alarm_button", "source": "call"},
        headers={**headers, "Idempotency-Key": "call-1"},
    )
    assert opened.status_code == 201, opened.text
    incident = opened.json()["incident"]
    assert (incident["source"], incident["severity"], incident["maintainer"]) == (
        "call",
        "major",
        "Brightlift Maintenance Co.",
    )
    retried = client.post(
        "/api/v1/incidents",
        json={"registration_code": api_world.elevators["b"], "code": "alarm_button"},
        headers={**headers, "Idempotency-Key": "call-1"},
    )
    assert retried.status_code == 201 and retried.json()["incident"]["id"] == incident["id"]
    assert [e["kind"] for e in _trail(api_http, api_world, incident["id"])] == ["opened"]
    with psycopg.connect(api_world.database_url) as conn:
        _, fresh, _ = add_elevator(conn, api_world.firms["b"], 9, "黄浦区")
    trapped = client.post(
        "/api/v1/incidents", json={"rescue_code": fresh, "code": "trapped_passenger"}, headers=headers
    ).json()["incident"]
    assert trapped["source"] == "call" and trapped["detected_at"] == trapped["opened_at"]
    assert datetime.fromisoformat(trapped["dispatch_deadline_at"]) == datetime.fromisoformat(
        trapped["detected_at"]
    ) + timedelta(minutes=5)
    # Firm b sees the call-opened incidents of its elevator; firm a does not.
    assert (
        client.get(f"/api/v1/incidents/{incident['id']}", headers=api_world.headers("maintainer_b")).status_code == 200
    )
    assert client.get(f"/api/v1/incidents/{incident['id']}", headers=api_world.headers("maintainer")).status_code == 404


@pytest.mark.parametrize(
    ("role", "body", "status", "code"),
    [
        ("maintainer", {"rescue_code": "20001", "code": "trapped_passenger"}, 403, "forbidden"),
        ("regulator", {"rescue_code": "20001", "code": "trapped_passenger"}, 403, "forbidden"),
        ("operator", {"rescue_code": "99999", "code": "trapped_passenger"}, 404, "elevator_not_found"),
        ("operator", {"registration_code": "31010000000000999999", "code": "overspeed"}, 404, "elevator_not_found"),
        ("operator", {"code": "trapped_passenger"}, 422, "validation_error"),
        (
            "operator",
            {"rescue_code": "20001", "registration_code": "31010000000000000001", "code": "overspeed"},
            422,
            "validation_error",
        ),
        ("operator", {"rescue_code": "20001", "code": "elevator_on_fire"}, 422, "validation_error"),
        ("operator", {"rescue_code": "20001", "code": "overspeed", "source": "rule"}, 422, "validation_error"),
        ("operator", {"rescue_code": "20001", "code": "overspeed", "caller_phone": "call me"}, 422, "validation_error"),
        ("operator", {"rescue_code": "20001", "code": "overspeed", "caller_phone": "1\u0000"}, 422, "validation_error"),
        ("operator", {"rescue_code": "20001", "code": "overspeed", "note": "x" * 2001}, 422, "validation_error"),
    ],
)
def test_calls_are_the_centres_and_bad_calls_are_refused(
    api_http: RunningApi, api_world: World, role: str, body: dict[str, str], status: int, code: str
) -> None:
    answer = api_http.client.post("/api/v1/incidents", json=body, headers=api_world.headers(role))
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


def test_comments_on_the_trail_scoped_like_incidents(api_http: RunningApi, api_world: World) -> None:
    client = api_http.client
    a = api_world.incidents["a"]
    ok = client.post(
        f"/api/v1/incidents/{a}/comments", json={"note": "  caller calm  "}, headers=api_world.headers("operator")
    )
    assert ok.status_code == 201, ok.text
    assert (ok.json()["kind"], ok.json()["note"], ok.json()["actor"]) == ("comment", "caller calm", "operator-olivia")
    firm = client.post(
        f"/api/v1/incidents/{a}/comments", json={"note": "on our way"}, headers=api_world.headers("maintainer")
    )
    assert firm.status_code == 201
    for role, status in (("maintainer_b", 404), ("regulator", 403)):
        refused = client.post(f"/api/v1/incidents/{a}/comments", json={"note": "x"}, headers=api_world.headers(role))
        assert refused.status_code == status
    for body in ({"note": ""}, {"note": "   "}, {}, {"note": "x" * 2001}, {"note": "a", "extra": 1}):
        assert (
            client.post(f"/api/v1/incidents/{a}/comments", json=body, headers=api_world.headers("operator")).status_code
            == 422
        )
    assert (
        client.post(
            "/api/v1/incidents/999999/comments", json={"note": "x"}, headers=api_world.headers("operator")
        ).status_code
        == 404
    )
    notes = [(e["kind"], e["actor"], e["note"]) for e in _trail(api_http, api_world, a, "regulator")]
    assert notes[-2:] == [("comment", "operator-olivia", "caller calm"), ("comment", "tech-ma", "on our way")]


def test_an_operator_claims_an_incident_others_see_it_and_it_can_be_handed_over(
    api_http: RunningApi, api_world: World
) -> None:
    client = api_http.client
    a = api_world.incidents["a"]
    url = f"/api/v1/incidents/{a}/assignee"
    claimed = client.put(url, json={"assignee": "operator-olivia"}, headers=api_world.headers("operator"))
    assert claimed.status_code == 200 and claimed.json()["assignee"] == "operator-olivia"
    for role in ("admin", "maintainer", "regulator"):
        seen = client.get(f"/api/v1/incidents/{a}", headers=api_world.headers(role)).json()["incident"]
        assert seen["assignee"] == "operator-olivia"
    listed = client.get("/api/v1/incidents?open=true", headers=api_world.headers("admin")).json()["items"]
    assert {i["id"]: i["assignee"] for i in listed}[a] == "operator-olivia"
    handed = client.put(url, json={"assignee": "admin-alice"}, headers=api_world.headers("operator"))
    assert handed.status_code == 200 and handed.json()["assignee"] == "admin-alice"
    for name in ("tech-ma", "regulator-rui", "nobody"):  # only someone who can work incidents
        refused = client.put(url, json={"assignee": name}, headers=api_world.headers("operator"))
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "unknown_assignee"
    assert client.put(url, json={"assignee": "tech-ma"}, headers=api_world.headers("maintainer")).status_code == 403
    assert client.put(url, json={}, headers=api_world.headers("operator")).status_code == 422
    released = client.put(url, json={"assignee": None}, headers=api_world.headers("admin"))
    assert released.status_code == 200 and released.json()["assignee"] is None
    kinds = [(e["kind"], e["data"]) for e in _trail(api_http, api_world, a) if e["kind"] == "assigned"]
    assert [d for _, d in kinds] == [
        {"from": None, "to": "operator-olivia"},
        {"from": "operator-olivia", "to": "admin-alice"},
        {"from": "admin-alice", "to": None},
    ]
    with psycopg.connect(api_world.database_url) as conn:
        conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'admin-alice'")
    assert client.put(url, json={"assignee": "admin-alice"}, headers=api_world.headers("operator")).status_code == 422
    client.post(f"/api/v1/incidents/{a}/false-alarm", json={}, headers=api_world.headers("operator"))
    closed = client.put(url, json={"assignee": "operator-olivia"}, headers=api_world.headers("operator"))
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "illegal_transition"


def test_an_incident_group_is_acknowledged_together(api_http: RunningApi, api_world: World) -> None:
    with psycopg.connect(api_world.database_url) as conn:
        leader = api_world.incidents["a"]
        conn.execute(
            "UPDATE incidents SET group_id = %s WHERE id IN (%s, %s, %s)",
            (leader, leader, api_world.incidents["b"], api_world.dispatched["b"]),
        )
    client = api_http.client
    listed = client.get("/api/v1/incidents?open=true", headers=api_world.headers("operator")).json()["items"]
    assert {i["id"]: i["group_id"] for i in listed}[api_world.incidents["b"]] == leader
    answer = client.post(
        f"/api/v1/incident-groups/{leader}/acknowledge",
        json={"note": "power cut, 浦东"},
        headers=api_world.headers("operator"),
    )
    assert answer.status_code == 200, answer.text
    # The dispatched member is past acknowledgement: left as it is.
    assert answer.json() == {"group_id": leader, "acknowledged": [leader, api_world.incidents["b"]]}
    for incident in (leader, api_world.incidents["b"]):
        detail = client.get(f"/api/v1/incidents/{incident}", headers=api_world.headers("operator")).json()
        assert detail["incident"]["status"] == "acknowledged"
        assert (detail["events"][-1]["actor"], detail["events"][-1]["note"]) == ("operator-olivia", "power cut, 浦东")
    again = client.post(f"/api/v1/incident-groups/{leader}/acknowledge", headers=api_world.headers("operator"))
    assert again.json()["acknowledged"] == []
    assert (
        client.post(
            f"/api/v1/incident-groups/{leader}/acknowledge", headers=api_world.headers("maintainer")
        ).status_code
        == 403
    )


def test_every_notification_of_an_incident_is_visible_on_it_scoped_to_the_firm(
    api_http: RunningApi, api_world: World
) -> None:
    incident = api_world.incidents["a"]
    with psycopg.connect(api_world.database_url) as conn:
        change = conn.execute(
            "SELECT id FROM incident_events WHERE incident_id = %s ORDER BY id LIMIT 1", (incident,)
        ).fetchone()[0]  # type: ignore[index]
        hooks = {}
        for name, target, firm, channel, url in (
            ("firm-a-mail", "maintenance_firm", api_world.firms["a"], "email", "mailto:duty@a.test"),
            ("firm-b-hook", "maintenance_firm", api_world.firms["b"], "webhook", "https://b.example/h"),
            ("centre-robot", "emergency_centre", None, "wecom", "https://qyapi.example/send?key=K"),
        ):
            hooks[name] = conn.execute(
                "INSERT INTO alerts_webhooks (name, target, maintainer_id, url, channel) VALUES (%s, %s, %s, %s, %s)"
                " RETURNING id",
                (name, target, firm, url, channel),
            ).fetchone()[0]  # type: ignore[index]
        for name, status, attempts, error in (
            ("firm-a-mail", "sent", 2, None),
            ("centre-robot", "dead", 8, "receiver answered 500"),
            ("firm-b-hook", "pending", 1, "ConnectError"),
        ):
            conn.execute(
                "INSERT INTO alerts_deliveries (change_id, webhook_id, idempotency_key, body, status, attempts,"
                " last_error, next_attempt_at) VALUES (%s, %s, %s, '{}', %s, %s, %s, now())",
                (change, hooks[name], f"{change}:webhook:{hooks[name]}", status, attempts, error),
            )
    client = api_http.client
    seen = client.get(f"/api/v1/incidents/{incident}", headers=api_world.headers("operator")).json()["deliveries"]
    assert [(d["receiver"], d["channel"], d["kind"], d["status"], d["attempts"]) for d in seen] == [
        ("firm-a-mail", "email", "opened", "sent", 2),
        ("centre-robot", "wecom", "opened", "dead", 8),
        ("firm-b-hook", "webhook", "opened", "pending", 1),
    ]
    firm = client.get(f"/api/v1/incidents/{incident}", headers=api_world.headers("maintainer")).json()["deliveries"]
    assert [d["receiver"] for d in firm] == ["firm-a-mail"]  # not the centre's, not another firm's
