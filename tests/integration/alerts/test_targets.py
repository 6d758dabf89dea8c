"""Webhook security against a real local receiver: timestamped signatures (replay protection),
refused http:// and private targets unless allowed, and no webhook URL secrets in the logs."""

from __future__ import annotations

import logging
import time

import pytest
from liftwatch.alerts import channels
from liftwatch.alerts.channels import WebhookCall, WebhookChannel
from liftwatch.alerts.cli import app
from liftwatch.alerts.errors import DeliveryFailed, DeliveryRejected

from tests.fixtures.alerts import Receiver

pytestmark = pytest.mark.integration


def _call(url: str) -> WebhookCall:
    return WebhookCall(url=url, secret="receiver-secret-123", body=b'{"incident_id":1}', idempotency_key="7:webhook:1")


async def test_the_signature_covers_a_timestamp_and_the_documented_recipe_verifies_it(receiver: Receiver) -> None:
    channel = WebhookChannel(allow_private=True)
    try:
        await channel.send(_call(f"{receiver.url}/hook"))
    finally:
        await channel.close()
    assert receiver.verify("receiver-secret-123", "/hook")  # the recipe written out in the fixture
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    stamp = headers["x-liftwatch-timestamp"]
    assert abs(int(stamp) - time.time()) < 5
    signature = headers["x-liftwatch-signature"]
    assert channels.verify("receiver-secret-123", body, signature, stamp)
    # A replay: the same request 10 minutes later, or with a fresh timestamp it was not signed with.
    assert not channels.verify("receiver-secret-123", body, signature, stamp, now=int(stamp) + 600)
    assert not channels.verify("receiver-secret-123", body, signature, str(int(stamp) + 60), now=int(stamp) + 60)
    assert not channels.verify("receiver-secret-123", body + b" ", signature, stamp)
    assert not channels.verify("another-secret-456", body, signature, stamp)
    assert not channels.verify("receiver-secret-123", body, signature, "not-a-time")
    # The body alone (the previous scheme) no longer verifies: the timestamp is part of what is signed.
    assert signature != channels.sign("receiver-secret-123", body, 0)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/x", "insecure_scheme"),
        ("https://127.0.0.1:8443/x", "private_target"),
        ("https://10.1.2.3/x", "private_target"),
        ("https://169.254.169.254/latest/meta-data", "private_target"),
        ("https://[::1]/x", "private_target"),
        ("https://[::ffff:192.168.1.1]/x", "private_target"),
        ("https://localhost/x", "private_target"),
        ("https://printer.local/x", "private_target"),
        ("ftp://hooks.example.com/x", "bad_url"),
    ],
)
async def test_insecure_and_private_targets_are_dead_lettered_without_a_call(url: str, reason: str) -> None:
    channel = WebhookChannel()
    try:
        with pytest.raises(DeliveryRejected) as refused:
            await channel.send(_call(url))
    finally:
        await channel.close()
    assert refused.value.reason == reason and not refused.value.retriable


async def test_a_public_name_resolving_to_a_private_address_is_refused(receiver: Receiver) -> None:
    async def rebinding(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "127.0.0.1"]

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    channel = WebhookChannel(resolver=rebinding)
    try:
        with pytest.raises(DeliveryRejected) as refused:
            await channel.send(_call("https://hooks.example.com/x"))
        assert refused.value.reason == "private_target"
    finally:
        await channel.close()
    # A local receiver is called only when allowed: the same URL refused, then delivered.
    default, allowed = WebhookChannel(), WebhookChannel(allow_private=True)
    try:
        with pytest.raises(DeliveryRejected, match="http://"):
            await default.send(_call(f"{receiver.url}/hook"))
        await allowed.send(_call(f"{receiver.url}/hook"))
    finally:
        await default.close()
        await allowed.close()
    assert receiver.attempts == ["/hook"]
    checked = WebhookChannel(resolver=public)
    try:  # public and https: the check passes and the call is made (refused by the network, retried)
        with pytest.raises(DeliveryFailed):
            await checked.send(_call("https://hooks.example.invalid:1/x"))
    finally:
        await checked.close()


async def test_webhook_urls_with_credentials_never_reach_the_logs(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_url = f"{receiver.url.replace('http://', 'http://hookuser:hunter2pass@')}/hook?token=SECRET-TOKEN&x=1"
    channel = WebhookChannel(allow_private=True, timeout_s=0.5)
    try:
        await channel.send(_call(secret_url))
        with pytest.raises(DeliveryFailed) as failed:
            await channel.send(_call("http://hookuser:hunter2pass@127.0.0.1:1/hook?token=SECRET-TOKEN"))
    finally:
        await channel.close()
    assert receiver.attempts == ["/hook?token=SECRET-TOKEN&x=1"]  # delivered with its query string
    logged = caplog.text
    assert "SECRET-TOKEN" not in logged and "hunter2pass" not in logged, logged
    assert "SECRET-TOKEN" not in str(failed.value) and "hunter2pass" not in str(failed.value)


def test_the_cli_refuses_insecure_targets_unless_allowed(database_url: str) -> None:
    from typer.testing import CliRunner

    args = ["webhook", "add", "centre", "--target", "emergency_centre", "--secret", "0123456789abcdef"]
    env = {"LIFTWATCH_DATABASE_URL": database_url}
    for url in ("http://hooks.example.com/x", "https://10.0.0.5/x", "https://localhost/x"):
        refused = CliRunner().invoke(app, [*args, "--url", url], env=env)
        assert refused.exit_code == 2 and "LIFTWATCH_WEBHOOK_ALLOW_PRIVATE" in refused.output, refused.output
    allowed = CliRunner().invoke(
        app, [*args, "--url", "http://127.0.0.1:9/x"], env=env | {"LIFTWATCH_WEBHOOK_ALLOW_PRIVATE": "true"}
    )
    assert allowed.exit_code == 0, allowed.output
    listed = CliRunner().invoke(app, ["webhook", "add", "firm", "--target", "emergency_centre",
        "--url", "https://hooks.example.com/x?key=SECRET-KEY"], env=env)  # fmt: skip
    assert listed.exit_code == 0, listed.output
    listing = CliRunner().invoke(app, ["webhook", "list"], env=env).output
    assert "key=***" in listing and "SECRET-KEY" not in listing
