"""Every channel through the real alert service: e-mail to a real local SMTP server (aiosmtpd),
WeCom and DingTalk group robots to a local receiver in their documented JSON, each delivery
retried and recorded; quiet hours hold non-critical ones."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from datetime import time as clock
from email import message_from_bytes
from typing import Any

import pytest
from liftwatch.alerts import relay
from liftwatch.alerts.routing import RoutingPolicy
from liftwatch.config import AlertsSettings
from liftwatch.launcher import services
from liftwatch.schema import FaultCode

from tests.fixtures.alerts import Lift, Receiver, add_webhook, eventually, fault, produce_faults, query, running_service

pytestmark = pytest.mark.integration


class Mailbox:
    """What the SMTP server received: (envelope recipients, raw message)."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], bytes]] = []
        self.refuse_next: int = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse_next:
            self.refuse_next -= 1
            return "451 4.3.0 try again later"  # a transient refusal: retried
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = services.free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, mailbox
    controller.stop()


async def test_email_and_group_robots_receive_the_incident_in_their_language(
    alerts_settings: AlertsSettings, database_url: str, lifts: list[Lift], receiver: Receiver, smtp: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp
    mailbox.refuse_next = 1  # the first attempt is deferred by the server: retried, then delivered
    settings = alerts_settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False,
                                                  "smtp_from": "alerts@liftwatch.test"})  # fmt: skip
    receiver.answers["/wecom"] = b'{"errcode":0,"errmsg":"ok"}'
    receiver.answers["/ding"] = b'{"errcode":0,"errmsg":"ok"}'
    receiver.answers["/ding-bad"] = b'{"errcode":310000,"errmsg":"keywords not in content"}'
    for name, channel, url, lang, secret in (
        ("mail", "email", "mailto:duty@firm-a.test", "en", None),
        ("wecom", "wecom", f"{receiver.url}/wecom?key=K", "zh", None),
        ("ding", "dingtalk", f"{receiver.url}/ding?access_token=T", "en", "SECret"),
        ("ding-bad", "dingtalk", f"{receiver.url}/ding-bad?access_token=T", "zh", None),
    ):
        add_webhook(database_url, name, "maintenance_firm", url, firm_id=lifts[0].firm_id, secret=secret,
                    channel=channel, language=lang)  # fmt: skip
    await produce_faults(settings, [fault(lifts[0], FaultCode.TRAPPED_PASSENGER, since_ms=int(time.time() * 1000))])
    async with running_service(settings) as registry:
        await eventually(lambda: _settled(database_url, 4), what="four deliveries settled")
        sent = "liftwatch_alerts_notifications_sent_total"
        assert registry.get_sample_value(sent, {"channel": "email"}) == 1
        assert registry.get_sample_value(sent, {"channel": "wecom"}) == 1
        assert registry.get_sample_value(sent, {"channel": "dingtalk"}) == 1
    rows = await query(database_url, "SELECT w.name, d.status, d.attempts, d.last_error FROM alerts_deliveries d"
                       " JOIN alerts_webhooks w ON w.id = d.webhook_id ORDER BY w.name")  # fmt: skip
    state = {row["name"]: (row["status"], row["attempts"]) for row in rows}
    assert state == {"mail": ("sent", 2), "wecom": ("sent", 1), "ding": ("sent", 1), "ding-bad": ("dead", 1)}
    assert "310000" in next(row["last_error"] for row in rows if row["name"] == "ding-bad")

    [(recipients, raw)] = mailbox.mails
    mail = message_from_bytes(raw)
    assert recipients == ["duty@firm-a.test"] and mail["From"] == "alerts@liftwatch.test"
    assert mail["Subject"].startswith("[Critical] Trapped passenger") and mail["Auto-Submitted"] == "auto-generated"
    assert lifts[0].rescue_code in mail.get_payload()
    wecom = json.loads(next(r["body"] for r in receiver.requests if r["path"].startswith("/wecom")))
    assert wecom["msgtype"] == "markdown" and "困人" in wecom["markdown"]["content"]
    ding_request = next(r for r in receiver.requests if r["path"].startswith("/ding?"))
    ding = json.loads(ding_request["body"])
    assert ding["msgtype"] == "markdown" and "Trapped passenger" in ding["markdown"]["title"]
    assert "timestamp=" in ding_request["path"] and "sign=" in ding_request["path"]


async def _settled(url: str, count: int) -> bool:
    rows = await query(url, "SELECT status FROM alerts_deliveries")
    return len(rows) == count and all(row["status"] in ("sent", "dead") for row in rows)


