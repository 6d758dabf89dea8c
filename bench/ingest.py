"""Ingest benchmark: publisher -> mosquitto -> gateway -> tansu -> writer -> PostgreSQL.

Starts a private mosquitto (liftwatch's no-drop configuration) and a private tansu, migrates a
fresh PostgreSQL schema, runs ``liftwatch gateway`` and ``liftwatch writer`` as subprocesses and
publishes QoS 1 telemetry at increasing rates, 10 samples per message and 1 per message. For each
rate it prints the offered and achieved samples/s, the publish-to-gateway latency (``received_at``
minus the sample's ``ts``, which is its publish time), the publish-to-row latency (probe messages
polled in the database), the loss (rows vs published samples, must be 0) and the CPU share of every
process, so the first to saturate is visible.

The gateway runs once per Kafka record format (``LIFTWATCH_GATEWAY_RECORD_FORMAT``): ``messages``
(one record per MQTT message) and ``columns`` (a send's messages packed into one record), and the
summary gives the ratio of the two. The baseline, in the same run, is a naive gateway (one message
at a time: produce, await the Kafka acknowledgement, PUBACK) fed the same load.

    .venv/bin/python bench/ingest.py            # full run (several minutes)
    .venv/bin/python bench/ingest.py --quick    # a short run
    .venv/bin/python bench/ingest.py --quick --record-format columns
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psycopg
from harness import CpuMeter, cpu_seconds, saturation_limit
from liftwatch import db
from liftwatch.config import GatewaySettings
from liftwatch.kafka import ensure_topics, make_producer
from liftwatch.launcher import services
from liftwatch.mqtt import MqttClient
from liftwatch.schema import Sample, TelemetryMessage

TERMINALS = 2000
PUBLISH_WINDOW = 4000  # QoS 1 messages in flight from the publisher at most
TICK_S = 0.005
PROBE_EVERY_S = 0.05
# A level is sustained when its rows are all stored within this time after the last publish.
DRAIN_OK_S = 2.0


# --- measurement helpers -------------------------------------------------------------------------


def sample(ts: int) -> Sample:
    return Sample(
        ts=ts,
        mode="normal",
        floor=4,
        door_zone=False,
        direction="up",
        speed=1.6,
        door="closed",
        occupied=True,
        safety_circuit=True,
        door_lock=True,
        load_pct=35.0,
    )


_encode = msgspec.json.Encoder().encode


def payload(terminal: str, seq: int, per_message: int, now_ms: int) -> bytes:
    """A telemetry message whose last sample is stamped with the publish time."""
    samples = [sample(now_ms - 10 * (per_message - 1 - i)) for i in range(per_message)]
    return _encode(TelemetryMessage(v=1, terminal=terminal, seq=seq, samples=samples))


# --- the load --------------------------------------------------------------------------------------


@dataclass
class LevelResult:
    label: str
    per_message: int
    offered_msgs: float
    published_msgs: int
    published_samples: int
    rows: int
    publish_s: float
    drain_s: float
    gateway_p50_ms: float
    gateway_p99_ms: float
    e2e_p50_ms: float
    e2e_p99_ms: float
    cpu: dict[str, float]

    @property
    def achieved_msgs(self) -> float:
        return self.published_msgs / (self.publish_s + self.drain_s)

    @property
    def achieved_samples(self) -> float:
        return self.published_samples / (self.publish_s + self.drain_s)


async def run_level(
    label: str,
    pub: MqttClient,
    database_url: str,
    root: str,
    rate: float,
    per_message: int,
    seconds: float,
    meter: CpuMeter,
) -> LevelResult:
    """Publish ``rate`` messages/s for ``seconds``, then wait until every sample is stored."""
    prefix = f"{label}-{secrets.token_hex(2)}"
    terminals = [f"{prefix}-{i}" for i in range(TERMINALS)]
    topics = [f"{root}lift/v1/{t}/telemetry" for t in terminals]
    probe = f"{prefix}-probe"
    probe_topic = f"{root}lift/v1/{probe}/telemetry"
    seqs = [0] * TERMINALS
    published = samples = 0
    probes_sent: list[int] = []
    e2e: list[float] = []

    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:

        async def poll_probes(stop: asyncio.Event) -> None:
            seen = 0
            while not stop.is_set() or seen < len(probes_sent):
                cur = await conn.execute(
                    "SELECT (extract(epoch FROM ts) * 1000)::bigint FROM telemetry"
                    " WHERE terminal_id = %s AND ts > to_timestamp(%s / 1000.0) ORDER BY ts",
                    (probe, probes_sent[seen - 1] if seen else 0),
                )
                now = time.time() * 1000
                for (ts,) in await cur.fetchall():
                    e2e.append(now - ts)
                    seen += 1
                await asyncio.sleep(0.01)

        meter.begin()
        stop_polling = asyncio.Event()
        poller = asyncio.create_task(poll_probes(stop_polling))
        start = time.monotonic()
        next_probe = start
        index = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(rate * elapsed) - published
            now_ms = int(time.time() * 1000)
            for _ in range(due):
                terminal = index % TERMINALS
                pub.publish(topics[terminal], payload(terminals[terminal], seqs[terminal], per_message, now_ms))
                seqs[terminal] += 1
                index += 1
            published += due
            samples += due * per_message
            if time.monotonic() >= next_probe:
                probes_sent.append(now_ms)
                pub.publish(probe_topic, payload(probe, len(probes_sent) - 1, 1, now_ms))
                next_probe += PROBE_EVERY_S
            await pub.wait_below(PUBLISH_WINDOW)
            await asyncio.sleep(TICK_S)
        publish_s = time.monotonic() - start
        await pub.wait_below(1)

        like = f"{prefix}-%"
        expected = samples + len(probes_sent)
        deadline = time.monotonic() + 120
        rows = 0
        while time.monotonic() < deadline:
            cur = await conn.execute("SELECT count(*) FROM telemetry WHERE terminal_id LIKE %s", (like,))
            rows = (await cur.fetchone() or (0,))[0]
            if rows >= expected:
                break
            await asyncio.sleep(0.05)
        drain_s = time.monotonic() - start - publish_s
        cpu = meter.shares()
        stop_polling.set()
        try:
            await asyncio.wait_for(poller, 10)
        except TimeoutError:
            poller.cancel()
        cur = await conn.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - ts))"
            " FROM telemetry WHERE terminal_id LIKE %s AND idx = %s",
            (like, per_message - 1),
        )
        row = await cur.fetchone()
        gw50, gw99 = row[0] if row and row[0] else [float("nan")] * 2
    e2e.sort()
    return LevelResult(
        label=label,
        per_message=per_message,
        offered_msgs=rate,
        published_msgs=published,
        published_samples=samples,
        rows=rows - len(probes_sent),
        publish_s=publish_s,
        drain_s=drain_s,
        gateway_p50_ms=gw50 * 1000,
        gateway_p99_ms=gw99 * 1000,
        e2e_p50_ms=statistics.median(e2e) if e2e else float("nan"),
        e2e_p99_ms=e2e[min(len(e2e) - 1, int(len(e2e) * 0.99))] if e2e else float("nan"),
        cpu=cpu,
    )


async def until_flowing(pub: MqttClient, database_url: str, root: str) -> None:
    """Publish a probe until its row appears: the gateway is subscribed and the writer has joined."""
    terminal = f"warmup-{secrets.token_hex(2)}"
    message = payload(terminal, 0, 1, int(time.time() * 1000))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for _ in range(300):
            pub.publish(f"{root}lift/v1/{terminal}/telemetry", message)  # stored once however often sent
            await asyncio.sleep(0.2)
            cur = await conn.execute("SELECT count(*) FROM telemetry WHERE terminal_id = %s", (terminal,))
            if (await cur.fetchone() or (0,))[0]:
                return
    raise RuntimeError("the pipeline did not start within 60 s")


# --- the naive gateway (baseline) --------------------------------------------------------------------


async def naive_gateway(settings: GatewaySettings) -> None:
    """One message at a time: decode, produce, await Kafka's ack, PUBACK. The baseline."""
    from liftwatch.ingest.contract import Accepted, decode_telemetry, parse_topic
    from liftwatch.schema import TelemetryRecord, encode_record

    producer = make_producer(settings)
    await producer.start()
    client = MqttClient(
        settings.require_mqtt(),
        settings.gateway_client_id,
        persistent_session=True,
        manual_ack=True,
        receive_maximum=settings.max_in_flight,
    )
    await client.connect()
    await client.subscribe(f"$share/{settings.gateway_group}/{settings.mqtt_topic_root}lift/v1/+/telemetry")
    topic = settings.topic("telemetry")
    try:
        while True:
            message = await client.receive()
            parsed = parse_topic(message.topic, settings.mqtt_topic_root)
            if parsed is not None:
                now_ms = int(time.time() * 1000)
                decoded = decode_telemetry(message.payload, parsed[0], now_ms)
                if isinstance(decoded, Accepted):
                    m = decoded.message
                    record = TelemetryRecord(terminal=m.terminal, seq=m.seq, received_ms=now_ms, samples=m.samples)
                    await producer.send_and_wait(topic, encode_record(record), key=m.terminal.encode())
            message.ack()
    finally:
        await client.disconnect()
        await producer.stop()


