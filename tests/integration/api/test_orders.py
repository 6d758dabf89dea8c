"""Rectification orders on the real API: the closed loop, its audit trail, overdue orders, who may act."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.fixtures.api import RunningApi, World

pytestmark = pytest.mark.integration


def call(api: RunningApi, world: World, role: str, method: str, path: str, body: Any = None, **params: Any) -> Any:
    answer = api.client.request(method, path, json=body, params=params, headers=world.headers(role))
    return answer.status_code, answer.json()


def test_a_regulator_orders_the_firm_answers_and_the_regulator_closes(api_http: RunningApi, api_world: World) -> None:
    status, opened = call(api_http, api_world, "regulator", "POST", "/api/v1/orders", {
        "registration_code": api_world.elevators["a"], "title": "检验超期", "due_on": "2026-01-05",
        "note": "请于期限内完成定期检验",
    })  # fmt: skip
    assert status == 201, opened
    order = opened["order"]
    assert (order["status"], order["maintainer_id"], order["overdue"]) == ("open", api_world.firms["a"], True)
    assert order["actions"] == ["close"]  # a regulator may withdraw it; only the firm answers
    oid = order["id"]
    # The other firm does not see it, cannot answer it; the operator reads but may not act.
    assert call(api_http, api_world, "maintainer_b", "GET", f"/api/v1/orders/{oid}")[0] == 404
    assert call(api_http, api_world, "maintainer_b", "POST", f"/api/v1/orders/{oid}/answer", {"note": "x"})[0] == 404
    assert call(api_http, api_world, "maintainer_b", "GET", "/api/v1/orders")[1]["items"] == []
    assert call(api_http, api_world, "operator", "POST", f"/api/v1/orders/{oid}/close", {"note": "x"})[0] == 403
    assert call(api_http, api_world, "maintainer", "POST", f"/api/v1/orders/{oid}/close", {"note": "x"})[0] == 403
    # The firm answers (a note is required), the regulator sends it back, the firm answers again, closed.
    assert call(api_http, api_world, "maintainer", "POST", f"/api/v1/orders/{oid}/answer", {"note": ""})[0] == 422
    status, answered = call(api_http, api_world, "maintainer", "POST", f"/api/v1/orders/{oid}/answer",
                            {"note": "已预约检验机构，1月8日检验"})  # fmt: skip
    assert status == 200 and answered["order"]["status"] == "answered" and answered["order"]["actions"] == []
    assert call(api_http, api_world, "maintainer", "POST", f"/api/v1/orders/{oid}/answer", {"note": "again"})[0] == 409
    call(api_http, api_world, "regulator", "POST", f"/api/v1/orders/{oid}/reopen", {"note": "请提供检验报告"})
    call(api_http, api_world, "maintainer", "POST", f"/api/v1/orders/{oid}/answer", {"note": "检验报告已上传"})
    status, closed = call(api_http, api_world, "regulator", "POST", f"/api/v1/orders/{oid}/close", {"note": "合格"})
    assert status == 200 and closed["order"]["status"] == "closed" and not closed["order"]["overdue"]
    trail = [(e["kind"], e["status_after"], e["note"]) for e in closed["events"]]
    assert [k for k, _, _ in trail] == ["opened", "answered", "reopened", "answered", "closed"]
    assert trail[1][2] == "已预约检验机构，1月8日检验" and closed["events"][1]["actor"] == "tech-ma"
    assert call(api_http, api_world, "regulator", "POST", f"/api/v1/orders/{oid}/close", {"note": "x"})[0] == 409


def test_orders_from_an_incident_or_on_a_firm_and_the_overdue_list(api_http: RunningApi, api_world: World) -> None:
    body = {"incident_id": api_world.incidents["b"], "title": "困人原因分析", "due_on": "2099-01-01", "note": "n"}
    status, on_incident = call(api_http, api_world, "admin", "POST", "/api/v1/orders", body)
    assert status == 201 and on_incident["order"]["registration_code"] == api_world.elevators["b"]
    body = {"maintainer_id": api_world.firms["a"], "title": "到场超时整改", "due_on": "2020-01-01", "note": "n"}
    status, on_firm = call(api_http, api_world, "regulator", "POST", "/api/v1/orders", body)
    assert status == 201 and on_firm["order"]["registration_code"] is None
    overdue = call(api_http, api_world, "regulator", "GET", "/api/v1/orders", overdue="true")[1]["items"]
    assert [o["id"] for o in overdue] == [on_firm["order"]["id"]]
    for bad in (
        {"title": "x", "due_on": "2027-01-01", "note": "n"},  # about nothing
        {
            "registration_code": api_world.elevators["a"],
            "maintainer_id": 1,
            "title": "x",
            "due_on": "2027-01-01",
            "note": "n",
        },
        {"registration_code": api_world.elevators["a"], "title": "", "due_on": "2027-01-01", "note": "n"},
        {"registration_code": api_world.elevators["a"], "title": "a\x00b", "due_on": "2027-01-01", "note": "n"},
        {"registration_code": api_world.elevators["a"], "title": "t", "due_on": "2027-01-01", "note": "\x00"},
    ):
        assert call(api_http, api_world, "regulator", "POST", "/api/v1/orders", bad)[0] == 422, bad
    assert call(api_http, api_world, "regulator", "POST", "/api/v1/orders", {
        "incident_id": 999999, "title": "x", "due_on": "2027-01-01", "note": "n"})[0] == 404  # fmt: skip
    with psycopg.connect(api_world.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM rectification_events").fetchone() == (2,)
