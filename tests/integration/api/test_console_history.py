"""The operators' history of finished incidents: API filters and export, the page in headless Chromium."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.fixtures.api import FIRM_B, RunningApi, World
from tests.fixtures.console import open_page, screenshot, sign_in

pytestmark = pytest.mark.integration


def _finished(conn: psycopg.Connection[Any], world: World, firm: str, code: str, status: str, days_ago: int,
              cause: str | None = None) -> int:  # fmt: skip
    detected = datetime.now(UTC) - timedelta(days=days_ago)
    row = conn.execute(
        "INSERT INTO incidents (registration_code, terminal_id, code, severity, status, maintainer_id, district,"
        " detected_at, last_seen_at, arrived_at, closed_at, close_cause) VALUES (%s, %s, %s, 'critical', %s, %s,"
        " %s, %s, %s, %s, %s, %s) RETURNING id",
        (world.elevators[firm], world.terminals[firm], code, status, world.firms[firm],
         "浦东新区" if firm == "a" else "黄浦区", detected, detected, detected + timedelta(minutes=20),
         detected + timedelta(hours=1), cause),
    ).fetchone()  # fmt: skip
    assert row is not None
    return int(row[0])


@pytest.fixture
def finished(api_world: World) -> dict[str, int]:
    with psycopg.connect(api_world.database_url, autocommit=True) as conn:
        return {
            "repaired": _finished(conn, api_world, "a", "trapped_passenger", "closed", 5, "equipment_fault"),
            "false": _finished(conn, api_world, "b", "alarm_button", "false_alarm", 3),
            "old": _finished(conn, api_world, "a", "door_held_open", "auto_cleared", 40),
        }


def _ids(api: RunningApi, world: World, role: str, **params: Any) -> list[int]:
    answer = api.client.get("/api/v1/history", params=params, headers=world.headers(role))
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


def test_history_filters_and_scopes(api_http: RunningApi, api_world: World, finished: dict[str, int]) -> None:
    assert _ids(api_http, api_world, "operator") == [finished["false"], finished["repaired"]]  # last 30 days
    since = (datetime.now(UTC) - timedelta(days=60)).isoformat()
    assert _ids(api_http, api_world, "operator", since=since) == [
        finished["false"],
        finished["repaired"],
        finished["old"],
    ]
    assert _ids(api_http, api_world, "regulator", cause="equipment_fault") == [finished["repaired"]]
    assert _ids(api_http, api_world, "operator", code="alarm_button", district="黄浦区") == [finished["false"]]
    assert _ids(api_http, api_world, "operator", q=api_world.rescue_codes["b"]) == [finished["false"]]
    assert _ids(api_http, api_world, "maintainer", since=since) == [finished["repaired"], finished["old"]]
    assert _ids(api_http, api_world, "maintainer", maintainer_id=api_world.firms["b"]) == []
    page = api_http.client.get("/api/v1/history", params={"limit": 1}, headers=api_world.headers("operator")).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = _ids(api_http, api_world, "operator", cursor=page["next_cursor"])
    assert rest == [finished["repaired"]]
    for bad in ({"cause": "gremlins"}, {"since": "2026-01-01T00:00:00"}, {"since": "2020-01-01T00:00:00Z"},
                {"until": "9999-01-01T00:00:00Z"}, {"cursor": "bm9wZQ"}):  # fmt: skip
        answer = api_http.client.get("/api/v1/history", params=bad, headers=api_world.headers("operator"))
        assert answer.status_code in (400, 422), bad
    csv = api_http.client.get(
        "/api/v1/history/export", params={"lang": "en"}, headers=api_world.headers("maintainer")
    ).content.decode("utf-8-sig")
    assert csv.splitlines()[0].startswith("No.,Detected,Fault,Outcome,Cause") and len(csv.splitlines()) == 2
    assert "Equipment fault" in csv and FIRM_B not in csv
    xlsx = api_http.client.get(
        "/api/v1/history/export", params={"format": "xlsx"}, headers=api_world.headers("operator")
    )
    assert xlsx.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert xlsx.content.startswith(b"PK")  # a zip: the XLSX file


@pytest.mark.browser
def test_an_operator_searches_the_history_and_opens_a_trail(
    chromium: Any, api_http: RunningApi, api_world: World, finished: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    context, page, watched = open_page(chromium, api_http.url)
    sign_in(page, api_http.url, api_world.tokens["operator"])
    page.get_by_test_id("nav").locator("a[data-page=history]").click()
    table = page.get_by_test_id("history")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text("设备故障")
    screenshot(page, "history")
    page.get_by_test_id("history-cause").select_option("equipment_fault")
    page.get_by_test_id("history-search").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    assert "cause=equipment_fault" in page.url
    with page.expect_download() as download:
        page.get_by_test_id("history-export-csv").click()
    text = download.value.path().read_bytes().decode("utf-8-sig")
    assert len(text.splitlines()) == 2 and "困人" in text
    table.locator("a.incident-link").click()
    expect(page.get_by_test_id("detail")).to_contain_text("已关闭")
    page.get_by_test_id("history-code").select_option("alarm_button")
    page.get_by_test_id("history-cause").select_option("")
    page.get_by_test_id("history-search").click()
    expect(page.get_by_test_id("history").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("history")).to_contain_text(FIRM_B)
    watched.assert_clean()
    context.close()