# --- orchestration ---------------------------------------------------------------------------------


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    try:
        return subprocess.Popen([sys.executable, *args], env={**os.environ, **env}, stdout=out, stderr=out)
    finally:
        out.close()


def backend_pid(database_url: str, application: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:  # a fresh stats snapshot per query
        for _ in range(100):
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application,)
            ).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.1)
    raise RuntimeError(f"no backend for {application}")


def print_result(result: LevelResult) -> None:
    cpu = " ".join(f"{name}={share * 100:.0f}%" for name, share in sorted(result.cpu.items(), key=lambda x: -x[1]))
    loss = result.published_samples - result.rows
    print(
        f"  {result.label:<10} offered {result.offered_msgs:>7.0f} msg/s"
        f" -> achieved {result.achieved_msgs:>7.0f} msg/s = {result.achieved_samples:>7.0f} samples/s"
        f" (drain {result.drain_s:4.1f} s)  loss {loss}  gateway p50/p99 {result.gateway_p50_ms:.0f}/"
        f"{result.gateway_p99_ms:.0f} ms  row p50/p99 {result.e2e_p50_ms:.0f}/{result.e2e_p99_ms:.0f} ms\n"
        f"             cpu: {cpu}\n"
        f"             cost per message (CPU us, robust to a busy machine): {cost_line(result)}",
        flush=True,
    )


