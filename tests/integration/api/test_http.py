"""HTTP behaviour a client relies on: error bodies, validation, pagination, filters, sessions, health."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from liftwatch import i18n
from liftwatch.alerts import faults_store
from liftwatch.api import app as app_module
from liftwatch.api import auth, incidents, ops
from liftwatch.config import ApiSettings
from liftwatch.launcher import services
from liftwatch.schema import FAULT_SEVERITY, FaultCode, FaultEvent, fault_event_id
from pydantic import SecretStr

from tests.fixtures.api import FIRM_A, RunningApi, World, add_elevator, open_incident, running_api

pytestmark = pytest.mark.integration


def test_errors_have_a_stable_code_and_a_message_in_the_callers_language(
    api_http: RunningApi, api_world: World
) -> None:
    client = api_http.client
    zh = client.get("/api/v1/incidents/999999", headers=api_world.headers("operator", "zh-CN,zh;q=0.9"))
    en = client.get("/api/v1/incidents/999999", headers=api_world.headers("operator", "en-GB"))
    assert zh.status_code == en.status_code == 404
    assert zh.json() == {"error": {"code": "incident_not_found", "message": "未找到该告警"}}
    assert en.json() == {"error": {"code": "incident_not_found", "message": "Incident not found"}}
    default = client.get("/api/v1/me")
    assert default.json()["error"] == {"code": "unauthenticated", "message": "请先登录（缺少或无效的访问令牌）"}
    assert client.get("/nope", headers={"Accept-Language": "en"}).json()["error"]["code"] == "not_found"
    page = client.get("/")  # the console: its own files only, never framed (the browser test runs under it)
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    # Field problems are told in the caller's language too; `details` keep pydantic's own for programs.
    bad = "/api/v1/incidents?limit=0&registration_code=x"
    zh_bad = client.get(bad, headers=api_world.headers("operator", "zh")).json()["error"]
    en_bad = client.get(bad, headers=api_world.headers("operator", "en")).json()["error"]
    assert zh_bad["message"] == "请求参数无效：query.registration_code: 格式不正确; query.limit: 不能小于 1"
    assert (
        en_bad["message"] == "Invalid request: query.registration_code: wrong format; query.limit: must be at least 1"
    )
    assert [d["type"] for d in zh_bad["details"]] == ["string_pattern_mismatch", "greater_than_equal"]


INVALID = [
    ("GET", "/api/v1/incidents?limit=0", None, "limit"),
    ("GET", "/api/v1/incidents?status=bogus", None, "status"),
    ("GET", "/api/v1/incidents?code=elevator_on_fire", None, "code"),
    ("GET", "/api/v1/incidents?since=yesterday", None, "since"),
    ("GET", "/api/v1/incidents/abc", None, "incident_id"),
    ("GET", "/api/v1/elevators/short", None, "registration_code"),
    ("GET", "/api/v1/elevators/by-rescue-code/12a45", None, "rescue_code"),
    ("POST", "/api/v1/maintainers", {"name": ""}, "name"),
    ("POST", "/api/v1/maintainers", {"name": "x", "extra": 1}, "extra"),
    ("POST", "/api/v1/elevators", {"registration_code": "31010000000000000099"}, "rescue_code"),
    ("PATCH", "/api/v1/elevators/31010000000000000001", {"rated_speed": -1}, "rated_speed"),
    ("PATCH", "/api/v1/elevators/31010000000000000001", {"bottom_floor": 30, "top_floor": 2}, "body"),
    ("POST", "/api/v1/incidents/1/acknowledge", {"note": "x" * 2001}, "note"),
    ("POST", "/api/v1/incidents/1/close", {"cause": "aliens"}, "cause"),
    ("POST", "/api/v1/incidents/1/teleport", None, "action"),
]


def test_invalid_input_is_refused_with_the_field_named(api_http: RunningApi, api_world: World) -> None:
    for method, path, body, field in INVALID:
        response = api_http.client.request(method, path, json=body, headers=api_world.headers("admin"))
        assert response.status_code == 422, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert any(field in detail["loc"] for detail in error["details"]), (path, error)


def test_list_filters_and_keyset_pagination(api_http: RunningApi, api_world: World) -> None:
    with psycopg.connect(api_world.database_url) as conn:
        registration, _, terminal = add_elevator(conn, api_world.firms["a"], 30, "徐汇区")
        start = datetime.now(UTC) - timedelta(days=2)
        ids = [
            open_incident(
                conn,
                registration,
                terminal,
                api_world.firms["a"],
                code=code,
                severity=sev,
                detected_at=start + timedelta(minutes=i),
            )
            for i, (code, sev) in enumerate(
                [("overspeed", "critical"), ("door_held_open", "minor"), ("power_failure", "major")]
            )
        ]
        conn.execute("UPDATE incidents SET status = 'closed' WHERE id = %s", (ids[0],))
    client, headers = api_http.client, api_world.headers("regulator")

    def ids_of(query: str) -> list[int]:
        response = client.get(f"/api/v1/incidents?{query}", headers=headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids_of(f"registration_code={registration}") == ids[::-1]
    assert ids_of("district=徐汇区&open=true") == [ids[2], ids[1]]
    assert ids_of("status=closed") == [ids[0]]
    assert ids_of("severity=minor&severity=major&district=徐汇区") == [ids[2], ids[1]]
    assert ids_of("code=trapped_passenger") == [api_world.incidents["b"], api_world.incidents["a"]]
    assert ids_of(f"maintainer_id={api_world.firms['b']}") == [api_world.dispatched["b"], api_world.incidents["b"]]
    window = f"since={(start - timedelta(hours=1)).isoformat()}&until={(start + timedelta(seconds=90)).isoformat()}"
    assert ids_of(window.replace("+", "%2B")) == [ids[1], ids[0]]

    seen: list[int] = []
    cursor = None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/api/v1/incidents?{query}", headers=headers).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == 7
    assert client.get("/api/v1/incidents?cursor=%%%", headers=headers).json()["error"]["code"] == "invalid_cursor"
    late, early = (start + timedelta(seconds=90)).isoformat(), (start - timedelta(hours=1)).isoformat()
    backwards = client.get("/api/v1/incidents", params={"since": late, "until": early}, headers=headers)
    assert (backwards.status_code, backwards.json()["error"]["code"]) == (422, "validation_error")


def test_registry_writes_and_rescue_code_lookup(api_http: RunningApi, api_world: World) -> None:
    client, admin = api_http.client, api_world.headers("admin")
    body = {
        "registration_code": "31010000000000000099", "rescue_code": "20099", "kind": "escalator",
        "address": "南京西路99号", "district": "静安区", "use_unit": "新物业", "maintainer": "安康电梯维保有限公司",
        "installed_on": "2021-03-04", "rated_speed": 0.5, "bottom_floor": 1, "top_floor": 2,
    }  # fmt: skip
    created = client.post("/api/v1/elevators", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["maintainer_id"] == api_world.firms["a"]
    again = client.post("/api/v1/elevators", json=body, headers=admin)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")
    unknown_firm = client.post(
        "/api/v1/elevators", json={**body, "registration_code": "31010000000000000098", "maintainer": "无此单位"},
        headers=admin,
    )  # fmt: skip
    assert (unknown_firm.status_code, unknown_firm.json()["error"]["code"]) == (422, "maintainer_not_found")
    moved = client.patch("/api/v1/elevators/31010000000000000099", json={"maintainer": FIRM_B_NAME}, headers=admin)
    assert moved.json()["maintainer_id"] == api_world.firms["b"]
    found = client.get("/api/v1/elevators/by-rescue-code/20099", headers=api_world.headers("maintainer_b")).json()
    assert found["registration_code"] == "31010000000000000099"
    hidden = client.get("/api/v1/elevators/by-rescue-code/20099", headers=api_world.headers("maintainer"))
    assert hidden.status_code == 404
    search = client.get("/api/v1/elevators?q=南京西路", headers=admin).json()
    assert [e["registration_code"] for e in search["items"]] == ["31010000000000000099"]
    fitted = client.post("/api/v1/terminals", json={"terminal_id": "T-99", "registration_code": "31010000000000000099"},
                         headers=admin)  # fmt: skip
    assert fitted.status_code == 201
    assert client.get("/api/v1/elevators/31010000000000000099", headers=admin).json()["terminal_id"] == "T-99"


FIRM_B_NAME = "Brightlift Maintenance Co."


def test_telemetry_is_averaged_into_time_buckets(api_http: RunningApi, api_world: World) -> None:
    until = datetime.now(UTC).replace(microsecond=0)
    since = until - timedelta(minutes=10)
    with psycopg.connect(api_world.database_url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO telemetry (terminal_id, ts, seq, idx, mode, floor, door_zone, direction, speed, door,"
            " occupied, safety_circuit, alarm_button, power, limit_up, limit_down, received_at) VALUES"
            " (%s, %s, %s, 0, 'normal', %s, true, 'stop', %s, 'closed', false, true, false, true, false, false, now())",
            [(api_world.terminals["a"], since + timedelta(seconds=s), s, 3, s % 2) for s in range(600)],
        )
    response = api_http.client.get(
        f"/api/v1/elevators/{api_world.elevators['a']}/telemetry",
        params={"since": since.isoformat(), "until": until.isoformat(), "points": 10},
        headers=api_world.headers("maintainer"),
    )
    assert response.status_code == 200, response.text
    series = response.json()
    assert series["bucket_s"] == 60
    assert 10 <= len(series["points"]) <= 11
    assert sum(p["samples"] for p in series["points"]) == 600
    assert all(p["floor"] == 3 and p["speed_max"] == 1 for p in series["points"] if p["samples"] > 1)
    too_long = api_http.client.get(
        f"/api/v1/elevators/{api_world.elevators['a']}/telemetry",
        params={"since": (until - timedelta(days=40)).isoformat(), "until": until.isoformat()},
        headers=api_world.headers("operator"),
    )
    assert too_long.status_code == 422


def test_console_session_cookie_and_revoked_tokens(api_http: RunningApi, api_world: World) -> None:
    client = api_http.client
    assert client.post("/api/v1/session", headers={"Authorization": "Bearer nope"}).status_code == 401
    login = client.post("/api/v1/session", headers={"Authorization": f"Bearer {api_world.tokens['regulator']}"})
    assert login.status_code == 204
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/api/v1/me").json()["role"] == "regulator"  # the client keeps the cookie
    client.delete("/api/v1/session")
    client.cookies.clear()
    assert client.get("/api/v1/me").status_code == 401
    with psycopg.connect(api_world.database_url) as conn:
        conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'tech-bo'")
    # Tokens are cached briefly; a fresh process sees the revocation at once.
    settings = api_http.settings.model_copy(update={"api_port": services.free_port()})
    with running_api(settings) as fresh:
        assert fresh.client.get("/api/v1/me", headers=api_world.headers("maintainer_b")).status_code == 401


def test_bootstrap_admin_health_and_metrics(api_world: World) -> None:
    settings = ApiSettings(
        database_url=api_world.database_url,
        kafka_bootstrap=None,
        mqtt_url=f"mqtt://127.0.0.1:{services.free_port()}",  # nobody listens: MQTT is down
        admin_token=SecretStr("bootstrap-admin-token-0123456789"),
        api_port=services.free_port(),
        default_language="en",
        sse_replay_limit=1,
    )
    with running_api(settings) as api:
        me = api.client.get("/api/v1/me", headers={"Authorization": "Bearer bootstrap-admin-token-0123456789"})
        assert me.json()["role"] == "admin"
        # The site's default language answers a caller that states no preference, and seeds the console.
        assert api.client.get("/api/v1/me").json()["error"]["message"].startswith("Authentication required")
        assert 'data-default-lang="en"' in api.client.get("/").text
        # More missed changes than the replay limit: the client is told to reload instead.
        admin = {"Authorization": "Bearer bootstrap-admin-token-0123456789"}
        with api.client.stream("GET", "/api/v1/incidents/stream?after=0", headers=admin) as stream:
            events = [line for line in itertools.islice(stream.iter_lines(), 8) if line.startswith("event:")]
        assert events == ["event: reset"]
        health = api.client.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {
            "status": "degraded",
            "checks": {"database": "ok", "kafka": "not configured", "mqtt": "down", "late_samples": "ok"},
        }
        api.client.get(
            "/api/v1/incidents?limit=0", headers={"Authorization": "Bearer bootstrap-admin-token-0123456789"}
        )
        api.client.get("/api/v1/me", headers={"Authorization": "Bearer wrong"})
        text = api.client.get("/metrics").text
        assert 'liftwatch_api_rejected_requests_total{reason="validation"} 1.0' in text
        assert 'liftwatch_api_auth_failures_total{reason="unknown_token"} 1.0' in text
        assert 'liftwatch_api_requests_total{method="GET",route="/api/v1/me",status="200"} 1.0' in text


def test_token_cli_prints_once_and_stores_only_the_hash(api_http: RunningApi, api_world: World) -> None:
    from liftwatch.api.cli import token_app
    from typer.testing import CliRunner

    runner = CliRunner()
    env = {"LIFTWATCH_DATABASE_URL": api_world.database_url}
    args = ["create", "--role", "maintainer", "--name", "tech-new", "--maintainer", "Brightlift Maintenance Co."]
    done = runner.invoke(token_app, args, env=env)
    assert done.exit_code == 0, done.output
    token = done.output.strip()
    assert token.startswith("lw_") and len(token) > 40
    with psycopg.connect(api_world.database_url) as conn:
        stored = conn.execute("SELECT token_hash, role FROM api_tokens WHERE name = 'tech-new'").fetchone()
    assert stored is not None and token not in stored[0] and stored[1] == "maintainer"
    me = api_http.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert (me["name"], me["maintainer"]) == ("tech-new", "Brightlift Maintenance Co.")
    # The list shows holders, firms and last use (in the site's zone), never a token or its hash.
    listed = runner.invoke(token_app, ["list"], env=env)
    assert listed.exit_code == 0, listed.output
    line = next(row for row in listed.output.splitlines() if row.startswith("tech-new\t"))
    _, role, firm, created, used, expires, revoked = line.split("\t")
    assert (role, firm, revoked) == ("maintainer", "Brightlift Maintenance Co.", "-")
    assert used != "-" and used >= created and expires > created
    assert token not in listed.output and stored[0] not in listed.output
    assert runner.invoke(token_app, ["revoke", "--name", "tech-new"], env=env).output.strip() == "revoked 1 token(s)"
    assert "tech-new" not in runner.invoke(token_app, ["list"], env=env).output
    assert "tech-new" in runner.invoke(token_app, ["list", "--all"], env=env).output
    assert runner.invoke(
        token_app, ["create", "--role", "operator", "--name", "x", "--maintainer", "y"], env=env
    ).exit_code
    unknown = runner.invoke(token_app, ["create", "--role", "maintainer", "--name", "x", "--maintainer", "y"], env=env)
    assert unknown.exit_code == 2


def test_an_entrapment_is_worked_through_its_lifecycle_with_notes(api_http: RunningApi, api_world: World) -> None:
    client, incident = api_http.client, api_world.incidents["a"]
    operator, zh = api_world.headers("operator"), api_world.headers("operator", "zh-CN")
    with psycopg.connect(api_world.database_url) as conn, conn.cursor() as cur:
        now = datetime.now(UTC)
        cur.executemany(
            "INSERT INTO telemetry (terminal_id, ts, seq, idx, mode, floor, door_zone, direction, speed, door,"
            " occupied, safety_circuit, alarm_button, power, limit_up, limit_down, received_at) VALUES"
            " (%s, %s, %s, 0, 'normal', %s, false, 'stop', 0, 'closed', true, true, false, true, false, false, now())",
            [(api_world.terminals["a"], now - timedelta(seconds=s), 100 - s, 7 - s) for s in (3, 2, 1)],
        )

    def act(action: str, body: dict[str, str], headers: dict[str, str] = operator) -> httpx.Response:
        return client.post(f"/api/v1/incidents/{incident}/{action}", json=body, headers=headers)

    # A retried click (same Idempotency-Key) acknowledges once.
    retry = {**operator, "Idempotency-Key": "click-1"}
    assert act("acknowledge", {"note": "已接警，正在联系"}, retry).json()["status"] == "acknowledged"
    assert act("acknowledge", {"note": "已接警，正在联系"}, retry).status_code == 200
    elsewhere = client.post(f"/api/v1/incidents/{api_world.dispatched['b']}/arrive", json={}, headers=retry)
    assert (
        elsewhere.status_code == 422
    )  # the same key for another request is refused (tests/integration/api/test_idempotency.py)
    assert act("dispatch", {"note": "已通知维保"}).json()["status"] == "dispatched"
    arrived = act("arrive", {"note": "技术员到场"}, api_world.headers("maintainer"))
    assert arrived.json()["status"] == "arrived" and arrived.json()["arrived_at"]
    assert act("release", {"note": "乘客已安全离开"}, api_world.headers("maintainer")).status_code == 200
    missing = act("close", {"note": "结案"}, zh)
    assert missing.status_code == 422
    assert missing.json()["error"] == {"code": "cause_required", "message": i18n.t("errors.cause_required", "zh")}
    silent = act("close", {"note": " ", "cause": "equipment_fault"}, zh)
    assert silent.status_code == 422
    assert silent.json()["error"] == {"code": "note_required", "message": i18n.t("errors.note_required", "zh")}
    closed = act("close", {"note": "门锁故障已修复", "cause": "equipment_fault"})
    assert (closed.json()["status"], closed.json()["close_cause"]) == ("closed", "equipment_fault")
    again = act("acknowledge", {}, zh)
    assert again.status_code == 409
    assert again.json()["error"] == {"code": "illegal_transition", "message": "当前状态（已关闭）不允许此操作"}

    detail = client.get(f"/api/v1/incidents/{incident}", headers=operator).json()
    trail = [(e["kind"], e["actor"], e["note"]) for e in detail["events"]]
    assert trail == [
        ("opened", "system", ""),
        ("acknowledged", "operator-olivia", "已接警，正在联系"),
        ("dispatched", "operator-olivia", "已通知维保"),
        ("arrived", "tech-ma", "技术员到场"),
        ("released", "tech-ma", "乘客已安全离开"),
        ("closed", "operator-olivia", "门锁故障已修复"),
    ]
    assert detail["latest_telemetry"]["floor"] == 6  # the newest sample of the elevator's terminal
    assert detail["latest_telemetry"]["occupied"] is True
    shown = detail["incident"]
    detected = datetime.fromisoformat(shown["detected_at"])
    assert datetime.fromisoformat(shown["dispatch_deadline_at"]) - detected == timedelta(minutes=5)
    assert datetime.fromisoformat(shown["arrival_deadline_at"]) - detected == timedelta(minutes=30)
    assert (shown["rescue_code"], shown["maintainer"]) == (api_world.rescue_codes["a"], FIRM_A)

    # The terminal is replaced: the detail shows the elevator's state from its new terminal.
    with psycopg.connect(api_world.database_url) as conn:
        conn.execute(
            "UPDATE terminals SET registration_code = NULL WHERE terminal_id = %s", (api_world.terminals["a"],)
        )
        conn.execute(
            "INSERT INTO terminals (terminal_id, registration_code) VALUES ('T-NEW', %s)", (api_world.elevators["a"],)
        )
        conn.execute(
            "INSERT INTO telemetry (terminal_id, ts, seq, idx, mode, floor, door_zone, direction, speed, door,"
            " occupied, safety_circuit, alarm_button, power, limit_up, limit_down, received_at) VALUES"
            " ('T-NEW', now() - interval '1 hour', 1, 0, 'normal', 12, true, 'stop', 0, 'open', false, true, false,"
            " true, false, false, now())"
        )
    latest = client.get(f"/api/v1/incidents/{incident}", headers=operator).json()["latest_telemetry"]
    assert latest["floor"] == 12


def test_dead_letters_newest_first_with_filters(api_http: RunningApi, api_world: World) -> None:
    with psycopg.connect(api_world.database_url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dead_letters (received_at, source, topic, reason, detail, terminal_id, payload)"
            " VALUES (now(), 'mqtt', 'lift/v1/T-1/telemetry', %s, 'bad', %s, %s)",
            [("schema", "T-1", b'{"speed": "fast"}'), ("json", None, b"\xff" * 2000), ("schema", "T-2", b"{}")],
        )
    client, admin = api_http.client, api_world.headers("admin")
    page = client.get("/api/v1/dead-letters?limit=2", headers=admin).json()
    assert [d["terminal_id"] for d in page["items"]] == ["T-2", None]
    assert page["items"][1]["payload_bytes"] == 2000 and len(page["items"][1]["payload_preview"]) == 512
    rest = client.get(f"/api/v1/dead-letters?cursor={page['next_cursor']}", headers=admin).json()
    assert [d["payload_preview"] for d in rest["items"]] == ['{"speed": "fast"}'] and rest["next_cursor"] is None
    by_reason = client.get("/api/v1/dead-letters?reason=schema&terminal_id=T-1", headers=admin).json()
    assert [d["reason"] for d in by_reason["items"]] == ["schema"]


def test_oversized_bodies_are_refused_before_parsing(api_http: RunningApi, api_world: World) -> None:
    client, headers = api_http.client, api_world.headers("admin")
    big = client.post("/api/v1/maintainers", content=b'{"name": "' + b"x" * 100_000 + b'"}', headers=headers)
    assert (big.status_code, big.json()["error"]["code"]) == (413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"name": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}'

    streamed = client.post("/api/v1/maintainers", content=chunks(), headers=headers)
    assert (streamed.status_code, streamed.json()["error"]["code"]) == (413, "payload_too_large")
    text = client.get("/metrics").text
    assert 'liftwatch_api_rejected_requests_total{reason="too_large"} 2.0' in text


def test_health_checks_that_the_broker_speaks_mqtt(api_world: World, mqtt_url: str) -> None:
    settings = ApiSettings(
        database_url=api_world.database_url, kafka_bootstrap=None, mqtt_url=mqtt_url, api_port=services.free_port()
    )
    with running_api(settings) as api:
        health = api.client.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["checks"] == {
            "database": "ok",
            "kafka": "not configured",
            "mqtt": "ok",
            "late_samples": "ok",
        }
        # An open port that is not an MQTT broker (here: the API itself) is not a healthy broker.
        assert not asyncio.run(ops._mqtt_answers(f"mqtt://127.0.0.1:{settings.api_port}"))


def test_health_reports_a_high_share_of_late_samples_without_failing(api_world: World) -> None:
    settings = ApiSettings(database_url=api_world.database_url, kafka_bootstrap=None, api_port=services.free_port())
    with psycopg.connect(api_world.database_url) as conn:
        for partition, share in ((0, 0.002), (1, 0.034)):
            conn.execute(
                "INSERT INTO rules_checkpoints (consumer_group, topic, kafka_partition, next_offset, terminals, state,"
                " late_share) VALUES ('g', 'telemetry', %s, 0, 0, '', %s)",
                (partition, share),
            )
    with running_api(settings) as api:
        health = api.client.get("/healthz")
        assert health.status_code == 200, health.text  # late samples are still judged: not an outage
        assert health.json()["checks"]["late_samples"] == "high: 3.4% of samples arrived late in the last 5 minutes"
        with psycopg.connect(api_world.database_url) as conn:
            conn.execute(
                "UPDATE rules_checkpoints SET updated_at = now() - interval '6 minutes' WHERE kafka_partition = 1"
            )
        assert api.client.get("/healthz").json()["checks"]["late_samples"] == "ok"


def test_revoking_a_token_ends_the_streams_it_opened(
    api_http: RunningApi, api_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API runs in this process: shorten the re-check period and the token cache.
    monkeypatch.setattr(incidents, "_KEEPALIVE_S", 0.2)
    monkeypatch.setattr(auth, "_CACHE_TTL_S", 0.05)
    headers = api_world.headers("maintainer")
    with api_http.client.stream("GET", "/api/v1/incidents/stream?after=0", headers=headers) as stream:
        lines = stream.iter_lines()
        assert any(line.startswith("data:") for line in itertools.islice(lines, 6))
        with psycopg.connect(api_world.database_url) as conn:
            conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'tech-ma'")
        rest = list(lines)  # returns because the server ends the stream (a hang would time out)
    assert 'data: {"live": false}' in rest  # this API has no Kafka: the feed says changes are not live
    assert api_http.client.get("/api/v1/incidents/stream", headers=headers).status_code == 401


class _CuttableProxy:
    """A TCP relay to PostgreSQL that the test can cut and restore (a database outage, for real)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = services.free_port()
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self.loop.run_forever, name="pg-proxy", daemon=True).start()
        self.restore()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, upstream_writer}
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def restore(self) -> None:
        async def start() -> None:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        self._run(start())

    def cut(self) -> None:
        async def stop() -> None:
            assert self.server is not None
            self.server.close()
            for writer in self.writers:
                writer.transport.abort()
            self.writers.clear()

        self._run(stop())


