"""The operator console in a real headless Chromium: live board, actions, firm view, languages."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from liftwatch import i18n
from liftwatch.config import ApiSettings
from liftwatch.schema import FaultCode

from tests.fixtures.api import FIRM_A, FIRM_B, RunningApi, World, add_elevator, open_incident, raise_fault

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.filterwarnings(r"ignore:Exception ignored in.*tansu\.log:pytest.PytestUnraisableExceptionWarning"),
]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
SCREENSHOT = Path(__file__).resolve().parents[3] / "docs" / "console.png"


@pytest.fixture
def browser() -> Iterator[object]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _telemetry(database_url: str, terminal: str) -> None:
    """An hour of samples so the elevator detail has a chart."""
    now = datetime.now(UTC)
    rows = []
    for i in range(360):
        ts = now - timedelta(seconds=10 * (360 - i))
        floor = (i // 12) % 18
        moving = i % 12 < 4
        speed = 1.6 if moving else 0.0
        direction = "up" if moving else "stop"
        flags = ("closed", True, True, True, False, True, 40.0, False, False, now)
        rows.append((terminal, ts, i, 0, "normal", floor, not moving, direction, speed, *flags))
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO telemetry (terminal_id, ts, seq, idx, mode, floor, door_zone, direction, speed, door,"
            " occupied, safety_circuit, door_lock, alarm_button, power, load_pct, limit_up, limit_down, received_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


def _offline(context: object, base_url: str) -> list[str]:
    """Refuse every request that does not go to the API itself; returns the refused URLs (no CDN)."""
    refused: list[str] = []

    def handle(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(base_url):
            route.continue_()  # type: ignore[attr-defined]
        else:
            refused.append(url)
            route.abort()  # type: ignore[attr-defined]

    context.route("**/*", handle)  # type: ignore[attr-defined]
    return refused


def _login(page: object, url: str, token: str) -> None:
    page.goto(url)  # type: ignore[attr-defined]
    page.get_by_test_id("login-token").fill(token)  # type: ignore[attr-defined]
    page.get_by_test_id("login-submit").click()  # type: ignore[attr-defined]
    page.get_by_test_id("board").wait_for()  # type: ignore[attr-defined]


def _act(page: object, incident: int, action: str, cause: str | None = None, *, enter: bool = False) -> None:
    """Click the row's button, write a note, confirm (with the button, or Enter in the note)."""
    page.locator(f'tr[data-incident="{incident}"] button[data-action="{action}"]').click()  # type: ignore[attr-defined]
    if cause is not None:
        page.get_by_test_id("cause").select_option(cause)  # type: ignore[attr-defined]
    page.get_by_test_id("note").fill(f"{action} by the console test")  # type: ignore[attr-defined]
    if enter:
        page.get_by_test_id("note").press("Enter")  # type: ignore[attr-defined]
    else:
        page.get_by_test_id("confirm").click()  # type: ignore[attr-defined]


def _codes_in_board_order(page: object) -> list[str]:
    return page.locator("tr[data-incident]").evaluate_all("rows => rows.map(r => r.dataset.code)")  # type: ignore[attr-defined,no-any-return]


def _act_in_panel(page: object, action: str, cause: str | None = None) -> None:
    page.locator(f'#detail button[data-action="{action}"]').click()  # type: ignore[attr-defined]
    if cause is not None:
        page.get_by_test_id("cause").select_option(cause)  # type: ignore[attr-defined]
    page.get_by_test_id("note").fill(f"{action} from the incident panel")  # type: ignore[attr-defined]
    page.get_by_test_id("confirm").click()  # type: ignore[attr-defined]


