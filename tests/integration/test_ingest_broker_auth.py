"""Production broker security: a terminal publishes as itself only, with credentials we provision."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from liftwatch import services
from liftwatch.cli import app
from liftwatch.errors import ServiceUnavailable
from liftwatch.mqtt import MqttClient
from typer.testing import CliRunner, Result

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
    creds |= provision(["account", "gateway.1", "--role", "gateway", "--out", str(auth)], database_url)
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


async def connect(port: int, user: str, password: str, client_id: str | None = None, **kwargs: Any) -> MqttClient:
    client = MqttClient(
        f"mqtt://{user}:{password}@127.0.0.1:{port}", client_id or f"{user}-{secrets.token_hex(3)}", **kwargs
    )
    await client.connect()
    return client


def watch(client: MqttClient) -> list[bool]:
    """The client's connection changes from now on (False = the broker dropped it)."""
    changes: list[bool] = []
    client.on_connection_change = changes.append
    return changes


async def test_a_terminal_cannot_take_over_a_gateway_or_terminal_session(
    secured_broker: tuple[int, dict[str, str]],
) -> None:
    """With the client id a victim uses, a terminal gets its own session (its user name), not the victim's."""
    port, creds = secured_broker
    gateway = await connect(port, "gateway.1", creds["gateway.1"], "gateway.1", persistent_session=True)
    await gateway.subscribe("$share/g/lift/v1/+/telemetry")
    t1 = await connect(port, "T1", creds["T1"], "T1")
    gateway_changes, t1_changes = watch(gateway), watch(t1)
    intruders = [
        await connect(port, "T2", creds["T2"], "gateway.1"),  # the gateway's client id
        await connect(port, "T2", creds["T2"], "T1"),  # another terminal's
    ]
    try:
        await asyncio.sleep(1.0)  # a taken-over session is dropped at the intruder's CONNACK
        assert gateway_changes == [] and t1_changes == []
        assert gateway.connected and t1.connected
        t1.publish("lift/v1/T1/telemetry", b"still mine")
        received = await asyncio.wait_for(gateway.receive(), 10)
        assert (received.topic, received.payload) == ("lift/v1/T1/telemetry", b"still mine")
    finally:
        for client in (*intruders, t1):
            await client.disconnect()
        await gateway.disconnect(end_session=True)


async def test_a_gateway_session_belongs_to_its_account(secured_broker: tuple[int, dict[str, str]]) -> None:
    """The account is the session: messages queued while a gateway is away wait for its account,
    whatever client id it comes back with (the shared subscription keeps routing its share there)."""
    port, creds = secured_broker
    gateway = await connect(port, "gateway.1", creds["gateway.1"], "first-id", persistent_session=True)
    await gateway.subscribe("$share/g/lift/v1/+/telemetry")
    await gateway.disconnect()
    t1 = await connect(port, "T1", creds["T1"])
    try:
        t1.publish("lift/v1/T1/telemetry", b"while away")
        await asyncio.wait_for(t1.wait_below(1), 10)
    finally:
        await t1.disconnect()
    back = await connect(port, "gateway.1", creds["gateway.1"], "another-id", persistent_session=True)
    try:
        received = await asyncio.wait_for(back.receive(), 10)
        assert (received.topic, received.payload) == ("lift/v1/T1/telemetry", b"while away")
    finally:
        await back.disconnect(end_session=True)


async def test_terminal_cannot_publish_as_another(secured_broker: tuple[int, dict[str, str]]) -> None:
    port, creds = secured_broker
    gateway = MqttClient(f"mqtt://gateway.1:{creds['gateway.1']}@127.0.0.1:{port}", "gateway.1", manual_ack=False)
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


def terminals_cli(args: list[str], database_url: str) -> Result:
    return CliRunner().invoke(app, ["terminals", *args], env={"LIFTWATCH_DATABASE_URL": database_url})


def test_service_accounts_cannot_be_named_like_terminals(database_url: str, tmp_path: Path) -> None:
    refused = terminals_cli(["account", "gw1", "--role", "gateway", "--out", str(tmp_path)], database_url)
    assert refused.exit_code == 2 and "at least one dot" in refused.output
    refused = terminals_cli(["provision", "T1\n", "--out", str(tmp_path)], database_url)
    assert refused.exit_code == 2 and "invalid terminal id" in refused.output
    provision(["provision", "gw1", "--out", str(tmp_path)], database_url)
    provision(["account", "gw1.gateway", "--role", "gateway", "--out", str(tmp_path)], database_url)
    users = [line.split(":")[0] for line in (tmp_path / "passwd").read_text().splitlines()]
    assert users == ["gw1", "gw1.gateway"]


def test_an_account_named_before_the_dot_rule_cannot_meet_a_terminal(database_url: str, tmp_path: Path) -> None:
    """An old account without a dot keeps working, but no terminal gets its name, and a password
    file with one user twice (say, from rows inserted by hand) is never written."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE mqtt_accounts DROP CONSTRAINT mqtt_accounts_not_a_terminal_id")
        conn.execute("INSERT INTO mqtt_accounts (username, role, password_hash) VALUES ('gw1', 'gateway', '$7$a')")
    refused = terminals_cli(["provision", "gw1", "--out", str(tmp_path)], database_url)
    assert refused.exit_code == 2 and "is a service account" in refused.output
    assert not (tmp_path / "passwd").exists()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO terminals (terminal_id, mqtt_password_hash) VALUES ('gw1', '$7$t')")
    refused = terminals_cli(["export", "--out", str(tmp_path)], database_url)
    assert (
        refused.exit_code == 2 and "gw1" in refused.output and "both a terminal and a service account" in refused.output
    )
    assert not (tmp_path / "passwd").exists()
    provision(["remove-account", "gw1", "--out", str(tmp_path)], database_url)
    assert (tmp_path / "passwd").read_text() == "gw1:$7$t\n"


def test_the_database_refuses_new_accounts_without_a_dot(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO mqtt_accounts (username, role, password_hash) VALUES ('gw1', 'gateway', '$7$a')")
