"""Production broker security: a terminal publishes as itself only, with credentials we provision."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trustme
from liftwatch.config import CommonSettings, GatewaySettings, MqttTls
from liftwatch.errors import ServiceUnavailable
from liftwatch.ingest import gateway
from liftwatch.ingest.credentials import verify_password
from liftwatch.launcher import services
from liftwatch.launcher.cli import app
from liftwatch.mqtt import MqttClient
from liftwatch.simulators.load import run_load
from typer.testing import CliRunner, Result

from tests.fixtures.ingest import gateway_subscribed, read_telemetry, running, telemetry_payload

pytestmark = pytest.mark.integration


def provision(args: list[str], database_url: str) -> dict[str, str]:
    """Run `liftwatch terminals ...` and return the printed user -> password pairs."""
    result = CliRunner().invoke(app, ["terminals", *args], env={"LIFTWATCH_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]
    return {user: password for user, password in lines}


SHIPPED_CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto" / "mosquitto.conf"


@dataclass(frozen=True)
class SecuredBroker:
    """A broker on the shipped config: its plain and TLS ports, the CA its certificate chains to."""

    port: int
    tls_port: int
    creds: dict[str, str]
    ca_file: Path
    ca: trustme.CA


def shipped_config(port: int, tls_port: int, auth: Path, data: Path, certs: Path) -> str:
    """deploy/mosquitto/mosquitto.conf as shipped, with only its container paths and listeners moved here."""
    text = SHIPPED_CONFIG.read_text()
    for container_path, here in (
        ("/mosquitto/config/", auth),
        ("/mosquitto/data/", data),
        ("/mosquitto/certs/", certs),
    ):
        assert container_path in text
        text = text.replace(container_path, f"{here}/")
    for shipped, here in ((1883, port), (8883, tls_port)):
        assert f"\nlistener {shipped}\n" in text
        text = text.replace(f"\nlistener {shipped}\n", f"\nlistener {here} 127.0.0.1\n")
    # Started as root, mosquitto drops to the `mosquitto` user, which cannot read our 0600 files.
    return text + ("user root\n" if os.geteuid() == 0 else "")


@contextlib.contextmanager
def start_secured_broker(
    database_url: str, tmp_path: Path, *, client_certificates: bool = False
) -> Iterator[SecuredBroker]:
    """A mosquitto running the shipped production configuration, credentials provisioned through the CLI,
    its TLS certificate signed by a throw-away CA (``client_certificates``: the shipped, commented-out
    lines that make the TLS listener require one, signed by the same CA, turned on)."""
    auth, data, certs = tmp_path / "auth", tmp_path / "data", tmp_path / "certs"
    data.mkdir()
    certs.mkdir()
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_pem.write_to_path(str(certs / "server.key"))
    for index, pem in enumerate(server.cert_chain_pems):
        pem.write_to_path(str(certs / "server.crt"), append=index > 0)
    ca.cert_pem.write_to_path(str(certs / "ca.crt"))
    ca.cert_pem.write_to_path(str(certs / "clients-ca.crt"))
    creds = provision(["provision", "T1", "T2", "--out", str(auth)], database_url)
    creds |= provision(["account", "gateway.1", "--role", "gateway", "--out", str(auth)], database_url)
    creds |= provision(["account", "gateway.2", "--role", "gateway", "--out", str(auth)], database_url)
    creds |= provision(["account", "sim.load", "--role", "publisher", "--out", str(auth)], database_url)
    port, tls_port = services.free_port(), services.free_port()
    text = shipped_config(port, tls_port, auth, data, certs)
    if client_certificates:
        for line in (f"cafile {certs}/clients-ca.crt", "require_certificate true"):
            assert f"\n# {line}\n" in text
            text = text.replace(f"\n# {line}\n", f"\n{line}\n")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text)
    binary = services.mosquitto_binary()
    assert binary is not None, "mosquitto is required for the broker security test"
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    broker = services.StartedService("mosquitto (shipped config)", f"mqtt://127.0.0.1:{port}", process)
    try:
        services.wait_for_port("127.0.0.1", port, proc=process)
        services.wait_for_port("127.0.0.1", tls_port, proc=process)
        yield SecuredBroker(port, tls_port, creds, certs / "ca.crt", ca)
    finally:
        broker.stop()


@pytest.fixture
def secured_broker(database_url: str, tmp_path: Path) -> Iterator[SecuredBroker]:
    with start_secured_broker(database_url, tmp_path) as broker:
        yield broker


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
    secured_broker: SecuredBroker,
) -> None:
    """With the client id a victim uses, a terminal gets its own session (its user name), not the victim's."""
    port, creds = secured_broker.port, secured_broker.creds
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


async def test_a_gateway_session_belongs_to_its_account(secured_broker: SecuredBroker) -> None:
    """The account is the session: messages queued while a gateway is away wait for its account,
    whatever client id it comes back with (the shared subscription keeps routing its share there)."""
    port, creds = secured_broker.port, secured_broker.creds
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


async def test_terminal_cannot_publish_as_another(secured_broker: SecuredBroker) -> None:
    port, creds = secured_broker.port, secured_broker.creds
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


async def test_wrong_or_missing_password_is_refused(secured_broker: SecuredBroker) -> None:
    port, creds = secured_broker.port, secured_broker.creds
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


def tls_url(broker: SecuredBroker, user: str) -> str:
    return f"mqtts://{user}:{broker.creds[user]}@127.0.0.1:{broker.tls_port}"


