"""The city map: district outlines from the shipped file, clusters and incidents from the API, offline."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.fixtures.api import RunningApi, World
from tests.fixtures.console import open_page, screenshot, sign_in

pytestmark = pytest.mark.integration


@pytest.fixture
def placed(api_world: World) -> World:
    """Firm A's elevator in Pudong, firm B's in Huangpu, 40 more of firm A around People's Square."""
    with psycopg.connect(api_world.database_url, autocommit=True) as conn:
        conn.execute("UPDATE elevators SET latitude = 31.221, longitude = 121.544 WHERE registration_code = %s",
                     (api_world.elevators["a"],))  # fmt: skip
        conn.execute("UPDATE elevators SET latitude = 31.231, longitude = 121.484 WHERE registration_code = %s",
                     (api_world.elevators["b"],))  # fmt: skip
        conn.execute(
            "INSERT INTO elevators (registration_code, rescue_code, kind, address, district, use_unit_id,"
            " maintainer_id, installed_on, rated_speed, bottom_floor, top_floor, latitude, longitude,"
            " next_inspection_due)"
            " SELECT lpad((900 + g)::text, 20, '7'), (700000 + g)::text, 'traction', '人民大道' || g || '号', '黄浦区',"
            " (SELECT min(id) FROM use_units), %s, '2010-01-01', 1.0, 1, 10, 31.2300 + g * 0.0001, 121.4700,"
            " '2020-01-01' FROM generate_series(1, 40) g",
            (api_world.firms["a"],),
        )
    return api_world


def test_the_map_clusters_by_cell_and_a_firm_gets_only_its_own(api_http: RunningApi, placed: World) -> None:
    def get(role: str, **params: Any) -> Any:
        answer = api_http.client.get("/api/v1/stats/map", params=params, headers=placed.headers(role))
        assert answer.status_code == 200, answer.text
        return answer.json()

    city = get("regulator")
    assert city["elevators"] == 42 and city["unplaced"] == 0
    crowd = next(c for c in city["clusters"] if c["elevators"] == 40)
    assert crowd["overdue"] == 40 and crowd["registration_code"] is None and crowd["incidents"] == 0
    alone = next(c for c in city["clusters"] if c.get("registration_code") == placed.elevators["b"])
    assert (alone["elevators"], alone["incidents"], alone["trapped"]) == (1, 2, True)
    assert len(city["incidents"]) == 4
    # Zoomed in (finer cells over a small box): the crowd splits.
    zoom = get("operator", west=121.46, south=31.22, east=121.48, north=31.24, cells=80)
    assert zoom["elevators"] == 40 and len(zoom["clusters"]) > 1
    mine = get("maintainer_b")
    assert mine["elevators"] == 1 and {i["registration_code"] for i in mine["incidents"]} == {placed.elevators["b"]}
    bad = api_http.client.get("/api/v1/stats/map", params={"west": 122, "east": 121}, headers=placed.headers("admin"))
    assert bad.status_code == 422


@pytest.mark.browser
def test_a_regulator_reads_the_city_map_offline(chromium: Any, api_http: RunningApi, placed: World) -> None:
    from playwright.sync_api import expect

    context, page, watched = open_page(chromium, api_http.url)
    sign_in(page, api_http.url, placed.tokens["regulator"])
    page.get_by_test_id("nav").locator("a[data-page=map]").click()
    svg = page.get_by_test_id("map")
    expect(svg.locator("path.district")).to_have_count(16)  # Shanghai's districts, from the shipped file
    expect(svg.locator("path.incident-marker")).to_have_count(4)
    expect(svg.locator("g.cluster.trapped")).to_have_count(2)
    expect(svg.locator("g.cluster.overdue")).to_have_count(1)
    expect(page.get_by_test_id("map-summary")).to_contain_text("电梯 42 台")
    screenshot(page, "map")
    svg.locator('g.cluster[data-elevators="40"]').click()  # zoom into the crowd
    expect(page.get_by_test_id("map-city")).to_be_visible()
    expect(svg.locator("g.cluster")).not_to_have_count(1)
    svg.locator("g.cluster").first.click()
    assert "#/elevators/" in page.url or "#/map?box=" in page.url
    # A firm has no map page; the API gives it only its own (above).
    firm, firm_page, firm_watched = open_page(chromium, api_http.url)
    sign_in(firm_page, api_http.url, placed.tokens["maintainer"])
    firm_page.goto(f"{api_http.url}/#/map")
    expect(firm_page.get_by_test_id("forbidden")).to_be_visible()
    firm_watched.assert_clean()
    firm.close()
    watched.assert_clean()
    context.close()