def test_a_database_outage_answers_503_quickly_and_heals(api_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "DB_WAIT_S", 1.0)  # the API runs in this process
    parts = urlsplit(api_world.database_url)
    proxy = _CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    through_proxy = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    settings = ApiSettings(
        database_url=through_proxy, kafka_bootstrap=None, mqtt_url=None, api_port=services.free_port()
    )
    with running_api(settings) as api:
        headers = api_world.headers("operator")
        assert api.client.get("/api/v1/incidents", headers=headers).status_code == 200
        proxy.cut()
        started = time.monotonic()
        for _ in range(2):  # a broken pooled connection, then no connection at all: both 503
            down = api.client.get("/api/v1/incidents", headers=headers)
            assert (down.status_code, down.json()["error"]["code"]) == (503, "unavailable")
        assert time.monotonic() - started < 10  # not psycopg_pool's 30 s per request
        health = api.client.get("/healthz")
        assert (health.status_code, health.json()["checks"]["database"]) == (503, "down")
        proxy.restore()
        deadline = time.monotonic() + 15
        while api.client.get("/api/v1/incidents", headers=headers).status_code != 200:
            assert time.monotonic() < deadline, "the API did not recover"
            time.sleep(0.2)
        assert api.client.get("/healthz").status_code == 200


def test_a_fault_found_in_late_samples_opens_an_incident_marked_detected_late(
    api_http: RunningApi, api_world: World
) -> None:
    # The rules' late lane judged a buffer uploaded after an outage: an entrapment two hours ago.
    now = datetime.now(UTC)
    at_ms = int((now - timedelta(hours=2)).timestamp() * 1000)
    event = FaultEvent(
        event_id=fault_event_id(api_world.terminals["b"], "door_reopen_loop", "raised", at_ms - 60_000),
        transition="raised",
        code=FaultCode.DOOR_REOPEN_LOOP,
        severity=FAULT_SEVERITY[FaultCode.DOOR_REOPEN_LOOP],
        terminal=api_world.terminals["b"],
        registration_code=api_world.elevators["b"],
        since_ms=at_ms - 60_000,
        at_ms=at_ms,
        evidence={"late": True, "reversals": 5},
    )

    async def fold() -> None:
        async with await psycopg.AsyncConnection.connect(api_world.database_url) as conn:
            await faults_store.record_faults(conn, [event], now=now)

    asyncio.run(fold())
    page = api_http.client.get("/api/v1/incidents?code=door_reopen_loop", headers=api_world.headers("operator"))
    assert page.status_code == 200, page.text
    [incident] = page.json()["items"]
    assert incident["detected_late"] is True
    detected = datetime.fromisoformat(incident["detected_at"])
    opened = datetime.fromisoformat(incident["opened_at"])
    assert opened - detected >= timedelta(hours=2)  # both times: when it happened, when it was seen
    others = api_http.client.get("/api/v1/incidents?code=trapped_passenger", headers=api_world.headers("operator"))
    assert {i["detected_late"] for i in others.json()["items"]} == {False}
