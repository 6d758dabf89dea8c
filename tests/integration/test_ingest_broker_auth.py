"""Production broker security: a terminal publishes as itself only, with credentials we provision."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from liftwatch import services
from liftwatch.cli import app
from liftwatch.errors import ServiceUnavailable
from liftwatch.mqtt import InboundMessage, MqttClient
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


def provision(args: list[str], database_url: str) -> dict[str, str]:
    """Run `liftwatch terminals ...` and return the printed user -> password pairs."""
    result = CliRunner().invoke(app, ["terminals", *args], env={"LIFTWATCH_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]
    return {user: password for user, password in lines}


@pytest.fixture
def secured_broker(database_url: str, tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """A mosquitto with the production auth settings and credentials provisioned through the CLI."""
    out = tmp_path / "auth"
    creds = provision(["provision", "T1", "T2", "--out", str(out)], database_url)
    creds |= provision(["account", "gw", "--role", "gateway", "--out", str(out)], database_url)
    port = services.free_port()
    # Started as root, mosquitto drops to the `mosquitto` user, which cannot read our 0600 files.
    keep_user = "user root\n" if os.geteuid() == 0 else ""
    broker = services.start_mosquitto(
        port,
        config_extra=f"allow_anonymous false\npassword_file {out / 'passwd'}\nacl_file {out / 'acl'}\n{keep_user}",
        workdir=tmp_path / "broker",
    )
    yield port, creds
    broker.stop()


async def connect(port: int, user: str, password: str) -> MqttClient:
    client = MqttClient(f"mqtt://{user}:{password}@127.0.0.1:{port}", f"{user}-{secrets.token_hex(3)}")
    await client.connect()
    return client


async def test_terminal_cannot_publish_as_another(secured_broker: tuple[int, dict[str, str]]) -> None:
    port, creds = secured_broker
    gateway = MqttClient(f"mqtt://gw:{creds['gw']}@127.0.0.1:{port}", "gw-1", manual_ack=False)
    await gateway.connect()
    await gateway.subscribe("$share/g/lift/v1/+/telemetry", "$share/g/lift/v1/+/status")
    t1 = await connect(port, "T1", creds["T1"])
    try:
        t1.publish("lift/v1/T2/telemetry", b"forged")  # refused by the ACL, silently for the sender
        t1.publish("lift/v1/T2/status", b"offline")
        t1.publish("lift/v1/T1/telemetry", b"mine")
        t1.publish("lift/v1/T1/status", b"online")
        await t1.wait_below(1)
        received: list[InboundMessage] = []
        while len(received) < 2:
            received.append(await asyncio.wait_for(gateway.receive(), 10))
        await asyncio.sleep(0.2)  # a forged message would have arrived by now
        late = gateway.receive_nowait()
        assert late is None, late
        assert sorted((m.topic, m.payload) for m in received) == [
            ("lift/v1/T1/status", b"online"),
            ("lift/v1/T1/telemetry", b"mine"),
        ]
    finally:
        await t1.disconnect()
        await gateway.disconnect()


async def test_wrong_or_missing_password_is_refused(secured_broker: tuple[int, dict[str, str]]) -> None:
    port, creds = secured_broker
    with pytest.raises(ServiceUnavailable):
        await connect(port, "T1", creds["T2"])
    anonymous = MqttClient(f"mqtt://127.0.0.1:{port}", "anon")
    with pytest.raises(ServiceUnavailable):
        await anonymous.connect()


def test_provisioning_twice_needs_rotate(database_url: str, tmp_path: Path) -> None:
    first = provision(["provision", "T9", "--out", str(tmp_path)], database_url)
    result = CliRunner().invoke(
        app, ["terminals", "provision", "T9", "--out", str(tmp_path)], env={"LIFTWATCH_DATABASE_URL": database_url}
    )
    assert result.exit_code != 0 and "--rotate" in result.output
    second = provision(["provision", "T9", "--rotate", "--out", str(tmp_path)], database_url)
    assert first["T9"] != second["T9"]
    assert (tmp_path / "passwd").read_text().startswith("T9:$7$1000$")
