"""One liftwatch process crashing mid-burst loses no sample, invents no fault and doubles no incident.

Issue 14's restart shapes, on the system differential's harness
(:mod:`tests.integration.system.test_differential`): the burst of fleet history is published in two
halves; at the barrier between them, while the platform is still working through the first half,
ONE process is killed with SIGKILL (a crash: no checkpoint on the way out, no Kafka LeaveGroup, no
MQTT DISCONNECT, open transactions rolled back by PostgreSQL) and started again with the same
settings (the gateway with the same MQTT client id, so its persistent session is resumed). Then the
harness's comparison must hold as without the crash: live events (deduplicated by event id: the
rules re-produce the same ids after a crash, by design) identical to replay and the per-sample
oracle, exactly one incident per injected fault and none on healthy cars, every published sample
stored exactly once, no dead letter, and ``liftwatch_rules_late_samples_total`` 0 (a re-delivered
copy is a duplicate, never late).

Why a subprocess and not a cancelled task: cancelling a task runs its ``finally`` blocks (the rules
checkpoint and leave their group, the writer commits its offsets, the gateway acknowledges what is
in flight and disconnects): a graceful stop. The crashing process therefore runs alone in a child
process from the start, the others in the test's loop as ``liftwatch up`` runs them. Its metrics
are read over HTTP; a killed incarnation's counters are kept as last read just before the kill
(what it counted in the few milliseconds between that reading and the kill is not in the sums).
"""

from __future__ import annotations

import asyncio
import json
import pickle
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from liftwatch.config import CommonSettings, PlatformSettings
from liftwatch.kafka import ensure_topics
from liftwatch.launcher import services
from liftwatch.launcher.up import platform_processes
from liftwatch.schema import TelemetryMessage
from liftwatch.simulators.plan import BARRIER
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample as MetricSample

from tests.integration.system import test_differential as differential
from tests.integration.system.test_differential import SHAPES, Platform, Scenario, _entries, _run, _stored

pytestmark = pytest.mark.integration

SEED = 3
SESSION_TIMEOUT_MS = 3_000
"""Consumer-group session timeout of the platform: a crashed member's partitions move after this."""

PACE_S = 3.0
"""The second half of the burst is published over this long (the first as fast as the broker takes it)."""

CRASH_AT = 0.55
"""The share of the burst a process has taken in when it is killed: in the paced second half."""

CHILD = """
import asyncio, importlib, pickle, signal, sys
from prometheus_client import CollectorRegistry, start_http_server
from liftwatch.launcher.up import PROCESSES

settings = pickle.loads(open(sys.argv[1], "rb").read())
registry = CollectorRegistry()
start_http_server(int(sys.argv[3]), addr="127.0.0.1", registry=registry)

async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await importlib.import_module(PROCESSES[sys.argv[2]]).serve(settings, stop, registry=registry)

asyncio.run(main())
"""
"""One platform process in a child: ``python -c CHILD settings.pickle <process name> <metrics port>``."""

CUMULATIVE = {"counter", "histogram", "summary"}
"""Metric types whose readings of a dead incarnation still count (a gauge of a dead process does not)."""


@dataclass
class Child:
    """The crashing process's current incarnation."""

    process: asyncio.subprocess.Process
    port: int


