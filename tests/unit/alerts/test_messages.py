"""What people read, pure: messages in the receiver's language, robot formats, DingTalk signing, quiet hours."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, time
from urllib.parse import parse_qs, urlsplit

import pytest
from liftwatch.alerts import messages

NOTIFICATION = {
    "change_id": 7, "incident_id": 42, "kind": "opened", "status": "detected", "code": "trapped_passenger",
    "severity": "critical", "escalation_level": 1, "registration_code": "31104403000000000001", "rescue_code": "10001",
    "address": "1 Shennan Rd", "district": "Futian", "maintainer": "Firm A", "at": "2026-03-02T08:00:00+00:00",
    "actor": "system", "note": "", "terminal": "term-1",
}  # fmt: skip


def test_a_message_in_each_language() -> None:
    zh = messages.render(NOTIFICATION, "zh", "Asia/Shanghai")
    en = messages.render(NOTIFICATION, "en", "Asia/Shanghai")
    assert "困人" in zh.subject and "1 Shennan Rd" in zh.subject
    assert en.subject.startswith("[Critical] Trapped passenger · 1 Shennan Rd")
    assert "10001" in en.text and "2026-03-02 16:00:00" in en.text  # site time, not UTC
    assert "Firm A" in zh.text


def test_robot_formats_are_their_documented_markdown_messages() -> None:
    message = messages.render(NOTIFICATION, "zh", "Asia/Shanghai")
    wecom = messages.wecom_payload(message)
    assert wecom["msgtype"] == "markdown" and wecom["markdown"]["content"].startswith(f"**{message.subject}**")
    long = messages.Message("s", ("困" * 3000,))
    assert len(messages.wecom_payload(long)["markdown"]["content"].encode()) <= 4096
    ding = messages.dingtalk_payload(message)
    assert ding["msgtype"] == "markdown" and set(ding["markdown"]) == {"title", "text"}


def test_dingtalk_signature_is_its_documented_recipe() -> None:
    url = messages.dingtalk_url("https://oapi.dingtalk.com/robot/send?access_token=abc", "SEC123", 1_700_000_000_000)
    query = parse_qs(urlsplit(url).query)
    assert query["access_token"] == ["abc"] and query["timestamp"] == ["1700000000000"]
    expected = base64.b64encode(hmac.new(b"SEC123", b"1700000000000\nSEC123", hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected]


@pytest.mark.parametrize(
    ("utc", "window", "until"),
    [
        ("2026-03-02T15:00:00", ("22:00", "07:00"), "2026-03-02T23:00:00"),  # 23:00 Shanghai: until 07:00
        ("2026-03-02T20:30:00", ("22:00", "07:00"), "2026-03-02T23:00:00"),  # 04:30 next day: until 07:00
        ("2026-03-02T23:00:00", ("22:00", "07:00"), None),  # 07:00: over
        ("2026-03-02T05:00:00", ("12:00", "14:00"), "2026-03-02T06:00:00"),  # 13:00: lunch
        ("2026-03-02T05:00:00", None, None),
    ],
)
def test_quiet_hours(utc: str, window: tuple[str, str] | None, until: str | None) -> None:
    now = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    start, end = (time.fromisoformat(window[0]), time.fromisoformat(window[1])) if window else (None, None)
    got = messages.quiet_until(now, "Asia/Shanghai", start, end)
    assert got == (None if until is None else datetime.fromisoformat(until).replace(tzinfo=UTC))


def test_a_voice_receiver_is_called_for_critical_changes_that_need_someone_now() -> None:
    from liftwatch.alerts.routing import ChangeFacts, RoutingPolicy, Target, Webhook, recipients

    call = Webhook(1, "duty call", Target.EMERGENCY_CENTRE, "tel:+8613800138000", "", channel="voice")
    sms = Webhook(2, "duty sms", Target.EMERGENCY_CENTRE, "tel:+8613800138000", "", channel="sms")
    policy = RoutingPolicy(emergency_severities=frozenset({"critical", "major"}))

    def told(kind: str, severity: str) -> list[str]:
        return [hook.name for hook in recipients(ChangeFacts(kind, severity, None, "Futian", 1), [call, sms], policy)]

    assert told("opened", "critical") == ["duty call", "duty sms"]
    assert told("renotified", "critical") == ["duty call", "duty sms"]
    assert told("opened", "major") == ["duty sms"]  # a phone call is for someone who must act now
    assert told("acknowledged", "critical") == ["duty sms"]
