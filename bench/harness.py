"""What the end-to-end benchmarks share: the platform as processes on private services, their CPU.

``bench/ingest.py``, ``bench/detection.py`` and ``bench/pipeline.py`` run liftwatch the way a site
runs it, as subprocesses on a private tansu, a private mosquitto and a fresh database of the local
PostgreSQL, and read the CPU time of every process from ``/proc`` (robust to a busy machine: a
process's cost per message does not depend on what else runs, its throughput does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import psycopg
from liftwatch import db
from liftwatch.launcher import services
from liftwatch.mqtt import MqttClient
from liftwatch.registry.importer import import_registry
from liftwatch.registry.model import ElevatorKind, RegistryRow
from liftwatch.schema import Sample, TelemetryMessage
from liftwatch.simulators.specs import generated_registry
from prometheus_client.parser import text_string_to_metric_families

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROCESSES = ("gateway", "writer", "rules", "alerts", "api")
"""The platform's processes, as ``compose.yaml`` runs them."""
ADMIN_TOKEN = "bench-admin-token"
BENCH_APPLICATION = "liftwatch-bench"
"""application_name of the benchmark's own database sessions (left out of PostgreSQL's CPU)."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class CpuMeter:
    """CPU share of named groups of processes over an interval (1.0 = one full core).

    A group may change between ``begin`` and ``shares`` (a connection pool opening a PostgreSQL
    backend): a process that was not there at the start counts all of its CPU time.
    """

    groups: dict[str, list[int]]
    start: dict[int, float] = field(default_factory=dict)
    started_at: float = 0.0

    def begin(self) -> None:
        self.start = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        self.started_at = time.monotonic()

    def shares(self) -> dict[str, float]:
        elapsed = max(1e-9, time.monotonic() - self.started_at)
        return {
            name: sum(cpu_seconds(pid) - self.start.get(pid, 0.0) for pid in pids) / elapsed
            for name, pids in self.groups.items()
        }


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile by rank (nan when empty): with few values, p99 is the worst."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def saturation_limit(costs: dict[str, float], one_core: Iterable[str], shared: list[str]) -> tuple[str, float, str]:
    """Which limit is reached first as the rate grows, from the CPU microseconds per message of each
    process: (what, messages/s at that limit, why). A process in ``one_core`` is limited to one core;
    the processes in ``shared`` share all of them."""
    limits = [(name, 1e6 / costs[name], "one core at most") for name in one_core if costs.get(name)]
    total = sum(costs[name] for name in shared if name in costs)
    if total:
        cores = os.cpu_count() or 1
        limits.append((f"the {cores} cores", cores * 1e6 / total, f"shared by {'+'.join(shared)}"))
    return min(limits, key=lambda limit: limit[1]) if limits else ("nothing measured", 0.0, "")


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus exposition's samples called ``name`` (over the labels not given)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


@dataclass
class Platform:
    """liftwatch running on private services: its settings, processes and where they report."""

    env: dict[str, str]
    """The ``LIFTWATCH_*`` settings every process shares."""
    workdir: Path
    api: str
    """Base URL of the API."""
    services: dict[str, int]
    """pid of each service this platform started (tansu, mosquitto)."""
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    metrics_urls: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.env["LIFTWATCH_DATABASE_URL"]

    async def start(self, command: str, extra: dict[str, str] | None = None) -> None:
        """Start ``liftwatch COMMAND`` with the shared settings and ``extra`` ones (kept for restarts)."""
        if extra is not None:
            self.extra_env[command] = extra
        with (self.workdir / f"{command}.log").open("ab") as log:
            self.processes[command] = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "liftwatch",
                command,
                env={**os.environ, **self.env, **self.extra_env.get(command, {})},
                stdout=log,
                stderr=log,
            )

    async def stop(self, command: str) -> None:
        process = self.processes.pop(command)
        if process.returncode is None:
            process.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 30)
        if process.returncode is None:
            process.kill()
            await process.wait()

    async def scrape(self, process: str) -> str:
        async with httpx.AsyncClient(timeout=10) as http:
            return (await http.get(self.metrics_urls[process])).text

    def pids(self) -> dict[str, list[int]]:
        """The platform's processes and services by name, and PostgreSQL: the backends of its database."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND coalesce(application_name, '') <> %s",
                (BENCH_APPLICATION,),
            ).fetchall()
        return (
            {name: [process.pid] for name, process in self.processes.items()}
            | {name: [pid] for name, pid in self.services.items()}
            | {"postgres": [int(pid) for (pid,) in rows]}
        )


def bench_connection_url(url: str) -> str:
    """``url`` for the benchmark's own sessions, named so their CPU is not counted as the platform's."""
    return f"{url}{'&' if '?' in url else '?'}application_name={BENCH_APPLICATION}"


