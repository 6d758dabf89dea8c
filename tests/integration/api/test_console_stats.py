"""The console's addresses, navigation and the regulators' statistics page, in headless Chromium."""

from __future__ import annotations

import io
from typing import Any

import pytest

from tests.fixtures.console import PagesApi, open_page, screenshot, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MONTH = "2026-03"


def _figures(page: Any) -> dict[str, float | None]:
    values = page.locator("[data-testid=stats-summary] .figure").evaluate_all(
        "nodes => nodes.map(n => [n.dataset.testid, n.dataset.value])"
    )
    return {key: None if value == "null" else float(value) for key, value in values}


def _expected(report: dict[str, Any]) -> dict[str, float | None]:
    """The page's figures, read from the API's JSON by their definitions (docs/statistics.md)."""
    arrive = next(s for s in report["rescue"]["steps"] if s["step"] == "arrive")
    elevators = report["elevators"]
    return {
        "elevators": elevators,
        "incidents": report["incidents"],
        "per_10k": report["per_10k"],
        "entrapments": report["entrapments"],
        "entrapments_per_10k": report["entrapments"] * 10_000 / elevators if elevators else None,
        "false_alarms": report["false_alarms"],
        "arrive_median": arrive["median_s"],
        "arrive_p90": arrive["p90_s"],
        "arrived_30": report["rescue"]["arrived_within_30min_share"],
        "coverage": report["coverage"]["coverage"],
    }


def _cells(xlsx: bytes) -> dict[str, list[tuple[object, ...]]]:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(xlsx), read_only=True)
    return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in book.worksheets}


