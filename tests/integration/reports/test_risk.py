"""Fleet risk lists and the risk score on the real API: each list, per district, ranked, exported."""

from __future__ import annotations

import io
from typing import Any

import psycopg
import pytest
from liftwatch.reports import risk
from psycopg.rows import dict_row

from tests.fixtures.console import PagesApi
from tests.fixtures.risk import RiskFleet, ages, code

pytestmark = pytest.mark.integration


@pytest.fixture
def api(pages_api: PagesApi, risk_fleet: RiskFleet) -> PagesApi:
    return pages_api


def test_each_list_holds_the_elevators_that_meet_its_condition(api: PagesApi, risk_fleet: RiskFleet) -> None:
    body = api.get("regulator", "/api/v1/stats/risk").json()
    assert body["elevators"] == 11
    assert body["counts"] == {"overdue": 1, "uninsured": 2, "old": 2, "repeat": 1, "offline": 2}
    by_district = {d["district"]: d for d in body["districts"]}
    assert (by_district["Pudong"]["old"], by_district["Pudong"]["offline"], by_district["Xuhui"]["uninsured"]) == (
        2,
        1,
        2,
    )
    members = {
        name: {i["registration_code"] for i in api.get("regulator", "/api/v1/stats/risk", list=name).json()["items"]}
        for name in risk.LISTS
    }
    assert members == {
        "overdue": {code(0)},
        "uninsured": {code(1), code(2)},
        "old": {code(8), code(9)},
        "repeat": {code(3)},
        "offline": {code(5), code(6)},
    }
    pudong = api.get("regulator", "/api/v1/stats/risk", list="offline", district="Pudong").json()
    assert [i["registration_code"] for i in pudong["items"]] == [code(6)]


def test_the_ranking_follows_the_documented_score(api: PagesApi, risk_fleet: RiskFleet) -> None:
    ranked = api.get("regulator", "/api/v1/stats/risk", limit=500).json()
    with psycopg.connect(risk_fleet.fleet.url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT registration_code, installed_on FROM elevators").fetchall()
    years = ages(rows, risk_fleet.today)
    # The score by hand from the fixture's facts (docs/statistics.md, "Fleet risk").
    by_hand = {
        code(0): 30 + 4,  # 65 days overdue: 2 whole 30-day periods
        code(1): 15,
        code(2): 15,
        code(3): 10,  # one repeat (the false alarm between is ignored)
        code(4): 10,
        code(5): 10 + 15,
        code(6): 10 + 15,
        code(7): 10,
        code(8): 20 + min(10, years[code(8)] - 15),
        code(9): 20 + min(10, years[code(9)] - 15),
    }
    assert {i["registration_code"]: i["score"] for i in ranked["items"]} == by_hand
    assert [i["score"] for i in ranked["items"]] == sorted(by_hand.values(), reverse=True)
    first = ranked["items"][0]
    assert first["registration_code"] == code(0) and first["lists"] == ["overdue"]
    on = {code(0): "overdue", code(1): "uninsured", code(2): "uninsured", code(3): "repeat", code(5): "offline",
          code(6): "offline", code(8): "old", code(9): "old"}  # fmt: skip
    lists = {i["registration_code"]: i["lists"] for i in ranked["items"]}
    assert lists == {c: [on[c]] if c in on else [] for c in by_hand}
    for item in ranked["items"]:  # the pure function agrees with the SQL
        facts = risk.Facts(item["days_overdue"], item["insured"], item["age_years"], item["repeats"], item["offline"])
        assert risk.score(facts) == item["score"]
    page = api.get("regulator", "/api/v1/stats/risk", limit=3, offset=3).json()
    assert page["total"] == 10 and [i["registration_code"] for i in page["items"]] == [
        i["registration_code"] for i in ranked["items"][3:6]
    ]


def test_a_firm_sees_only_its_own_elevators_and_exports_are_safe(api: PagesApi, risk_fleet: RiskFleet) -> None:
    fleet = risk_fleet.fleet
    mine = api.get("maintainer", "/api/v1/stats/risk", limit=500).json()
    assert mine["elevators"] == 4  # firm B: e7-e10
    assert {i["maintainer_id"] for i in mine["items"]} == {fleet.firm_b}
    refused = api.api.client.get(
        "/api/v1/stats/risk",
        params={"maintainer_id": fleet.firm_a},
        headers={"Authorization": f"Bearer {api.tokens['maintainer']}"},
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "not_found")
    bad = api.api.client.get(
        "/api/v1/stats/risk", params={"list": "haunted"}, headers={"Authorization": f"Bearer {api.tokens['admin']}"}
    )
    assert bad.status_code == 422

    # An address typed as a formula is written as text.
    with psycopg.connect(fleet.url, autocommit=True) as conn:
        conn.execute(
            "UPDATE elevators SET address = '=HYPERLINK(\"http://x\")' WHERE registration_code = %s", (code(2),)
        )
    csv = api.get("regulator", "/api/v1/stats/risk/export", list="uninsured", format="csv", lang="en").content
    text = csv.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Registration code,Rescue code")
    assert "'=HYPERLINK" in text and len(text.splitlines()) == 3
    xlsx = api.get("regulator", "/api/v1/stats/risk/export", format="xlsx", lang="zh").content
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(xlsx)).active
    assert sheet.title == "优先检查" and sheet.max_row == 11  # header + the 10 elevators with a score
    values: list[Any] = [c.value for c in sheet["D"]]
    assert '\'=HYPERLINK("http://x")' in values
    firm = api.get("maintainer", "/api/v1/stats/risk/export", format="csv").content.decode("utf-8-sig")
    assert code(0) not in firm and code(8) in firm
