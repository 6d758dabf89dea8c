"""End-to-end throughput: the whole platform against a simulated fleet at rising rates, two record formats.

Runs gateway, writer, rules, alerts and API as separate processes (as ``compose.yaml`` runs them)
on a private tansu, a private mosquitto and a fresh database of the local PostgreSQL, the
registered fleet published from a process of its own on the same machine (``python -m
liftwatch.simulators.plan load``: registered cars, idle, QoS 1). For each gateway record format
(``LIFTWATCH_GATEWAY_RECORD_FORMAT``: ``messages``, one Kafka record per MQTT message, the
baseline; ``columns``, many messages packed as ``telemetry.columns.v1``) and for 10 samples and 1
sample per message, it raises the offered rate level by level until a level is not sustained.

A level is **sustained** when the publisher held 90% of the offered rate, every published sample
is stored (``count(*)`` in PostgreSQL: loss 0) and the writer had them all and the rules' consumer
lag was back at 0 within ``DRAIN_OK_S`` of the last acknowledged publish,
``liftwatch_rules_late_samples_total`` did not move, and each probe elevator of the level (a car
that opens its door while running, once) has exactly one incident, with no incident anywhere else.
Each level prints the achieved rate (published / (publishing time + drain)), publish -> row and
publish -> incident p50/p99 of the probes, and the CPU per message of every process (from /proc:
``bench/harness.py``). The summary gives the sustained rates of each format, their ratio, the
process that saturates first, the size of the stored telemetry per row, and as its last line::

    end-to-end sustained: N samples/s (10 per message), M messages/s (1 per message), loss L, late K

for the ``columns`` format (loss and late over all of its levels).

    .venv/bin/python bench/pipeline.py            # full run (4-8 minutes)
    .venv/bin/python bench/pipeline.py --quick    # two levels per mode, under 3 minutes
    .venv/bin/python bench/pipeline.py --formats messages --levels10 5000,10000 --levels1 5000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from harness import (
    PROBE_CODE,
    PROBE_LEAD_S,
    CpuMeter,
    Platform,
    Probe,
    bench_connection_url,
    metric,
    percentile,
    platform,
    registry_with_probes,
    run_probe,
    saturation_limit,
    watch_incident_rows,
)
from liftwatch.mqtt import MqttClient
from liftwatch.simulators.specs import specs_from_rows

SEED = 7
FORMAT_ENV = "LIFTWATCH_GATEWAY_RECORD_FORMAT"
FORMATS = ("messages", "columns")
"""The baseline first: one Kafka record per MQTT message (today's path); then packed columns."""
LEVELS = {10: (5_000, 7_500, 10_000, 12_500, 15_000, 20_000), 1: (5_000, 10_000, 15_000, 20_000, 25_000, 30_000)}
QUICK_LEVELS = {10: (5_000, 10_000), 1: (5_000, 15_000)}
"""Offered messages/s by samples per message."""
CAR_MESSAGES_PER_S = 2
"""Messages a background car sends per wall second (event time runs faster than the wall clock):
fewer registered cars keep the registry import and the load's start-up short."""
DRAIN_OK_S = 3.0
"""After the last acknowledged publish: every sample stored and the rules' lag at 0 within this."""
DRAIN_MAX_S = 90.0
"""How long a level that fell behind is given to store everything before its loss is counted."""
PUBLISHED_OK = 0.9
"""Share of the offered rate the publisher must achieve (below: the machine could not offer it)."""
ONE_CORE = ("gateway", "writer", "rules", "alerts", "api", "mosquitto")
"""Processes that use one core at most (one asyncio or event loop each); tansu is threaded and
PostgreSQL has a backend per connection."""


@dataclass
class Level:
    """One offered rate of one record format and message shape, and what the platform made of it."""

    format: str
    per_message: int
    offered: float
    messages: int = 0
    samples: int = 0
    publish_s: float = 0.0
    drain_s: float = float("inf")
    loss: int = 0
    late: int = 0
    incidents_ok: bool = False
    incidents_note: str = ""
    row_latency: list[float] = field(default_factory=list)
    incident_latency: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def achieved_msgs(self) -> float:
        return self.messages / max(1e-9, self.publish_s + min(self.drain_s, DRAIN_MAX_S))

    @property
    def sustained(self) -> bool:
        return (
            self.messages >= PUBLISHED_OK * self.offered * self.publish_s
            and self.drain_s <= DRAIN_OK_S
            and self.loss == 0
            and self.late == 0
            and self.incidents_ok
        )

    def cost_us(self) -> dict[str, float]:
        """CPU microseconds each process spent per message at this level."""
        return {name: share * 1e6 / max(1.0, self.achieved_msgs) for name, share in self.cpu.items()}


async def _counters(site: Platform) -> tuple[float, float, float]:
    """(rows the writer stored, the rules' late samples, the rules' consumer lag)."""
    writer, rules = await asyncio.gather(site.scrape("writer"), site.scrape("rules"))
    return (
        metric(writer, "liftwatch_writer_rows_written_total", table="telemetry"),
        metric(rules, "liftwatch_rules_late_samples_total"),
        metric(rules, "liftwatch_rules_consumer_lag"),
    )


async def _subscribed(site: Platform) -> None:
    """Wait for a (re)started gateway to hold its subscriptions."""
    for _ in range(600):
        with contextlib.suppress(OSError, httpx.HTTPError):
            if metric(await site.scrape("gateway"), "liftwatch_gateway_subscribed") == 1:
                return
        await asyncio.sleep(0.1)
    raise SystemExit("the gateway did not subscribe within 60 s")


async def _warm_up(site: Platform, terminal: str) -> int:
    """One probe until its incident is seen: every process has joined; the rows stored by then."""
    warm = Probe(terminal, console_watched=False)
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_incident_rows(site.database_url, {terminal: warm}, stop))
    client = MqttClient(site.env["LIFTWATCH_MQTT_URL"], "bench-warmup", receive_maximum=65535)
    await client.connect()
    samples = await run_probe(client, site.env["LIFTWATCH_MQTT_TOPIC_ROOT"], warm, 60.0)
    await client.disconnect()
    stop.set()
    await watcher
    if warm.row is None:
        raise SystemExit(f"the platform answered no probe within 60 s; see the logs in {site.workdir}")
    for _ in range(150):  # its last samples may still be on their way
        stored = await _count_rows(site.database_url)
        if stored >= samples:
            break
        await asyncio.sleep(0.2)
    return stored


