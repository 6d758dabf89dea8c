"""The live platform against replay and the oracle, fed fleet history as fast as the broker takes it.

Issue 14's proof. Every liftwatch process runs as ``liftwatch up`` runs it (one loop, one metrics
registry) against mosquitto, tansu and PostgreSQL. A simulated fleet with one injected fault per
faulty car (and healthy cars beside them) publishes its history from a process of its own
(:mod:`liftwatch.simulators.plan`, QoS 1, 10 samples a message, >= 10,000 messages/s offered), the
registry imported immediately before the first message. Then three readings must agree:

* **live**: the fault events the rules produced (the ``faults`` topic) and the incidents the alert
  service opened;
* **replay**: ``liftwatch rules replay`` (:func:`~liftwatch.rules.replay.replay_events`) over the
  telemetry the writer stored;
* **oracle**: the per-sample reference (``tests/unit/rules/reference.py``) over the samples the
  simulator produced, with the registry each terminal had while it sent.

Identical fault events (terminal, code, transition, since), exactly one incident per injected fault
(right code, right elevator, from the simulator's ground truth), none on healthy cars, no sample
skipped as late, no dead letter, every published sample stored exactly once.

Shapes: a burst of history (one terminal dying on the sample that decides its alarm); terminals
reconnecting with a backlog while the others stream live; the same with the buffer uploaded 8 s
after live sending resumed (late samples, judged apart: their faults must become incidents marked
late, the late counter must count exactly them); a car's rated speed corrected mid-stream (its
overspeed is only one under the corrected speed); a terminal swap (the elevator's fault is sent
by its new terminal). Each also requires the ``telemetry`` topic to hold
each terminal's messages in the order it published them (the engine copes with a reordered topic
by message sequence numbers; other consumers would not). Waits are
bounded polls on the platform's own counters (after a registry change: until the rules were
told of it), never timings (those live in ``bench/detection.py``).

A probe terminal the registry does not know sends one sample before the registry is imported: it
proves gateway, rules and writer are running (the rules have loaded the registry as it was) and is
left out of every comparison.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from liftwatch.config import CommonSettings, PlatformSettings
from liftwatch.kafka import TOPIC_PARTITIONS, ensure_topics
from liftwatch.launcher import services
from liftwatch.launcher.up import platform_processes
from liftwatch.mqtt import MqttClient
from liftwatch.registry.importer import import_registry
from liftwatch.registry.model import RegistryRow
from liftwatch.rules import thresholds as thresholds_mod
from liftwatch.rules.params import TerminalInfo
from liftwatch.rules.registry import load_registry_sync
from liftwatch.rules.replay import replay_events
from liftwatch.rules.service import site_day_offset_ms
from liftwatch.schema import FaultCode, Sample, TelemetryMessage, TelemetryRecord, decode_fault_event
from liftwatch.simulators.faults import FaultInjection, feasible, timing
from liftwatch.simulators.fleet import ElevatorSpec
from liftwatch.simulators.plan import BARRIER, PlanEntry, write_plan
from liftwatch.simulators.specs import generated_registry, specs_from_rows
from liftwatch.simulators.stream import simulate_fleet
from prometheus_client import CollectorRegistry

from tests.fixtures.ingest import telemetry_messages
from tests.fixtures.simulators import CAR_FAULTS
from tests.unit.rules.reference import Reference

pytestmark = pytest.mark.integration

ELEVATORS = 24
"""Registry rows of the fleet (escalators among them have no terminal): about 20 cars, 12 with a fault."""
WINDOW_S = 900
"""Event time of the history: 15 minutes, about 6,000 messages (60,000 samples)."""
SEEDS = (3, 11)
ADMIN_TOKEN = "system-differential-admin-token"
PROBE = "PROBE000001"
DRAIN_S = 60.0
"""Longest wait for the platform to take in what was published (bounded poll)."""
SETTLE_S = 10.0
"""Longest wait for held samples to be evaluated once everything was taken in (twice the allowed lateness)."""
ALARM_HOLD_MS = 3_000
"""The catalog's alarm_button hold."""
MIN_OFFERED = 10_000.0
"""Messages per second the publisher must offer during a burst (else the test proves nothing)."""