@dataclass
class RestartingPlatform(Platform):
    """The harness's platform with one process (``crashing``) in a child that can be killed and restarted."""

    crashing: str = ""
    settings_file: Path = Path()
    child: Child | None = None
    dead: list[MetricSample] = field(default_factory=list)
    """Cumulative readings of killed incarnations, as last read before each kill."""
    crashes: list[dict[str, float]] = field(default_factory=list)
    crasher: asyncio.Task[None] | None = None
    copies: int = 0
    """Re-delivered copies found in the telemetry topic (a message of a terminal already in it)."""

    def _read_child(self) -> list[tuple[str, MetricSample]]:
        if self.child is None:
            return []
        try:
            text = httpx.get(f"http://127.0.0.1:{self.child.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return []  # starting: nothing counted yet
        return [(family.type, s) for family in text_string_to_metric_families(text) for s in family.samples]

    def metric(self, name: str, **labels: str) -> float:
        """Sum over the in-loop processes, the child and the killed incarnations."""
        total = super().metric(name, **labels)
        for sample in [*self.dead, *(s for _, s in self._read_child())]:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
        return total

    async def start_child(self) -> None:
        port = services.free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, str(self.settings_file), self.crashing, str(port)
        )
        self.child = Child(process, port)
        await differential._wait_for(self._child_answers, 30, f"the {self.crashing} child's metrics")

    async def _child_answers(self) -> bool:
        return bool(self._read_child())

    async def crash(self) -> None:
        """SIGKILL the child (its cumulative counters kept as last read) and start it again."""
        assert self.child is not None
        readings = self._read_child()
        self.child.process.kill()
        await self.child.process.wait()
        self.dead += [s for kind, s in readings if kind in CUMULATIVE]
        self.child = None
        await self.start_child()

    async def stop_child(self) -> None:
        if self.child is not None and self.child.process.returncode is None:
            self.child.process.kill()
            await self.child.process.wait()


@pytest.fixture
async def restarting(
    request: pytest.FixtureRequest, common_settings: CommonSettings, tmp_path: Path
) -> AsyncIterator[RestartingPlatform]:
    """Every liftwatch process running, the one named by the test's parameter in a killable child."""
    crashing: str = request.param
    token = secrets.token_hex(4)
    settings = PlatformSettings(
        **{
            **common_settings.model_dump(),
            "api_port": services.free_port(),
            "admin_token": differential.ADMIN_TOKEN,
            "gateway_group": f"gw{token}",
            "gateway_client_id": f"gw-restarts-{token}",
            "writer_group": f"writer{token}",
            "rules_group": f"rules{token}",
            "alerts_group": f"alerts{token}",
            "writer_session_timeout_ms": SESSION_TIMEOUT_MS,
            "rules_session_timeout_ms": SESSION_TIMEOUT_MS,
            "alerts_session_timeout_ms": SESSION_TIMEOUT_MS,
            "log_level": "WARNING",
        },
    )
    await ensure_topics(settings)
    settings_file = tmp_path / "settings.pickle"
    settings_file.write_bytes(pickle.dumps(settings))
    metrics = CollectorRegistry()
    platform = RestartingPlatform(settings, metrics, crashing=crashing, settings_file=settings_file)
    stop = asyncio.Event()
    processes = platform_processes(settings, metrics)
    tasks = [asyncio.create_task(run(stop)) for name, run in processes.items() if name != crashing]
    try:
        await platform.start_child()
        yield platform
    finally:
        await platform.stop_child()
        stop.set()
        done, pending = await asyncio.wait(tasks, timeout=30)
        assert not pending, "a process did not stop within 30 s of the stop signal"
        for task in done:
            task.result()


def _progress(platform: RestartingPlatform, scenario: Scenario) -> float:
    """The share of the burst the crashing process has taken in, by its own counters (less the
    probe's sample and event; the alert service's share of about two events per injected fault)."""
    samples = sum(len(m.samples) for m in scenario.messages)
    return {
        "gateway": lambda: (platform.metric("liftwatch_gateway_samples_out_total") - 1) / samples,
        "writer": lambda: (_stored(platform.settings) - 1) / samples,
        "rules": lambda: (platform.metric("liftwatch_rules_batch_samples_sum") - 1) / samples,
        "alerts": lambda: (platform.metric("liftwatch_alerts_fault_events_total") - 1) / (2 * len(scenario.truth)),
    }[platform.crashing]()


