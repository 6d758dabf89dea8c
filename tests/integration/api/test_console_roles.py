"""Every page for every role in headless Chromium: each draws (or says the role has no use for it)
without a script error, in zh and en, and a firm never sees another firm's elevators anywhere."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.fixtures.console import PagesApi, open_page, sign_in
from tests.fixtures.risk import RiskFleet, code

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# Firm A's elevators are e0-e6, firm B's (the maintainer token's) e7-e10.
FIRM_A_CODES = [code(i) for i in range(7)]
OFFICIAL = {"admin", "operator", "regulator"}


def _addresses() -> list[tuple[str, set[str]]]:
    """(address, the roles that get the page itself; the others are told it is not for them)."""
    everyone = OFFICIAL | {"maintainer"}
    return [
        ("#/stats?month=2026-03", everyone),
        ("#/league?months=3&end=2026-03", OFFICIAL),
        ("#/risk", OFFICIAL),
        ("#/orders?view=all", {"admin", "regulator", "maintainer"}),
        ("#/map", OFFICIAL),
        ("#/fleet", {"admin", "maintainer"}),
        ("#/history?since=2026-01-01&until=2026-12-31", OFFICIAL),
        (f"#/elevators/{code(8)}", everyone),
        (f"#/elevators/{code(0)}", OFFICIAL),  # firm A's: "not found" for firm B
    ]


@pytest.fixture
def busy(pages_api: PagesApi, risk_fleet: RiskFleet) -> PagesApi:
    """Coordinates for the map and an order on each firm's elevator."""
    with psycopg.connect(risk_fleet.fleet.url, autocommit=True) as conn:
        conn.execute(
            "UPDATE elevators SET latitude = 31.2 + right(registration_code, 2)::int * 0.01, longitude = 121.4"
        )
    for elevator in (code(0), code(8)):
        answer = pages_api.api.client.post(
            "/api/v1/orders",
            json={"registration_code": elevator, "title": "整改", "due_on": "2027-01-01", "note": "n"},
            headers={"Authorization": f"Bearer {pages_api.tokens['regulator']}"},
        )
        assert answer.status_code == 201, answer.text
    return pages_api


@pytest.mark.parametrize("role", ["maintainer", "regulator", "operator", "admin"])
def test_every_page_for_every_role(chromium: Any, busy: PagesApi, role: str) -> None:
    from playwright.sync_api import expect

    context, page, watched = open_page(chromium, busy.api.url, locale="en-US" if role == "operator" else "zh-CN")
    sign_in(page, busy.api.url, busy.tokens[role])
    for target, roles in _addresses():
        ready = page.locator("#page").get_attribute("data-ready")
        page.evaluate(f"location.hash = {target!r}")
        expect(page.locator("#page")).not_to_have_attribute("data-ready", ready or "", timeout=15_000)
        content = page.locator("#page")
        if role == "maintainer" and code(0) in target:
            expect(content.get_by_test_id("elevator-missing")).to_be_visible()
        elif role not in roles:
            expect(content.get_by_test_id("forbidden")).to_be_visible()
        else:
            expect(content.get_by_test_id("page-error")).to_have_count(0)
            expect(content.get_by_test_id("forbidden")).to_have_count(0)
        if role == "maintainer":
            text = content.inner_text() + page.locator("#detail").inner_text()
            leaked = [c for c in [*FIRM_A_CODES, "Firm A"] if c in text]
            assert not leaked, f"{target}: firm B sees {leaked}"
    # The live board and the navigation follow the role too.
    page.evaluate("location.hash = '#/'")
    expect(page.get_by_test_id("board")).to_be_visible()
    links = page.get_by_test_id("nav").locator("a").evaluate_all("links => links.map(a => a.dataset.page)")
    pages = [("board", OFFICIAL | {"maintainer"}), *[(t[2:].split("?")[0], r) for t, r in _addresses()[:7]],
             ("alarm-load", OFFICIAL)]  # issue 17's page, after ours  # fmt: skip
    expected = [name for name, roles in pages if role in roles]
    assert links == expected
    watched.assert_clean()
    context.close()