# --- the platform -------------------------------------------------------------------------------


@dataclass
class Platform:
    settings: PlatformSettings
    metrics: CollectorRegistry

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples (over the labels not given)."""
        total = 0.0
        for family in self.metrics.collect():
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total


@pytest.fixture
async def platform(common_settings: CommonSettings) -> AsyncIterator[Platform]:
    """Every liftwatch process running against the test's services, stopped at the end."""
    token = secrets.token_hex(4)
    settings = PlatformSettings(
        **{
            **common_settings.model_dump(),
            "api_port": services.free_port(),
            "admin_token": ADMIN_TOKEN,
            "gateway_group": f"gw{token}",
            "writer_group": f"writer{token}",
            "rules_group": f"rules{token}",
            "alerts_group": f"alerts{token}",
        },
    )
    await ensure_topics(settings)
    metrics = CollectorRegistry()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run(stop)) for run in platform_processes(settings, metrics).values()]
    try:
        yield Platform(settings, metrics)
    finally:
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=30)
        assert not pending, "a process did not stop within 30 s of the stop signal"
        for task in done:
            task.result()


async def _wait_for(predicate: Callable[[], Awaitable[Any]], timeout: float, what: str, *, strict: bool = True) -> Any:
    """Poll ``predicate`` until truthy; on timeout raise (``strict``) or return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if strict:
                raise AssertionError(f"timed out waiting for {what}; last value {value!r}")
            return value
        await asyncio.sleep(0.2)


def _telemetry_topic(settings: CommonSettings, terminal: str) -> str:
    return settings.mqtt_topic(f"lift/v1/{terminal}/telemetry")


async def _probe(platform: Platform) -> None:
    """One sample of an unknown terminal, through gateway, rules and writer: the platform is up."""
    settings = platform.settings

    async def subscribed() -> bool:
        return platform.metric("liftwatch_gateway_subscribed") == 1

    await _wait_for(subscribed, 30, "the gateway's subscription")
    sample = Sample(
        ts=int(time.time() * 1000),
        mode="normal",
        floor=1,
        door_zone=True,
        direction="stop",
        speed=0.0,
        door="closed",
        occupied=False,
        safety_circuit=True,
    )
    client = MqttClient(settings.require_mqtt(), f"probe-{settings.topic_prefix}")
    await client.connect()
    try:
        payload = msgspec.json.encode(TelemetryMessage(1, PROBE, 0, [sample]))
        client.publish(_telemetry_topic(settings, PROBE), payload, 1)
        await client.wait_below(1)
    finally:
        await client.disconnect()

    async def taken_in() -> bool:
        return platform.metric("liftwatch_rules_batch_samples_sum") >= 1 and _stored(settings) >= 1

    await _wait_for(taken_in, 30, "the probe sample in the rules and in storage")


def _stored(settings: CommonSettings) -> int:
    with psycopg.connect(settings.require_database_url()) as conn:
        row = conn.execute("SELECT count(*) FROM telemetry").fetchone()
    assert row is not None
    return int(row[0])


# --- scenarios ----------------------------------------------------------------------------------


Action = Callable[[Platform], Awaitable[None]]


@dataclass
class Scenario:
    """What a shape publishes and what it changes in the registry at each barrier of its plan."""

    rows: list[RegistryRow]
    """The registry imported immediately before the first message."""
    messages: list[TelemetryMessage]
    """Everything published, in publishing order."""
    plan: list[PlanEntry]
    actions: list[Action]
    """One per barrier after the first (the first imports ``rows``)."""
    truth: list[tuple[str, str]]
    """(registration code, fault code) of every injected fault, from the simulator's ground truth."""
    start_ms: int
    end_ms: int
    notes: dict[str, Any] = field(default_factory=dict)


