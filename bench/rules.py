"""Rule engine throughput: the pure vectorized evaluation vs the per-sample reference, and Kafka -> Kafka.

    .venv/bin/python bench/rules.py                       # fleets of 10k, 100k, 1M terminals
    .venv/bin/python bench/rules.py --fleets 10000 --kafka 200000

Run it pinned to one core (``taskset -c 1``). The rates are also given per CPU-second of the
process, which on a busy machine is close to what an idle core would do.

Part 1 builds columnar batches of a fleet in normal service (trips, stops, door cycles, a few
faults), one sample per terminal per second, interleaved across terminals like a Kafka batch,
and times ``liftwatch.rules.engine.evaluate`` (reordering, every rule, state carried across
batches) on one core. Each batch is made just before it is evaluated (outside the timing); the
first three are warm-up (every terminal seen for the first time), the rest are timed and printed
as a whole-run rate and the median, min and max batch rates. The per-sample reference
(tests/unit/rules/reference.py) runs on a slice of the same stream in the same run; the ratio is
engine / reference samples per second.

Part 2 (``--kafka N``) runs the real ``liftwatch rules`` service against a tansu broker and
PostgreSQL: N samples are produced to ``telemetry`` first, then the time from the service start
to the last offset committed is measured (decode, rules, fault production, checkpoints).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from liftwatch.rules.allocator import keep_freed_memory  # noqa: E402
from liftwatch.rules.columns import CLOSED, DOOR_STATES, MODES, OPEN, Columns  # noqa: E402
from liftwatch.rules.engine import evaluate  # noqa: E402
from liftwatch.rules.params import SlotParams, TerminalInfo  # noqa: E402
from liftwatch.rules.state import State  # noqa: E402
from liftwatch.rules.thresholds import build  # noqa: E402

T0 = 1_700_000_000_000
WARM_UP = 3


def fleet_params(fleet: int) -> SlotParams:
    params = SlotParams(build(), fleet)
    rated = np.where(np.arange(fleet) % 3 == 0, 2.5, 1.75)
    for slot in range(fleet):
        params.assign(slot, TerminalInfo(f"{slot:020d}", float(rated[slot]), -2, 30))
    return params


def fleet_batch(fleet: int, second0: int, seconds: int, rng: np.random.Generator) -> Columns:
    """``seconds`` seconds of a fleet at 1 Hz, arrival order interleaved across terminals."""
    slot = np.tile(np.arange(fleet, dtype=np.int32), seconds)
    sec = np.repeat(np.arange(second0, second0 + seconds, dtype=np.int64), fleet)
    phase = (sec + slot * 7) % 40  # a 40-s cycle per terminal: 12 s travel, 28 s at a landing
    moving = phase < 12
    rated = np.where(slot % 3 == 0, 2.5, 1.75)
    speed = np.where(moving, rated * np.minimum(1.0, np.minimum(phase + 1, 12 - phase) / 3), 0.0)
    door = np.where(moving, CLOSED, np.where((phase >= 14) & (phase < 24), OPEN, CLOSED)).astype(np.int8)
    door[(phase == 13) & ~moving] = 1  # opening
    door[(phase == 24) & ~moving] = 2  # closing
    n = slot.shape[0]
    door_zone = ~moving | (phase == 11)
    occupied = (phase < 16) & ((slot + sec // 40) % 2 == 0)
    # A few real faults: trapped passengers (stuck between floors for 100 s of every 200) on 0.1 % of
    # terminals, their entrapments starting at staggered times so every fleet size raises and clears some.
    stuck = (slot % 1000 == 5) & ((sec + slot // 1000) % 200 >= 100)
    speed[stuck] = 0.0
    door[stuck] = CLOSED
    door_zone[stuck] = False
    occupied[stuck] = True
    cols = Columns.from_arrays(
        slot=slot,
        ts=T0 + sec * 1000 + (slot % 1000),
        mode=np.zeros(n, np.int8),
        floor=((sec // 40 + slot) % 20).astype(np.int16),
        door_zone=door_zone,
        speed=speed,
        door=door,
        occupied=occupied,
        safety=rng.random(n) > 1e-5,
        alarm=np.zeros(n, np.bool_),
        power=np.ones(n, np.bool_),
    )
    return cols


@dataclass
class EngineRun:
    samples: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    events: int = 0
    evaluated: int = 0
    batch_rates: list[float] = field(default_factory=list)

    def add(self, samples: int, wall: float, cpu: float, events: int, evaluated: int) -> None:
        self.samples += samples
        self.evaluated += evaluated
        self.wall += wall
        self.cpu += cpu
        self.events += events
        self.batch_rates.append(samples / wall)

    @property
    def rate(self) -> float:
        return self.samples / self.wall

    @property
    def cpu_rate(self) -> float:
        return self.samples / self.cpu


def overtaken(cols: Columns, carried: Columns, every: int, second: int) -> tuple[Columns, Columns]:
    """Every ``every``-th terminal's sample of ``second`` leaves the batch for the next one (appended at
    its end): a message overtaken by the next, older in time than samples already delivered."""
    sec = (cols.ts - T0 - cols.slot % 1000) // 1000
    delayed = (cols.slot % every == 7) & (sec == second)
    return Columns.concat([cols.take(~delayed), carried]), cols.take(delayed)


def bench_engine(
    fleet: int, samples_target: int, batch: int, rng: np.random.Generator, overtake_every: int = 0
) -> EngineRun:
    """Samples/s of the evaluation: over the whole run and per batch, wall clock and per CPU-second."""
    params = fleet_params(fleet)
    state = State(params.reversals_kept)
    seconds = max(1, batch // fleet)
    batches = max(3, samples_target // (fleet * seconds))
    run = EngineRun()
    carried = Columns.empty()
    for i in range(WARM_UP + batches):
        # Each input batch is made outside the heap the engine reuses (as decoded batches come and
        # go in the service), then the engine runs with the allocator as `liftwatch rules` sets it.
        keep_freed_memory(False)
        cols = fleet_batch(fleet, i * seconds, seconds, rng)
        if overtake_every:
            cols, carried = overtaken(cols, carried, overtake_every, (i + 1) * seconds - 2)
        keep_freed_memory()
        start, cpu = time.perf_counter(), time.process_time()
        det = evaluate(cols, state, params, lateness_ms=5_000)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        if i >= WARM_UP:  # the first batches see every terminal for the first time and size the heap
            run.add(len(cols), elapsed, cpu, det.rule.shape[0], det.evaluated)
    return run


def bench_reference(samples: int, rng: np.random.Generator) -> tuple[float, float]:
    """Samples/s of the per-sample reference (wall clock, per CPU-second)."""
    from tests.unit.rules.reference import Reference

    fleet = 1000
    registry = {
        f"t{slot}": TerminalInfo(f"{slot:020d}", 2.5 if slot % 3 == 0 else 1.75, -2, 30) for slot in range(fleet)
    }
    ref = Reference(build(), registry, lateness_ms=5_000)
    seconds = max(1, samples // fleet)
    cols = fleet_batch(fleet, 0, seconds, rng)
    rows: list[tuple[str, dict[str, Any]]] = [
        (
            f"t{cols.slot[i]}",
            {
                "ts": int(cols.ts[i]),
                "mode": MODES[cols.mode[i]],
                "floor": int(cols.floor[i]),
                "door_zone": bool(cols.door_zone[i]),
                "speed": float(cols.speed[i]),
                "door": DOOR_STATES[cols.door[i]],
                "occupied": bool(cols.occupied[i]),
                "safety_circuit": bool(cols.safety[i]),
                "alarm_button": False,
                "power": True,
                "limit_up": False,
                "limit_down": False,
            },
        )
        for i in range(len(cols))
    ]
    start, cpu = time.perf_counter(), time.process_time()
    for terminal, sample in rows:
        ref.feed(terminal, sample)
    return len(rows) / (time.perf_counter() - start), len(rows) / (time.process_time() - cpu)


# --- Kafka -> Kafka -------------------------------------------------------------------------------

FORMATS = ("messages", "columns")
"""``telemetry.v1`` (one record a message) and ``telemetry.columns.v1`` (many messages a record)."""


@dataclass
class Stream:
    """Messages of a fleet as a gateway sends them: every terminal's first message, then every
    terminal's second, ...; per message its terminal slot, seq and sample count, the samples in
    message order."""

    samples: Columns
    slot: np.ndarray[Any, np.dtype[np.int64]]
    seq: np.ndarray[Any, np.dtype[np.int64]]
    count: np.ndarray[Any, np.dtype[np.int64]]
    received_ms: int

    @property
    def starts(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        return np.cumsum(self.count) - self.count


def fleet_stream(terminals: int, samples: int, per_message: int) -> Stream:
    """``samples`` samples of a fleet in normal service, ``per_message`` seconds of 1 Hz samples a message."""
    cols = fleet_batch(terminals, 0, max(1, samples // terminals), np.random.default_rng(3))
    sec = np.arange(len(cols)) // terminals
    message = sec // per_message
    order = np.lexsort((sec, cols.slot, message))
    ordered = cols.take(order)
    key = message[order] * terminals + ordered.slot
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    count = np.diff(np.append(starts, len(ordered)))
    return Stream(
        ordered,
        ordered.slot[starts].astype(np.int64),
        (key[starts] // terminals).astype(np.int64),
        count,
        int(time.time() * 1000),
    )


def kafka_records(stream: Stream, form: str, per_record: int) -> list[tuple[bytes, bytes | None, int | None]]:
    """The stream as ``telemetry`` records (value, key, partition): one a message keyed by terminal, or
    ``per_record`` messages of one partition a columns record (no key, the partition of its terminals)."""
    from aiokafka.partitioner import DefaultPartitioner
    from liftwatch.columnar import DIRECTION_SHIFT, TelemetryArrays
    from liftwatch.kafka import TOPIC_PARTITIONS
    from liftwatch.schema import DIRECTIONS, Sample, TelemetryRecord, encode_record

    s = stream.samples
    moving = s.speed != 0
    direction = np.where(moving, DIRECTIONS.index("up"), DIRECTIONS.index("stop")).astype(np.uint16)
    if form == "messages":
        out: list[tuple[bytes, bytes | None, int | None]] = []
        for m, (start, count) in enumerate(zip(stream.starts.tolist(), stream.count.tolist(), strict=True)):
            batch = [
                Sample(
                    ts=int(s.ts[i]),
                    mode="normal",
                    floor=int(s.floor[i]),
                    door_zone=bool(s.door_zone[i]),
                    direction=DIRECTIONS[direction[i]],
                    speed=float(s.speed[i]),
                    door=DOOR_STATES[s.door[i]],
                    occupied=bool(s.occupied[i]),
                    safety_circuit=bool(s.safety[i]),
                )
                for i in range(start, start + count)
            ]
            terminal = f"B{stream.slot[m]}"
            record = TelemetryRecord(terminal, int(stream.seq[m]), stream.received_ms, batch)
            out.append((encode_record(record), terminal.encode(), None))
        return out
    partitions = list(range(TOPIC_PARTITIONS["telemetry"]))
    partitioner = DefaultPartitioner()
    terminals = int(stream.slot.max()) + 1
    partition_of = np.array([partitioner(f"B{t}".encode(), partitions, partitions) for t in range(terminals)])
    message_partition = partition_of[stream.slot]
    code = s.code | (direction << np.uint16(DIRECTION_SHIFT))
    starts = stream.starts
    out = []
    for p in partitions:
        mine = np.flatnonzero(message_partition == p)
        for chunk in range(0, len(mine), per_record):
            messages = mine[chunk : chunk + per_record]
            counts = stream.count[messages]
            rows = np.repeat(starts[messages] - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
            slots, terminal = np.unique(stream.slot[messages], return_inverse=True)
            arrays = TelemetryArrays(
                terminals=[f"B{t}" for t in slots.tolist()],
                terminal=terminal.astype(np.uint32),
                seq=stream.seq[messages],
                received_ms=np.full(len(messages), stream.received_ms, np.int64),
                count=stream.count[messages].astype(np.uint16),
                ts=s.ts[rows],
                floor=s.floor[rows],
                speed=s.speed[rows],
                load_pct=np.full(len(rows), np.nan),
                code=code[rows],
            )
            out.append((encode_record(arrays.to_record()), None, p))
    return out


@dataclass
class KafkaRun:
    form: str
    records: int
    samples: int
    wall: float
    cpu: float
    start_up: float
    steady: float
    baseline: float

    @property
    def rate(self) -> float:
        return self.samples / self.wall


async def bench_kafka(samples: int, terminals: int, formats: list[str], per_record: int) -> None:
    """The ``liftwatch rules`` service on tansu + PostgreSQL, vs a consume-and-decode-only baseline."""
    import psycopg
    from liftwatch import db
    from liftwatch.config import RulesSettings
    from liftwatch.launcher import services

    if not services.debian_postgres_start():
        raise SystemExit("needs PostgreSQL on 127.0.0.1:5432")
    base = services.local_postgres_url()
    assert base is not None
    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{base}?options={quote(f'-csearch_path={schema}')}"
    tansu = services.start_tansu()
    try:
        with psycopg.connect(url) as conn:
            db.migrate(conn)
            firm = conn.execute("INSERT INTO maintenance_firms (name) VALUES ('F') RETURNING id").fetchone()
            unit = conn.execute("INSERT INTO use_units (name) VALUES ('U') RETURNING id").fetchone()
            assert firm is not None and unit is not None
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO elevators (registration_code, rescue_code, kind, address, district, use_unit_id, "
                    "maintainer_id, installed_on, rated_speed, bottom_floor, top_floor) "
                    "VALUES (%s, %s, 'traction', 'a', 'd', %s, %s, '2015-01-01', %s, -2, 30)",
                    # the rated speeds of fleet_params: the fleet is in normal service, not overspeeding
                    [
                        (f"{i:020d}", f"{i:06d}", unit[0], firm[0], 2.5 if i % 3 == 0 else 1.75)
                        for i in range(terminals)
                    ],
                )
                cur.executemany(
                    "INSERT INTO terminals (terminal_id, registration_code) VALUES (%s, %s)",
                    [(f"B{i}", f"{i:020d}") for i in range(terminals)],
                )
        # 10 samples per message (a terminal batching 10 s of 1 Hz samples), fleet in normal service.
        stream = fleet_stream(terminals, samples, per_message=10)
        runs = []
        for form in formats:
            settings = RulesSettings(
                database_url=url,
                kafka_bootstrap=tansu.url,
                topic_prefix=f"{schema}.{form}.",
                rules_group=f"g{schema}{form}",
                rules_session_timeout_ms=2_000,
                log_level="WARNING",
            )
            runs.append(await kafka_run(settings, stream, form, per_record))
            print(describe(runs[-1], terminals))
        if len(runs) == 2:
            print(f"columns / messages, including start-up: {runs[1].rate / runs[0].rate:.1f}x")
    finally:
        tansu.stop()
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def describe(run: KafkaRun, terminals: int) -> str:
    return (
        f"kafka -> rules -> kafka, {run.form} ({terminals:,} terminals, {run.samples:,} samples in {run.records:,} "
        f"records): {run.rate:,.0f} samples/s including start-up ({run.start_up:.2f} s to the first batch judged), "
        f"{run.samples / run.cpu:,.0f} per CPU-second, {run.steady:,.0f} samples/s once running; "
        f"consume+decode-only {run.baseline:,.0f} samples/s"
    )


async def kafka_run(settings: Any, stream: Stream, form: str, per_record: int) -> KafkaRun:
    """Produce the stream in ``form``, time a decode-only consumer, then the service from its start."""
    from aiokafka import AIOKafkaConsumer
    from liftwatch.columnar import TelemetryArrays
    from liftwatch.kafka import ensure_topics, make_producer
    from liftwatch.rules import service
    from liftwatch.schema import TelemetryColumns, decode_telemetry
    from prometheus_client import CollectorRegistry

    await ensure_topics(settings)
    records = kafka_records(stream, form, per_record)
    total = len(stream.samples)
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = [
            await producer.send(settings.topic("telemetry"), value, key=key, partition=partition)
            for value, key, partition in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

    def decoded(value: bytes) -> int:
        record = decode_telemetry(value)
        if isinstance(record, TelemetryColumns):
            return TelemetryArrays.from_record(record).samples
        return len(record.samples)

    consumer = AIOKafkaConsumer(
        settings.topic("telemetry"),
        bootstrap_servers=settings.require_kafka(),
        group_id=f"base{settings.rules_group}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    got = 0
    started = time.perf_counter()
    try:
        while got < total:
            batch_map = await consumer.getmany(timeout_ms=200, max_records=50_000)
            for messages in batch_map.values():
                got += sum(decoded(m.value) for m in messages)
    finally:
        await consumer.stop()
    baseline = total / (time.perf_counter() - started)

    registry = CollectorRegistry()
    stop = asyncio.Event()
    started, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(service.serve(settings, stop, registry))
    first: tuple[float, float] | None = None
    while True:
        done = registry.get_sample_value("liftwatch_rules_samples_evaluated_total") or 0
        if first is None and done > 0:
            first = (time.perf_counter(), done)
        if done >= total:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    end, cpu = time.perf_counter(), time.process_time() - cpu
    stop.set()
    await task
    assert first is not None
    steady = (done - first[1]) / (end - first[0]) if done > first[1] else float("nan")
    return KafkaRun(form, len(records), total, end - started, cpu, first[0] - started, steady, baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fleets", default="10000,100000,1000000")
    parser.add_argument("--samples", type=int, default=24_000_000, help="Samples evaluated per fleet size.")
    parser.add_argument("--batch", type=int, default=4_000_000, help="Samples per evaluated batch.")
    parser.add_argument("--reference-samples", type=int, default=100_000)
    parser.add_argument(
        "--overtaken",
        type=int,
        default=0,
        metavar="N",
        help="In every batch, one sample of every N-th terminal arrives in the next batch (out of order).",
    )
    parser.add_argument("--kafka", type=int, default=0, help="Also run the Kafka -> Kafka path with N samples.")
    parser.add_argument("--kafka-terminals", type=int, default=2_000)
    parser.add_argument(
        "--kafka-format",
        choices=[*FORMATS, "both"],
        default="both",
        help="Telemetry records of one message (messages), of many as columns (columns), or one run of each.",
    )
    parser.add_argument("--kafka-per-record", type=int, default=2_000, help="Messages per columns record.")
    parser.add_argument("--skip-engine", action="store_true", help="Only the Kafka -> Kafka runs.")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    fleets = [] if args.skip_engine else [int(f) for f in args.fleets.split(",")]
    if fleets:
        ref_rate, ref_cpu = bench_reference(args.reference_samples, rng)
        print(f"reference (per-sample Python): {ref_rate:,.0f} samples/s ({ref_cpu:,.0f} per CPU-second)")
    for fleet in fleets:
        run = bench_engine(fleet, args.samples, args.batch, rng, args.overtaken)
        per_batch = sorted(run.batch_rates)
        print(
            f"engine, fleet {fleet:>9,}: {run.rate:>13,.0f} samples/s ({run.cpu_rate:,.0f} per CPU-second) over "
            f"{run.samples:,} samples in {len(per_batch)} batches of {max(1, args.batch // fleet) * fleet:,} "
            f"({run.evaluated:,} evaluated, {run.events} events); "
            f"per batch median {statistics.median(per_batch):,.0f}, min {per_batch[0]:,.0f}, max {per_batch[-1]:,.0f}; "
            f"vs reference {run.rate / ref_rate:,.0f}x ({run.cpu_rate / ref_cpu:,.0f}x per CPU-second)"
        )
    if args.kafka:
        formats = list(FORMATS) if args.kafka_format == "both" else [args.kafka_format]
        asyncio.run(bench_kafka(args.kafka, args.kafka_terminals, formats, args.kafka_per_record))


if __name__ == "__main__":
    main()
