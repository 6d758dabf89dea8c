"""The firm league page in headless Chromium: the API's figures, sorting, flags and their evidence."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.console import PagesApi, open_page, screenshot, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _column(page: Any, key: str) -> list[str]:
    return page.locator(f'[data-testid=league] td[data-key="{key}"]').all_text_contents()  # type: ignore[no-any-return]


def test_a_regulator_ranks_firms_and_opens_the_evidence(chromium: Any, pages_api: PagesApi) -> None:
    from playwright.sync_api import expect

    fleet = pages_api.fleet
    context, page, watched = open_page(chromium, pages_api.api.url, locale="en-US")
    sign_in(page, pages_api.api.url, pages_api.tokens["regulator"])
    page.goto(f"{pages_api.api.url}/#/league?months=3&end=2026-03")
    league = page.get_by_test_id("league")
    expect(league.locator("tbody tr[data-firm]")).to_have_count(2)
    expect(page.get_by_test_id("league-window")).to_have_text("2026-01 … 2026-03")
    api = pages_api.get("regulator", "/api/v1/stats/league", months=3, end="2026-03").json()
    # The API's order (flagged first, highest entrapment rate first) and its figures.
    assert _column(page, "name") == [f["name"] for f in api["firms"]] == ["Firm A", "Firm B"]
    assert _column(page, "entrapments") == [str(f["entrapments"]) for f in api["firms"]]
    assert _column(page, "arrival_missed_share") == ["1 · 33.3%", "0 · 0%"]
    assert _column(page, "entrapments_per_10k") == ["1,428.57", "1,111.11"]  # x 10,000 / 21 and / 9 elevator-months
    expect(league.locator("tr.flagged")).to_have_count(2)
    expect(page.get_by_test_id("thresholds")).to_contain_text("Entrapment rate > 20")

    # Sorting: by false alarms, most first, then reversed; the address keeps the order.
    league.locator('th[data-sort="false_alarm_share"]').click()
    expect(league.locator("tbody tr[data-firm]").first).to_have_attribute("data-firm", str(fleet.firm_b))
    league.locator('th[data-sort="false_alarm_share"]').click()
    expect(league.locator("tbody tr[data-firm]").first).to_have_attribute("data-firm", str(fleet.firm_a))
    assert "sort=false_alarm_share" in page.url and "order=asc" in page.url

    # Evidence one click away, each incident's trail one more.
    league.locator(f'tr[data-firm="{fleet.firm_b}"] [data-testid=evidence]').click()
    evidence = page.get_by_test_id(f"evidence-{fleet.firm_b}")
    expect(evidence.locator("tbody tr")).to_have_count(3)
    expect(evidence).to_contain_text("dispatch deadline missed")
    expect(evidence).to_contain_text("repeat within 30 days")
    expect(evidence).to_contain_text("false alarm")
    screenshot(page, "league")
    evidence.locator("a.incident-link").first.click()
    expect(page.get_by_test_id("detail")).to_be_visible()
    expect(page.get_by_test_id("detail")).to_contain_text("Firm B")

    # A longer window: the same firms over six months.
    page.get_by_test_id("window-6").click()
    expect(page.get_by_test_id("league-window")).to_have_text("2025-10 … 2026-03")
    page.get_by_test_id("lang-zh").click()
    expect(page.get_by_test_id("league").locator("th").first).to_contain_text("维保单位")
    watched.assert_clean()
    context.close()
