"""Every endpoint walked with every role: who may read, who may write, and 404 for foreign objects.

The table is role x endpoint x own/other firm -> status, over real HTTP against the real app and
PostgreSQL; a route of the app missing from it, or declaring its caller without one of the
``liftwatch.api.deps`` aliases, fails. The policy itself is ``liftwatch.api.access``.
"""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from liftwatch.api import deps
from liftwatch.api.app import create_app
from liftwatch.config import ApiSettings
from starlette.routing import Mount

from tests.fixtures.api import FIRM_A, RunningApi, World, seed_world

pytestmark = pytest.mark.integration

ROLES = ("admin", "operator", "regulator", "maintainer", "anonymous")

NEW_ELEVATOR = {
    "registration_code": "31010000000000000099",
    "rescue_code": "20099",
    "kind": "traction",
    "address": "新建路1号",
    "district": "浦东新区",
    "use_unit": "新物业",
    "maintainer": "安康电梯维保有限公司",
    "installed_on": "2020-01-01",
    "rated_speed": 1.0,
    "bottom_floor": 1,
    "top_floor": 10,
}

# A phone call about elevator a's entrapment (the rescue code is the role's world's).
CALL = {"rescue_code": "{rc_a}", "code": "trapped_passenger", "note": "来电"}

# Bodies naming the role's world's elevators (filled in per world, like CALL).
WINDOW_A = {"registration_code": "{el_a}", "ends_at": "+2h", "reason": "保养"}
WINDOW_B = {"registration_code": "{el_b}", "ends_at": "+2h", "reason": "保养"}
SHELF_B = {"registration_code": "{el_b}", "code": "door_reopen_loop", "minutes": 60, "reason": "误报"}