async def test_the_gateway_and_a_terminal_talk_over_tls_with_the_sites_ca(
    secured_broker: SecuredBroker, ingest_env: dict[str, str]
) -> None:
    """The shipped TLS listener carries a terminal's telemetry to a gateway configured with the
    site's CA (LIFTWATCH_MQTT_CA_FILE), all the way into Kafka."""
    env = {key.removeprefix("LIFTWATCH_").lower(): value for key, value in ingest_env.items()}
    env |= {"mqtt_url": tls_url(secured_broker, "gateway.1"), "mqtt_topic_root": "", "gateway_client_id": ""}
    settings = GatewaySettings(**env, mqtt_ca_file=secured_broker.ca_file)
    async with running(gateway.serve, settings) as registry:
        await gateway_subscribed(registry)
        terminal = MqttClient(tls_url(secured_broker, "T1"), "T1", tls=settings.mqtt_tls)
        await terminal.connect()
        try:
            terminal.publish("lift/v1/T1/telemetry", telemetry_payload("T1", 1))
            await asyncio.wait_for(terminal.wait_below(1), 10)
        finally:
            await terminal.disconnect()
        records = await read_telemetry(settings, 1)
    assert [(record.terminal, record.seq) for record in records] == [("T1", 1)]


async def test_the_simulator_publishes_over_tls(secured_broker: SecuredBroker) -> None:
    settings = CommonSettings(mqtt_url=tls_url(secured_broker, "sim.load"), mqtt_ca_file=secured_broker.ca_file)
    report = await run_load(settings.require_mqtt(), rate=200, duration_s=0.5, batch=10, tls=settings.mqtt_tls)
    assert report.acknowledged and report.samples > 0


async def test_tls_refuses_a_broker_the_site_does_not_trust(secured_broker: SecuredBroker, tmp_path: Path) -> None:
    """Without the site's CA (the system's trust store, or another CA) the client refuses the broker:
    a man in the middle with his own certificate learns no password."""
    other = tmp_path / "other-ca.crt"
    trustme.CA().cert_pem.write_to_path(str(other))
    for trusted in (None, other):
        client = MqttClient(tls_url(secured_broker, "T1"), "T1", tls=MqttTls(ca_file=trusted))
        with pytest.raises(ServiceUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await client.connect()


def test_an_account_can_take_a_chosen_password(database_url: str, tmp_path: Path) -> None:
    """Compose keeps every secret in .env first; the gateway's account takes it from stdin."""
    chosen = secrets.token_hex(24)
    result = CliRunner().invoke(
        app,
        ["terminals", "account", "gateway.1", "--password-stdin", "--out", str(tmp_path)],
        input=chosen + "\n",
        env={"LIFTWATCH_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    assert chosen not in result.output
    line = (tmp_path / "passwd").read_text().strip()
    assert line.startswith("gateway.1:") and verify_password(chosen, line.split(":", 1)[1])
    short = CliRunner().invoke(
        app,
        ["terminals", "account", "gateway.2", "--password-stdin", "--out", str(tmp_path)],
        input="short\n",
        env={"LIFTWATCH_DATABASE_URL": database_url},
    )
    assert short.exit_code == 2 and "24+" in short.output


async def test_gateways_with_their_own_accounts_share_the_subscription(secured_broker: SecuredBroker) -> None:
    """Two gateway accounts are two members of the shared subscription: each message reaches one of them."""
    port, creds = secured_broker.port, secured_broker.creds
    gateways = [
        await connect(port, name, creds[name], "same-id-for-both", persistent_session=True)
        for name in ("gateway.1", "gateway.2")
    ]
    for member in gateways:
        await member.subscribe("$share/g/lift/v1/+/telemetry")
    t1 = await connect(port, "T1", creds["T1"])
    try:
        for seq in range(40):
            t1.publish("lift/v1/T1/telemetry", str(seq).encode())
        await asyncio.wait_for(t1.wait_below(1), 10)
        received: list[list[bytes]] = [[], []]
        deadline = time.monotonic() + 10
        while sum(map(len, received)) < 40 and time.monotonic() < deadline:
            for index, member in enumerate(gateways):
                while (message := member.receive_nowait()) is not None:
                    received[index].append(message.payload)
            await asyncio.sleep(0.05)
        assert all(received) and all(member.connected for member in gateways)
        assert sorted(int(payload) for payload in received[0] + received[1]) == list(range(40))
    finally:
        await t1.disconnect()
        for member in gateways:
            await member.disconnect(end_session=True)


async def test_the_tls_listener_can_require_client_certificates(database_url: str, tmp_path: Path) -> None:
    """With the shipped client-certificate lines turned on, a terminal needs a certificate of the
    site's client CA besides its password (LIFTWATCH_MQTT_CLIENT_CERT / _KEY)."""
    with start_secured_broker(database_url, tmp_path, client_certificates=True) as broker:
        issued = broker.ca.issue_cert("T1")
        issued.cert_chain_pems[0].write_to_path(str(tmp_path / "t1.crt"))
        issued.private_key_pem.write_to_path(str(tmp_path / "t1.key"))
        settings = CommonSettings(
            mqtt_url=tls_url(broker, "T1"),
            mqtt_ca_file=broker.ca_file,
            mqtt_client_cert=tmp_path / "t1.crt",
            mqtt_client_key=tmp_path / "t1.key",
        )
        with_certificate = MqttClient(settings.require_mqtt(), "T1", tls=settings.mqtt_tls)
        await with_certificate.connect()
        await with_certificate.disconnect()
        without = MqttClient(settings.require_mqtt(), "T1", tls=MqttTls(ca_file=broker.ca_file))
        with pytest.raises(ServiceUnavailable):
            await without.connect()
