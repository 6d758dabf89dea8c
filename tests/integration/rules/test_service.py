"""The rule engine process against real Kafka (tansu) and PostgreSQL: restarts, bad input, replay."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from liftwatch.config import RulesSettings
from liftwatch.rules import service, watermark
from liftwatch.schema import TelemetryRecord, encode_record
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from tests.fixtures.ingest import Process, wait_until
from tests.fixtures.rules import (
    RULES_ELEVATOR,
    RULES_TERMINAL,
    idle,
    read_faults,
    register_elevator,
    send_raw,
    send_telemetry,
    trapped,
)

pytestmark = pytest.mark.integration

T0 = (int(time.time()) - 3600) * 1000  # event time an hour ago: event time, not the clock, drives the rules


def record(seq: int, *samples: object, terminal: str = RULES_TERMINAL) -> TelemetryRecord:
    return TelemetryRecord(terminal=terminal, seq=seq, received_ms=int(time.time() * 1000), samples=list(samples))  # type: ignore[arg-type]


async def metric_reaches(
    registry: CollectorRegistry, name: str, check: Callable[[float], bool], timeout: float = 10
) -> None:
    """Wait until ``check`` holds for the metric's value (0 while it has none)."""

    async def reached() -> bool:
        return check(registry.get_sample_value(name) or 0)

    await wait_until(reached, timeout=timeout, every=0.05)


def checkpointed_offset(url: str, group: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM rules_checkpoints WHERE consumer_group = %s", (group,)
        ).fetchone()
    return int(row[0]) if row else 0


async def wait_checkpoint(url: str, group: str, offset: int, timeout: float = 60) -> None:
    async def reached() -> bool:
        return checkpointed_offset(url, group) >= offset

    await wait_until(reached, timeout=timeout, every=0.1)


async def test_engine_killed_mid_trapped_timer_raises_exactly_once(
    rules_env: dict[str, str],
    rules_settings: RulesSettings,
    database_url: str,
    process_factory: Callable[[str, dict[str, str]], Process],
) -> None:
    group = rules_env["LIFTWATCH_RULES_GROUP"]
    engine = process_factory("rules", rules_env)
    engine.start()
    # 0..10 s of a passenger trapped between floors, then the engine dies (timer at 10 of 20 s).
    await send_telemetry(rules_settings, [record(i, trapped(T0 + 1000 * i)) for i in range(11)])
    await wait_checkpoint(database_url, group, 11)
    engine.kill()
    assert not await read_faults(rules_settings, until=1, timeout=0.5, settle=0)

    engine = process_factory("rules", rules_env)
    engine.start()
    await send_telemetry(rules_settings, [record(i, trapped(T0 + 1000 * i)) for i in range(11, 31)])
    await wait_checkpoint(database_url, group, 31)
    events = await read_faults(rules_settings, until=1, settle=1.5)
    raised = [e for e in events if e.code == "trapped_passenger" and e.transition == "raised"]
    assert len(raised) == 1, events
    assert (raised[0].since_ms, raised[0].at_ms) == (T0, T0 + 20_000)
    assert raised[0].registration_code == RULES_ELEVATOR
    assert raised[0].event_id == f"{RULES_TERMINAL}:trapped_passenger:raised:{T0}"
    assert raised[0].evidence["variant"] == "between_floors"