def _table(page: Any, testid: str) -> list[list[str]]:
    return (
        page.get_by_test_id(testid)
        .locator("tbody tr")
        .evaluate_all(  # type: ignore[no-any-return]
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
    )


def _show(page: Any, kind: str, value: str | None = None) -> None:
    ready = page.locator("#page").get_attribute("data-ready")
    page.get_by_test_id("month").fill(MONTH)
    page.get_by_test_id("scope-kind").select_option(kind)
    if value is not None:
        field = page.get_by_test_id("scope-value")
        if field.evaluate("n => n.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.get_by_test_id("stats-show").click()
    from playwright.sync_api import expect

    expect(page.locator("#page")).not_to_have_attribute("data-ready", ready or "")


def test_a_regulator_reads_the_same_numbers_as_the_api_for_every_scope(chromium: Any, pages_api: PagesApi) -> None:
    from playwright.sync_api import expect

    fleet = pages_api.fleet
    context, page, watched = open_page(chromium, pages_api.api.url)
    sign_in(page, pages_api.api.url, pages_api.tokens["regulator"])
    nav = page.get_by_test_id("nav")
    expect(nav.locator("a")).to_have_text(
        ["实时告警", "统计分析", "维保单位排名", "风险电梯", "隐患整改", "地图", "历史告警", "报警负荷"]
    )
    expect(page.get_by_test_id("board")).to_be_visible()  # "#/" stays the live board

    nav.locator("a[data-page=stats]").click()
    assert page.url.endswith("#/stats")
    page.wait_for_selector("#page[data-ready]")
    for kind, value, scope in [
        ("city", None, "city"),
        ("district", "Pudong", "district:Pudong"),
        ("maintainer", str(fleet.firm_a), f"maintainer:{fleet.firm_a}"),
        ("use_unit", str(fleet.unit_2), f"use_unit:{fleet.unit_2}"),
    ]:
        _show(page, kind, value)
        assert f"scope={scope.replace(':', '%3A')}" in page.url
        report = pages_api.get("regulator", "/api/v1/stats/monthly", month=MONTH, scope=scope, trend=12).json()
        assert _figures(page) == _expected(report), scope
        codes = _table(page, "stats-codes")
        assert [(row[1], row[3]) for row in codes] == [
            (str(c["incidents"]), str(c["entrapments"])) for c in report["codes"]
        ], scope
        assert [row[2] for row in _table(page, "stats-ages")] == [str(a["incidents"]) for a in report["age_bands"]]
        assert [row[0] for row in _table(page, "stats-firms")] == [f["name"] for f in report["firms"]]
        expect(page.locator(".chart .uplot")).to_have_count(5)
        expect(page.get_by_test_id("stats-summary")).to_be_visible()

    # The city month as the regulator sees it (screenshot from this run), then its files.
    _show(page, "city")
    expect(page.locator(".chart canvas")).to_have_count(5)
    expect(page.get_by_test_id("stats-codes")).to_contain_text("困人")
    screenshot(page, "stats")
    for fmt in ("csv", "xlsx", "pdf"):
        with page.expect_download() as download:
            page.get_by_test_id(f"export-{fmt}").click()
        data = download.value.path().read_bytes()
        expected = pages_api.get(
            "regulator", "/api/v1/stats/monthly/export", month=MONTH, scope="city", format=fmt, lang="zh"
        ).content
        if fmt == "pdf":  # the PDF carries its creation time: compare the kind and size class
            assert data.startswith(b"%PDF") and abs(len(data) - len(expected)) < 2_000
        elif fmt == "xlsx":  # so does the workbook: compare every sheet's cells
            assert _cells(data) == _cells(expected)
        else:
            assert data == expected, fmt
    assert (
        "困人".encode()
        in pages_api.get("regulator", "/api/v1/stats/monthly/export", month=MONTH, format="csv", lang="zh").content
    )

    # The address is shareable: a reload shows the same page and scope; English follows.
    page.goto(f"{pages_api.api.url}/#/stats?month={MONTH}&scope=district%3AXuhui")
    page.reload()
    page.wait_for_selector("#page[data-ready]")
    expect(page.get_by_test_id("elevators")).to_have_attribute("data-value", "6")
    page.get_by_test_id("lang-en").click()
    expect(nav.locator("a[data-page=stats]")).to_have_text("Statistics")
    expect(page.get_by_test_id("stats-scope")).to_contain_text("District Xuhui")
    page.locator("a[data-page=board]").click()
    expect(page.get_by_test_id("board")).to_be_visible()
    expect(page.get_by_test_id("page")).to_be_hidden()
    watched.assert_clean()
    context.close()


def test_a_firm_sees_only_its_own_statistics(chromium: Any, pages_api: PagesApi) -> None:
    from playwright.sync_api import expect

    fleet = pages_api.fleet
    context, page, watched = open_page(chromium, pages_api.api.url, locale="en-US")
    sign_in(page, pages_api.api.url, pages_api.tokens["maintainer"])
    nav = page.get_by_test_id("nav")
    expect(nav.locator("a")).to_have_text(["Live board", "Statistics", "Rectification", "My fleet"])
    page.goto(f"{pages_api.api.url}/#/stats?month={MONTH}")
    page.wait_for_selector("#page[data-ready]")
    # Its own firm is the default and only choice; the firms table lists only itself.
    expect(page.get_by_test_id("scope-kind").locator("option")).to_have_count(1)
    expect(page.get_by_test_id("scope-value").locator("option")).to_have_text(["Firm B"])
    mine = pages_api.get("maintainer", "/api/v1/stats/monthly", month=MONTH, scope=f"maintainer:{fleet.firm_b}").json()
    assert _figures(page) == _expected(mine)
    assert [row[0] for row in _table(page, "stats-firms")] == ["Firm B"]
    screenshot(page, "stats-firm")
    # Another firm's or the city's figures by address: the API's "not found", nothing of theirs.
    for scope in (f"maintainer%3A{fleet.firm_a}", "city", "district%3APudong"):
        page.goto(f"{pages_api.api.url}/#/stats?month={MONTH}&scope={scope}")
        expect(page.get_by_test_id("page-error")).to_be_visible()
        expect(page.get_by_test_id("page")).not_to_contain_text("Firm A")
    # A page for regulators only: refused by the console, not just hidden from the navigation.
    page.goto(f"{pages_api.api.url}/#/league")
    expect(page.get_by_test_id("forbidden")).to_be_visible()
    watched.assert_clean()
    context.close()
