"""Webhook delivery against a real HTTP receiver: retries with back-off, dead letters, the CLI."""

from __future__ import annotations

import time

import pytest
from liftwatch.alerts.channels import WebhookCall, WebhookChannel
from liftwatch.alerts.cli import app
from liftwatch.alerts.errors import Backpressure, DeliveryFailed, DeliveryRejected, NotificationError
from liftwatch.config import AlertsSettings
from liftwatch.schema import FaultCode
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.fixtures.alerts import (
    Lift,
    Receiver,
    add_webhook,
    eventually,
    fault,
    produce_faults,
    query,
    running_service,
)

pytestmark = pytest.mark.integration

# The receiver is a local http:// server: allowed explicitly (refused by default, see
# tests/integration/alerts/test_targets.py).
LOCAL_ENV = {"LIFTWATCH_WEBHOOK_ALLOW_PRIVATE": "true"}


def cli(database_url: str, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=LOCAL_ENV | {"LIFTWATCH_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    return result.output


async def test_retries_dead_letters_and_redelivery(
    alerts_settings: AlertsSettings, database_url: str, lifts: list[Lift], receiver: Receiver
) -> None:
    out = cli(database_url, "webhook", "add", "firm A", "--target", "maintenance_firm", "--firm", "Firm A",
              "--url", f"{receiver.url}/firm-a", "--secret", "firm-a-secret-0123")  # fmt: skip
    assert "added" in out and "secret:" not in out
    out = cli(database_url, "webhook", "add", "centre", "--target", "emergency_centre", "--url", f"{receiver.url}/c")
    centre_secret = out.split("secret:")[1].strip()
    cli(database_url, "webhook", "add", "firm B", "--target", "maintenance_firm", "--firm", "Firm B",
        "--url", f"{receiver.url}/firm-b")  # fmt: skip
    short = CliRunner().invoke(app, ["webhook", "add", "x", "--target", "fire_brigade", "--url", receiver.url,
        "--secret", "short"], env=LOCAL_ENV | {"LIFTWATCH_DATABASE_URL": database_url})  # fmt: skip
    assert short.exit_code == 2 and "16 characters" in short.output
    listing = cli(database_url, "webhook", "list")
    assert "firm A" in listing and "firm-a-secret-0123" not in listing
    receiver.script["/firm-a"] = [503, 503]  # down twice, then up: delivered on the third attempt
    receiver.always["/c"] = 500  # down for good: dead after webhook_max_attempts (3)
    receiver.always["/firm-b"] = 410  # refuses for good: dead at once

    now_ms = int(time.time() * 1000)
    await produce_faults(
        alerts_settings,
        [
            fault(lifts[0], FaultCode.TRAPPED_PASSENGER, since_ms=now_ms),
            fault(lifts[1], FaultCode.ALARM_BUTTON, since_ms=now_ms),
        ],
    )
    async with running_service(alerts_settings) as registry:
        await eventually(lambda: _statuses(database_url, ["dead", "dead", "sent"]), what="deliveries settled")
        assert receiver.attempts.count("/firm-a") == 3
        assert receiver.attempts.count("/c") == 3
        assert receiver.attempts.count("/firm-b") == 1
        assert receiver.requests[0]["headers"]["x-liftwatch-attempt"] == "3"
        assert receiver.verify("firm-a-secret-0123", "/firm-a")
        failed = "liftwatch_alerts_notifications_failed_total"
        assert registry.get_sample_value(failed, {"channel": "webhook", "reason": "delivery_failed"}) == 5
        assert registry.get_sample_value(failed, {"channel": "webhook", "reason": "delivery_rejected"}) == 1
        dead = "liftwatch_alerts_notifications_dead_lettered_total"
        assert registry.get_sample_value(dead, {"channel": "webhook"}) == 2
        backlog = "liftwatch_alerts_webhook_deliveries"
        await eventually(lambda: _async(registry.get_sample_value(backlog, {"status": "dead"}) == 2), what="gauge")
        assert registry.get_sample_value(backlog, {"status": "pending"}) == 0

        listing = cli(database_url, "deliveries", "dead")
        assert "webhook" in listing and "delivery_rejected" in listing and "delivery_failed" in listing
        del receiver.always["/c"], receiver.always["/firm-b"]
        assert "2 delivery(ies)" in cli(database_url, "deliveries", "retry")
        await eventually(lambda: _statuses(database_url, ["sent", "sent", "sent"]), what="redelivered")

    assert receiver.verify(centre_secret, "/c")
    assert [b["code"] for b in receiver.bodies("/firm-b")] == ["alarm_button"]
    keys = [r["headers"]["x-liftwatch-delivery"] for r in receiver.requests]
    assert len(keys) == len(set(keys)) == 3
    cli(database_url, "webhook", "remove", "firm A")
    assert "(disabled)" in cli(database_url, "webhook", "list")


async def _statuses(url: str, expected: list[str]) -> bool:
    rows = await query(url, "SELECT status FROM alerts_deliveries ORDER BY status")
    return [row["status"] for row in rows] == expected


@pytest.mark.parametrize(
    ("path", "error", "retry_after_s"),
    [
        ("/ok", None, None),
        ("/created", None, None),
        ("/busy", Backpressure, 7.0),  # 429 Retry-After: 7
        ("/slow-answer", DeliveryFailed, None),  # 408
        ("/down", DeliveryFailed, None),  # 503
        ("/gone", DeliveryRejected, None),  # 410: dead at once
        ("/moved", DeliveryRejected, None),  # redirects are not followed (the body is signed for this URL)
        ("/hangs", DeliveryFailed, None),  # no answer within the timeout
    ],
)
async def test_channel_maps_answers_to_retry_or_dead_letter(
    receiver: Receiver, path: str, error: type[NotificationError] | None, retry_after_s: float | None
) -> None:
    receiver.always.update({"/created": 201, "/busy": 429, "/slow-answer": 408, "/down": 503, "/gone": 410})
    receiver.always["/moved"] = 301
    receiver.headers.update({"/busy": {"Retry-After": "7"}, "/moved": {"Location": "http://127.0.0.1:1/x"}})
    receiver.delay_s["/hangs"] = 1.0
    channel = WebhookChannel(timeout_s=0.3, allow_private=True)
    call = WebhookCall(url=f"{receiver.url}{path}", secret="s", body=b'{"a":1}', idempotency_key="1:webhook:1")
    try:
        if error is None:
            await channel.send(call)
            assert receiver.attempts == [path] and (path != "/ok" or receiver.verify("s", path))
            return
        with pytest.raises(error) as caught:
            await channel.send(call)
        assert caught.value.retriable is (error is not DeliveryRejected)
        if retry_after_s is not None:
            assert isinstance(caught.value, Backpressure) and caught.value.retry_after_s == retry_after_s
    finally:
        await channel.close()


async def test_unreachable_receiver_is_retried() -> None:
    channel = WebhookChannel(timeout_s=0.5, allow_private=True)
    try:
        with pytest.raises(DeliveryFailed) as caught:
            await channel.send(WebhookCall(url="http://127.0.0.1:1/x", secret="s", body=b"{}", idempotency_key="k"))
        assert caught.value.retriable
    finally:
        await channel.close()


async def test_a_receiver_without_a_secret_gets_nothing_unsigned(
    alerts_settings: AlertsSettings, database_url: str, lifts: list[Lift], receiver: Receiver
) -> None:
    add_webhook(database_url, "centre", "emergency_centre", f"{receiver.url}/centre", secret=None)
    settings = alerts_settings.model_copy(update={"webhook_secret": SecretStr("")})
    await produce_faults(settings, [fault(lifts[0], FaultCode.TRAPPED_PASSENGER, since_ms=int(time.time() * 1000))])
    async with running_service(settings) as registry:
        await eventually(lambda: _statuses(database_url, ["dead"]), what="dead-lettered")
        failed = {"channel": "webhook", "reason": "no_secret"}
        assert registry.get_sample_value("liftwatch_alerts_notifications_failed_total", failed) == 1
    assert receiver.attempts == []
    assert "no HMAC secret" in cli(database_url, "deliveries", "dead")


async def _async(value: object) -> object:
    return value


KEY_A, KEY_B = "key-a-" + "a" * 40, "key-b-" + "b" * 40


async def test_receiver_secrets_are_stored_sealed_signed_with_and_re_sealed_on_rotation(
    alerts_settings: AlertsSettings, database_url: str, lifts: list[Lift], receiver: Receiver
) -> None:
    def cli_with(key: str, *args: str, previous: str | None = None) -> str:
        env = LOCAL_ENV | {"LIFTWATCH_DATABASE_URL": database_url, "LIFTWATCH_SECRETS_KEY": key}
        if previous is not None:
            env["LIFTWATCH_SECRETS_KEY_PREVIOUS"] = previous
        result = CliRunner().invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    out = cli_with(KEY_A, "webhook", "add", "centre", "--target", "emergency_centre", "--url", f"{receiver.url}/c")
    secret = out.split("secret:")[1].strip()
    [row] = await query(database_url, "SELECT secret FROM alerts_webhooks")
    assert row["secret"].startswith("v1:") and secret not in row["secret"]  # a dump holds nothing usable

    await produce_faults(
        alerts_settings, [fault(lifts[0], FaultCode.TRAPPED_PASSENGER, since_ms=int(time.time() * 1000))]
    )
    keyed = alerts_settings.model_copy(update={"secrets_key": SecretStr(KEY_A)})
    async with running_service(keyed):
        await eventually(lambda: _statuses(database_url, ["sent"]), what="delivered")
    assert receiver.verify(secret, "/c")  # signed with the secret itself, not the sealed text

    # Rotation: the new key with the previous one beside it, then re-seal; the old key then opens nothing.
    assert "1 secret(s) sealed" in cli_with(KEY_B, "webhook", "reencrypt", previous=KEY_A)
    [rotated] = await query(database_url, "SELECT secret FROM alerts_webhooks")
    assert rotated["secret"] != row["secret"]
    assert "0 secret(s) sealed" in cli_with(KEY_B, "webhook", "reencrypt")

    # A service started with the wrong key dead-letters rather than sending unsigned or mis-signed.
    await produce_faults(
        alerts_settings, [fault(lifts[1], FaultCode.TRAPPED_PASSENGER, since_ms=int(time.time() * 1000))]
    )
    wrong = alerts_settings.model_copy(update={"secrets_key": SecretStr(KEY_A)})
    async with running_service(wrong) as registry:
        await eventually(lambda: _statuses(database_url, ["dead", "sent"]), what="dead-lettered")
        failed = {"channel": "webhook", "reason": "secret_unreadable"}
        assert registry.get_sample_value("liftwatch_alerts_notifications_failed_total", failed) == 1
    assert receiver.attempts.count("/c") == 1