async def test_quiet_hours_hold_non_critical_changes_only(database_url: str, lifts: list[Lift]) -> None:
    import psycopg
    from liftwatch.alerts import faults_store, outbox

    hook = add_webhook(database_url, "night", "maintenance_firm", "https://a.example/h", firm_id=lifts[0].firm_id)
    # Quiet all day but one minute: whatever the clock says now, it is inside.
    now = datetime.now(UTC)
    await query(database_url, "UPDATE alerts_webhooks SET quiet_from = %s, quiet_to = %s WHERE id = %s RETURNING id",
                (clock(0, 0), clock(23, 59), hook))  # fmt: skip
    events = [fault(lifts[0], code, since_ms=int(now.timestamp() * 1000)) for code in
              (FaultCode.TRAPPED_PASSENGER, FaultCode.DOOR_REOPEN_LOOP)]  # fmt: skip
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        async with conn.transaction():
            await outbox.lock_outbox(conn)
            await faults_store.record_faults(conn, events, now=now)
        await relay.route_changes(conn, policy=RoutingPolicy(), default_secret="", now=now, limit=100,
                                  timezone="UTC")  # fmt: skip
    rows = await query(database_url, "SELECT i.code, d.next_attempt_at FROM alerts_deliveries d JOIN incident_events"
                       " ev ON ev.id = d.change_id JOIN incidents i ON i.id = ev.incident_id")  # fmt: skip
    due = {row["code"]: row["next_attempt_at"] for row in rows}
    assert due["trapped_passenger"] == now  # critical: never held
    if now.time() < clock(23, 59):
        assert due["door_reopen_loop"] == now.replace(hour=23, minute=59, second=0, microsecond=0)


def test_receivers_of_every_channel_are_added_from_the_cli(database_url: str) -> None:
    from liftwatch.alerts.cli import app
    from typer.testing import CliRunner

    env = {"LIFTWATCH_DATABASE_URL": database_url}

    def run(*args: str) -> Any:
        return CliRunner().invoke(app, ["webhook", "add", *args], env=env)

    mail = run("duty", "--target", "emergency_centre", "--channel", "email", "--url", "mailto:duty@centre.test",
               "--language", "en", "--quiet", "22:00-07:00")  # fmt: skip
    assert mail.exit_code == 0 and "secret:" not in mail.output, mail.output
    ding = "https://oapi.dingtalk.com/robot/send?access_token=T"
    robot = run("group", "--target", "emergency_centre", "--channel", "dingtalk", "--url", ding, "--secret", "S" * 16)
    assert robot.exit_code == 0, robot.output
    phone = run("phone", "--target", "emergency_centre", "--channel", "voice", "--url", "tel:+8613800138000")
    assert phone.exit_code == 0, phone.output
    for args in (
        ("--channel", "sms", "--url", "tel:13800138000"),  # E.164 with its +
        ("--channel", "email", "--url", "https://not-mail.test/x"),
        ("--channel", "pager", "--url", "https://pager.test/x"),
        ("--channel", "wecom", "--url", "http://qyapi.test/x"),  # robots are https to public hosts too
        ("--channel", "email", "--url", "mailto:a@b.test", "--quiet", "late"),
        ("--channel", "email", "--url", "mailto:a@b.test", "--language", "fr"),
    ):
        refused = run("x", "--target", "emergency_centre", *args)
        assert refused.exit_code == 2, (args, refused.output)
    listing = CliRunner().invoke(app, ["webhook", "list"], env=env).output
    assert "email" in listing and "mailto:duty@centre.test" in listing and "access_token=***" in listing


async def test_sms_and_voice_through_a_provider_in_twilios_format(
    alerts_settings: AlertsSettings, database_url: str, lifts: list[Lift], receiver: Receiver
) -> None:
    """The provider is a local stand-in receiver speaking the same REST format (Messages.json, Calls.json)."""
    import base64
    from urllib.parse import parse_qs

    from pydantic import SecretStr

    provider = {"sms_account": "AC123", "sms_token": SecretStr("tok-456"), "sms_from": "+8621960000"}
    settings = alerts_settings.model_copy(update={**provider, "sms_api_base": receiver.url})
    add_webhook(database_url, "duty phone", "maintenance_firm", "tel:+8613800138000", firm_id=lifts[0].firm_id,
                channel="sms", language="zh")  # fmt: skip
    add_webhook(database_url, "duty call", "maintenance_firm", "tel:+8613900139000", firm_id=lifts[0].firm_id,
                channel="voice", language="en")  # fmt: skip
    now_ms = int(time.time() * 1000)
    await produce_faults(settings, [fault(lifts[0], FaultCode.TRAPPED_PASSENGER, since_ms=now_ms),
                                    fault(lifts[0], FaultCode.DOOR_REOPEN_LOOP, since_ms=now_ms)])  # fmt: skip
    async with running_service(settings):
        # SMS for both; a call only for the entrapment (critical).
        await eventually(lambda: _settled(database_url, 3), what="three deliveries settled")
    paths = sorted(r["path"] for r in receiver.requests)
    assert paths == ["/2010-04-01/Accounts/AC123/Calls.json"] + ["/2010-04-01/Accounts/AC123/Messages.json"] * 2
    auth = receiver.requests[0]["headers"]["authorization"]
    assert auth == "Basic " + base64.b64encode(b"AC123:tok-456").decode()
    sms = [parse_qs(r["body"].decode()) for r in receiver.requests if r["path"].endswith("Messages.json")]
    assert {m["To"][0] for m in sms} == {"+8613800138000"} and {m["From"][0] for m in sms} == {"+8621960000"}
    assert any("困人" in m["Body"][0] for m in sms) and all(len(m["Body"][0]) <= 320 for m in sms)
    [call] = [parse_qs(r["body"].decode()) for r in receiver.requests if r["path"].endswith("Calls.json")]
    assert call["To"] == ["+8613900139000"]
    assert call["Twiml"][0].startswith('<Response><Say language="en-GB" loop="2">[Critical] Trapped passenger')