async def _watch_probe_rows(url: str, probes: list[str], latencies: list[float], stop: asyncio.Event) -> None:
    """Publish -> row of every probe sample (stamped with its publish time), polled every 50 ms."""
    seen: set[tuple[str, int]] = set()
    async with await psycopg.AsyncConnection.connect(bench_connection_url(url), autocommit=True) as conn:
        while not stop.is_set():
            cur = await conn.execute(
                "SELECT terminal_id, (extract(epoch FROM ts) * 1000)::bigint FROM telemetry"
                " WHERE terminal_id = ANY(%s) AND ts > now() - interval '30 seconds'",
                (probes,),
            )
            now_ms = time.time() * 1000
            for terminal, ts in await cur.fetchall():
                if (terminal, ts) not in seen:
                    seen.add((terminal, ts))
                    latencies.append((now_ms - ts) / 1000)
            await asyncio.sleep(0.05)


async def _count_rows(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(bench_connection_url(url), autocommit=True) as conn:
        row = await (await conn.execute("SELECT count(*) FROM telemetry")).fetchone()
    return int(row[0]) if row else 0


async def run_level(
    site: Platform,
    level: Level,
    seconds: float,
    fleet: tuple[int, int, int],
    probes: list[str],
    stored_before: int,
) -> int:
    """Publish the level, wait for it to be stored and judged, fill in ``level``; the rows now stored."""
    url, root = site.database_url, site.env["LIFTWATCH_MQTT_TOPIC_ROOT"]
    rows_before, late_before, _ = await _counters(site)
    found = {t: Probe(t, console_watched=False) for t in probes}
    stop = asyncio.Event()
    watchers = [
        asyncio.create_task(watch_incident_rows(url, found, stop)),
        asyncio.create_task(_watch_probe_rows(url, probes, level.row_latency, stop)),
    ]
    elevators, first, count = fleet
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "liftwatch.simulators.plan", "load", site.env["LIFTWATCH_MQTT_URL"],
        str(level.offered), str(seconds), str(elevators), str(first), str(count), str(SEED), root,
        str(level.per_message), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert load.stdout is not None
    ready = json.loads(await load.stdout.readline())  # connected, publishing from now
    meter = CpuMeter(site.pids())
    meter.begin()
    started = time.monotonic()
    client = MqttClient(site.env["LIFTWATCH_MQTT_URL"], f"bench-probes-{first}", receive_maximum=65535)
    await client.connect()
    probe_tasks = []
    for terminal in probes:  # the deciding samples spread over the publishing time
        probe_tasks.append(asyncio.create_task(run_probe(client, root, found[terminal])))
        await asyncio.sleep(max(0.0, seconds - PROBE_LEAD_S) / len(probes))
    report = json.loads((await load.stdout.read()).decode().strip().splitlines()[-1])
    await load.wait()
    level.publish_s = time.monotonic() - started
    level.messages = int(report["messages"])
    level.samples = level.messages * level.per_message
    while time.monotonic() - started - level.publish_s < DRAIN_MAX_S:
        rows, _, lag = await _counters(site)
        if rows - rows_before >= level.samples and lag == 0:
            level.drain_s = time.monotonic() - started - level.publish_s
            break
        await asyncio.sleep(0.05)
    meter.groups["postgres"] = site.pids()["postgres"]  # backends opened meanwhile count too
    # The publisher has exited by now: its CPU is what it reported.
    level.cpu = meter.shares() | {"publisher": (report["cpu_s"] - ready["cpu_s"]) / (time.monotonic() - started)}
    probe_samples = sum(await asyncio.gather(*probe_tasks))
    await client.disconnect()
    stop.set()
    await asyncio.gather(*watchers)
    expected = stored_before + level.samples + probe_samples
    stored = await _count_rows(url)
    deadline = time.monotonic() + DRAIN_MAX_S
    while stored < expected and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        stored = await _count_rows(url)
    level.loss = expected - stored
    _, late_after, _ = await _counters(site)
    level.late = int(late_after - late_before)
    level.incident_latency = [p.row - p.decided for p in found.values() if p.row is not None and p.decided is not None]
    async with await psycopg.AsyncConnection.connect(bench_connection_url(url), autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT terminal_id, code, count(*) FROM incidents WHERE terminal_id = ANY(%s)"
            " OR terminal_id NOT LIKE 'PROBE%%' GROUP BY 1, 2",
            (probes,),
        )
        incidents = {(t, c): n for t, c, n in await cur.fetchall()}
    wrong = {k: n for k, n in incidents.items() if k[0] not in found or k[1] != PROBE_CODE or n != 1}
    missing = [t for t in probes if (t, PROBE_CODE) not in incidents]
    level.incidents_ok = not wrong and not missing
    level.incidents_note = f"{len(probes) - len(missing)}/{len(probes)}" + (f" +{len(wrong)} bad" if wrong else "")
    if wrong:
        print(f"  unexpected incidents (terminal, code): count: {dict(list(wrong.items())[:5])}", flush=True)
    return stored


def _ms(values: list[float]) -> str:
    return f"{percentile(values, 0.5) * 1000:5.0f}/{percentile(values, 0.99) * 1000:<5.0f}"


COST_ORDER = ("gateway", "writer", "rules", "alerts", "api", "tansu", "mosquitto", "postgres", "publisher")


def print_level(level: Level) -> None:
    rate = level.achieved_msgs
    verdict = "sustained" if level.sustained else "NOT sustained"
    drain = f"{level.drain_s:4.1f}" if level.drain_s <= DRAIN_MAX_S else " >max"
    print(
        f"  {level.format:>8} x{level.per_message:<2} | {level.offered:>7,.0f} | {rate:>9,.0f} |"
        f" {rate * level.per_message:>10,.0f} | {drain:>7} | {level.loss:>4} | {level.late:>4} |"
        f" {level.incidents_note:>9} | {_ms(level.row_latency)} | {_ms(level.incident_latency)} | {verdict}",
        flush=True,
    )
    costs = level.cost_us()
    cpu = " ".join(f"{name}={costs[name]:.0f}" for name in COST_ORDER if name in costs)
    print(f"               cpu us/message: {cpu}", flush=True)


def header(title: str) -> None:
    print(f"\n{title}")
    print(
        "  format, samples | offered |  achieved |   achieved | drain s | loss | late | incidents |"
        " row p50/p99 ms | incident p50/p99 ms | verdict"
    )
    print("      per message |   msg/s |     msg/s |  samples/s |")


def best(levels: list[Level], fmt: str, per_message: int) -> float:
    """The sustained rate: messages/s achieved at the highest sustained level (0 if none)."""
    return max(
        (lv.achieved_msgs for lv in levels if lv.format == fmt and lv.per_message == per_message and lv.sustained),
        default=0.0,
    )


PLATFORM = COST_ORDER[:-1]
"""Everything but the publisher (terminals publish from elsewhere)."""


def saturation(level: Level) -> str:
    """What saturates first as the rate grows, projected from the CPU per message at ``level`` (robust
    to other work on the machine, which the achieved rates are not)."""
    costs = level.cost_us()
    alone, alone_rate, alone_why = saturation_limit(costs, ONE_CORE, list(PLATFORM))
    shared, shared_rate, _ = saturation_limit(costs, ONE_CORE, list(COST_ORDER))
    busiest = max((n for n in ONE_CORE if n in costs), key=lambda n: costs[n])
    return (
        f"{level.format} x{level.per_message} (from {level.offered:,.0f} msg/s offered):"
        f" {_platform_us(level):.0f} us/message in the platform;"
        f" {alone} at {alone_rate:,.0f} msg/s = {alone_rate * level.per_message:,.0f} samples/s ({alone_why});"
        f" with the publisher on the same cores: {shared} at {shared_rate * level.per_message:,.0f} samples/s;"
        f" busiest one-core process {busiest} ({costs[busiest]:.0f} us/message:"
        f" {1e6 / costs[busiest] * level.per_message:,.0f} samples/s on its core)"
    )


async def storage(url: str) -> tuple[int, int, int]:
    """(rows, table bytes, bytes with indexes) of the telemetry table over all of its partitions."""
    async with await psycopg.AsyncConnection.connect(bench_connection_url(url), autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM telemetry), coalesce(sum(pg_table_size(inhrelid)), 0),"
            " coalesce(sum(pg_total_relation_size(inhrelid)), 0)"
            " FROM pg_inherits WHERE inhparent = 'telemetry'::regclass"
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two levels per mode, 4 s each (under 3 minutes)")
    parser.add_argument("--seconds", type=float, default=None, help="publishing time per level (default 8, quick 4)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="gateway record formats, the baseline first")
    parser.add_argument("--levels10", help="offered msg/s at 10 samples per message, comma-separated")
    parser.add_argument("--levels1", help="offered msg/s at 1 sample per message, comma-separated")
    parser.add_argument("--probes", type=int, default=None, help="probe elevators per level (default 6, quick 4)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    formats = args.formats.split(",")
    levels = dict(QUICK_LEVELS if args.quick else LEVELS)
    for per_message, given in ((10, args.levels10), (1, args.levels1)):
        if given:
            levels[per_message] = tuple(int(x) for x in given.split(","))
    seconds = args.seconds or (4.0 if args.quick else 8.0)
    probes = args.probes or (4 if args.quick else 6)
    # The formats take turns level by level, in alternating order (the gateway restarts only when
    # the format changes), so drift of a shared machine and a growing table weigh on both alike.
    plan = [
        (fmt, per_message, rate)
        for per_message in (10, 1)
        for k, rate in enumerate(levels[per_message])
        for fmt in (formats if k % 2 == 0 else formats[::-1])
    ]
    # One group of probes (and one range of background cars) per level: a car is never reused, its
    # sequence numbers and event time would look like duplicates and late samples.
    cars_of = [int(rate // CAR_MESSAGES_PER_S) for _, _, rate in plan]
    background = sum(cars_of) * 11 // 10 + 100  # escalators among the rows have no car
    rows, probe_terminals = registry_with_probes(background, list(range(len(plan) + 1)), probes, SEED)
    cars = len(specs_from_rows(rows[:background]))
    assert cars >= sum(cars_of), (cars, sum(cars_of))
    print(
        f"pipeline bench: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, {seconds:.0f} s per level,"
        f" {len(rows):,} registered elevators, {probes} probes per level",
        flush=True,
    )
    results: list[Level] = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        # The cars of a finished level fall silent for good: their terminal_offline incidents (after
        # 120 s by default) are not what is measured, so the bench waits a day before raising them.
        overrides = Path(tmp) / "rules.json"
        overrides.write_text(json.dumps({"rules": {"terminal_offline": {"after_s": 86400}}}))
        env = {"LIFTWATCH_RULES_OVERRIDES": str(overrides)}
        async with platform(Path(tmp), rows, separate=True, env=env) as site:
            print(f"platform up in {time.monotonic() - started:.0f} s", flush=True)
            stored = await _warm_up(site, probe_terminals[len(plan)][0])
            header("levels, in the order run:")
            first, current, failed = 0, "", set()
            for index, (fmt, per_message, rate) in enumerate(plan):
                if (fmt, per_message) not in failed:
                    if fmt != current:
                        await site.stop("gateway")
                        await site.start("gateway", {**site.extra_env["gateway"], FORMAT_ENV: fmt})
                        await _subscribed(site)
                        current = fmt
                    level = Level(fmt, per_message, float(rate))
                    fleet = (len(rows), first, cars_of[index])
                    stored = await run_level(site, level, seconds, fleet, probe_terminals[index], stored)
                    print_level(level)
                    results.append(level)
                    if not level.sustained:
                        failed.add((fmt, per_message))
                first += cars_of[index]
            stored_size = await storage(site.database_url)
    for fmt in formats:
        header(f"format {fmt}:")
        for level in results:
            if level.format == fmt:
                print_level(level)
    summarize(results, formats, stored_size)
    print(f"total {time.monotonic() - started:.0f} s, load average at the end {os.getloadavg()[0]:.1f}")
    final = formats[-1]
    mine = [lv for lv in results if lv.format == final]
    print(
        f"end-to-end sustained: {best(results, final, 10) * 10:.0f} samples/s (10 per message),"
        f" {best(results, final, 1):.0f} messages/s (1 per message),"
        f" loss {sum(lv.loss for lv in mine)}, late {sum(lv.late for lv in mine)}"
    )


def _at(results: list[Level], fmt: str, per_message: int, rate: float) -> list[Level]:
    return [lv for lv in results if (lv.format, lv.per_message, lv.offered) == (fmt, per_message, rate)]


def _platform_us(level: Level) -> float:
    costs = level.cost_us()
    return sum(costs[name] for name in PLATFORM if name in costs)


def summarize(results: list[Level], formats: list[str], stored_size: tuple[int, int, int]) -> None:
    print("\nsummary (sustained = highest achieved rate at a sustained level):")
    for per_message, unit in ((10, "samples/s"), (1, "messages/s")):
        rates = {fmt: best(results, fmt, per_message) * (10 if per_message == 10 else 1) for fmt in formats}
        line = ", ".join(f"{fmt} {rate:,.0f}" for fmt, rate in rates.items())
        ratio = ""
        if len(formats) > 1 and rates[formats[0]]:
            ratio = f"; ratio {formats[-1]}/{formats[0]} {rates[formats[-1]] / rates[formats[0]]:.2f}x"
        print(f"  {per_message:>2} per message: {line} {unit}{ratio}")
        # Throughput on a shared machine drifts with its other work; CPU per message does not.
        both = {
            rate
            for rate in {lv.offered for lv in results}
            if all(any(lv.sustained for lv in _at(results, fmt, per_message, rate)) for fmt in formats)
        }
        if len(formats) > 1 and both:
            rate = max(both)
            cost = {fmt: _platform_us(_at(results, fmt, per_message, rate)[0]) for fmt in formats}
            print(
                f"     platform CPU per message at {rate:,.0f} msg/s offered: "
                + ", ".join(f"{fmt} {us:.0f} us" for fmt, us in cost.items())
                + f"; ratio {formats[0]}/{formats[-1]} {cost[formats[0]] / cost[formats[-1]]:.2f}x"
            )
    for fmt in formats:
        for per_message in (10, 1):
            ran = [lv for lv in results if lv.format == fmt and lv.per_message == per_message]
            kept = [lv for lv in ran if lv.sustained] or ran
            if kept:
                print(f"  first to saturate: {saturation(max(kept, key=lambda lv: lv.offered))}")
    rows, table, total = stored_size
    if rows:
        print(
            f"  telemetry stored: {rows:,} rows, {total / 2**20:,.0f} MiB with indexes = {total / rows:.0f} bytes/row"
            f" ({table / rows:.0f} table, {(total - table) / rows:.0f} indexes; plain PostgreSQL, uncompressed)"
        )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
