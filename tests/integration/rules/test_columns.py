"""The rule engine reads ``telemetry.columns.v1`` records as it reads one record a message.

Against real Kafka (tansu) and PostgreSQL: the same messages sent one a record, packed as columns
(many messages of several terminals a record, no key, as the gateway sends them) and both mixed in
one topic give the same fault events, the same late, duplicate and hole counts; a columns record
whose arrays do not fit together is dead-lettered with its reason and the loop goes on.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from liftwatch.columnar import TelemetryArrays
from liftwatch.config import RulesSettings
from liftwatch.kafka import ensure_topics
from liftwatch.schema import FaultEvent, TelemetryColumns, TelemetryRecord, decode_dead_letter, encode_record

from tests.fixtures.ingest import wait_until
from tests.fixtures.rules import (
    RULES_TERMINAL,
    idle,
    read_faults,
    register_elevator,
    send_columns,
    send_raw,
    send_telemetry,
    telemetry_partition,
    trapped,
)
from tests.integration.rules.test_service import T0, engine_in_process, wait_checkpoint

pytestmark = pytest.mark.integration

Form = Literal["messages", "columns", "mixed"]


def same_partition(prefix: str) -> str:
    """A terminal id whose records share ``RULES_TERMINAL``'s partition (a columns record holds one partition's)."""
    home = telemetry_partition(RULES_TERMINAL)
    return next(f"{prefix}{i}" for i in range(1, 1_000) if telemetry_partition(f"{prefix}{i}") == home)


@dataclasses.dataclass
class Outcome:
    events: list[FaultEvent]
    late: float
    duplicates: float
    holes: float


def stream(second: str, stranger: str) -> list[TelemetryRecord]:
    """Two registered terminals and an unregistered one, interleaved: a trapped passenger raised and
    cleared, a hole that fills (seq 6 before 5), a copy of seq 10 after seq 12, and a buffer numbered
    after the live messages (late: judged in the late lane)."""
    received = int(time.time() * 1000)
    out: list[TelemetryRecord] = []
    for i in range(50):
        state = trapped if i < 40 else idle
        out.append(TelemetryRecord(RULES_TERMINAL, i, received + 10 * i, [state(T0 + 1000 * i)]))
        burst = [idle(T0 + 1000 * i + 100 * k, speed=2.2, door_zone=False, direction="up") for k in range(5)]
        out.append(TelemetryRecord(second, i, received + 10 * i + 1, burst if 20 <= i < 22 else [idle(T0 + 1000 * i)]))
        if i < 3:
            out.append(TelemetryRecord(stranger, i, received + 10 * i + 2, [idle(T0 + 1000 * i)]))
    late = [trapped(T0 - 200_000 + 1000 * k) for k in range(30)]
    out.append(TelemetryRecord(RULES_TERMINAL, 50, received + 600, late))
    out.append(TelemetryRecord(RULES_TERMINAL, 51, received + 610, [idle(T0 + 51_000)]))
    rt1 = [i for i, r in enumerate(out) if r.terminal == RULES_TERMINAL]
    out[rt1[5]], out[rt1[6]] = out[rt1[6]], out[rt1[5]]
    out.insert(rt1[12] + 1, out[rt1[10]])
    return out


async def run(settings: RulesSettings, url: str, messages: list[TelemetryRecord], form: Form) -> Outcome:
    settings = settings.model_copy(
        update={"topic_prefix": f"{settings.topic_prefix}{form}.", "rules_group": f"{settings.rules_group}{form}"}
    )
    await ensure_topics(settings)
    runs = [messages[i : i + 7] for i in range(0, len(messages), 7)]
    if form == "messages":
        await send_telemetry(settings, messages)
    else:
        for k, part in enumerate(runs):
            if form == "mixed" and k % 2:
                await send_telemetry(settings, part)
            else:
                await send_columns(settings, [part])
    # All sent before the engine starts: the holes are judged in gateway receive time, whatever the polls.
    if form == "messages":
        records = len(messages)
    else:
        records = sum(len(part) if form == "mixed" and k % 2 else 1 for k, part in enumerate(runs))
    async with engine_in_process(settings) as registry:
        await wait_checkpoint(url, settings.rules_group, records)
        events = await read_faults(settings, until=1, settle=1.0)

        def value(name: str, labels: dict[str, str] | None = None) -> float:
            return registry.get_sample_value(name, labels or {}) or 0

        return Outcome(
            sorted(events, key=lambda e: e.event_id),
            value("liftwatch_rules_late_samples_total"),
            value("liftwatch_rules_duplicate_messages_total"),
            value("liftwatch_rules_sequence_holes_total", {"outcome": "opened"}),
        )


async def test_messages_sent_as_columns_or_one_a_record_give_the_same_faults(
    rules_settings: RulesSettings, database_url: str
) -> None:
    second, stranger = same_partition("RC"), same_partition("STRANGER")
    register_elevator(database_url, terminal=second, code="31100000000000000091")
    messages = stream(second, stranger)
    one_a_record = await run(rules_settings, database_url, messages, "messages")
    codes = {(e.terminal, e.code.value, e.transition, bool(e.evidence.get("late"))) for e in one_a_record.events}
    assert codes == {
        (RULES_TERMINAL, "trapped_passenger", "raised", False),
        (RULES_TERMINAL, "trapped_passenger", "cleared", False),
        (RULES_TERMINAL, "trapped_passenger", "raised", True),
        (second, "overspeed", "raised", False),
        (second, "overspeed", "cleared", False),
        (stranger, "unregistered_terminal", "raised", False),
    }
    assert (one_a_record.late, one_a_record.duplicates, one_a_record.holes) == (30, 1, 1)
    assert await run(rules_settings, database_url, messages, "columns") == one_a_record
    assert await run(rules_settings, database_url, messages, "mixed") == one_a_record


@pytest.mark.parametrize(
    ("breakage", "detail"),
    [
        ("one sample's time missing", "for 4 samples"),
        ("a terminal listed twice", "a terminal id listed twice"),
        ("a message's seq beyond 64 bits", "beyond 64 bits"),
    ],
)
async def test_a_broken_telemetry_record_is_dead_lettered_and_the_loop_goes_on(
    rules_settings: RulesSettings, breakage: str, detail: str
) -> None:
    received = int(time.time() * 1000)
    messages = [TelemetryRecord(RULES_TERMINAL, i, received, [idle(T0 + 1000 * i)]) for i in range(10)]
    good = TelemetryArrays.from_records(messages[5:]).to_record()
    broken: TelemetryColumns | TelemetryRecord = {
        "one sample's time missing": msgspec.structs.replace(good, ts=good.ts[:-8]),
        "a terminal listed twice": msgspec.structs.replace(good, terminals=[RULES_TERMINAL, RULES_TERMINAL]),
        "a message's seq beyond 64 bits": TelemetryRecord(RULES_TERMINAL, 2**63, received, [idle(T0)]),
    }[breakage]
    await ensure_topics(rules_settings)
    async with engine_in_process(rules_settings) as registry:
        await send_columns(rules_settings, [messages[:5]])
        await send_raw(rules_settings, "telemetry", encode_record(broken), key=RULES_TERMINAL.encode())
        await send_columns(rules_settings, [messages[5:]])

        async def evaluated() -> bool:
            return registry.get_sample_value("liftwatch_rules_samples_evaluated_total") == 10

        await wait_until(evaluated, timeout=30, every=0.05)
        labels = {"source": f"kafka:{rules_settings.topic('telemetry')}", "reason": "schema"}
        assert registry.get_sample_value("liftwatch_dead_letters_total", labels) == 1
    consumer = AIOKafkaConsumer(bootstrap_servers=rules_settings.require_kafka(), auto_offset_reset="earliest")
    await consumer.start()
    try:
        partition = TopicPartition(rules_settings.topic("deadletter"), 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        [letter] = [decode_dead_letter(m.value) for m in (await consumer.getmany(timeout_ms=5_000))[partition]]
    finally:
        await consumer.stop()
    assert (letter.reason, letter.payload) == ("schema", encode_record(broken))
    assert detail in letter.detail  # says what is wrong