def _faults(specs: list[ElevatorSpec]) -> list[FaultInjection]:
    """Every catalog car fault once, each on its own car where it is feasible, spread over the window."""
    used: set[int] = set()
    faults = []
    for i, (code, variant) in enumerate(CAR_FAULTS):
        duration = timing(code, variant).default_s
        slot = next(s for s, spec in enumerate(specs) if s not in used and feasible(code, spec, duration))
        used.add(slot)
        faults.append(FaultInjection(code, 60.0 + 45.0 * i, slot, duration, variant))
    return faults


def _simulate(rows: list[RegistryRow], seed: int) -> tuple[list[ElevatorSpec], list[FaultInjection], Any, int]:
    specs = specs_from_rows(rows)
    faults = _faults(specs)
    # Event time ends about now: the history a district uploads after an outage.
    start_ms = int(time.time() * 1000) - WINDOW_S * 1000
    run = simulate_fleet(specs, start_ms=start_ms, duration_s=WINDOW_S, seed=seed, faults=faults)
    messages = list(run)
    assert len(run.truth) == len(faults), ("a fault found no opportunity", run.truth)
    return specs, faults, (messages, run.truth), start_ms


def _entries(settings: CommonSettings, messages: Iterable[TelemetryMessage], at_s: float = 0.0) -> list[PlanEntry]:
    encode = msgspec.json.Encoder().encode
    return [(at_s, _telemetry_topic(settings, m.terminal), encode(m)) for m in messages]


def _end_ms(messages: list[TelemetryMessage]) -> int:
    return max(m.samples[-1].ts for m in messages) + 1


def _dies_after_alarm(messages: list[TelemetryMessage], terminal: str) -> list[TelemetryMessage]:
    """The stream with ``terminal`` falling silent on the sample that has its alarm button held 3 s
    (the deciding one): nothing newer of it will ever push that sample past a watermark."""
    pressed = next(s.ts for m in messages if m.terminal == terminal for s in m.samples if s.alarm_button)
    deciding = next(
        s.ts for m in messages if m.terminal == terminal for s in m.samples if s.ts >= pressed + ALARM_HOLD_MS
    )
    out = []
    for m in messages:
        if m.terminal == terminal and m.samples[-1].ts > deciding:
            kept = [s for s in m.samples if s.ts <= deciding]
            if not kept:
                continue
            m = msgspec.structs.replace(m, samples=kept)
        out.append(m)
    return out


def burst(settings: CommonSettings, seed: int) -> Scenario:
    """The whole history at once, as a district's terminals upload their buffers after an outage; the
    terminal of the alarm-button car dies on the sample that decides its alarm."""
    rows = generated_registry(ELEVATORS, seed)
    specs, faults, (messages, truth), start_ms = _simulate(rows, seed)
    alarm = next(f for f in faults if f.code is FaultCode.ALARM_BUTTON)
    assert alarm.elevator is not None
    silent = specs[alarm.elevator].terminal_id
    messages = _dies_after_alarm(messages, silent)
    plan = [BARRIER, *_entries(settings, messages)]
    truths = [(str(t.elevator), t.code.value) for t in truth]
    return Scenario(rows, messages, plan, [], truths, start_ms, _end_ms(messages), {"dies_after_alarm": silent})


LIVE_FROM_S, OUTAGE = 300, (350, 750)
SPEEDUP = 60.0