PLATFORM = ("gateway", "writer", "pg-writer", "mosquitto", "tansu")


def cost_us(result: LevelResult) -> dict[str, float]:
    """CPU microseconds each process spent per message at this level."""
    messages = max(1.0, result.achieved_msgs)
    return {name: share * 1e6 / messages for name, share in result.cpu.items()}


def projected_capacity(result: LevelResult) -> float:
    """Messages/s the platform processes could sustain with every core of this machine to themselves."""
    total = sum(cost for name, cost in cost_us(result).items() if name in PLATFORM)
    return (os.cpu_count() or 1) * 1e6 / total if total else 0.0


# Processes that use one core at most: the gateway and writer (one asyncio thread each), the
# writer's PostgreSQL backend (one connection) and mosquitto (single-threaded). tansu is threaded.
ONE_CORE = ("gateway", "writer", "pg-writer", "mosquitto")


def first_to_saturate(result: LevelResult, with_publisher: bool) -> tuple[str, float, str]:
    """Which limit is reached first as the rate grows: (what, msg/s at that limit, why)."""
    costs = cost_us(result)
    shared = [name for name in (*PLATFORM, "publisher") if name in costs and (with_publisher or name != "publisher")]
    return saturation_limit(costs, ONE_CORE, shared)


def cost_line(result: LevelResult) -> str:
    costs = cost_us(result)
    parts = " ".join(f"{name}={costs[name]:.0f}" for name in (*PLATFORM, "publisher") if name in costs)
    return f"{parts}; platform total -> {projected_capacity(result):.0f} msg/s on {os.cpu_count()} idle cores"


