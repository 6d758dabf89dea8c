"""GET /api/v1/stats/monthly on the real API: numbers, who may read which scope, error bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.fixtures.api import RunningApi
from tests.fixtures.console import PagesApi
from tests.fixtures.reports import Fleet

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class StatsApi:
    api: RunningApi
    fleet: Fleet
    tokens: dict[str, str]

    def get(self, role: str, lang: str = "en", **params: str | int) -> tuple[int, Any]:
        answer = self.api.client.get(
            "/api/v1/stats/monthly",
            params={"month": "2026-03", **params},
            headers={"Authorization": f"Bearer {self.tokens[role]}", "Accept-Language": lang},
        )
        return answer.status_code, answer.json()


@pytest.fixture
def stats_api(pages_api: PagesApi) -> StatsApi:
    """The API process over the ground-truth month, a token per role (maintainer = firm B)."""
    return StatsApi(pages_api.api, pages_api.fleet, pages_api.tokens)


def test_roles_read_the_ground_truth_and_a_firm_only_its_own(stats_api: StatsApi) -> None:
    status, city = stats_api.get("regulator", trend=3)
    assert status == 200, city
    assert (city["incidents"], city["entrapments"], city["elevators"]) == (8, 4, 10)
    assert city["rescue"]["arrived_within_30min_share"] == 0.5
    assert [p["month"] for p in city["trend"]] == ["2026-01", "2026-02", "2026-03"]
    status, district = stats_api.get("operator", scope="district:Pudong")
    assert status == 200 and district["elevators"] == 4
    status, unit = stats_api.get("admin", scope=f"use_unit:{stats_api.fleet.unit_2}")
    assert status == 200 and (unit["elevators"], unit["incidents"]) == (5, 4)

    own = f"maintainer:{stats_api.fleet.firm_b}"
    status, mine = stats_api.get("maintainer", scope=own)
    assert status == 200 and mine["incidents"] == 3
    # Another firm, the city, a district: 404 as if they did not exist (no probing).
    for scope in (f"maintainer:{stats_api.fleet.firm_a}", "city", "district:Pudong"):
        status, body = stats_api.get("maintainer", scope=scope)
        assert (status, body["error"]["code"]) == (404, "not_found"), scope


def test_errors_carry_a_stable_code_and_a_message_in_the_callers_language(stats_api: StatsApi) -> None:
    status, body = stats_api.get("admin", lang="zh-CN,zh;q=0.9", month="2026-13")
    assert status == 422 and body["error"]["code"] == "bad_month"
    assert "月份" in body["error"]["message"] and "2026-13" in body["error"]["message"]
    status, body = stats_api.get("admin", lang="en", scope="x:1")
    assert status == 422 and body["error"]["code"] == "bad_scope"
    assert body["error"]["message"].startswith("Scope must be")
    status, body = stats_api.get("admin", scope="use_unit:999")
    assert (status, body["error"]["code"]) == (404, "not_found")
    answer = stats_api.api.client.get("/api/v1/stats/monthly", params={"month": "2026-03"})
    assert answer.status_code == 401


def test_exports_and_scopes_follow_the_same_access_rules(stats_api: StatsApi) -> None:
    def call(role: str, path: str, **params: str) -> Any:
        return stats_api.api.client.get(
            path, params=params, headers={"Authorization": f"Bearer {stats_api.tokens[role]}"}
        )

    fleet = stats_api.fleet
    answer = call("regulator", "/api/v1/stats/monthly/export", month="2026-03", format="xlsx", scope="district:Pudong")
    assert answer.status_code == 200 and answer.content.startswith(b"PK")  # a zip: the XLSX file
    assert "district-Pudong.xlsx" in answer.headers["content-disposition"]
    csv = call("regulator", "/api/v1/stats/monthly/export", month="2026-03", format="csv", lang="en")
    assert csv.headers["content-type"].startswith("text/csv") and b"Trapped passenger" in csv.content
    own = call("maintainer", "/api/v1/stats/monthly/export", month="2026-03", format="csv",
               scope=f"maintainer:{fleet.firm_b}")  # fmt: skip
    assert own.status_code == 200
    for scope in (f"maintainer:{fleet.firm_a}", "city"):
        refused = call("maintainer", "/api/v1/stats/monthly/export", month="2026-03", format="pdf", scope=scope)
        assert (refused.status_code, refused.json()["error"]["code"]) == (404, "not_found")
    bad = call("regulator", "/api/v1/stats/monthly/export", month="2026-03", format="docx")
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "validation_error")

    everything = call("regulator", "/api/v1/stats/scopes", use_unit="Unit 2").json()
    assert everything["city"] and everything["districts"] == ["Pudong", "Xuhui"]
    assert [f["name"] for f in everything["firms"]] == ["Firm A", "Firm B"]
    assert everything["use_units"] == [{"id": fleet.unit_2, "name": "Unit 2"}]
    assert call("regulator", "/api/v1/stats/scopes", use_unit="%").json()["use_units"] == []  # a literal %
    mine = call("maintainer", "/api/v1/stats/scopes", use_unit="Unit").json()
    assert mine == {"city": False, "districts": [], "firms": [{"id": fleet.firm_b, "name": "Firm B"}], "use_units": []}


def test_the_firm_league_sums_the_window_and_shows_its_evidence(stats_api: StatsApi) -> None:
    def call(role: str, path: str, **params: str | int) -> Any:
        answer = stats_api.api.client.get(
            path, params=params, headers={"Authorization": f"Bearer {stats_api.tokens[role]}"}
        )
        return answer.status_code, answer.json()

    fleet = stats_api.fleet
    status, table = call("regulator", "/api/v1/stats/league", months=3, end="2026-03")
    assert status == 200, table
    assert (table["first_month"], table["last_month"]) == ("2026-01", "2026-03")
    # January to March: February's power failure of e8 (firm B) joins March's incidents.
    fields = ("name", "elevators", "elevator_months", "incidents", "entrapments", "dispatch_missed",
              "arrival_missed", "repeats", "false_alarms", "flags")  # fmt: skip
    assert [tuple(f[k] for k in fields) for f in table["firms"]] == [
        ("Firm A", 7, 21, 4, 3, 0, 1, 1, 0, ["entrapments_per_10k"]),
        ("Firm B", 3, 9, 4, 1, 1, 0, 1, 1, ["entrapments_per_10k"]),
    ]
    firm_a, firm_b = table["firms"]
    assert firm_a["entrapments_per_10k"] == 3 * 10_000 / 21 and firm_b["false_alarm_share"] == 0.25
    assert firm_a["arrival_missed_share"] == 1 / 3 and table["thresholds"]["min_entrapments"] == 5

    status, evidence = call("regulator", f"/api/v1/stats/league/{fleet.firm_b}/evidence", months=3, end="2026-03")
    assert status == 200
    assert sorted(tuple(i["reasons"]) for i in evidence["items"]) == [
        ("dispatch_missed",),
        ("false_alarm",),
        ("repeat",),
    ]
    status, evidence = call("operator", f"/api/v1/stats/league/{fleet.firm_a}/evidence", months=3, end="2026-03")
    assert [i["reasons"] for i in evidence["items"]] == [["arrival_missed", "repeat"]]

    # A firm: its own row and evidence only; another firm's evidence is not found.
    status, mine = call("maintainer", "/api/v1/stats/league", months=3, end="2026-03")
    assert [f["name"] for f in mine["firms"]] == ["Firm B"]
    status, body = call("maintainer", f"/api/v1/stats/league/{fleet.firm_a}/evidence", months=3, end="2026-03")
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert call("maintainer", f"/api/v1/stats/league/{fleet.firm_b}/evidence", months=3, end="2026-03")[0] == 200
    # Bad windows and months are 422.
    assert call("regulator", "/api/v1/stats/league", months=5)[0] == 422
    status, body = call("regulator", "/api/v1/stats/league", end="2026-13")
    assert (status, body["error"]["code"]) == (422, "bad_month")
    assert call("regulator", "/api/v1/stats/league/999999/evidence")[0] == 404
