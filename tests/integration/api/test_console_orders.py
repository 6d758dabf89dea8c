"""The hazard closed loop in headless Chromium: a regulator orders from a risk list, the firm answers,
the regulator closes; a firm sees only its own orders."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.console import PagesApi, open_page, screenshot, sign_in
from tests.fixtures.risk import RiskFleet, code

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_regulator_orders_firm_answers_regulator_closes(
    chromium: Any, pages_api: PagesApi, risk_fleet: RiskFleet
) -> None:
    from playwright.sync_api import expect

    fleet = risk_fleet.fleet
    # An order on a firm A elevator that firm B must never see.
    other = pages_api.api.client.post(
        "/api/v1/orders",
        json={"registration_code": code(0), "title": "检验超期", "due_on": "2020-01-01", "note": "n"},
        headers={"Authorization": f"Bearer {pages_api.tokens['regulator']}"},
    )
    assert other.status_code == 201, other.text

    regulator, page, watched = open_page(chromium, pages_api.api.url)
    sign_in(page, pages_api.api.url, pages_api.tokens["regulator"])
    page.goto(f"{pages_api.api.url}/#/risk?list=old")
    page.locator(f'tr[data-elevator="{code(8)}"] [data-testid=order-link]').click()
    expect(page.get_by_test_id("order-target")).to_have_value(code(8))
    page.get_by_test_id("order-title").fill("使用超过15年，请进行安全评估")
    page.get_by_test_id("order-new-note").fill("附风险清单")
    page.get_by_test_id("order-submit").click()
    orders = page.get_by_test_id("orders")
    row = orders.locator("tr[data-order]").filter(has_text="安全评估")
    expect(row.get_by_test_id("order-status")).to_have_text("待整改")
    expect(page.get_by_test_id(f"order-trail-{row.get_attribute('data-order')}")).to_contain_text("附风险清单")
    order_id = row.get_attribute("data-order")
    page.get_by_test_id("orders-overdue").click()
    expect(page.get_by_test_id("orders").locator("tr[data-order]")).to_have_count(1)  # the 2020 one
    expect(page.get_by_test_id("orders")).to_contain_text("已逾期")
    watched.assert_clean()

    # Firm B answers with what it did; it never sees firm A's order.
    firm, firm_page, firm_watched = open_page(chromium, pages_api.api.url)
    sign_in(firm_page, pages_api.api.url, pages_api.tokens["maintainer"])
    firm_page.get_by_test_id("nav").locator("a[data-page=orders]").click()
    firm_orders = firm_page.get_by_test_id("orders")
    expect(firm_orders.locator("tr[data-order]")).to_have_count(1)
    expect(firm_page.get_by_test_id("page")).not_to_contain_text(code(0))
    expect(firm_page.get_by_test_id("order-form")).to_have_count(0)  # a firm does not order
    firm_orders.get_by_test_id("open-order").click()
    firm_page.get_by_test_id("order-note").fill("已委托评估机构，报告见附件")
    firm_page.locator('[data-order-action="answer"]').click()
    firm_page.get_by_test_id("orders-answered").click()
    expect(firm_page.get_by_test_id("orders").get_by_test_id("order-status")).to_have_text("维保单位已回复")
    firm_watched.assert_clean()
    firm.close()

    # The regulator reads the answer in the trail and closes the order.
    page.goto(f"{pages_api.api.url}/#/orders?view=answered&order={order_id}")
    trail = page.get_by_test_id(f"order-trail-{order_id}")
    expect(trail).to_contain_text("已委托评估机构")
    screenshot(page, "orders")
    page.get_by_test_id("order-note").fill("评估报告合格")
    page.locator('[data-order-action="close"]').click()
    page.get_by_test_id("orders-closed").click()
    expect(page.get_by_test_id("orders").locator("tr[data-order]")).to_have_count(1)
    # From an incident's trail in the history (the side panel): order on it in one click.
    page.goto(f"{pages_api.api.url}/#/history?since=2026-03-01&until=2026-03-31&code=overspeed")
    page.get_by_test_id("history").locator("a.incident-link").click()
    page.get_by_test_id("detail").get_by_test_id("order-link").click()
    expect(page.get_by_test_id("order-kind")).to_have_value("incident_id")
    # And from an elevator's side panel to its page.
    page.get_by_test_id("rescue-code").fill("10008")
    page.get_by_test_id("rescue-code").press("Enter")
    page.get_by_test_id("detail-elevator-page").click()
    expect(page.get_by_test_id("elevator-facts")).to_contain_text(code(8))
    detail = pages_api.get("regulator", f"/api/v1/orders/{order_id}").json()
    assert [e["kind"] for e in detail["events"]] == ["opened", "answered", "closed"]
    assert detail["order"]["maintainer_id"] == fleet.firm_b
    watched.assert_clean()
    regulator.close()