def test_operator_works_an_entrapment_and_a_firm_sees_only_its_own(
    browser: object, api_server: RunningApi, api_world: World, alerts_service: ApiSettings
) -> None:
    from playwright.sync_api import expect

    with psycopg.connect(api_world.database_url) as conn:
        registration, rescue, terminal = add_elevator(conn, api_world.firms["a"], 7, "浦东新区")
        other_registration, _, other_terminal = add_elevator(conn, api_world.firms["b"], 8, "黄浦区")
        detected = conn.execute(
            "SELECT detected_at FROM incidents WHERE id = %s", (api_world.incidents["a"],)
        ).fetchone()[0]  # type: ignore[index]
    _telemetry(api_world.database_url, terminal)

    # The browser's own zone is London: times must still be shown in the site's (Asia/Shanghai).
    operator = browser.new_context(  # type: ignore[attr-defined]
        locale="zh-CN", timezone_id="Europe/London", viewport={"width": 1500, "height": 820}
    )
    refused = _offline(operator, api_server.url)
    page = operator.new_page()
    # Script errors and content-security-policy refusals (HTTP errors the page expects, e.g. the 401
    # before login, are logged by the browser as "Failed to load resource" and are not counted).
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    _login(page, api_server.url, api_world.tokens["operator"])
    board = page.get_by_test_id("board")
    expect(board).to_contain_text("困人")  # Chinese by default for a zh browser
    expect(page.locator("h1")).to_have_text("电梯应急处置平台")
    expect(page.locator("tr[data-incident]")).to_have_count(4)
    expect(page.locator("#feed-state")).to_have_text("实时连接")  # stream open and the server's feed on Kafka
    first = page.locator(f'tr[data-incident="{api_world.incidents["a"]}"]')
    day, clock_time = i18n.format_datetime(detected, "Asia/Shanghai").split(" ")
    expect(first.locator("td.when")).to_have_text(day + clock_time)  # date, line break, time
    expect(page.get_by_test_id("zone")).to_have_text("时区：Asia/Shanghai")

    # The alert service's consumer group has just formed: a first (major) fault goes through the
    # whole path before the timed one, so the 2 s below measure the steady state, not the group join.
    raise_fault(alerts_service, other_terminal, other_registration, FaultCode.ALARM_BUTTON)
    expect(page.locator('tr[data-code="alarm_button"]')).to_have_count(1, timeout=20_000)
    expect(page.get_by_role("alert")).to_be_hidden()  # no alarm for a major incident
    assert page.locator("body").get_attribute("data-beeps") is None

    # The rule engine reports an entrapment: the alert service opens the incident and relays it.
    raise_fault(alerts_service, terminal, registration, FaultCode.TRAPPED_PASSENGER)
    raised = time.monotonic()
    row = page.locator(f'tr[data-code="trapped_passenger"]:has-text("{rescue}")')
    expect(row).to_be_visible(timeout=2_000)  # the bound: on the board within 2 s
    print(f"new entrapment on the board {time.monotonic() - raised:.2f} s after the fault event")
    new = int(row.get_attribute("data-incident") or 0)
    row = page.locator(f'tr[data-incident="{new}"]')
    expect(row).to_have_class("critical trapped fresh")
    expect(page.get_by_role("alert")).to_contain_text("困人")
    expect(page.locator("body")).to_have_attribute("data-beeps", "1")
    expect(row).to_contain_text("到场时限")
    expect(page.get_by_test_id("trapped-count")).to_have_text("困人 3")
    # Critical before major; among entrapments the nearest arrival deadline first (the new one last).
    order = _codes_in_board_order(page)
    assert order[:3] == ["trapped_passenger"] * 3 and set(order[3:]) == {"power_failure", "alarm_button"}, order
    assert page.locator("tr[data-incident]").nth(2).get_attribute("data-incident") == str(new)

    _act(page, new, "acknowledge")
    expect(row.get_by_test_id("status")).to_have_text("已接警")
    page.locator(f'tr[data-incident="{new}"] a.elevator').click()
    detail = page.get_by_test_id("detail")
    expect(detail).to_contain_text(rescue)
    expect(page.locator("#detail svg polyline")).to_have_count(2)
    expect(detail).to_contain_text("告警记录")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    for action in ("dispatch", "arrive"):
        _act(page, new, action, enter=action == "dispatch")
        expect(page.locator("#action-dialog")).not_to_be_visible()
    expect(row.get_by_test_id("status")).to_have_text("已到场")
    # The incident's own panel: its trail with each note; escalation, release and close from there.
    row.get_by_test_id("open-incident").click()
    trail = page.get_by_test_id("trail")
    expect(trail.locator("tbody tr")).to_have_count(4)
    expect(trail).to_contain_text("arrive by the console test")
    expect(trail).to_contain_text("operator-olivia")
    _act_in_panel(page, "escalate")  # the technician cannot free them: the district rescue team
    expect(detail).to_contain_text("2 · 区应急救援队")
    expect(trail.locator("tbody tr")).to_have_count(5)
    expect(page.locator('#detail button[data-action="escalate"]')).to_have_text("升级至消防（119）")
    _act_in_panel(page, "release")
    expect(row.get_by_test_id("status")).to_have_text("已解救")
    _act_in_panel(page, "close", cause="equipment_fault")
    expect(row).to_have_count(0)
    expect(detail).to_contain_text("已关闭")
    expect(detail).to_contain_text("设备故障")
    with psycopg.connect(api_world.database_url) as conn:
        status, cause = conn.execute("SELECT status, close_cause FROM incidents WHERE id = %s", (new,)).fetchone()  # type: ignore[misc]
    assert (status, cause) == ("closed", "equipment_fault")

    # A critical incident that came while the feed was away shows up on the reload that follows,
    # with its cue (simulated: a row without an audit event, so nothing announces it live).
    with psycopg.connect(api_world.database_url) as conn:
        conn.execute(
            "INSERT INTO incidents (registration_code, terminal_id, code, severity, status, maintainer_id, district,"
            " detected_at, last_seen_at) VALUES (%s, %s, 'overspeed', 'critical', 'detected', %s, '浦东新区',"
            " now(), now())",
            (registration, terminal, api_world.firms["a"]),
        )
        late = open_incident(  # an entrapment 40 minutes old, nobody on site: past the 30-minute deadline
            conn, other_registration, other_terminal, api_world.firms["b"],
            detected_at=datetime.now(UTC) - timedelta(minutes=40),
        )  # fmt: skip
    page.evaluate("loadBoard()")
    expect(page.locator('tr[data-code="overspeed"]')).to_have_count(1)
    expect(page.locator("body")).to_have_attribute("data-beeps", "3")
    expect(page.get_by_role("alert")).to_be_visible()
    late_row = page.locator(f'tr[data-incident="{late}"]')
    expect(late_row.locator(".clock.late")).to_have_count(2)  # both deadlines passed, counting up
    # Offered in the row (the alert service may already have escalated it to level 2 by itself).
    expect(late_row.locator('button[data-action="escalate"]')).to_contain_text("升级至")
    # The alert service records both misses and escalates by itself; the open panel follows the feed.
    late_row.get_by_test_id("open-incident").click()
    expect(page.get_by_test_id("trail")).to_contain_text("超时 · 到场时限", timeout=10_000)
    expect(page.get_by_test_id("trail")).to_contain_text("升级 → 区应急救援队")

    # Rescue-code lookup, then English.
    page.get_by_test_id("rescue-code").fill(api_world.rescue_codes["b"])
    page.get_by_test_id("rescue-code").press("Enter")
    expect(detail).to_contain_text(api_world.elevators["b"])
    page.get_by_test_id("lang-en").click()
    expect(page.locator("h1")).to_have_text("Elevator emergency console")
    expect(board).to_contain_text("Trapped passenger")
    # The API's own documentation page renders from local files too.
    page.goto(f"{api_server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("liftwatch")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert not refused, f"requests outside the API (a CDN?): {refused}"
    assert not problems, problems
    operator.close()

    # A maintenance firm (English browser): only its elevators, and only the arrive/release buttons.
    firm = browser.new_context(locale="en-US")  # type: ignore[attr-defined]
    page = firm.new_page()
    _login(page, api_server.url, api_world.tokens["maintainer"])
    expect(page.locator("h1")).to_have_text("Elevator emergency console")
    expect(page.locator("tr[data-incident]")).to_have_count(3)  # its entrapment, power failure, overspeed
    expect(page.locator(f'tr[data-incident="{api_world.incidents["a"]}"]')).to_contain_text(FIRM_A)
    expect(page.get_by_test_id("board")).not_to_contain_text(FIRM_B)
    expect(page.locator("#user")).to_contain_text(FIRM_A)
    # Detected: nothing a firm may do yet; dispatched to it: "arrived" only.
    expect(page.locator("tr[data-incident] button")).to_have_count(1)
    _act(page, api_world.dispatched["a"], "arrive")
    dispatched = page.locator(f'tr[data-incident="{api_world.dispatched["a"]}"]')
    expect(dispatched.get_by_test_id("status")).to_have_text("Arrived")
    page.get_by_test_id("rescue-code").fill(api_world.rescue_codes["b"])
    page.get_by_test_id("rescue-code").press("Enter")
    expect(page.get_by_test_id("detail")).to_contain_text("No elevator with this rescue code")
    page.get_by_test_id("lang-zh").click()
    expect(page.locator("h1")).to_have_text("电梯应急处置平台")
    firm.close()