def backlog(settings: CommonSettings, seed: int) -> Scenario:
    """History up to 5 minutes in, then live (60x); a third of the terminals offline for 400 s upload
    their backlog at once when they reconnect, while the others keep streaming."""
    rows = generated_registry(ELEVATORS, seed)
    specs, _, (messages, truth), start_ms = _simulate(rows, seed)
    offline = {spec.terminal_id for spec in specs[::3]}
    live_ms, (out_a, out_b) = start_ms + LIVE_FROM_S * 1000, (start_ms + OUTAGE[0] * 1000, start_ms + OUTAGE[1] * 1000)

    def at(m: TelemetryMessage) -> float:
        sent = m.samples[-1].ts
        if m.terminal in offline and out_a <= sent < out_b:
            sent = out_b  # buffered by the terminal, sent when it reconnects
        return max(0.0, (sent - live_ms) / 1000 / SPEEDUP)

    timed = sorted(((at(m), i, m) for i, m in enumerate(messages)), key=lambda x: (x[0], x[1]))
    encode = msgspec.json.Encoder().encode
    plan = [BARRIER, *((a, _telemetry_topic(settings, m.terminal), encode(m)) for a, _, m in timed)]
    during = [t for t in truth if t.terminal in offline and out_a <= t.start_ms < out_b]
    assert during, "no injected fault falls into an outage: the shape would not test a backlog"
    return Scenario(
        rows,
        [m for _, _, m in timed],
        plan,
        [],
        [(str(t.elevator), t.code.value) for t in truth],
        start_ms,
        _end_ms(messages),
        {"faults_in_backlog": [(t.terminal, t.code.value) for t in during]},
    )


LATE_AFTER_S = 8.0
"""Wall seconds between a terminal resuming live and uploading its buffer: past the 5 s a hole is waited for."""


def late_backlog(settings: CommonSettings, seed: int) -> Scenario:
    """Like ``backlog``, but the cars with faults during the outage resume live first and upload their
    buffer 8 s later: the hole is given up, the buffer is late. Late samples are judged apart
    (docs/rules.md): every fault in them becomes an incident marked late, the counter counts them."""
    rows = generated_registry(ELEVATORS, seed)
    specs, faults, (messages, truth), start_ms = _simulate(rows, seed)
    live_ms, (out_a, out_b) = start_ms + LIVE_FROM_S * 1000, (start_ms + OUTAGE[0] * 1000, start_ms + OUTAGE[1] * 1000)
    offline = {specs[f.elevator].terminal_id for f in faults if f.elevator is not None and OUTAGE[0] < f.at_s < 560}
    buffered = [m for m in messages if m.terminal in offline and out_a <= m.samples[-1].ts < out_b]
    resumed = (out_b - live_ms) / 1000 / SPEEDUP

    def at(m: TelemetryMessage) -> float:
        if m.terminal in offline and out_a <= m.samples[-1].ts < out_b:
            return resumed + LATE_AFTER_S
        return max(0.0, (m.samples[-1].ts - live_ms) / 1000 / SPEEDUP)

    timed = sorted(((at(m), i, m) for i, m in enumerate(messages)), key=lambda x: (x[0], x[1]))
    encode = msgspec.json.Encoder().encode
    plan = [BARRIER, *((a, _telemetry_topic(settings, m.terminal), encode(m)) for a, _, m in timed)]
    inside = [
        (str(t.elevator), t.code.value)
        for t in truth
        if t.terminal in offline and out_a <= t.start_ms and t.end_ms is not None and t.end_ms < out_b
    ]
    assert inside, "no injected fault lies wholly inside an outage: the shape would not test late data"
    notes = {"late_terminals": sorted(offline), "late_samples": sum(len(m.samples) for m in buffered)}
    return Scenario(
        rows,
        [m for _, _, m in timed],
        plan,
        [],
        [(str(t.elevator), t.code.value) for t in truth],
        start_ms,
        _end_ms(messages),
        {**notes, "faults_in_late_buffer": inside},
    )


def _split(messages: list[TelemetryMessage], at_ms: int) -> tuple[list[TelemetryMessage], list[TelemetryMessage]]:
    before = [m for m in messages if m.samples[0].ts < at_ms]
    return before, [m for m in messages if m.samples[0].ts >= at_ms]


