"""Production broker security: a terminal publishes as itself only, with credentials we provision."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from liftwatch import services
from liftwatch.cli import app
from liftwatch.errors import ServiceUnavailable
from liftwatch.mqtt import MqttClient
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


def provision(args: list[str], database_url: str) -> dict[str, str]:
    """Run `liftwatch terminals ...` and return the printed user -> password pairs."""
    result = CliRunner().invoke(app, ["terminals", *args], env={"LIFTWATCH_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]
    return {user: password for user, password in lines}


SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"


def shipped_config(port: int, auth: Path, data: Path) -> str:
    """deploy/mosquitto/mosquitto.conf as shipped, with only its container paths and listener moved here."""
    text = SHIPPED_CONFIG.read_text()
    for container_path, here in (("/mosquitto/config/", auth), ("/mosquitto/data/", data)):
        assert container_path in text
        text = text.replace(container_path, f"{here}/")
    assert "\nlistener 1883\n" in text
    text = text.replace("\nlistener 1883\n", f"\nlistener {port} 127.0.0.1\n")
    # Started as root, mosquitto drops to the `mosquitto` user, which cannot read our 0600 files.
    return text + ("user root\n" if os.geteuid() == 0 else "")


@pytest.fixture
def secured_broker(database_url: str, tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """A mosquitto running the shipped production configuration, credentials provisioned through the CLI."""
    auth, data = tmp_path / "auth", tmp_path / "data"
    data.mkdir()
    creds = provision(["provision", "T1", "T2", "--out", str(auth)], database_url)
    creds |= provision(["account", "gw", "--role", "gateway", "--out", str(auth)], database_url)
    port = services.free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(shipped_config(port, auth, data))
    binary = services.mosquitto_binary()
    assert binary is not None, "mosquitto is required for the broker security test"
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    broker = services.StartedService("mosquitto (shipped config)", f"mqtt://127.0.0.1:{port}", process)
    try:
        services.wait_for_port("127.0.0.1", port, proc=process)
        yield port, creds
    finally:
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
        t1.publish("lift/v1/T1/telemetry", b"mine")
        t1.publish("lift/v1/T1/status", b"online")
        received = [await asyncio.wait_for(gateway.receive(), 10) for _ in range(2)]
        assert sorted((m.topic, m.payload) for m in received) == [
            ("lift/v1/T1/status", b"online"),
            ("lift/v1/T1/telemetry", b"mine"),
        ]
        # Refused by the ACL: mosquitto answers PUBACK "not authorized" (and 2.0 then drops the
        # connection); nothing reaches the gateway.
        t1.publish("lift/v1/T2/telemetry", b"forged")
        await asyncio.wait_for(t1.wait_below(1), 10)
        await asyncio.sleep(0.3)  # a forged message would have arrived by now
        late = gateway.receive_nowait()
        assert late is None, late
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