@contextlib.asynccontextmanager
async def platform(
    workdir: Path, rows: list[RegistryRow], separate: bool, env: dict[str, str] | None = None
) -> AsyncIterator[Platform]:
    """Services, a fresh database with the registry, and the platform running on them: ``liftwatch
    up`` (one process), or with ``separate`` one process each, as ``compose.yaml`` runs them; each
    separate process serves its metrics on a port of its own (the API on its own port)."""
    tansu = services.start_tansu(log_file=workdir / "tansu.log")
    mqtt = services.start_mqtt(workdir=workdir)
    server = services.local_postgres_url()
    assert server is not None, "the benchmarks need the PostgreSQL on 127.0.0.1:5432"
    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{server.rpartition('/')[0]}/{name}"
    assert tansu.process is not None and mqtt.process is not None
    port = services.free_port()
    site = Platform(
        env={
            "LIFTWATCH_DATABASE_URL": url,
            "LIFTWATCH_KAFKA_BOOTSTRAP": tansu.url,
            "LIFTWATCH_MQTT_URL": mqtt.url,
            "LIFTWATCH_MQTT_TOPIC_ROOT": "bench/",
            "LIFTWATCH_API_PORT": str(port),
            "LIFTWATCH_ADMIN_TOKEN": ADMIN_TOKEN,
            "LIFTWATCH_LOG_LEVEL": "WARNING",
            **(env or {}),
        },
        workdir=workdir,
        api=f"http://127.0.0.1:{port}",
        services={"tansu": tansu.process.pid, "mosquitto": mqtt.process.pid},
    )
    try:
        with psycopg.connect(url) as conn:
            db.migrate(conn)
            assert import_registry(conn, rows).ok
        if separate:
            for command in PROCESSES:
                extra = {}
                if command != "api":
                    metrics_port = services.free_port()
                    extra = {"LIFTWATCH_METRICS_PORT": str(metrics_port)}
                    site.metrics_urls[command] = f"http://127.0.0.1:{metrics_port}/metrics"
                await site.start(command, extra)
            site.metrics_urls["api"] = f"{site.api}/metrics"
        else:
            # The API's /metrics serves the whole platform under `up`.
            await site.start("up", {})
            site.metrics_urls = dict.fromkeys(PROCESSES, f"{site.api}/metrics")
        async with httpx.AsyncClient(timeout=5) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if all([(await http.get(u)).status_code == 200 for u in set(site.metrics_urls.values())]):
                        break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"the platform did not come up; see the logs in {workdir}")
        yield site
    finally:
        await asyncio.gather(*(site.stop(command) for command in list(site.processes)))
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        mqtt.stop()
        tansu.stop()


# --- probes: elevators with a known fault, timed from its publish to its incident row -------------

PROBE_LEAD_S = 2.0
"""A probe streams this long before its deciding sample (its terminal is known, its car running)."""
PROBE_TIMEOUT_S = 10.0
"""A probe not seen by then counts as missed (an engine waiting out 5 s of lateness is seen by then)."""
PROBE_CODE = "door_open_while_moving"
"""The probes' fault: raised on one sample, no hold, so its latency is the pipeline's alone."""
POLL_S = 0.02


@dataclass
class Probe:
    """A probe elevator: when its deciding message was published and when its incident was seen."""

    terminal: str
    console_watched: bool = True
    """Done only once the console has seen it too (else the incident row is enough)."""
    decided: float | None = None
    """Monotonic time the deciding message was handed to the MQTT client."""
    row: float | None = None
    console: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        if self.row is not None and (self.console is not None or not self.console_watched):
            self.done.set()


def registry_with_probes(
    background: int, groups: list[int], probes: int, seed: int
) -> tuple[list[RegistryRow], dict[int, list[str]]]:
    """The seeded registry: background cars first, then ``probes`` probe elevators per group (their
    terminals renamed ``PROBE<group><i>``, each a 1.75 m/s traction car of floors 1-10); the probe
    terminals of each group."""
    rows = generated_registry(background + probes * len(groups), seed)
    terminals: dict[int, list[str]] = {}
    for k, group in enumerate(groups):
        for i in range(probes):
            index = background + k * probes + i
            terminal = f"PROBE{group:05d}{i:04d}"
            rows[index] = msgspec.structs.replace(
                rows[index],
                terminal_id=terminal,
                kind=ElevatorKind.TRACTION,
                rated_speed=1.75,
                bottom_floor=1,
                top_floor=10,
            )
            terminals.setdefault(group, []).append(terminal)
    return rows, terminals


def _probe_sample(ts: int, *, door: str = "closed") -> Sample:
    return Sample(
        ts=ts,
        mode="normal",
        floor=2,
        door_zone=False,
        direction="up",
        speed=1.0,
        door=door,  # type: ignore[arg-type]
        occupied=True,
        safety_circuit=True,
    )


async def run_probe(client: MqttClient, root: str, probe: Probe, timeout_s: float = PROBE_TIMEOUT_S) -> int:
    """Stream at 2 Hz (each sample stamped with its publish time); the deciding sample (door open
    while running) after PROBE_LEAD_S; on until observed or timed out. Returns the samples sent."""
    topic = f"{root}lift/v1/{probe.terminal}/telemetry"
    encode = msgspec.json.Encoder().encode
    start = time.monotonic()
    seq = 0
    while True:
        now = time.monotonic()
        deciding = probe.decided is None and now - start >= PROBE_LEAD_S
        if probe.decided is not None and (probe.done.is_set() or now - probe.decided > timeout_s):
            return seq
        sample = _probe_sample(int(time.time() * 1000), door="open" if deciding else "closed")
        if deciding:
            probe.decided = time.monotonic()
        client.publish(topic, encode(TelemetryMessage(1, probe.terminal, seq, [sample])), 1)
        seq += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(probe.done.wait(), 0.5)


async def watch_incident_rows(url: str, probes: dict[str, Probe], stop: asyncio.Event) -> None:
    """Poll the incidents table until ``stop``: the monotonic time each probe's incident is seen."""
    async with await psycopg.AsyncConnection.connect(bench_connection_url(url), autocommit=True) as conn:
        while not stop.is_set():
            pending = [t for t, p in probes.items() if p.decided is not None and p.row is None]
            if pending:
                cur = await conn.execute(
                    "SELECT terminal_id FROM incidents WHERE terminal_id = ANY(%s) AND code = %s",
                    (pending, PROBE_CODE),
                )
                seen = time.monotonic()
                for (terminal,) in await cur.fetchall():
                    probes[terminal].row = seen
                    probes[terminal].check()
            await asyncio.sleep(POLL_S)
