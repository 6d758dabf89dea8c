"""The centre's day in the console (headless Chromium): a call opens an incident from the
rescue-code lookup, a second call joins it, an operator claims it and another operator sees who
holds it, comments go on the trail, a firm comments but cannot claim. Screenshots of each step
go to docs/centre/ (the walkthrough in docs/alerts.md)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.fixtures.api import RunningApi, World, add_elevator
from tests.integration.api.test_console import _login, _offline, browser  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.filterwarnings(r"ignore:Exception ignored in.*tansu\.log:pytest.PytestUnraisableExceptionWarning"),
]

SHOTS = Path(__file__).resolve().parents[3] / "docs" / "centre"


def _shot(page: object, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def _watch(page: object) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))  # type: ignore[attr-defined]
    page.on(  # type: ignore[attr-defined]
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    return problems


def test_a_call_becomes_an_incident_that_is_claimed_and_commented(
    browser: object,  # noqa: F811 - the fixture imported above
    api_server: RunningApi,
    api_world: World,
    outbox_relay: None,
) -> None:
    from playwright.sync_api import expect

    with psycopg.connect(api_world.database_url) as conn:
        registration, rescue, _ = add_elevator(conn, api_world.firms["a"], 7, "浦东新区")
    operator = browser.new_context(locale="en-GB", viewport={"width": 1500, "height": 900})  # type: ignore[attr-defined]
    refused = _offline(operator, api_server.url)
    page = operator.new_page()
    problems = _watch(page)
    _login(page, api_server.url, api_world.tokens["operator"])
    expect(page.locator("tr[data-incident]")).to_have_count(4)

    # 1. A trapped person calls and reads the rescue code: the lookup offers to open an incident.
    page.get_by_test_id("rescue-code").fill(rescue)
    page.get_by_test_id("rescue-code").press("Enter")
    detail = page.get_by_test_id("detail")
    expect(detail).to_contain_text(registration)
    expect(page.get_by_test_id("call-code")).to_have_value("trapped_passenger")
    page.get_by_test_id("call-phone").fill("138 0013 8000")
    page.get_by_test_id("call-note").fill("Two people stuck between 5F and 6F")
    _shot(page, "1-lookup-call")
    page.get_by_test_id("call-open").click()

    # 2. The incident opens (on the board, by phone, clocks from now); its panel shows the call.
    trail = page.get_by_test_id("trail")
    expect(trail).to_contain_text("Opened · by phone 13800138000")
    expect(trail).to_contain_text("Two people stuck between 5F and 6F")
    with psycopg.connect(api_world.database_url) as conn:
        row = conn.execute(
            "SELECT id, source FROM incidents WHERE registration_code = %s AND code = 'trapped_passenger'",
            (registration,),
        ).fetchone()
    assert row is not None and row[1] == "call"
    incident = int(row[0])
    board_row = page.locator(f'tr[data-incident="{incident}"]')
    expect(board_row).to_contain_text(rescue)
    expect(board_row).to_contain_text("5-min dispatch deadline: 04:")
    _shot(page, "2-call-opened")

    # 3. A second caller about the same car: joined, not a second incident.
    page.get_by_test_id("rescue-code").fill(rescue)
    page.get_by_test_id("rescue-code").press("Enter")
    page.get_by_test_id("call-note").fill("Neighbour calling about the same car")
    page.get_by_test_id("call-open").click()
    expect(page.get_by_test_id("call-joined")).to_be_visible()
    expect(trail).to_contain_text("Called in · by phone")
    expect(page.locator(f'tr[data-code="trapped_passenger"]:has-text("{rescue}")')).to_have_count(1)

    # 4. Another operator (the admin's console) watches the board; this operator claims it.
    other = browser.new_context(locale="en-GB", viewport={"width": 1500, "height": 900})  # type: ignore[attr-defined]
    second = other.new_page()
    _login(second, api_server.url, api_world.tokens["admin"])
    expect(second.locator(f'tr[data-incident="{incident}"]')).to_be_visible()
    page.get_by_test_id("claim").click()
    expect(page.get_by_test_id("assignment")).to_contain_text("Held by operator-olivia")
    expect(trail).to_contain_text("Assigned → operator-olivia")
    held = second.locator(f'tr[data-incident="{incident}"]').get_by_test_id("assignee")
    expect(held).to_have_text("Held by operator-olivia", timeout=10_000)  # through the live feed
    _shot(second, "3-claimed-seen-by-another")

    # Its notifications, every channel, with their state (here written as the delivery loop leaves them).
    with psycopg.connect(api_world.database_url) as conn:
        hook = conn.execute(
            "INSERT INTO alerts_webhooks (name, target, maintainer_id, url, channel, language)"
            " VALUES ('Firm A duty mail', 'maintenance_firm', %s, 'mailto:duty@a.test', 'email', 'en') RETURNING id",
            (api_world.firms["a"],),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO alerts_deliveries (change_id, webhook_id, idempotency_key, body, status, attempts, sent_at,"
            " next_attempt_at) SELECT id, %s, id || ':webhook:' || %s, '{}', 'sent', 2, now(), now()"
            " FROM incident_events WHERE incident_id = %s AND kind = 'opened'",
            (hook, hook, incident),
        )
    page.get_by_test_id("comment-text").fill("Caller calm, lights on; firm technician 10 min away")
    page.get_by_test_id("comment-add").click()
    expect(page.get_by_test_id("deliveries")).to_contain_text("Firm A duty mail (e-mail)")
    expect(page.get_by_test_id("deliveries")).to_contain_text("Sent")

    # 5. Comments go on the trail; the admin takes the incident over.
    expect(trail).to_contain_text("Comment")
    expect(trail).to_contain_text("Caller calm, lights on")
    second.locator(f'tr[data-incident="{incident}"]').get_by_test_id("open-incident").click()
    second.get_by_test_id("claim").click()
    expect(second.get_by_test_id("assignment")).to_contain_text("Held by admin-alice")
    expect(page.get_by_test_id("assignment")).to_contain_text("Held by admin-alice", timeout=10_000)
    _shot(page, "4-commented-handed-over")
    assert not refused, refused
    assert not problems, problems
    other.close()
    operator.close()

    # 6. The firm sees its incident with the comments and may add its own, but neither claims nor calls.
    firm = browser.new_context(locale="en-GB", viewport={"width": 1500, "height": 900})  # type: ignore[attr-defined]
    page = firm.new_page()
    problems = _watch(page)
    _login(page, api_server.url, api_world.tokens["maintainer"])
    page.locator(f'tr[data-incident="{incident}"]').get_by_test_id("open-incident").click()
    expect(page.get_by_test_id("trail")).to_contain_text("Caller calm, lights on")
    expect(page.get_by_test_id("claim")).to_have_count(0)
    page.get_by_test_id("comment-text").fill("Technician Ma on the way")
    page.get_by_test_id("comment-add").click()
    expect(page.get_by_test_id("trail")).to_contain_text("Technician Ma on the way")
    page.get_by_test_id("rescue-code").fill(rescue)
    page.get_by_test_id("rescue-code").press("Enter")
    expect(page.get_by_test_id("detail")).to_contain_text(registration)
    expect(page.get_by_test_id("call-form")).to_have_count(0)
    assert not problems, problems
    firm.close()


def test_maintenance_windows_shelves_and_out_of_service_in_the_console(
    browser: object,  # noqa: F811 - the fixture imported above
    api_server: RunningApi,
    api_world: World,
    outbox_relay: None,
) -> None:
    from playwright.sync_api import expect

    refused: list[list[str]] = []  # per context, filled as its requests are refused

    def as_role(role: str) -> tuple[object, object, list[str]]:
        """A fresh browser context (its own session cookie) signed in as ``role``."""
        context = browser.new_context(locale="en-GB", viewport={"width": 1500, "height": 900})  # type: ignore[attr-defined]
        refused.append(_offline(context, api_server.url))
        page = context.new_page()
        problems = _watch(page)
        _login(page, api_server.url, api_world.tokens[role])
        return context, page, problems

    # The firm declares a maintenance window from its elevator's panel: its power failure is "in maintenance".
    context, page, problems = as_role("maintainer")
    page.get_by_test_id("rescue-code").fill(api_world.rescue_codes["a"])
    page.get_by_test_id("rescue-code").press("Enter")
    expect(page.get_by_test_id("elevator-states")).to_contain_text("No maintenance window")
    page.get_by_test_id("window-duration").select_option("4")
    page.get_by_test_id("window-reason").fill("Annual inspection")
    page.get_by_test_id("window-submit").click()
    expect(page.get_by_test_id("windows")).to_contain_text("Annual inspection · tech-ma")
    power = page.locator(f'tr[data-incident="{api_world.dispatched["a"]}"]')
    expect(power.get_by_test_id("suppressed")).to_have_text("In maintenance")
    entrapment = page.locator(f'tr[data-incident="{api_world.incidents["a"]}"]')
    expect(entrapment.get_by_test_id("suppressed")).to_have_count(0)  # entrapments always page
    _shot(page, "5-maintenance-window")
    assert not problems, problems
    context.close()  # type: ignore[attr-defined]

    # The operator shelves firm b's flapping power-failure alarm for an hour, then takes it off.
    context, page, problems = as_role("operator")
    row = page.locator(f'tr[data-incident="{api_world.dispatched["b"]}"]')
    row.get_by_test_id("open-incident").click()
    page.get_by_test_id("shelf-duration").select_option("60")
    page.get_by_test_id("shelf-reason").fill("Flapping mains sensor, firm informed")
    page.get_by_test_id("shelf-submit").click()
    expect(row.get_by_test_id("suppressed")).to_have_text("Shelved")
    expect(page.get_by_test_id("trail")).to_contain_text("Flapping mains sensor, firm informed")
    _shot(page, "6-shelved")
    page.locator(f'tr[data-incident="{api_world.incidents["b"]}"]').get_by_test_id("open-incident").click()
    expect(page.get_by_test_id("shelf-form")).to_have_count(0)  # an entrapment is never shelved
    row.get_by_test_id("open-incident").click()
    page.get_by_test_id("unshelve").click()
    expect(page.get_by_test_id("trail")).to_contain_text("Unshelved")
    page.evaluate("loadBoard()")
    expect(row.get_by_test_id("suppressed")).to_have_count(0)
    assert not problems, problems
    context.close()  # type: ignore[attr-defined]

    # The regulator takes elevator b out of service, then back.
    context, page, problems = as_role("regulator")
    page.get_by_test_id("rescue-code").fill(api_world.rescue_codes["b"])
    page.get_by_test_id("rescue-code").press("Enter")
    expect(page.get_by_test_id("window-form")).to_have_count(0)
    page.get_by_test_id("oos-reason").fill("Flooded pit")
    page.get_by_test_id("oos-submit").click()
    expect(page.get_by_test_id("out-of-service")).to_contain_text("Flooded pit")
    expect(page.locator(f'tr[data-incident="{api_world.dispatched["b"]}"]').get_by_test_id("suppressed")).to_have_text(
        "Out of service"
    )
    _shot(page, "7-out-of-service")
    page.get_by_test_id("back-in-service").click()
    expect(page.get_by_test_id("out-of-service")).to_have_count(0)
    assert not problems, problems
    context.close()  # type: ignore[attr-defined]
    assert not any(refused), refused


def test_a_power_cut_is_one_group_on_the_board_acknowledged_together(
    browser: object,  # noqa: F811 - the fixture imported above
    api_server: RunningApi,
    api_world: World,
    alerts_service: object,
) -> None:
    """Through the real alert service: faults on Kafka, grouped and inhibited by its notify relay."""
    from liftwatch.schema import FaultCode
    from playwright.sync_api import expect

    from tests.fixtures.api import raise_fault

    with psycopg.connect(api_world.database_url) as conn:
        lifts = [add_elevator(conn, api_world.firms["a" if n % 2 else "b"], n, "闵行区") for n in (7, 8, 9)]
    context = browser.new_context(locale="en-GB", viewport={"width": 1500, "height": 900})  # type: ignore[attr-defined]
    refused = _offline(context, api_server.url)
    page = context.new_page()
    problems = _watch(page)
    _login(page, api_server.url, api_world.tokens["operator"])
    for registration, _, terminal in lifts:
        raise_fault(api_server.settings, terminal, registration, FaultCode.POWER_FAILURE)
    toggle = page.get_by_test_id("group-toggle")
    expect(toggle).to_have_text("+2 in group", timeout=20_000)
    power_rows = page.locator('tr[data-code="power_failure"]:has-text("闵行区")')
    expect(power_rows).to_have_count(1)  # the group shows as its leader's row
    # The first car stopped outside the door zone because of the cut: on the board, inhibited.
    registration, _, terminal = lifts[0]
    raise_fault(api_server.settings, terminal, registration, FaultCode.STOPPED_OUTSIDE_DOOR_ZONE)
    door = page.locator('tr[data-code="stopped_outside_door_zone"]')
    expect(door.get_by_test_id("inhibited")).to_contain_text("Inhibited by #", timeout=20_000)
    # Someone is trapped in the second car: its own critical incident, never grouped away.
    raise_fault(api_server.settings, lifts[1][2], lifts[1][0], FaultCode.TRAPPED_PASSENGER)
    trapped = page.locator(f'tr[data-code="trapped_passenger"]:has-text("{lifts[1][1]}")')
    expect(trapped).to_be_visible(timeout=20_000)
    expect(trapped.get_by_test_id("group-toggle")).to_have_count(0)
    _shot(page, "8-storm-grouped")
    toggle.click()
    expect(power_rows).to_have_count(3)
    page.get_by_test_id("group-acknowledge").click()
    for row in power_rows.all():
        expect(row.get_by_test_id("status")).to_contain_text("Acknowledged")
    expect(trapped.get_by_test_id("status")).to_contain_text("Detected")  # not part of the group
    _shot(page, "9-storm-acknowledged")
    assert not problems, problems
    assert not refused, refused
    context.close()  # type: ignore[attr-defined]


def test_the_alarm_load_page_of_a_desk(
    browser: object,  # noqa: F811 - the fixture imported above
    api_http: RunningApi,
    api_world: World,
) -> None:
    from datetime import UTC, datetime, timedelta

    from playwright.sync_api import expect

    client = api_http.client
    client.put("/api/v1/desks/East", json={"districts": ["浦东新区"]}, headers=api_world.headers("admin"))
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with psycopg.connect(api_world.database_url) as conn:  # a flood at 01:00 UTC: 12 alarms in 6 minutes
        for i in range(12):
            at = day + timedelta(hours=1, seconds=30 * i)
            incident = conn.execute(
                "INSERT INTO incidents (registration_code, terminal_id, code, severity, status, maintainer_id,"
                " district, detected_at, opened_at, last_seen_at) SELECT registration_code, %s, 'door_reopen_loop',"
                " 'major', 'closed', maintainer_id, district, %s, %s, %s FROM elevators"
                " WHERE registration_code = %s RETURNING id",
                (api_world.terminals["a"], at, at, at, api_world.elevators["a"]),
            ).fetchone()[0]  # type: ignore[index]
            conn.execute(
                "INSERT INTO incident_events (incident_id, at, kind, status_after, actor)"
                " VALUES (%s, %s, 'opened', 'detected', 'system')",
                (incident, at),
            )
    context = browser.new_context(locale="en-GB", viewport={"width": 1500, "height": 900})  # type: ignore[attr-defined]
    refused = _offline(context, api_server_url := api_http.url)
    page = context.new_page()
    problems = _watch(page)
    _login(page, api_server_url, api_world.tokens["operator"])
    page.locator('nav a[data-page="alarm-load"]').click()
    expect(page.get_by_test_id("load-alarms")).to_have_attribute("data-value", "14")  # + the seed's two of today
    expect(page.get_by_test_id("load-flood")).to_have_attribute("data-value", "10")
    expect(page.get_by_test_id("load-peak")).to_have_attribute("data-value", "12")
    expect(page.get_by_test_id("load-bad-actors")).to_contain_text("Door reopening loop")
    _shot(page, "10-alarm-load")
    with page.expect_download() as download:
        page.get_by_test_id("load-csv").click()
    assert "flood_minutes,10" in download.value.path().read_text(encoding="utf-8-sig")
    assert not problems, problems
    assert not refused, refused
    context.close()  # type: ignore[attr-defined]