@contextlib.asynccontextmanager
async def engine_in_process(settings: RulesSettings) -> AsyncIterator[CollectorRegistry]:
    registry = CollectorRegistry()
    stop = asyncio.Event()
    task = asyncio.create_task(service.serve(settings, stop, registry))
    try:
        yield registry
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_bad_records_are_dead_lettered_and_good_ones_around_them_evaluated(
    rules_settings: RulesSettings, database_url: str
) -> None:
    async with engine_in_process(rules_settings) as registry:
        await send_telemetry(rules_settings, [record(0, idle(T0))])
        await send_raw(rules_settings, "telemetry", b"\xc1 not msgpack", key=RULES_TERMINAL.encode())
        overspeed = [idle(T0 + 1000 + 300 * i, speed=2.2, door_zone=False, direction="up") for i in range(4)]
        await send_telemetry(
            rules_settings,
            [
                record(1, *overspeed),
                record(2, *(idle(T0 + 3000 + 1000 * i) for i in range(10))),
                record(0, idle(T0), terminal="STRANGER"),
                record(1, idle(T0 + 9000), terminal="STRANGER"),
            ],
        )
        events = await read_faults(rules_settings, until=2, settle=0.5)
        codes = sorted((e.code.value, e.transition, e.terminal) for e in events)
        assert ("overspeed", "raised", RULES_TERMINAL) in codes
        assert ("unregistered_terminal", "raised", "STRANGER") in codes
        hit = next(e for e in events if e.code == "overspeed")
        assert hit.since_ms == T0 + 1000 and hit.at_ms == T0 + 1600  # >= 0.5 s and >= 2 samples
        assert hit.evidence["speed"] == 2.2 and hit.evidence["limit_mps"] == pytest.approx(1.15 * 1.75)
        labels = {"source": f"kafka:{rules_settings.topic('telemetry')}", "reason": "undecodable"}
        assert registry.get_sample_value("liftwatch_dead_letters_total", labels) == 1
        assert (registry.get_sample_value("liftwatch_rules_samples_evaluated_total") or 0) > 0
        assert (
            registry.get_sample_value("liftwatch_rules_events_total", {"code": "overspeed", "transition": "raised"})
            == 1
        )


def test_replay_prints_events_and_counts_and_takes_overrides(
    database_url: str, rules_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from liftwatch.rules.cli import app

    with psycopg.connect(database_url) as conn:
        for i in range(40):
            s = trapped(T0 + 1000 * i) if i < 30 else idle(T0 + 1000 * i)
            conn.execute(
                "INSERT INTO telemetry (terminal_id, ts, seq, idx, mode, floor, door_zone, direction, speed, door, "
                "occupied, safety_circuit, alarm_button, power, limit_up, limit_down, received_at) VALUES (%s, "
                "to_timestamp(%s / 1000.0), %s, 0, %s, %s, %s, %s, %s, %s, %s, %s, false, true, false, false, now())",
                (
                    RULES_TERMINAL,
                    s.ts,
                    i,
                    s.mode,
                    s.floor,
                    s.door_zone,
                    s.direction,
                    s.speed,
                    s.door,
                    s.occupied,
                    s.safety_circuit,
                ),
            )
    monkeypatch.setenv("LIFTWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("LIFTWATCH_SITE_TIMEZONE", "UTC")
    start = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(T0 / 1000 - 60))
    end = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(T0 / 1000 + 120))
    runner = CliRunner()
    result = runner.invoke(app, ["replay", "--from", start, "--to", end])
    assert result.exit_code == 0, result.output
    assert "trapped_passenger" in result.output and "raised" in result.output
    assert "40 samples" in result.output
    stricter = runner.invoke(
        app, ["replay", "--from", start, "--to", end, "--set", "trapped_passenger.between_floors_hold_s=45"]
    )
    assert stricter.exit_code == 0, stricter.output
    assert "trapped_passenger" not in stricter.output
    bad = runner.invoke(app, ["replay", "--from", start, "--to", end, "--set", "trapped_passenger.hold=3"])
    assert bad.exit_code != 0
    assert "hold" in bad.output


async def test_rebalance_moves_terminal_state_between_engines(rules_settings: RulesSettings, database_url: str) -> None:
    from tests.fixtures.rules import register_elevator

    terminals = [f"RB{i}" for i in range(8)]  # keys spread over the 8 telemetry partitions
    for i, terminal in enumerate(terminals):
        register_elevator(database_url, terminal, f"311000000000000001{i:02d}")

    def round_(start: int, stop: int) -> list[TelemetryRecord]:
        return [record(i, trapped(T0 + 1000 * i), terminal=t) for i in range(start, stop) for t in terminals]

    async with engine_in_process(rules_settings):
        await send_telemetry(rules_settings, round_(0, 11))
        await wait_checkpoint(database_url, rules_settings.rules_group, 11 * len(terminals))
        # A second engine joins the group: partitions (and their terminals' timers) move to it.
        async with engine_in_process(rules_settings) as second:

            async def assigned() -> bool:
                return (second.get_sample_value("liftwatch_rules_terminals") or 0) > 0

            await send_telemetry(rules_settings, round_(11, 31))
            await wait_until(assigned, timeout=60, every=0.1)
            await wait_checkpoint(database_url, rules_settings.rules_group, 31 * len(terminals))
            events = await read_faults(rules_settings, until=len(terminals), settle=1.0)
    raised = sorted((e.terminal, e.since_ms, e.at_ms) for e in events if e.code == "trapped_passenger")
    assert raised == [(t, T0, T0 + 20_000) for t in terminals]


