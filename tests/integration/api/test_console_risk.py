"""The fleet risk page in headless Chromium: the lists' counts, the ranking, districts, exports."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.console import PagesApi, open_page, screenshot, sign_in
from tests.fixtures.risk import RiskFleet, code

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _codes(page: Any) -> list[str]:
    return page.locator("[data-testid=risk-items] tbody tr").evaluate_all(  # type: ignore[no-any-return]
        "rows => rows.map(r => r.dataset.elevator)"
    )


def test_a_regulator_works_through_the_risk_lists(chromium: Any, pages_api: PagesApi, risk_fleet: RiskFleet) -> None:
    from playwright.sync_api import expect

    context, page, watched = open_page(chromium, pages_api.api.url)
    sign_in(page, pages_api.api.url, pages_api.tokens["regulator"])
    page.get_by_test_id("nav").locator("a[data-page=risk]").click()
    items = page.get_by_test_id("risk-items")
    expect(items.locator("tbody tr")).to_have_count(10)
    api = pages_api.get("regulator", "/api/v1/stats/risk", limit=500).json()
    for name, count in api["counts"].items():
        expect(page.get_by_test_id(f"risk-count-{name}")).to_have_text(f" {count}")
    assert _codes(page) == [i["registration_code"] for i in api["items"]]  # the inspect-next ranking
    assert items.locator("td[data-key=score]").all_text_contents() == [str(i["score"]) for i in api["items"]]
    expect(page.get_by_test_id("score-rule")).to_contain_text("超期未检30分")
    screenshot(page, "risk")

    page.get_by_test_id("risk-tab-offline").click()
    expect(items.locator("tbody tr")).to_have_count(2)
    assert set(_codes(page)) == {code(5), code(6)}
    page.get_by_test_id("risk-districts").locator("a", has_text="Pudong").click()
    expect(items.locator("tbody tr")).to_have_count(1)
    assert _codes(page) == [code(6)] and "district=Pudong" in page.url and "list=offline" in page.url
    with page.expect_download() as download:
        page.get_by_test_id("risk-export-csv").click()
    data = download.value.path().read_bytes()
    assert (
        data
        == pages_api.get(
            "regulator", "/api/v1/stats/risk/export", list="offline", district="Pudong", format="csv", lang="zh"
        ).content
    )
    assert code(6).encode() in data and code(5).encode() not in data
    watched.assert_clean()
    context.close()

    # A firm has no risk page; what it may read of its own fleet is on "My fleet".
    context, page, watched = open_page(chromium, pages_api.api.url)
    sign_in(page, pages_api.api.url, pages_api.tokens["maintainer"])
    expect(page.get_by_test_id("nav").locator("a[data-page=risk]")).to_have_count(0)
    page.goto(f"{pages_api.api.url}/#/risk")
    expect(page.get_by_test_id("forbidden")).to_be_visible()
    watched.assert_clean()
    context.close()