async def _admin(platform: Platform, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=10) as http:
        return await http.request(method, path, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


def _pushes(platform: Platform) -> Callable[[int], Awaitable[None]]:
    """Before a registry change: a wait for the rules to have been told of ``n`` changes since."""
    before = platform.metric("liftwatch_rules_registry_pushes_total")

    async def wait(n: int) -> None:
        async def told() -> bool:
            return platform.metric("liftwatch_rules_registry_pushes_total") >= before + n

        # The engine reloads the registry before the batch after a notification: once told, the
        # rest of the stream is judged with the change.
        await _wait_for(told, 10, f"{n} registry change(s) pushed to the rules")

    return wait


def rated_speed_corrected(settings: CommonSettings, seed: int) -> Scenario:
    """The overspeed car is registered at twice its rated speed and corrected over the API before
    its overspeed: only the corrected speed makes it one."""
    rows = generated_registry(ELEVATORS, seed)
    specs, faults, (messages, truth), start_ms = _simulate(rows, seed)
    fault = next(f for f in faults if f.code is FaultCode.OVERSPEED)
    assert fault.elevator is not None
    car = specs[fault.elevator]
    wrong = [
        msgspec.structs.replace(r, rated_speed=2 * r.rated_speed) if r.registration_code == car.registration_code else r
        for r in rows
    ]
    # The injection is due at its time and waits for a long trip: nothing of it is sent before.
    first, second = _split(messages, start_ms + int(fault.at_s * 1000))

    async def correct(platform: Platform) -> None:
        pushed = _pushes(platform)
        path = f"/api/v1/elevators/{car.registration_code}"
        response = await _admin(platform, "PATCH", path, {"rated_speed": car.rated_speed})
        assert response.status_code == 200, response.text
        await pushed(1)

    plan = [BARRIER, *_entries(settings, first), BARRIER, *_entries(settings, second)]
    truths = [(str(t.elevator), t.code.value) for t in truth]
    return Scenario(wrong, first + second, plan, [correct], truths, start_ms, _end_ms(messages))


def terminal_swapped(settings: CommonSettings, seed: int) -> Scenario:
    """The entrapped car's terminal is replaced before its entrapment: the registry moves the elevator
    to the new terminal id, which sends from then on (seq from 0)."""
    rows = generated_registry(ELEVATORS, seed)
    specs, faults, (messages, truth), start_ms = _simulate(rows, seed)
    fault = next(f for f in faults if f.code is FaultCode.TRAPPED_PASSENGER)
    assert fault.elevator is not None
    car = specs[fault.elevator]
    old, new = car.terminal_id, f"{car.terminal_id}N"
    swap_ms = start_ms + int(fault.at_s * 1000) - 30_000
    first, second = _split(messages, swap_ms)
    seq = 0
    renamed = []
    for m in second:
        if m.terminal == old:
            m = msgspec.structs.replace(m, terminal=new, seq=seq)
            seq += 1
        renamed.append(m)

    first_samples = sum(len(m.samples) for m in first)

    async def swap(platform: Platform) -> None:
        # The terminal is swapped once the engine has read what the old one sent (plus the probe's
        # sample): registry facts apply to samples when they are judged, not when they were taken,
        # so a swap while the old terminal's samples still wait in a backlog judges them without
        # their elevator (seen once in a loaded full suite: an incident without registration). A
        # known limitation (docs/rules.md), not what this shape tests: the new terminal's reports.
        async def read_first_half() -> bool:
            return platform.metric("liftwatch_rules_batch_samples_sum") >= first_samples + 1

        await _wait_for(read_first_half, 60, "the engine to read the old terminal's samples")
        pushed = _pushes(platform)
        response = await _admin(platform, "PATCH", f"/api/v1/terminals/{old}", {"registration_code": None})
        assert response.status_code == 200, response.text
        response = await _admin(
            platform, "POST", "/api/v1/terminals", {"terminal_id": new, "registration_code": car.registration_code}
        )
        assert response.status_code == 201, response.text
        await pushed(2)

    plan = [BARRIER, *_entries(settings, first), BARRIER, *_entries(settings, renamed)]
    truths = [(str(t.elevator), t.code.value) for t in truth]
    return Scenario(rows, first + renamed, plan, [swap], truths, start_ms, _end_ms(messages), {"swap": (old, new)})


SHAPES = {
    "burst": burst,
    "backlog": backlog,
    "late_backlog": late_backlog,
    "rated_speed_corrected": rated_speed_corrected,
    "terminal_swapped": terminal_swapped,
}


# --- running a scenario -------------------------------------------------------------------------


@dataclass
class Published:
    reports: list[dict[str, Any]]
    registries: list[dict[str, TerminalInfo]]
    """The registry the rules should have had, after the import and after each action."""


async def _publish(platform: Platform, scenario: Scenario, tmp: Path) -> Published:
    """Run the plan in a publisher process; at each barrier import the registry or run the action."""
    settings = platform.settings
    path = tmp / "plan.bin"
    write_plan(path, scenario.plan)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "liftwatch.simulators.plan",
        settings.require_mqtt(),
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    reports: list[dict[str, Any]] = []
    registries: list[dict[str, TerminalInfo]] = []
    actions = list(scenario.actions)
    try:
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            assert line, "the publisher stopped without reporting"
            report = json.loads(line)
            reports.append(report)
            if report.get("done"):
                break
            if report["barrier"] == 1:
                with psycopg.connect(settings.require_database_url()) as conn:
                    assert import_registry(conn, scenario.rows).ok
            else:
                await actions.pop(0)(platform)
            with psycopg.connect(settings.require_database_url()) as conn:
                registries.append(load_registry_sync(conn))
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Published(reports, registries)


async def _topic(
    settings: CommonSettings, name: str, want: int, size: Callable[[bytes], int] = lambda value: 1
) -> list[bytes]:
    """The first record values of a topic holding ``want`` items (``size`` counts a record's: a
    columns telemetry record holds many messages), each partition in offset order (one after another).

    Counted, not read to the end offsets: tansu's ListOffsets answers stale end offsets (it said 1
    for partitions holding 5 records), which would cut the reading short.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.require_kafka(), auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topic(name), p) for p in range(TOPIC_PARTITIONS[name])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: dict[TopicPartition, list[bytes]] = {tp: [] for tp in partitions}
        deadline = time.monotonic() + 30
        held = 0
        while held < want:
            assert time.monotonic() < deadline, f"the {name} topic holds fewer than {want} items"
            for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                found[tp] += [message.value for message in batch]
                held += sum(size(message.value) for message in batch)
        return [value for tp in partitions for value in found[tp]]
    finally:
        await consumer.stop()


async def _fault_events(platform: Platform) -> list[Any]:
    """The ``faults`` topic's events (as many as the rules produced; re-delivered duplicates removed by id)."""
    produced = int(platform.metric("liftwatch_rules_events_total"))
    values = await _topic(platform.settings, "faults", produced)
    return list({e.event_id: e for e in map(decode_fault_event, values)}.values())


async def _telemetry(settings: CommonSettings, want: int) -> list[TelemetryRecord]:
    """The first ``want`` messages of the ``telemetry`` topic, each partition in offset order,
    whichever record form (one message, or many as columns) holds them."""
    values = await _topic(settings, "telemetry", want, lambda value: len(telemetry_messages(value)))
    return [record for value in values for record in telemetry_messages(value)]


async def _telemetry_topic_order(settings: CommonSettings, published: list[TelemetryMessage]) -> int:
    """Records of the ``telemetry`` topic not where their terminal published them: per terminal, the
    positions where the topic's sequence numbers differ from the publishing order's."""
    want: dict[str, list[int]] = {PROBE: [0]}
    for m in published:
        want.setdefault(m.terminal, []).append(m.seq)
    got: dict[str, list[int]] = {}
    for record in await _telemetry(settings, sum(map(len, want.values()))):
        got.setdefault(record.terminal, []).append(record.seq)
    return sum(a != b for t, seqs in want.items() for a, b in zip(seqs, got.get(t, []), strict=False))


EventKey = tuple[str, str, str, int]
"""(terminal, code, transition, since_ms)"""


def _oracle(scenario: Scenario, registry: dict[str, TerminalInfo], day_offset_ms: int) -> list[EventKey]:
    reference = Reference(thresholds_mod.build(), registry, lateness_ms=5_000, day_offset_ms=day_offset_ms)
    # Each terminal's messages in time order (a buffer uploaded late included): what replay reads.
    for message in sorted(scenario.messages, key=lambda m: m.samples[0].ts):
        for sample in message.samples:
            reference.feed(message.terminal, msgspec.structs.asdict(sample))
    reference.flush()
    return sorted((t, code, transition, since) for t, code, transition, since, _ in reference.events)


def _diff(name: str, got: list[EventKey], want: list[EventKey]) -> str | None:
    missing, extra = Counter(want) - Counter(got), Counter(got) - Counter(want)
    if not missing and not extra:
        return None
    show = 8
    return (
        f"{name}: {sum(missing.values())} of the oracle's {len(want)} events missing, {sum(extra.values())} extra; "
        f"missing {sorted(missing.elements())[:show]}; extra {sorted(extra.elements())[:show]}"
    )


async def _run(platform: Platform, shape: str, seed: int, tmp: Path) -> None:
    """Publish the shape, then compare."""
    settings = platform.settings
    await _probe(platform)
    scenario = SHAPES[shape](settings, seed)
    published = await _publish(platform, scenario, tmp)
    messages = len(scenario.messages)
    samples = sum(len(m.samples) for m in scenario.messages)
    offered = max(r["peak_offered"] for r in published.reports)
    assert offered >= MIN_OFFERED, published.reports

    # Taken in: every sample stored and handed to the rules, then held samples evaluated.
    async def stored() -> bool:
        return _stored(settings) >= samples + 1

    async def handed() -> bool:
        return platform.metric("liftwatch_rules_batch_samples_sum") >= samples + 1

    await _wait_for(stored, DRAIN_S, f"{samples + 1} stored samples")
    await _wait_for(handed, DRAIN_S, f"{samples + 1} samples handed to the rules")

    async def judged() -> bool:
        done = platform.metric("liftwatch_rules_samples_evaluated_total") + platform.metric(
            "liftwatch_rules_late_samples_total"
        )
        return done >= samples  # the probe's sample may stay held: nothing follows it

    drained = await _wait_for(judged, SETTLE_S, "every sample judged", strict=False)
    events = await _fault_events(platform)

    produced = platform.metric("liftwatch_rules_events_total")

    async def alerted() -> bool:
        return platform.metric("liftwatch_alerts_fault_events_total") >= produced

    await _wait_for(alerted, DRAIN_S, f"the alert service to take the {produced:.0f} fault events")

    day_offset = site_day_offset_ms(settings.site_timezone)
    as_sent: dict[str, TerminalInfo] = {}
    for registry in published.registries:
        as_sent |= registry  # each terminal judged with the registry it had while it sent
    oracle = _oracle(scenario, as_sent, day_offset)
    silent = scenario.notes.get("dies_after_alarm")
    assert silent is None or (silent, "alarm_button", "raised") in {e[:3] for e in oracle}, "no alarm to judge"
    live = sorted((e.terminal, e.code.value, e.transition, e.since_ms) for e in events if e.terminal != PROBE)
    late_terminals = set(scenario.notes.get("late_terminals", []))
    with psycopg.connect(settings.require_database_url()) as conn:
        final = published.registries[-1]
        replayed = replay_events(
            conn,
            thresholds_mod.build(),
            datetime.fromtimestamp(scenario.start_ms / 1000, UTC),
            datetime.fromtimestamp(scenario.end_ms / 1000, UTC),
            terminals=sorted(final),
            day_offset_ms=day_offset,
        )
        incidents = conn.execute(
            "SELECT registration_code, code, terminal_id FROM incidents WHERE terminal_id <> %s", (PROBE,)
        ).fetchall()
        marked_late = conn.execute(
            "SELECT registration_code, code FROM incidents WHERE (evidence->>'late')::boolean"
        ).fetchall()
        stored_rows = conn.execute(
            "SELECT count(*), count(DISTINCT (terminal_id, ts, seq, idx)) FROM telemetry WHERE terminal_id <> %s",
            (PROBE,),
        ).fetchone()
        dead_rows = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    replay = sorted((e.terminal, e.code.value, e.transition, e.since_ms) for e in replayed.events)
    behind = await _telemetry_topic_order(settings, scenario.messages)
    late = platform.metric("liftwatch_rules_late_samples_total")
    dead = platform.metric("liftwatch_dead_letters_total")

    summary = {
        "shape": shape,
        "seed": seed,
        "messages": messages,
        "samples": samples,
        "offered_per_s": offered,
        # Acknowledged by the broker, per second of the largest section (barrier to barrier).
        "acked_per_s": max(published.reports, key=lambda r: r["messages"])["rate"],
        "late_samples_total": late,
        "records_out_of_order_in_topic": behind,
        "judged": bool(drained),
        "events": {"live": len(live), "replay": len(replay), "oracle": len(oracle)},
        "incidents": len(incidents),
        **scenario.notes,
    }
    print(json.dumps(summary))  # `pytest -s` shows the figures of every run (the late counter above all)

    problems = [
        # Late samples are judged apart (their own timers): the late terminals' events are checked
        # by their incidents below, every other terminal's event by event.
        _diff(
            "live vs oracle",
            [e for e in live if e[0] not in late_terminals],
            [e for e in oracle if e[0] not in late_terminals],
        ),
        _diff("replay vs oracle", replay, [e for e in oracle if e[0] in final]),
    ]
    got = sorted((str(r), str(c)) for r, c, _ in incidents)
    if got != sorted(scenario.truth):
        found = sorted(((r, c, t) for r, c, t in incidents), key=str)  # an incident may have no registration
        problems.append(f"incidents: want one per injected fault {sorted(scenario.truth)}, got {found}")
    if behind:
        problems.append(f"telemetry topic: {behind} records not in their terminal's publishing order")
    if late != scenario.notes.get("late_samples", 0):
        problems.append(
            f"liftwatch_rules_late_samples_total = {late:.0f}, want {scenario.notes.get('late_samples', 0)}"
        )
    want_late = sorted(scenario.notes.get("faults_in_late_buffer", []))
    if sorted((str(r), str(c)) for r, c in marked_late) != want_late:
        problems.append(f"incidents marked late: {sorted(marked_late)}, want those found in late samples {want_late}")
    if not drained:
        problems.append(f"samples never judged within {SETTLE_S} s of being taken in")
    if dead or (dead_rows is not None and dead_rows[0]):
        problems.append(f"dead letters: {dead:.0f} counted, {dead_rows} stored, want 0")
    if stored_rows != (samples, samples):
        problems.append(f"stored (rows, distinct) = {stored_rows}, want each of the {samples} samples once")
    assert not [p for p in problems if p], "\n".join(f"{shape} seed {seed}: {p}" for p in problems if p)


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_burst_of_history_is_judged_as_replay_and_oracle_judge_it(
    platform: Platform, seed: int, tmp_path: Path
) -> None:
    await _run(platform, "burst", seed, tmp_path)


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_backlog_uploaded_on_reconnect_while_others_stream_live(
    platform: Platform, seed: int, tmp_path: Path
) -> None:
    await _run(platform, "backlog", seed, tmp_path)


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_rated_speed_corrected_mid_stream_decides_the_overspeed(
    platform: Platform, seed: int, tmp_path: Path
) -> None:
    await _run(platform, "rated_speed_corrected", seed, tmp_path)


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_swapped_terminal_reports_for_its_elevator_at_once(
    platform: Platform, seed: int, tmp_path: Path
) -> None:
    await _run(platform, "terminal_swapped", seed, tmp_path)


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_buffer_uploaded_after_live_resumed_is_still_judged(
    platform: Platform, seed: int, tmp_path: Path
) -> None:
    await _run(platform, "late_backlog", seed, tmp_path)