@dataclass
class DrainResult:
    per_message: int
    messages: int
    rows: int
    expected: int
    seconds: float
    """From the gateway's restart (its start-up time subtracted) to the last row stored."""
    gateway_seconds: float
    """From the gateway's restart (start-up subtracted) until it went idle: everything in Kafka."""
    cpu_us: dict[str, float]

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def gateway_rate(self) -> float:
        return self.messages / self.gateway_seconds


async def drain_backlog(
    pub: MqttClient,
    database_url: str,
    root: str,
    per_message: int,
    messages: int,
    restart_gateway: Callable[[], int],
    stop_gateway: Callable[[], None],
    pids: dict[str, int],
) -> DrainResult:
    """The gateway's capacity alone: a backlog published while it is down, drained when it returns.

    Every message waits in the gateway's persistent session, so the gateway works in full batches
    from the first moment: its CPU per message is measured without the publisher competing, and
    the stored row count checks that the session lost nothing (loss must be 0).
    """
    stop_gateway()
    # What a gateway costs to start (imports, connections) with nothing to do, subtracted below.
    started_at = time.monotonic()
    startup, ready_at = await settle(restart_gateway())
    startup_s = ready_at - started_at
    stop_gateway()
    prefix = f"drain{per_message}-{secrets.token_hex(2)}"
    now_ms = int(time.time() * 1000)
    for index in range(messages):
        terminal = f"{prefix}-{index % TERMINALS}"
        pub.publish(f"{root}lift/v1/{terminal}/telemetry", payload(terminal, index // TERMINALS, per_message, now_ms))
        if index % 1000 == 0:
            await pub.wait_below(PUBLISH_WINDOW)
    await pub.wait_below(1)
    restarted_at = time.monotonic()
    gateway_pid = restart_gateway()
    pids = pids | {"gateway": gateway_pid}
    expected = messages * per_message
    like = f"{prefix}-%"
    rows, first = 0, 0
    started: dict[str, float] = {}
    last_at = time.monotonic()
    deadline = time.monotonic() + 180
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        while rows < expected and time.monotonic() < deadline:
            cur = await conn.execute("SELECT count(*) FROM telemetry WHERE terminal_id LIKE %s", (like,))
            rows = (await cur.fetchone() or (0,))[0]
            if rows and not started:  # the gateway is up and draining: measure from here
                first = rows
                started = {name: cpu_seconds(pid) for name, pid in pids.items()}
            last_at = time.monotonic()
            await asyncio.sleep(0.02)
    drained = max(1, (rows - first) // per_message)
    cpu_us = {name: (cpu_seconds(pid) - started.get(name, 0.0)) * 1e6 / drained for name, pid in pids.items()}
    # The gateway may finish before the first row is stored: count all of its work but its start-up.
    gateway_cpu, gateway_done_at = await settle(gateway_pid)
    cpu_us["gateway"] = max(0.0, gateway_cpu - startup) * 1e6 / messages
    working_s = max(1e-3, last_at - restarted_at - startup_s)
    gateway_s = max(1e-3, gateway_done_at - restarted_at - startup_s)
    return DrainResult(per_message, messages, rows, expected, working_s, gateway_s, cpu_us)


async def settle(pid: int, quiet_s: float = 0.6, timeout_s: float = 60.0) -> tuple[float, float]:
    """Once a process has been idle for ``quiet_s`` (started up, or done): its CPU seconds and
    the monotonic time it was last seen busy."""
    deadline = time.monotonic() + timeout_s
    last, busy_at = cpu_seconds(pid), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - busy_at < quiet_s:
        await asyncio.sleep(0.05)
        now = cpu_seconds(pid)
        if now - last > 0.005:  # more than a tick or so of work since the last look
            last, busy_at = now, time.monotonic()
    return last, busy_at


def print_drain(result: DrainResult) -> None:
    cost = " ".join(f"{name}={us:.0f}" for name, us in sorted(result.cpu_us.items(), key=lambda x: -x[1]))
    print(
        f"  backlog x{result.per_message:<3} {result.messages} messages queued while the gateway was down, drained at"
        f" {result.rate:.0f} msg/s = {result.rate * result.per_message:.0f} samples/s into PostgreSQL (into Kafka"
        f" at {result.gateway_rate:.0f} msg/s); loss"
        f" {result.expected - result.rows}\n             CPU us per message: {cost};"
        f" gateway alone -> {1e6 / max(1.0, result.cpu_us.get('gateway', 0.0)):.0f} msg/s on one core",
        flush=True,
    )


async def measure(
    name: str,
    gateway_cmd: list[str],
    env: dict[str, str],
    database_url: str,
    workdir: Path,
    levels: list[tuple[float, int]],
    seconds: float,
    fixed_pids: dict[str, int],
    backlog: int = 0,
    drains: list[DrainResult] | None = None,
) -> list[LevelResult]:
    """Start a gateway and a writer, run the levels (and the backlog drains), stop them."""
    drains = drains if drains is not None else []
    token = secrets.token_hex(3)
    env = {
        **env,
        "LIFTWATCH_TOPIC_PREFIX": f"b{token}.",
        "LIFTWATCH_MQTT_TOPIC_ROOT": f"b{token}/",
        "LIFTWATCH_GATEWAY_GROUP": f"g{token}",
        "LIFTWATCH_GATEWAY_CLIENT_ID": f"gw-{token}",
        "LIFTWATCH_WRITER_GROUP": f"w{token}",
    }
    settings = GatewaySettings.model_validate(
        {k.removeprefix("LIFTWATCH_").lower(): v for k, v in env.items() if k.startswith("LIFTWATCH_")}
    )
    await ensure_topics(settings)
    application = f"bench-writer-{token}"
    writer_env = {**env, "LIFTWATCH_DATABASE_URL": f"{database_url}&application_name={application}"}
    gateway = start_process(gateway_cmd, env, workdir / f"{name}-gateway.log")
    writer = start_process(["-m", "liftwatch", "writer"], writer_env, workdir / f"{name}-writer.log")
    results: list[LevelResult] = []
    try:
        pub = MqttClient(settings.require_mqtt(), f"bench-pub-{token}", receive_maximum=PUBLISH_WINDOW)
        await pub.connect()
        pids = {
            **fixed_pids,
            "gateway": gateway.pid,
            "writer": writer.pid,
            "pg-writer": backend_pid(database_url, application),
        }
        meter = CpuMeter({name: [pid] for name, pid in (pids | {"publisher": os.getpid()}).items()})
        await until_flowing(pub, database_url, settings.mqtt_topic_root)
        saturated: set[int] = set()
        for rate, per_message in levels:
            if per_message in saturated:
                continue
            result = await run_level(
                f"{name}x{per_message}", pub, database_url, settings.mqtt_topic_root, rate, per_message, seconds, meter
            )
            print_result(result)
            results.append(result)
            if result.achieved_msgs < 0.8 * rate:
                saturated.add(per_message)  # higher rates of this kind would only queue up
        if backlog:

            def stop_gateway() -> None:
                gateway.terminate()
                gateway.wait(30)

            def restart_gateway() -> int:
                nonlocal gateway
                gateway = start_process(gateway_cmd, env, workdir / f"{name}-gateway.log")
                return gateway.pid

            for per_message in (10, 1):
                drain = await drain_backlog(
                    pub,
                    database_url,
                    settings.mqtt_topic_root,
                    per_message,
                    backlog,
                    restart_gateway,
                    stop_gateway,
                    {k: v for k, v in pids.items() if k != "gateway"},
                )
                print_drain(drain)
                drains.append(drain)
        await pub.disconnect()
    finally:
        for process in (gateway, writer):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return results


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir or f"/tmp/liftwatch-bench-{os.getpid()}")
    os.makedirs(workdir, exist_ok=True)
    pg = services.local_postgres_url()
    if pg is None:
        sys.exit("PostgreSQL on 127.0.0.1:5432 is required")
    schema = f"bench_{secrets.token_hex(3)}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    database_url = f"{pg}?options=-csearch_path%3D{schema}"
    with psycopg.connect(database_url) as conn:
        db.migrate(conn)
    mqtt = services.start_mosquitto(workdir=workdir / "mosquitto")
    kafka = services.start_tansu()
    env = {
        "LIFTWATCH_MQTT_URL": mqtt.url,
        "LIFTWATCH_KAFKA_BOOTSTRAP": kafka.url,
        "LIFTWATCH_DATABASE_URL": database_url,
        "LIFTWATCH_LOG_LEVEL": "WARNING",
        "LIFTWATCH_WRITER_SESSION_TIMEOUT_MS": "2000",
    }
    assert mqtt.process is not None and kafka.process is not None
    fixed = {"mosquitto": mqtt.process.pid, "tansu": kafka.process.pid}
    seconds = 3.0 if args.quick else args.seconds
    batched = [(float(r), 10) for r in ([5000, 15000] if args.quick else [2500, 5000, 7500, 10000, 15000])]
    single = [(float(r), 1) for r in ([5000, 20000] if args.quick else [2500, 5000, 10000, 15000, 20000])]
    formats = ["messages", "columns"] if args.record_format == "both" else [args.record_format]
    try:
        print(f"ingest bench: {os.cpu_count()} cores, {TERMINALS} terminals, {seconds:.0f} s per rate", flush=True)
        runs: dict[str, tuple[list[LevelResult], list[DrainResult]]] = {}
        for record_format in formats:
            print(f"liftwatch gateway (batched per wake-up), {record_format} records:", flush=True)
            drains: list[DrainResult] = []
            ours = await measure(
                record_format[:3],
                ["-m", "liftwatch", "gateway"],
                env | {"LIFTWATCH_GATEWAY_RECORD_FORMAT": record_format},
                database_url,
                workdir,
                batched + single,
                seconds,
                fixed,
                backlog=10_000 if args.quick else 50_000,
                drains=drains,
            )
            runs[record_format] = (ours, drains)
        base: list[LevelResult] = []
        if not os.environ.get("BENCH_SKIP_BASELINE"):
            print("baseline gateway (one message per produce, awaited serially):", flush=True)
            # The naive gateway manages ~150 messages/s on tansu: a short, low rate is enough to measure it.
            base_levels = [(1000.0, 1), (1000.0, 10)]
            base = await measure(
                "naive", [__file__, "--naive-gateway"], env, database_url, workdir, base_levels, 2.0, fixed
            )
        for record_format, (ours, drains) in runs.items():
            summarize(record_format, ours, base, drains)
        if len(runs) == 2:
            compare(runs["columns"][0], runs["messages"][0])
    finally:
        kafka.stop()
        mqtt.stop()
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def rate(result: LevelResult) -> float:
    return result.achieved_samples if result.per_message == 10 else result.achieved_msgs


def kept_up(result: LevelResult) -> bool:
    # The publisher held 90% of the offered rate and the pipeline had no growing backlog: the
    # last rows were stored within DRAIN_OK_S of the last publish (that is latency, not queue).
    return result.published_msgs >= 0.9 * result.offered_msgs * result.publish_s and result.drain_s <= DRAIN_OK_S


def sustained(results: list[LevelResult], per_message: int) -> float:
    # End to end like the peak (drain included), over the levels the pipeline kept up with.
    return max((rate(r) for r in results if r.per_message == per_message and kept_up(r)), default=0.0)


def peak(results: list[LevelResult], per_message: int) -> float:
    return max((rate(r) for r in results if r.per_message == per_message), default=0.0)


TARGETS = ((10, 150_000, "samples/s"), (1, 20_000, "msg/s"))
"""Issue 20's end-to-end targets on this machine."""


def compare(columns: list[LevelResult], messages: list[LevelResult]) -> None:
    """Columns against per-message records, measured in the same run."""
    print("\ncolumns records against one record per message (same run):")
    for per_message, _, unit in TARGETS:
        ratios = []
        for what in (sustained, peak):
            mine, theirs = what(columns, per_message), what(messages, per_message)
            ratios.append(f"{what.__name__} {mine:.0f} vs {theirs:.0f} {unit} ({mine / theirs:.2f}x)" if theirs else "")
        costs = []
        for name, results in (("columns", columns), ("messages", messages)):
            levels = [r for r in results if r.per_message == per_message]
            if levels:
                top = max(levels, key=lambda r: r.achieved_msgs)
                costs.append(f"{name}: {cost_line(top)}")
        print(f"  {per_message:>2} samples/message: {'; '.join(ratios)}")
        for line in costs:
            print(f"      CPU us per message at the peak level, {line}")


def summarize(name: str, ours: list[LevelResult], base: list[LevelResult], drains: list[DrainResult]) -> None:
    print(
        f"\nsummary, {name} records (achieved = published / (publishing time + drain until the last row is"
        " stored); sustained ="
        f" best achieved at a level where publishing held >= 90% of the offered rate and every row was stored"
        f" within {DRAIN_OK_S:.0f} s of the last publish; peak = best achieved at any offered rate):"
    )
    for per_message, target, unit in TARGETS:
        mine, theirs = peak(ours, per_message), peak(base, per_message)
        ratio = f"{mine / theirs:.1f}x" if theirs else "n/a"
        print(
            f"  {per_message:>2} samples/message: sustained {sustained(ours, per_message):>7.0f} {unit},"
            f" peak {mine:>7.0f} {unit} (target {target}); baseline peak {theirs:>6.0f} {unit}; ratio {ratio}"
        )
    for per_message in (10, 1):
        levels = [r for r in ours if r.per_message == per_message]
        if levels:
            top = max(levels, key=lambda r: r.achieved_msgs)
            capacity = projected_capacity(top)
            print(
                f"  {per_message:>2} samples/message, projected from CPU cost at the peak level (platform processes"
                f" alone on {os.cpu_count()} cores): {capacity:.0f} msg/s = {capacity * per_message:.0f} samples/s"
            )
    for per_message in (10, 1):
        levels = [r for r in ours if r.per_message == per_message]
        if levels:
            top = max(levels, key=lambda r: r.achieved_msgs)
            for with_publisher in (False, True):
                what, limit, why = first_to_saturate(top, with_publisher)
                where = "with the publisher on the same cores" if with_publisher else "platform alone"
                print(
                    f"  {per_message:>2} samples/message, first to saturate ({where}): {what} at"
                    f" {limit:.0f} msg/s = {limit * per_message:.0f} samples/s ({why})"
                )
    for drain in drains:
        gateway_us = drain.cpu_us.get("gateway", 0.0)
        print(
            f"  {drain.per_message:>2} samples/message, backlog drained at {drain.rate:.0f} msg/s ="
            f" {drain.rate * drain.per_message:.0f} samples/s into PostgreSQL, {drain.gateway_rate:.0f} msg/s into"
            f" Kafka; gateway {gateway_us:.0f} CPU us/message in full batches"
            f" (one core: {1e6 / max(1.0, gateway_us):.0f} msg/s)"
        )
    total_loss = sum(r.published_samples - r.rows for r in ours + base) + sum(d.expected - d.rows for d in drains)
    print(f"  loss over the whole run: {total_loss} samples (must be 0)")
    print(f"  machine load average at the end: {os.getloadavg()[0]:.1f} (other work competes when above ~1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two short rates per mode")
    parser.add_argument("--seconds", type=float, default=6.0, help="publishing time per rate")
    parser.add_argument("--workdir", help="folder for broker data and process logs")
    parser.add_argument(
        "--record-format",
        choices=["both", "columns", "messages"],
        default="both",
        help="the gateway's Kafka records: both (one run each, compared) or one of them",
    )
    parser.add_argument("--naive-gateway", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_gateway:
        settings = GatewaySettings()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(naive_gateway(settings))
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
