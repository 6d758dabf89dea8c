"""GET /api/v1/stats/monthly: numbers, validation and who may read which scope."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI, Header
from liftwatch.config import CommonSettings
from liftwatch.reports.api import build_router

from tests.fixtures.reports import Fleet

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class StandIn:
    role: str
    maintainer_id: int | None = None


def _principal(x_role: str = Header(), x_firm: int | None = Header(default=None)) -> StandIn:
    return StandIn(x_role, x_firm)


def _client(fleet: Fleet) -> httpx.AsyncClient:
    """A small app mounting the router like the API does: settings found on app.state.api."""
    app = FastAPI()
    app.state.api = SimpleNamespace(settings=CommonSettings(database_url=fleet.url, site_timezone="Asia/Shanghai"))
    app.include_router(build_router(_principal))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_regulator_reads_city_and_district(reports_fleet: Fleet) -> None:
    async with _client(reports_fleet) as client:
        city = await client.get(
            "/api/v1/stats/monthly", params={"month": "2026-03", "trend": 3}, headers={"x-role": "regulator"}
        )
        district = await client.get(
            "/api/v1/stats/monthly",
            params={"month": "2026-03", "scope": "district:Pudong"},
            headers={"x-role": "operator"},
        )
    assert city.status_code == 200, city.text
    body = city.json()
    assert (body["incidents"], body["entrapments"], body["elevators"]) == (8, 4, 10)
    assert body["rescue"]["arrived_within_30min_share"] == 0.5
    assert [p["month"] for p in body["trend"]] == ["2026-01", "2026-02", "2026-03"]
    assert district.json()["elevators"] == 4


async def test_maintainer_sees_only_its_own_firm(reports_fleet: Fleet) -> None:
    own = {"x-role": "maintainer", "x-firm": str(reports_fleet.firm_b)}
    async with _client(reports_fleet) as client:
        mine = await client.get(
            "/api/v1/stats/monthly",
            params={"month": "2026-03", "scope": f"maintainer:{reports_fleet.firm_b}"},
            headers=own,
        )
        foreign = await client.get(
            "/api/v1/stats/monthly",
            params={"month": "2026-03", "scope": f"maintainer:{reports_fleet.firm_a}"},
            headers=own,
        )
        city = await client.get("/api/v1/stats/monthly", params={"month": "2026-03"}, headers=own)
    assert mine.status_code == 200 and mine.json()["incidents"] == 3
    assert foreign.status_code == 404 and city.status_code == 404


async def test_bad_parameters_and_unknown_scopes(reports_fleet: Fleet) -> None:
    admin = {"x-role": "admin"}
    async with _client(reports_fleet) as client:
        month = await client.get("/api/v1/stats/monthly", params={"month": "2026-13"}, headers=admin)
        scope = await client.get("/api/v1/stats/monthly", params={"month": "2026-03", "scope": "x:1"}, headers=admin)
        unknown = await client.get(
            "/api/v1/stats/monthly", params={"month": "2026-03", "scope": "use_unit:999"}, headers=admin
        )
    assert month.status_code == 422 and month.json()["detail"]["code"] == "bad_month"
    assert scope.status_code == 422 and scope.json()["detail"]["code"] == "bad_scope"
    assert unknown.status_code == 404