async def test_samples_waiting_for_one_more_batch_are_evaluated_when_the_stream_pauses(
    rules_settings: RulesSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every partly passed batch waits for the next one, as a large batch does under load.
    monkeypatch.setattr(watermark, "DEFER_MIN_SAMPLES", 0)
    stream = [record(i, trapped(T0 + 1000 * i)) for i in range(31)]
    async with engine_in_process(rules_settings) as registry:
        await send_telemetry(rules_settings, stream)
        # No batch follows: the messages arrived in sequence, so all 31 samples are judged (once a
        # batch waited, on an empty poll), the raise at 20 s included.
        events = await read_faults(rules_settings, until=1, settle=0.5)
        assert (registry.get_sample_value("liftwatch_rules_samples_evaluated_total") or 0) == 31
    raised = [(e.since_ms, e.at_ms) for e in events if e.code == "trapped_passenger" and e.transition == "raised"]
    assert raised == [(T0, T0 + 20_000)]
    # That evaluation was checkpointed although no offset moved: a restart does not raise again.
    async with engine_in_process(rules_settings) as registry:
        await send_telemetry(rules_settings, [record(31, trapped(T0 + 31_000))])
        await wait_checkpoint(database_url, rules_settings.rules_group, 32)
        events = await read_faults(rules_settings, until=2, timeout=3, settle=0.5)
    assert [e.transition for e in events if e.code == "trapped_passenger"] == ["raised"]


async def test_a_terminal_registered_just_before_it_speaks_is_judged_with_its_elevator(
    rules_settings: RulesSettings, database_url: str
) -> None:
    async with engine_in_process(rules_settings) as registry:
        # The engine is running (registry loaded) when the installer registers a new elevator; its
        # terminal speaks at once: it must be looked up, not declared unregistered.
        register_elevator(database_url, terminal="NEW1", code="31100000000000000077")
        await send_telemetry(rules_settings, [record(i, trapped(T0 + 1000 * i), terminal="NEW1") for i in range(25)])
        events = await read_faults(rules_settings, until=1, settle=1.0)
        assert (registry.get_sample_value("liftwatch_rules_late_samples_total") or 0) == 0
    assert [(e.code, e.transition, e.registration_code) for e in events] == [
        ("trapped_passenger", "raised", "31100000000000000077")
    ]


async def test_a_registry_change_reaches_the_running_engine_without_a_reload_period(
    rules_settings: RulesSettings, database_url: str
) -> None:
    settings = rules_settings.model_copy(update={"rules_registry_refresh_s": 3600.0})
    async with engine_in_process(settings) as registry:
        # The terminal is known (rated 1.75 m/s): 2.0 m/s is within 115 %.
        await send_telemetry(settings, [record(0, idle(T0))])
        await metric_reaches(registry, "liftwatch_rules_samples_evaluated_total", lambda v: v >= 1, timeout=30)
        await metric_reaches(registry, "liftwatch_rules_registry_listening", lambda v: v == 1)
        pushes = registry.get_sample_value("liftwatch_rules_registry_pushes_total") or 0
        with psycopg.connect(database_url) as conn:
            conn.execute("UPDATE elevators SET rated_speed = 1.0 WHERE registration_code = %s", (RULES_ELEVATOR,))
            conn.execute("UPDATE terminals SET last_seen_at = now()")  # the writer's updates wake nobody
        await metric_reaches(registry, "liftwatch_rules_registry_pushes_total", lambda v: v > pushes)
        moving = [idle(T0 + 1000 + 100 * i, speed=2.0, door_zone=False, direction="up") for i in range(10)]
        await send_telemetry(settings, [record(1, *moving)])
        events = await read_faults(settings, until=1, settle=1.0)
        assert registry.get_sample_value("liftwatch_rules_registry_pushes_total") == pushes + 1
    assert [(e.code, e.transition, e.evidence["limit_mps"]) for e in events] == [("overspeed", "raised", 1.15)]


async def test_a_silent_terminals_hole_is_given_up_while_a_backlog_is_consumed(
    rules_settings: RulesSettings, database_url: str
) -> None:
    register_elevator(database_url, terminal="BUSY1", code="31100000000000000078")
    settings = rules_settings.model_copy(update={"allowed_lateness_ms": 300, "rules_batch_max": 1_000})
    pressed = [idle(T0 + 1000 + 500 * i, alarm_button=True) for i in range(8)]  # 3.5 s of alarm button
    # seq 1 never comes: seq 2 (the alarm) waits behind the hole, and the terminal goes silent.
    await send_telemetry(settings, [record(0, idle(T0)), record(2, *pressed)])
    # Then a backlog of another terminal, received by the gateway over the following 20 s (1 ms
    # apart): the engine works through it batch by batch, never polling empty; once it has read
    # records received more than the allowed lateness after the hole was seen, the silent
    # terminal's hole must be given up, not once the backlog is done.
    backlog = 20_000
    received = int(time.time() * 1000)
    producer = AIOKafkaProducer(bootstrap_servers=settings.require_kafka(), acks="all", linger_ms=20)
    await producer.start()
    try:
        sent = [
            await producer.send(
                settings.topic("telemetry"),
                encode_record(
                    TelemetryRecord(terminal="BUSY1", seq=i, received_ms=received + i, samples=[idle(T0 + 100 * i)])
                ),
                key=b"BUSY1",
            )
            for i in range(backlog)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    async with engine_in_process(settings) as registry:

        async def judged() -> bool:
            value = registry.get_sample_value(
                "liftwatch_rules_events_total", {"code": "alarm_button", "transition": "raised"}
            )
            return value == 1

        await wait_until(judged, timeout=60, every=0.005)
        evaluated_then = registry.get_sample_value("liftwatch_rules_samples_evaluated_total") or 0
        assert evaluated_then < backlog  # judged while the backlog was still being consumed
        assert (registry.get_sample_value("liftwatch_rules_late_samples_total") or 0) == 0


async def test_a_hole_that_filled_in_receive_time_is_not_late_when_the_engine_catches_up_later(
    rules_settings: RulesSettings, database_url: str
) -> None:
    register_elevator(database_url, terminal="BUSY1", code="31100000000000000068")
    settings = rules_settings.model_copy(update={"rules_batch_max": 500})
    # Seq 2 overtook seq 1 by a few hundred records of another terminal, received within 5 s of it:
    # a hole that filled in time. The engine was down meanwhile and reads all this as a backlog.
    filler = [record(i, idle(T0 + 100 * i), terminal="BUSY1") for i in range(2_000)]
    await send_telemetry(settings, [record(0, idle(T0)), record(2, idle(T0 + 2_000)), *filler])
    await send_telemetry(settings, [record(1, idle(T0 + 1_000))])
    await asyncio.sleep(6)  # the engine comes back more than the allowed lateness later
    async with engine_in_process(settings) as registry:
        await wait_checkpoint(database_url, settings.rules_group, 2_003)
        # Whether seq 1 is late depends on the partition order and the gateway's receive times,
        # not on when the engine happened to read it.
        assert (registry.get_sample_value("liftwatch_rules_late_samples_total") or 0) == 0
        assert registry.get_sample_value("liftwatch_rules_samples_evaluated_total") == 2_003


async def test_registry_notifications_of_another_schema_trigger_no_reload(
    rules_settings: RulesSettings, database_url: str
) -> None:
    settings = rules_settings.model_copy(update={"rules_registry_refresh_s": 3600.0})
    async with engine_in_process(settings) as registry:
        await metric_reaches(registry, "liftwatch_rules_registry_listening", lambda v: v == 1)
        pushes = registry.get_sample_value("liftwatch_rules_registry_pushes_total") or 0
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify('liftwatch_registry', 'another_platform')")
            conn.execute("SELECT pg_notify('liftwatch_registry', current_schema())")

        async def pushed() -> bool:
            return (registry.get_sample_value("liftwatch_rules_registry_pushes_total") or 0) > pushes

        await wait_until(pushed, timeout=10, every=0.05)
        await asyncio.sleep(0.5)
        assert registry.get_sample_value("liftwatch_rules_registry_pushes_total") == pushes + 1


async def test_an_unknown_terminal_waits_for_its_look_up_while_the_database_is_away(
    rules_settings: RulesSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = service.load_registry
    failures: list[list[str]] = []
    loads = []
    loaded = asyncio.Event()

    async def flaky(pool: object, terminals: list[str] | None = None) -> object:
        # Started with the database up; then away for every reload and for the first three look-ups.
        if terminals is None and not loads:
            loads.append(1)
            found = await real(pool, terminals)  # type: ignore[arg-type]
            loaded.set()
            return found
        if terminals is None or len(failures) < 3:
            if terminals is not None:
                failures.append(terminals)
            raise psycopg.OperationalError("connection refused")
        return await real(pool, terminals)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "load_registry", flaky)
    monkeypatch.setattr(service, "RETRY_MIN_S", 0.05)
    async with engine_in_process(rules_settings) as registry:
        await metric_reaches(registry, "liftwatch_rules_registry_listening", lambda v: v == 1)
        # The start-up read runs beside the group join: registered before it has read, NEW2 would
        # be in the registry from the start and never looked up (seen once under a loaded suite).
        await asyncio.wait_for(loaded.wait(), 30)
        register_elevator(database_url, terminal="NEW2", code="31100000000000000066")
        await send_telemetry(rules_settings, [record(i, trapped(T0 + 1000 * i), terminal="NEW2") for i in range(25)])
        events = await read_faults(rules_settings, until=1, settle=1.0)
        assert registry.get_sample_value("liftwatch_rules_registry_lookups_total") == 1
    assert failures == [["NEW2"]] * 3
    assert [(e.code, e.transition, e.registration_code) for e in events] == [
        ("trapped_passenger", "raised", "31100000000000000066")
    ]


async def test_a_hole_restored_from_a_checkpoint_waits_for_the_records_behind_it(
    rules_settings: RulesSettings, database_url: str
) -> None:
    # Seq 2 overtook seq 1, which the gateway received within the allowed lateness: the engine stops
    # (checkpointing the open hole) before it reads seq 1, and comes back after more than 5 s.
    async with engine_in_process(rules_settings):
        await send_telemetry(rules_settings, [record(0, idle(T0)), record(2, idle(T0 + 2_000))])
        await wait_checkpoint(database_url, rules_settings.rules_group, 2)
    await send_telemetry(rules_settings, [record(1, idle(T0 + 1_000))])
    await asyncio.sleep(6)
    async with engine_in_process(rules_settings) as registry:
        await wait_checkpoint(database_url, rules_settings.rules_group, 3)
        # The restored hole is not given up by the wall clock before the engine has read what follows.
        assert (registry.get_sample_value("liftwatch_rules_late_samples_total") or 0) == 0
        assert registry.get_sample_value("liftwatch_rules_samples_evaluated_total") == 2


async def test_a_hole_restored_from_a_checkpoint_is_given_up_when_nothing_follows(
    rules_settings: RulesSettings, database_url: str
) -> None:
    async with engine_in_process(rules_settings):
        await send_telemetry(rules_settings, [record(0, idle(T0)), record(2, idle(T0 + 2_000))])
        await wait_checkpoint(database_url, rules_settings.rules_group, 2)
    # The terminal went silent for good: after a restart its held sample is judged all the same.
    async with engine_in_process(rules_settings) as registry:

        async def judged() -> bool:
            return registry.get_sample_value("liftwatch_rules_samples_evaluated_total") == 1

        await wait_until(judged, timeout=15, every=0.1)


async def test_messages_racing_into_the_topic_are_judged_in_sequence_order(rules_settings: RulesSettings) -> None:
    # What two gateways racing a terminal's messages into its partition leave in the topic: some
    # messages after their successor. The engine holds the successor until the hole fills.
    stream = [record(i, trapped(T0 + 1000 * i)) for i in range(40)]
    for i in range(3, 37, 6):
        stream[i], stream[i + 1] = stream[i + 1], stream[i]
    async with engine_in_process(rules_settings) as registry:
        await send_telemetry(rules_settings, stream)
        events = await read_faults(rules_settings, until=1, settle=1.0)
        assert registry.get_sample_value("liftwatch_rules_sequence_holes_total", {"outcome": "opened"}) == 6
        assert (registry.get_sample_value("liftwatch_rules_sequence_holes_total", {"outcome": "given_up"}) or 0) == 0
        assert (registry.get_sample_value("liftwatch_rules_late_samples_total") or 0) == 0
        assert registry.get_sample_value("liftwatch_rules_samples_evaluated_total") == 40
    assert [(e.code, e.transition, e.since_ms, e.at_ms) for e in events] == [
        ("trapped_passenger", "raised", T0, T0 + 20_000)
    ]


async def test_a_registry_change_written_from_another_search_path_still_reaches_the_engine(
    rules_settings: RulesSettings, database_url: str, pg_database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
    assert row is not None
    schema = row[0]
    async with engine_in_process(rules_settings) as registry:
        await metric_reaches(registry, "liftwatch_rules_registry_listening", lambda v: v == 1)
        pushes = registry.get_sample_value("liftwatch_rules_registry_pushes_total") or 0
        # A session whose search_path is the database default writes the table by its qualified name.
        with psycopg.connect(pg_database_url) as conn:
            conn.execute(
                f'UPDATE "{schema}".elevators SET rated_speed = 1.0 WHERE registration_code = %s', (RULES_ELEVATOR,)
            )
        await metric_reaches(registry, "liftwatch_rules_registry_pushes_total", lambda v: v > pushes)


async def test_a_silent_terminals_hole_is_given_up_when_the_broker_never_says_caught_up(
    rules_settings: RulesSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tansu's end offsets can lag behind what a fetch returned: the engine must not depend on them to
    # judge a silent terminal's held samples once nothing has been read for the allowed lateness.
    real = service.RulesService._update_lag

    def never_caught_up(self: service.RulesService) -> None:
        real(self)
        self.caught_up = False

    monkeypatch.setattr(service.RulesService, "_update_lag", never_caught_up)
    settings = rules_settings.model_copy(update={"allowed_lateness_ms": 500})
    async with engine_in_process(settings) as registry:
        # seq 1 never comes; seq 2 waits behind the hole and the terminal goes silent.
        await send_telemetry(settings, [record(0, idle(T0)), record(2, idle(T0 + 2_000))])
        await metric_reaches(registry, "liftwatch_rules_samples_evaluated_total", lambda v: v >= 2, timeout=30)
        assert (registry.get_sample_value("liftwatch_rules_late_samples_total") or 0) == 0


async def test_an_assignment_without_a_revocation_resumes_where_the_state_is(
    rules_settings: RulesSettings, database_url: str
) -> None:
    """aiokafka may assign partitions again without revoking them first (a join whose result was no
    longer active), the consumer's positions reset to the committed offsets, which the rules never
    commit: reading must resume where the engine's state is, not at the partition's start (every
    record a duplicate), and a partition lost meanwhile must be forgotten, not checkpointed."""
    registry = CollectorRegistry()
    engine = service.RulesService(rules_settings, registry)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        await send_telemetry(rules_settings, [record(i, idle(T0 + 1000 * i)) for i in range(20)])
        await metric_reaches(registry, "liftwatch_rules_batch_samples_sum", lambda v: v >= 20, timeout=30)
        assert engine.consumer is not None
        held = sorted(engine.consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        await engine.consumer.seek_to_beginning(*held)  # what the reset does
        await engine.assigned(held)
        await send_telemetry(rules_settings, [record(20, idle(T0 + 20_000))])
        await metric_reaches(registry, "liftwatch_rules_batch_samples_sum", lambda v: v >= 21, timeout=30)
        await asyncio.sleep(0.5)  # a re-read from the start would have come by now
        assert (registry.get_sample_value("liftwatch_rules_duplicate_messages_total") or 0) == 0
        assert registry.get_sample_value("liftwatch_rules_batch_samples_sum") == 21
        # A partition lost meanwhile (not in the next assignment) is forgotten, not kept.
        telemetry = [tp for tp in held if tp.topic == engine.telemetry_topic]
        await engine.assigned([tp for tp in held if tp != telemetry[0]])
        assert telemetry[0].partition not in engine.partitions
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
