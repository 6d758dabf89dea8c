"""Detection latency, live: from publishing the deciding sample to the incident row and to the console.

Runs the platform as subprocesses, ``liftwatch up`` (every process in one loop, as a small site
runs it) or with ``--separate`` one process per service (as ``compose.yaml`` runs them), wired to
a private tansu, a private mosquitto and a fresh database on the local PostgreSQL. Registers a
background fleet and probe elevators, then for each level of background traffic (none: the
baseline; 1,000 and 10,000 messages/s of 10 samples from registered cars, published by
``python -m liftwatch.simulators.plan load`` in a process of its own):

* probe terminals stream at 2 Hz (one sample a message, a car running at 1 m/s), each starting
  ``--spacing`` s after the previous one; after 2 s each sends, once, a sample with its door open
  while running (``door_open_while_moving``: raised on one sample, no hold), then keeps streaming
  (door closed) until both observations are made or ``PROBE_TIMEOUT_S`` has passed; the first
  probe of a level is not measured (it waits until the pipeline has answered once);
* (a) **row**: from the publish of that message to its incident row being visible in PostgreSQL
  (polled every 20 ms); (b) **console**: to the ``opened`` change on the API's SSE stream
  (``/api/v1/incidents/stream``), which is what the operator console listens to.

Prints p50/p99 per level, the ratio of each level's p99 to the baseline's, the probes never
detected (missed), and ``liftwatch_rules_late_samples_total`` at the end. Targets (issue 14):
p99 <= 0.5 s to the row and <= 1 s to the console.

    .venv/bin/python bench/detection.py               # 30 probes per level
    .venv/bin/python bench/detection.py --quick       # 8 probes per level, under 2 minutes
    .venv/bin/python bench/detection.py --separate    # one process per service
    .venv/bin/python bench/detection.py --levels 0,2500 --verbose
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from harness import (
    ADMIN_TOKEN,
    PROBE_LEAD_S,
    PROBE_TIMEOUT_S,
    Probe,
    percentile,
    platform,
    registry_with_probes,
    run_probe,
    watch_incident_rows,
)
from liftwatch.mqtt import MqttClient
from liftwatch.simulators.specs import specs_from_rows

SEED = 5
LEVELS = (0, 1_000, 10_000)
"""Background messages/s (10 samples each); 0 is the baseline."""
TARGET_ROW_S, TARGET_CONSOLE_S = 0.5, 1.0
WARMUP_PROBE_TIMEOUT_S = 60.0
"""The unmeasured first probe of the first level waits this long for the pipeline to answer."""
WARMUP_S = 4.0
"""Background traffic runs this long before the first probe."""


async def _watch_console(base: str, probes: dict[str, Probe], ready: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        httpx.AsyncClient(base_url=base, timeout=None) as http,
        http.stream("GET", "/api/v1/incidents/stream", headers=headers) as response,
    ):
        response.raise_for_status()
        event, data = "", ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "":
                if event == "feed":
                    ready.set()
                elif event == "incident" and data:
                    change = json.loads(data)
                    probe = probes.get(change.get("terminal") or "")
                    if probe is not None and change["kind"] == "opened" and probe.console is None:
                        probe.console = time.monotonic()
                        probe.check()
                event, data = "", ""


@dataclass
class Level:
    rate: int
    row: list[float]
    console: list[float]
    missed: int
    background: dict[str, Any] | None


async def _level(
    env: dict[str, str],
    rate: int,
    probes: list[str],
    background: tuple[int, int, int],
    spacing: float,
    warmup_s: float,
) -> Level:
    """One level: background load (if any), the probes (the first waiting up to ``warmup_s``), the
    two watchers."""
    url, root, base = env["LIFTWATCH_DATABASE_URL"], env["LIFTWATCH_MQTT_TOPIC_ROOT"], env["BENCH_API"]
    found = {t: Probe(t) for t in probes}
    stop = asyncio.Event()
    ready = asyncio.Event()
    console = asyncio.create_task(_watch_console(base, found, ready))
    rows = asyncio.create_task(watch_incident_rows(url, found, stop))
    await asyncio.wait_for(ready.wait(), 30)
    load: asyncio.subprocess.Process | None = None
    seconds = WARMUP_S + len(probes) * spacing + 2 * PROBE_LEAD_S + warmup_s + PROBE_TIMEOUT_S
    if rate:
        elevators, first, count = background
        load = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "liftwatch.simulators.plan", "load", env["LIFTWATCH_MQTT_URL"],
            str(rate), str(seconds), str(elevators), str(first), str(count), str(SEED), root,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.sleep(WARMUP_S)
    client = MqttClient(env["LIFTWATCH_MQTT_URL"], f"bench-probes-{rate}", receive_maximum=65535)
    await client.connect()
    try:
        # The first probe is not measured: it waits until the whole pipeline has answered once
        # (consumer groups joined, connections open), which the baseline would otherwise include.
        await run_probe(client, root, found[probes[0]], warmup_s)
        tasks = []
        for terminal in probes[1:]:
            tasks.append(asyncio.create_task(run_probe(client, root, found[terminal])))
            await asyncio.sleep(spacing)
        await asyncio.gather(*tasks)
    finally:
        await client.disconnect()
        stop.set()
        console.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await console
        await rows
    report = None
    if load is not None:
        assert load.stdout is not None
        out, _ = await load.communicate()
        report = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else None
    decided = [found[t] for t in probes[1:] if found[t].decided is not None]
    return Level(
        rate,
        [p.row - p.decided for p in decided if p.row is not None and p.decided is not None],
        [p.console - p.decided for p in decided if p.console is not None and p.decided is not None],
        sum(1 for p in decided if p.row is None or p.console is None),
        report,
    )


def _fmt(values: list[float]) -> str:
    return f"{percentile(values, 0.5) * 1000:7.0f} {percentile(values, 0.99) * 1000:7.0f}"


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 probes per level (under 2 minutes)")
    parser.add_argument("--probes", type=int, default=None, help="probes per level (default 30, quick 8)")
    parser.add_argument("--spacing", type=float, default=0.5, help="seconds between two probes' starts")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="background msg/s, the first the baseline")
    parser.add_argument("--verbose", action="store_true", help="print every probe's latencies")
    parser.add_argument(
        "--separate", action="store_true", help="one process per service (as compose.yaml) instead of liftwatch up"
    )
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    probes = 1 + (args.probes or (8 if args.quick else 30))  # and one to warm up
    # One car a message per wall second at each rate (the load's speedup is 5); cars of one level
    # are not reused by the next (their sequence numbers would look like duplicates).
    background = sum(levels) * 11 // 10  # escalators among the rows have no car
    started = time.monotonic()
    rows, probe_terminals = registry_with_probes(background, levels, probes, SEED)
    cars = len(specs_from_rows(rows[:background]))
    with tempfile.TemporaryDirectory(prefix="bench-detection-") as tmp:
        async with platform(Path(tmp), rows, args.separate) as site:
            env = {**site.env, "BENCH_API": site.api, "BENCH_RULES_METRICS": site.metrics_urls["rules"]}
            print(f"platform up in {time.monotonic() - started:.1f} s; {cars:,} background cars registered")
            results = []
            first = 0
            for rate in levels:
                count = min(rate, cars - first)
                fleet = (len(rows), first, count)
                # Only the first level's warm-up waits for a platform just started.
                warmup_s = WARMUP_PROBE_TIMEOUT_S if not results else PROBE_TIMEOUT_S
                level = await _level(env, rate, probe_terminals[rate], fleet, args.spacing, warmup_s)
                first += count
                results.append(level)
                offered = f", offered {level.background['rate']:,.0f} msg/s" if level.background else ""
                print(f"level {rate:>6,} msg/s done{offered}: {len(level.row)} rows, {level.missed} missed")
                if args.verbose:
                    print("  row ms", [round(x * 1000) for x in level.row])
                    print("  console ms", [round(x * 1000) for x in level.console])
            async with httpx.AsyncClient(timeout=10) as http:
                metrics = (await http.get(env["BENCH_RULES_METRICS"])).text
    late = next(
        (line.split()[-1] for line in metrics.splitlines() if line.startswith("liftwatch_rules_late_samples_total")),
        "?",
    )
    base = results[0]
    print()
    print(
        "background msg/s | row p50 p99 ms | console p50 p99 ms | missed | row p99 / baseline | console p99 / baseline"
    )
    for level in results:
        ratio_row = percentile(level.row, 0.99) / percentile(base.row, 0.99)
        ratio_console = percentile(level.console, 0.99) / percentile(base.console, 0.99)
        print(
            f"{level.rate:>16,} | {_fmt(level.row)} | {_fmt(level.console)}    | {level.missed:>6} |"
            f" {ratio_row:18.2f} | {ratio_console:.2f}"
        )
    for name, target, pick in (
        ("row", TARGET_ROW_S, lambda level: level.row),
        ("console", TARGET_CONSOLE_S, lambda level: level.console),
    ):
        failing = []
        for level in results:
            p99 = percentile(pick(level), 0.99)
            if level.missed:
                failing.append(f"{level.rate:,} msg/s ({level.missed} missed)")
            elif p99 > target:
                failing.append(f"{level.rate:,} msg/s (p99 {p99:.3f} s)")
        verdict = "met at every level" if not failing else "NOT met at " + "; ".join(failing)
        print(f"target p99 <= {target} s to the {name}: {verdict}")
    print(f"liftwatch_rules_late_samples_total at the end: {late}")
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
