"""A firm's "My fleet" and the elevator page in headless Chromium; a firm never sees another's elevator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.fixtures.api import FIRM_A, FIRM_B, RunningApi, World
from tests.fixtures.console import open_page, screenshot, sign_in
from tests.integration.api.test_fleet import samples

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _motion(count: int) -> list[tuple[str, str, str]]:
    """Runs between floors with a door cycle at each stop, then a stretch in maintenance."""
    cycle = [("normal", "stop", "closed"), ("normal", "up", "closed"), ("normal", "stop", "open")]
    return (cycle * count)[:count] + [("maintenance", "stop", "closed")] * 5


def test_a_firm_works_from_its_fleet_to_an_elevator_and_sees_nothing_else(
    chromium: Any, api_http: RunningApi, api_world: World
) -> None:
    from playwright.sync_api import expect

    with psycopg.connect(api_world.database_url, autocommit=True) as conn:
        samples(conn, api_world.terminals["a"], datetime.now(UTC) - timedelta(hours=2), _motion(300))
        conn.execute("UPDATE terminals SET last_seen_at = now() WHERE terminal_id = %s", (api_world.terminals["a"],))
        conn.execute("UPDATE elevators SET next_inspection_due = '2026-01-10', insured = true")
    own, other = api_world.elevators["a"], api_world.elevators["b"]
    context, page, watched = open_page(chromium, api_http.url, locale="en-US")
    sign_in(page, api_http.url, api_world.tokens["maintainer"])
    nav = page.get_by_test_id("nav")
    nav.locator("a[data-page=fleet]").click()
    fleet = page.get_by_test_id("fleet")
    expect(fleet.locator("tbody tr")).to_have_count(1)
    row = fleet.locator(f'tr[data-elevator="{own}"]')
    expect(row.get_by_test_id("online")).to_have_text("online")
    expect(row).to_contain_text("Maintenance")  # the latest sample's mode
    expect(row.locator("td[data-key=open]")).to_have_text("2")
    expect(row.locator("td.late")).to_have_text("2026-01-10")
    expect(page.get_by_test_id("page")).not_to_contain_text(other)
    # Another firm's rescue code finds nothing; its own address does.
    page.get_by_test_id("fleet-q").fill(api_world.rescue_codes["b"])
    page.get_by_test_id("fleet-search").click()
    expect(fleet.locator("tbody tr")).to_have_count(0)
    page.get_by_test_id("fleet-q").fill("世纪大道1号")
    page.get_by_test_id("fleet-search").click()
    expect(fleet.locator("tbody tr")).to_have_count(1)

    # The elevator page: facts, 30-day usage equal to the API's, charts, incident history with trails.
    fleet.locator("a.elevator-link").click()
    assert page.url.endswith(f"#/elevators/{own}")
    expect(page.get_by_test_id("elevator-facts")).to_contain_text(FIRM_A)
    usage = api_http.client.get(f"/api/v1/fleet/{own}/usage", headers=api_world.headers("maintainer")).json()
    for key in ("trips", "door_cycles", "availability"):
        expect(page.get_by_test_id(key)).to_have_attribute("data-value", str(usage[key]))
    assert usage["trips"] == 100 and usage["door_cycles"] == 100
    expect(page.locator("[data-testid=chart-usage] canvas")).to_have_count(1)
    page.get_by_test_id("window-24h").click()
    expect(page.locator("[data-testid=chart-telemetry] canvas")).to_have_count(1)
    expect(page.locator("[data-testid=chart-door] canvas")).to_have_count(1)
    expect(page.get_by_test_id("elevator-incidents").locator("tbody tr")).to_have_count(2)
    screenshot(page, "elevator")
    page.get_by_test_id("elevator-incidents").locator("a.incident-link").first.click()
    expect(page.get_by_test_id("detail")).to_contain_text(FIRM_A)

    # Another firm's elevator by address: not found, nothing of it on the page.
    page.goto(f"{api_http.url}/#/elevators/{other}")
    expect(page.get_by_test_id("elevator-missing")).to_be_visible()
    expect(page.get_by_test_id("page")).not_to_contain_text(FIRM_B)
    expect(page.get_by_test_id("page")).not_to_contain_text("世纪大道2号")
    watched.assert_clean()
    context.close()

    # An operator opens any elevator; the firm's own page for it is the same page.
    context, page, watched = open_page(chromium, api_http.url, locale="en-US")
    sign_in(page, api_http.url, api_world.tokens["operator"])
    expect(page.get_by_test_id("nav").locator("a[data-page=fleet]")).to_have_count(0)
    page.goto(f"{api_http.url}/#/elevators/{other}")
    expect(page.get_by_test_id("elevator-facts")).to_contain_text(FIRM_B)
    expect(page.get_by_test_id("trips")).to_have_attribute("data-value", "0")
    watched.assert_clean()
    context.close()
