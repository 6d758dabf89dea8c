"""Bad input never answers 500: a clear 422 in the API's error format, and the connection stays usable."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from typing import Any

import liftwatch.api as api_package
import pytest
from liftwatch.api import models
from liftwatch.api.app import create_app
from liftwatch.config import ApiSettings
from liftwatch.reports import api as reports_api

from tests.fixtures.api import RunningApi, World
from tests.fixtures.fuzz import fuzz_api

pytestmark = pytest.mark.integration

# (method, path, JSON body, error code): each answered 500 (and reset the connection) before.
BAD = [
    ("GET", "/api/v1/incidents?district=%00", None, "validation_error"),
    ("GET", "/api/v1/incidents?district=a%00b&limit=5", None, "validation_error"),
    ("GET", "/api/v1/elevators?q=a%00", None, "validation_error"),
    ("GET", "/api/v1/elevators?district=%00", None, "validation_error"),
    ("GET", "/api/v1/maintainers?q=%00", None, "validation_error"),
    ("GET", "/api/v1/dead-letters?reason=%00", None, "validation_error"),
    ("GET", "/api/v1/elevators/{el}/telemetry?until=0001-01-01T00:10:00Z", None, "validation_error"),
    ("GET", "/api/v1/elevators/{el}/telemetry?since=9999-12-31T23:00:00Z", None, "validation_error"),
    ("GET", "/api/v1/incidents?since=0001-01-01T00:00:00%2B14:00", None, "validation_error"),
    ("GET", "/api/v1/stats/monthly?month=9999-12", None, "bad_month"),
    ("GET", "/api/v1/stats/monthly?month=2026-01&scope=district:%00", None, "validation_error"),
    ("POST", "/api/v1/maintainers", {"name": "维保\u0000公司"}, "validation_error"),
    ("PATCH", "/api/v1/elevators/{el}", {"address": "\u0000"}, "validation_error"),
    ("POST", "/api/v1/incidents/{inc}/acknowledge", {"note": "接警\u0000"}, "validation_error"),
    ("POST", "/api/v1/incidents/{inc}/comments", {"note": "\u0000"}, "validation_error"),
    (
        "POST",
        "/api/v1/incidents",
        {"rescue_code": "{rc}", "code": "trapped_passenger", "note": "\u0000"},
        "validation_error",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "code"), BAD, ids=[f"{m} {p}" for m, p, _, _ in BAD])
def test_bad_text_and_out_of_range_times_answer_422_on_a_connection_that_stays_open(
    api_http: RunningApi, api_world: World, method: str, path: str, body: Any, code: str
) -> None:
    client = api_http.client
    url = path.format(el=api_world.elevators["a"], inc=api_world.incidents["a"])
    if body is not None:
        body = {name: value.format(rc=api_world.rescue_codes["a"]) for name, value in body.items()}
    response = client.request(method, url, json=body, headers=api_world.headers("admin"))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    # The same keep-alive connection answers the next request (a 500 used to drop it).
    assert client.get("/api/v1/me", headers=api_world.headers("admin")).status_code == 200


def test_a_nul_byte_is_named_in_the_callers_language(api_http: RunningApi, api_world: World) -> None:
    zh = api_http.client.get("/api/v1/incidents?district=%00", headers=api_world.headers("operator", "zh"))
    error = zh.json()["error"]
    assert error["details"] == [
        {"loc": ["query", "district"], "type": "nul_character", "msg": error["details"][0]["msg"]}
    ]
    assert "NUL" in error["message"]


def test_every_request_body_refuses_nul_in_any_string() -> None:
    """Each body model is an api.models.Input, whose validator refuses NUL in every string field."""
    openapi = create_app(ApiSettings(database_url="postgresql://unused")).openapi()
    bodies = {
        f"{method.upper()} {path}": operation["requestBody"]["content"]["application/json"]["schema"]
        for path, methods in openapi["paths"].items()
        for method, operation in methods.items()
        if "requestBody" in operation
    }
    assert len(bodies) >= 8
    refs = {where: re.findall(r"#/components/schemas/(\w+)", json.dumps(schema)) for where, schema in bodies.items()}
    assert all(len(found) == 1 for found in refs.values()), refs
    names = {where: found[0] for where, found in refs.items()}
    assert {where: name for where, name in names.items() if not issubclass(_body_models()[name], models.Input)} == {}


def _body_models() -> dict[str, type]:
    """Every pydantic model defined in the API's modules (and the reports router's), by name."""
    found: dict[str, type] = {}
    for module in pkgutil.iter_modules(api_package.__path__):
        loaded = importlib.import_module(f"liftwatch.api.{module.name}")
        found |= {name: value for name, value in vars(loaded).items() if isinstance(value, type)}
    found |= {name: value for name, value in vars(reports_api).items() if isinstance(value, type)}
    return found


FUZZ_EXAMPLES = 5


# About 2,000 requests: under a minute on an idle machine, more when the machine is shared.
@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_error_in_any_operation_for_any_role(
    api_http: RunningApi, api_world: World
) -> None:
    """Every operation of the live OpenAPI with valid and invalid data, as each role: never a 5xx."""
    roles = ("admin", "operator", "maintainer", "regulator")
    report = fuzz_api(api_http.url, {role: api_world.tokens[role] for role in roles}, max_examples=FUZZ_EXAMPLES)
    assert report.cases > 1000
    assert report.failures == {}