# (method, path, body, expected status by role); {x_a} = maintainer's own firm, {x_b} = another firm.
# A role missing from the dict gets the row's default (the first entry, "*").
TABLE: list[tuple[str, str, dict[str, Any] | None, dict[str, int]]] = [
    ("GET", "/healthz", None, {"*": 200}),
    ("GET", "/metrics", None, {"*": 200}),
    ("GET", "/api/v1/i18n/zh", None, {"*": 200}),
    ("GET", "/", None, {"*": 200}),
    ("GET", "/docs", None, {"*": 200}),
    ("GET", "/openapi.json", None, {"*": 200}),
    ("GET", "/api/v1/me", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/catalog", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/incidents", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/incidents/{inc_a}", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/incidents/{inc_b}", None, {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/incidents/999999", None, {"*": 404, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{inc_a}/acknowledge", {"note": "接警"},
     {"*": 200, "regulator": 403, "maintainer": 403, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{inc_b}/acknowledge", None,
     {"*": 200, "regulator": 403, "maintainer": 404, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{inc_a}/arrive", None, {"*": 409, "regulator": 403, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{inc_b}/arrive", None,
     {"*": 409, "regulator": 403, "maintainer": 404, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{inc_a}/escalate", None,
     {"*": 200, "regulator": 403, "maintainer": 403, "anonymous": 401}),
    # The centre's work: a call (joins a's open entrapment), comments, assignment.
    ("POST", "/api/v1/incidents", CALL, {"*": 200, "regulator": 403, "maintainer": 403, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{inc_a}/comments", {"note": "备注"}, {"*": 201, "regulator": 403, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{inc_b}/comments", {"note": "备注"},
     {"*": 201, "regulator": 403, "maintainer": 404, "anonymous": 401}),
    ("POST", "/api/v1/incident-groups/{inc_a}/acknowledge", None,  # no group in the seed: 404
     {"*": 404, "regulator": 403, "maintainer": 403, "anonymous": 401}),
    ("PUT", "/api/v1/incidents/{inc_a}/assignee", {"assignee": None},
     {"*": 200, "regulator": 403, "maintainer": 403, "anonymous": 401}),
    ("PUT", "/api/v1/incidents/{inc_b}/assignee", {"assignee": None},
     {"*": 200, "regulator": 403, "maintainer": 403, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{inc_a}/dispatch", {"note": "已通知维保"},
     {"*": 200, "regulator": 403, "maintainer": 403, "anonymous": 401}),
    # A firm marks arrival and release on its own dispatched incident, not on another firm's.
    ("POST", "/api/v1/incidents/{disp_a}/arrive", {"note": "到场"}, {"*": 200, "regulator": 403, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{disp_b}/arrive", None,
     {"*": 200, "regulator": 403, "maintainer": 404, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{disp_a}/release", {"note": "已恢复"}, {"*": 200, "regulator": 403, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{disp_b}/release", None,
     {"*": 200, "regulator": 403, "maintainer": 404, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{disp_a}/close", {"cause": "external_power", "note": "市电恢复"},
     {"*": 200, "regulator": 403, "maintainer": 403, "anonymous": 401}),
    ("POST", "/api/v1/incidents/{inc_b}/false-alarm", {"note": "误触"},
     {"*": 200, "regulator": 403, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/incidents/stream", None, {"*": 200, "anonymous": 401}),
    ("POST", "/api/v1/session", None, {"*": 204, "anonymous": 401}),
    ("DELETE", "/api/v1/session", None, {"*": 204}),
    ("GET", "/api/v1/elevators", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/elevators/{el_a}", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/elevators/{el_b}", None, {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/elevators/by-rescue-code/{rc_a}", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/elevators/by-rescue-code/{rc_b}", None, {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/elevators/{el_a}/telemetry", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/elevators/{el_b}/telemetry", None, {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/fleet", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/history", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/orders", None, {"*": 200, "anonymous": 401}),
    ("POST", "/api/v1/orders", {"registration_code": "{el_b}", "title": "门锁", "due_on": "2027-01-01", "note": "整改"},
     {"*": 201, "operator": 403, "maintainer": 403, "anonymous": 401}),
    ("GET", "/api/v1/orders/999999", None, {"*": 404, "anonymous": 401}),
    ("POST", "/api/v1/orders/999999/answer", {"note": "done"}, {"*": 404, "anonymous": 401}),
    ("GET", "/api/v1/history/export", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/fleet/{el_a}/usage", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/fleet/{el_b}/usage", None, {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("POST", "/api/v1/elevators", NEW_ELEVATOR, {"*": 403, "admin": 201, "anonymous": 401}),
    ("PATCH", "/api/v1/elevators/{el_a}", {"address": "新地址"}, {"*": 403, "admin": 200, "anonymous": 401}),
    ("PATCH", "/api/v1/elevators/{el_b}", {"address": "新地址"}, {"*": 403, "admin": 200, "anonymous": 401}),
    ("GET", "/api/v1/maintainers", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/maintainers/{firm_a}", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/maintainers/{firm_b}", None, {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("POST", "/api/v1/maintainers", {"name": "新维保"}, {"*": 403, "admin": 201, "anonymous": 401}),
    ("PATCH", "/api/v1/maintainers/{firm_b}", {"name": "改名"}, {"*": 403, "admin": 200, "anonymous": 401}),
    ("GET", "/api/v1/terminals", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/terminals/{t_a}", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/terminals/{t_b}", None, {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("POST", "/api/v1/terminals", {"terminal_id": "T-NEW"}, {"*": 403, "admin": 201, "anonymous": 401}),
    ("PATCH", "/api/v1/terminals/{t_b}", {"registration_code": None}, {"*": 403, "admin": 200, "anonymous": 401}),
    ("GET", "/api/v1/dead-letters", None, {"*": 403, "admin": 200, "anonymous": 401}),
    # Alarm load: the centre's and the regulator's; desks set by admins.
    ("GET", "/api/v1/desks", None, {"*": 200, "maintainer": 403, "anonymous": 401}),
    ("PUT", "/api/v1/desks/East", {"districts": ["浦东新区"]}, {"*": 403, "admin": 200, "anonymous": 401}),
    ("GET", "/api/v1/alarm-load?desk=nowhere&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", None,
     {"*": 404, "maintainer": 403, "anonymous": 401}),
    # Recorded but not notified: windows (firm, centre), shelves (centre), out of service (firm, regulator).
    ("GET", "/api/v1/maintenance-windows", None, {"*": 200, "anonymous": 401}),
    ("POST", "/api/v1/maintenance-windows", WINDOW_A, {"*": 201, "regulator": 403, "anonymous": 401}),
    ("POST", "/api/v1/maintenance-windows", WINDOW_B,
     {"*": 201, "regulator": 403, "maintainer": 404, "anonymous": 401}),
    ("DELETE", "/api/v1/maintenance-windows/{window_b}", None,
     {"*": 204, "regulator": 403, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/shelves", None, {"*": 200, "anonymous": 401}),
    ("POST", "/api/v1/shelves", SHELF_B, {"*": 201, "regulator": 403, "maintainer": 403, "anonymous": 401}),
    ("DELETE", "/api/v1/shelves/{shelf_b}", None, {"*": 204, "regulator": 403, "maintainer": 403, "anonymous": 401}),
    ("GET", "/api/v1/out-of-service", None, {"*": 200, "anonymous": 401}),
    ("PUT", "/api/v1/elevators/{el_a}/out-of-service", {"reason": "停用"},
     {"*": 200, "operator": 403, "anonymous": 401}),
    ("PUT", "/api/v1/elevators/{el_b}/out-of-service", {"reason": "停用"},
     {"*": 200, "operator": 403, "maintainer": 404, "anonymous": 401}),
    ("DELETE", "/api/v1/elevators/{el_b}/out-of-service", None,
     {"*": 204, "operator": 403, "maintainer": 404, "anonymous": 401}),
    # Statistics: every role reads, a firm only its own firm's scope (another scope: 404, no probing).
    ("GET", "/api/v1/stats/monthly?month=2026-03", None, {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/stats/monthly?month=2026-03&scope=maintainer:{firm_a}", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/stats/monthly?month=2026-03&scope=maintainer:{firm_b}", None,
     {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/stats/monthly/export?month=2026-03&format=csv&scope=maintainer:{firm_a}", None,
     {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/stats/monthly/export?month=2026-03&format=csv&scope=maintainer:{firm_b}", None,
     {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/stats/scopes", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/stats/league", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/stats/league/{firm_a}/evidence", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/stats/league/{firm_b}/evidence", None, {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/stats/risk", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/stats/risk?maintainer_id={firm_b}", None, {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/stats/risk/export?format=csv", None, {"*": 200, "anonymous": 401}),
    ("GET", "/api/v1/stats/risk/export?format=csv&maintainer_id={firm_b}", None,
     {"*": 200, "maintainer": 404, "anonymous": 401}),
    ("GET", "/api/v1/stats/map", None, {"*": 200, "anonymous": 401}),
]  # fmt: skip

# Routes that take no caller alias: open to all, or (sign-in) checking the presented token themselves.
PUBLIC = {
    ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/api/v1/i18n/{lang}"), ("GET", "/"), ("GET", "/docs"),
    ("GET", "/openapi.json"), ("POST", "/api/v1/session"), ("DELETE", "/api/v1/session"),
}  # fmt: skip


def _path(template: str, world: World) -> str:
    return template.format(
        inc_a=world.incidents["a"],
        inc_b=world.incidents["b"],
        disp_a=world.dispatched["a"],
        disp_b=world.dispatched["b"],
        el_a=world.elevators["a"],
        el_b=world.elevators["b"],
        rc_a=world.rescue_codes["a"],
        rc_b=world.rescue_codes["b"],
        firm_a=world.firms["a"],
        firm_b=world.firms["b"],
        t_a=world.terminals["a"],
        t_b=world.terminals["b"],
        window_b=_latest(world, "maintenance_windows") if "{window_b}" in template else 0,
        shelf_b=_latest(world, "alarm_shelves") if "{shelf_b}" in template else 0,
    )


def _latest(world: World, table: str) -> int:
    """The newest row of ``table`` on firm b's elevator (created by an earlier row of the table), else 0."""
    with psycopg.connect(world.database_url) as conn:
        row = conn.execute(
            f"SELECT coalesce(max(id), 999999) FROM {table} WHERE registration_code = %s", (world.elevators["b"],)
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_answers_each_role_as_its_rights_say(role: str, module_api: RunningApi) -> None:
    """One fresh world per role; each row is one request; all mismatches are reported together."""
    base = 100 * (1 + ROLES.index(role))
    api_world = seed_world(module_api.settings.require_database_url(), base=base)
    api_http = module_api
    headers = api_world.headers(role) if role != "anonymous" else {"Accept-Language": "en"}
    wrong: list[str] = []
    for method, template, body, expected in TABLE:
        want = expected.get(role, expected["*"])
        if body is NEW_ELEVATOR:
            body = {**body, "maintainer": f"{FIRM_A} {base}"}
        if body is CALL:
            body = {**body, "rescue_code": api_world.rescue_codes["a"]}
        if body is not None and str(body.get("registration_code", "")).startswith("{"):
            body = {**body, "registration_code": _path(body["registration_code"], api_world)}
            if "ends_at" in body:
                body["ends_at"] = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        client = api_http.client
        # The stream never ends: its status and first bytes are enough here.
        with client.stream(method, _path(template, api_world), json=body, headers=headers) as response:
            status = response.status_code
            text = next(response.iter_text(), "") if template.endswith("/stream") else response.read().decode()
        client.cookies.clear()  # a session cookie must not carry over to the next row
        if status != want:
            wrong.append(f"{method} {template}: {status} != {want} ({text[:200]})")
        if status >= 400 and template not in ("/healthz",):
            error = json.loads(text)["error"]
            assert error["code"] and error["message"], text
        elif template.endswith("/stream"):
            assert text.startswith(": liftwatch incident feed"), text
    assert not wrong, "\n".join(wrong)


def _routes() -> list[tuple[str, RouteContext]]:
    """(method, route) of every endpoint of the app, in the router's order (static file mounts aside)."""
    app = create_app(ApiSettings(database_url="postgresql://localhost/unused"))
    found = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            continue
        found += [(method, route) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def test_every_route_of_the_app_is_in_the_table() -> None:
    """A new endpoint without a row here fails: access rules are never untested."""
    routes = _routes()
    assert len(routes) > 50
    # Each row reaches the first route matching its method and path, as the router would.
    world = World(
        "", firms={"a": 1, "b": 2}, elevators={"a": "E1", "b": "E2"}, rescue_codes={"a": "1", "b": "2"},
        terminals={"a": "T1", "b": "T2"}, incidents={"a": 1, "b": 2}, dispatched={"a": 3, "b": 4},
    )  # fmt: skip
    reached = set()
    for method, template, _, _ in TABLE:
        path = _path(template.replace("{window_b}", "1").replace("{shelf_b}", "1"), world).split("?")[0]
        first = next((r for m, r in routes if m == method and r.path_regex.fullmatch(path)), None)
        assert first is not None, f"{method} {template} reaches no route"
        reached.add((method, first.path))
    missing = [f"{method} {route.path}" for method, route in routes if (method, route.path) not in reached]
    assert not missing, missing


def test_every_route_declares_its_caller_with_a_deps_alias() -> None:
    """Who may call a route is read off its signature: one alias of ``liftwatch.api.deps``, or it is public."""
    aliases = {
        typing.get_args(value)[1].dependency
        for value in vars(deps).values()
        if typing.get_origin(value) is typing.Annotated
    }
    wrong = []
    for method, route in _routes():
        original = route.original_route
        calls = [d.call for d in original.dependant.dependencies] if isinstance(original, APIRoute) else []
        declared = [call for call in calls if call in aliases]
        public = (method, route.path) in PUBLIC
        if len(declared) != (0 if public else 1):
            wrong.append(f"{method} {route.path}: {len(declared)} caller aliases")
    assert not wrong, wrong


def test_a_firm_lists_only_its_own_objects(module_api: RunningApi) -> None:
    """Lists, searches and the feed's replay never show another firm's objects (other worlds share the schema)."""
    seed_world(module_api.settings.require_database_url(), base=900)  # another firm's data beside ours
    world = seed_world(module_api.settings.require_database_url(), base=950)
    client, headers, own = module_api.client, world.headers("maintainer"), world.firms["a"]

    def items(path: str) -> list[dict[str, Any]]:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return body["items"] if isinstance(body, dict) else body

    assert {i["id"] for i in items("/api/v1/incidents?limit=500")} == {world.incidents["a"], world.dispatched["a"]}
    assert {e["registration_code"] for e in items("/api/v1/elevators?limit=500")} == {world.elevators["a"]}
    assert items("/api/v1/elevators?q=世纪大道") == items("/api/v1/elevators")
    assert [f["id"] for f in items("/api/v1/maintainers")] == [own]
    assert [t["terminal_id"] for t in items("/api/v1/terminals")] == [world.terminals["a"]]
    # Filtering on another firm's id or elevator finds nothing rather than an error.
    assert items(f"/api/v1/incidents?maintainer_id={world.firms['b']}") == []
    assert items(f"/api/v1/incidents?registration_code={world.elevators['b']}") == []
    # The other worlds' changes come first in the audit trail: a leak would be among the first two.
    with client.stream("GET", "/api/v1/incidents/stream?after=0", headers=headers) as stream:
        replayed = []
        for line in stream.iter_lines():
            if line.startswith("data:") and "incident_id" in (data := json.loads(line[5:])):
                replayed.append(data["incident_id"])
            if len(replayed) == 2:
                break
    assert set(replayed) == {world.incidents["a"], world.dispatched["a"]}


YOUR_ACTIONS = {
    "admin": ["acknowledge", "dispatch", "arrive", "release", "close", "false-alarm", "escalate"],
    "operator": ["acknowledge", "dispatch", "arrive", "release", "close", "false-alarm", "escalate"],
    "maintainer": ["arrive", "release"],
    "regulator": [],
}


@pytest.mark.parametrize("role", sorted(YOUR_ACTIONS))
def test_the_catalog_tells_each_role_the_actions_it_may_take(role: str, module_api: RunningApi) -> None:
    """The console offers exactly these buttons (console.js ``YOUR_ACTIONS``); the rows above show
    the server accepting them and refusing the others."""
    api_world = seed_world(
        module_api.settings.require_database_url(), base=1000 + 100 * sorted(YOUR_ACTIONS).index(role)
    )
    response = module_api.client.get("/api/v1/catalog", headers=api_world.headers(role))
    assert response.status_code == 200
    assert response.json()["your_actions"] == YOUR_ACTIONS[role]