def crash_mid_burst(settings: CommonSettings, seed: int) -> Scenario:
    """The harness's burst, its first half as fast as the broker takes it, its second half paced
    over PACE_S; a crasher armed at a barrier just before it kills the crashing process as soon as
    that has taken in CRASH_AT of the burst (when it has state to lose and the rest is in flight or
    still to come) and starts it again while the publisher goes on."""
    scenario = differential.burst(settings, seed)
    half = len(scenario.messages) // 2
    first, second = scenario.messages[:half], scenario.messages[half:]

    async def crash_when_moving(platform: RestartingPlatform) -> None:
        deadline = time.monotonic() + 30
        while (at := _progress(platform, scenario)) < CRASH_AT:
            assert time.monotonic() < deadline, f"the {platform.crashing} process took in too little of the burst"
            await asyncio.sleep(0.02)
        await platform.crash()
        platform.crashes.append({"share_taken_in_at_crash": round(at, 3)})

    async def arm(platform: Platform) -> None:
        assert isinstance(platform, RestartingPlatform)
        platform.crasher = asyncio.create_task(crash_when_moving(platform))

    # Paced entries count from the barrier, like the first half: the pacing starts once it is out.
    paced = [(PACE_S * (i + 1) / len(second), *entry[1:]) for i, entry in enumerate(_entries(settings, second))]
    scenario.plan = [BARRIER, BARRIER, *_entries(settings, first), *paced]
    scenario.actions = [arm]
    return scenario


SHAPES.setdefault("crash_mid_burst", crash_mid_burst)


def _first_copies_order(platform: RestartingPlatform) -> Callable[[CommonSettings, list[TelemetryMessage]], Any]:
    """The harness's topic-order check with re-delivered copies left out (a crashed gateway's broker
    re-sends what it had not acknowledged, some of it already in Kafka: at least once, by design;
    the copies are the rules' duplicates). Each terminal's first copies must be in publishing order."""

    async def order(settings: CommonSettings, published: list[TelemetryMessage]) -> int:
        want: dict[str, list[int]] = {differential.PROBE: [0]}
        for m in published:
            want.setdefault(m.terminal, []).append(m.seq)
        got: dict[str, list[int]] = {}
        seen: set[tuple[str, int]] = set()
        copies = 0
        for record in await differential._telemetry(settings, sum(map(len, want.values()))):
            if (record.terminal, record.seq) in seen:
                copies += 1
                continue
            seen.add((record.terminal, record.seq))
            got.setdefault(record.terminal, []).append(record.seq)
        platform.copies = copies
        return sum(a != b for t, seqs in want.items() for a, b in zip(seqs, got.get(t, []), strict=False))

    return order


async def _crash_and_compare(platform: RestartingPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(differential, "_telemetry_topic_order", _first_copies_order(platform))
    try:
        await _run(platform, "crash_mid_burst", SEED, tmp_path)
        assert platform.crasher is not None and platform.crasher.done(), "the crash was never armed or never done"
        platform.crasher.result()  # no crash (the process never took in CRASH_AT) fails here, not silently
        assert platform.crashes, "the process was never killed"
        # Every re-delivered copy in the topic was recognised as one (never judged, never late).
        assert platform.metric("liftwatch_rules_duplicate_messages_total") == platform.copies
    finally:
        if platform.crasher is not None and not platform.crasher.done():
            platform.crasher.cancel()
        counters = {
            name: platform.metric(name)
            for name in (
                "liftwatch_rules_late_samples_total",
                "liftwatch_rules_duplicate_messages_total",
                "liftwatch_rules_sequence_holes_total",
                "liftwatch_gateway_duplicates_total",
                "liftwatch_writer_rows_duplicate_total",
                "liftwatch_alerts_fault_events_total",
            )
        }
        summary = {"crashed": platform.crashing, "crashes": platform.crashes, "copies_in_topic": platform.copies}
        print(json.dumps({**summary, **counters}))


@pytest.mark.parametrize("restarting", ["rules"], indirect=True)
async def test_the_rules_engine_crashing_mid_burst(
    restarting: RestartingPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _crash_and_compare(restarting, tmp_path, monkeypatch)


@pytest.mark.parametrize("restarting", ["alerts"], indirect=True)
async def test_the_alert_service_crashing_mid_burst(
    restarting: RestartingPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _crash_and_compare(restarting, tmp_path, monkeypatch)


@pytest.mark.parametrize("restarting", ["gateway"], indirect=True)
async def test_the_gateway_crashing_mid_burst_resumes_its_session(
    restarting: RestartingPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _crash_and_compare(restarting, tmp_path, monkeypatch)


@pytest.mark.parametrize("restarting", ["writer"], indirect=True)
async def test_the_writer_crashing_mid_burst(
    restarting: RestartingPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _crash_and_compare(restarting, tmp_path, monkeypatch)
