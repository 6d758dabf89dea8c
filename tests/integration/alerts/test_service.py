"""The alert service end to end on tansu, PostgreSQL and a real webhook receiver."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import msgspec
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from liftwatch.alerts.actions_store import apply_action
from liftwatch.alerts.lifecycle import Action
from liftwatch.config import AlertsSettings
from liftwatch.schema import DeadLetter, FaultCode, FaultEvent, decode_dead_letter, encode_record

from tests.fixtures.alerts import (
    Lift,
    Receiver,
    add_webhook,
    eventually,
    fault,
    produce_faults,
    query,
    read_incident_changes,
    running_service,
)

pytestmark = pytest.mark.integration

F = FaultCode


async def test_faults_to_incidents_kafka_and_webhooks_exactly_once_across_restart(
    alerts_settings: AlertsSettings, database_url: str, lifts: list[Lift], receiver: Receiver
) -> None:
    firm_a = add_webhook(database_url, "firm A", "maintenance_firm", f"{receiver.url}/firm-a", firm_id=lifts[0].firm_id)
    add_webhook(database_url, "firm B", "maintenance_firm", f"{receiver.url}/firm-b", firm_id=lifts[1].firm_id)
    add_webhook(database_url, "centre", "emergency_centre", f"{receiver.url}/centre", secret=None)
    assert firm_a
    t = int(time.time() * 1000) - 120_000
    events: list[FaultEvent | bytes] = [
        # Hostile input: each dead-lettered with its reason, and the rest goes on.
        b"\xc1not msgpack at all",
        b"\x81\xa1a\x01",  # msgpack, but not a fault record
        encode_record(msgspec.structs.replace(fault(lifts[3], F.ALARM_BUTTON, since_ms=t), event_id="action:op1:x")),
        encode_record(fault(lifts[3], F.ALARM_BUTTON, since_ms=t, at_ms=2**62)),  # used to stall the batch
        # Evidence nested 10,000 deep: refused whichever way the decoder reports it.
        _deeply_nested(fault(lifts[3], F.ALARM_BUTTON, since_ms=t)),
        encode_record(msgspec.structs.replace(fault(lifts[3], F.ALARM_BUTTON, since_ms=t), evidence={"x": "\x00"})),
        # Binary evidence (msgpack has it, jsonb has not): used to stall the consumer for good.
        encode_record(msgspec.structs.replace(fault(lifts[3], F.ALARM_BUTTON, since_ms=t), evidence={"x": b"\x01"})),
        fault(lifts[0], F.TRAPPED_PASSENGER, since_ms=t),
        fault(lifts[0], F.TRAPPED_PASSENGER, since_ms=t),  # the same event again (producer retry)
        fault(lifts[0], F.TRAPPED_PASSENGER, "cleared", since_ms=t + 30_000),  # never closes a critical one
        fault(lifts[1], F.DOOR_HELD_OPEN, since_ms=t),
        # Chattering: raise, clear, raise within 60 s -> one incident, flagged.
        fault(lifts[2], F.SAFETY_CIRCUIT_OPEN, since_ms=t),
        fault(lifts[2], F.SAFETY_CIRCUIT_OPEN, "cleared", since_ms=t + 10_000),
        fault(lifts[2], F.SAFETY_CIRCUIT_OPEN, since_ms=t + 20_000),
        fault(lifts[2], F.SAFETY_CIRCUIT_OPEN, "cleared", since_ms=t + 30_000),
        fault("stray-9", F.UNREGISTERED_TERMINAL, since_ms=t),
        fault(lifts[3], F.POWER_FAILURE, "cleared", since_ms=t),  # clear of nothing open
    ]
    await produce_faults(alerts_settings, events)

    async with running_service(alerts_settings) as registry:
        await eventually(lambda: _count_events(database_url, 8), what="8 incident events")
        await eventually(lambda: _async(len(receiver.requests) >= 4), what="webhooks")
        trapped_id = (await query(database_url, "SELECT id FROM incidents WHERE code = 'trapped_passenger'"))[0]["id"]
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await apply_action(conn, trapped_id, Action.ACKNOWLEDGE, actor="op1", note="on it", now=_now())
            await conn.commit()
        await eventually(lambda: _async(len(receiver.bodies("/centre")) >= 3), what="acknowledgement webhook")
        assert registry.get_sample_value("liftwatch_alerts_fault_events_total", {"outcome": "duplicate"}) == 1
        assert registry.get_sample_value("liftwatch_alerts_fault_events_total", {"outcome": "orphan_clear"}) == 1
        source = f"kafka:{alerts_settings.topic('faults')}"
        for reason, count in (("undecodable", 2), ("schema", 4), ("future_timestamp", 1)):
            refused = {"source": source, "reason": reason}
            assert registry.get_sample_value("liftwatch_dead_letters_total", refused) == count, reason
        assert registry.get_sample_value("liftwatch_alerts_open_incidents", {"severity": "critical"}) == 1

    incidents = await query(database_url, "SELECT * FROM incidents ORDER BY id")
    by_code = {row["code"]: row for row in incidents}
    assert len(incidents) == 4
    trapped = by_code["trapped_passenger"]
    assert trapped["status"] == "acknowledged" and trapped["condition_cleared_at"] is not None
    assert trapped["registration_code"] == lifts[0].registration_code
    assert trapped["maintainer_id"] == lifts[0].firm_id and trapped["district"] == lifts[0].district
    chattering = by_code["safety_circuit_open"]
    assert chattering["chattering"] and chattering["occurrences"] == 2
    stray = by_code["unregistered_terminal"]
    assert stray["registration_code"] is None and stray["terminal_id"] == "stray-9"

    # Routing: critical to the firm and the centre, the minor door fault to firm B only.
    centre = receiver.bodies("/centre")
    assert [(b["code"], b["kind"]) for b in sorted(centre, key=lambda b: b["change_id"])] == [
        ("trapped_passenger", "opened"),
        ("trapped_passenger", "condition_cleared"),
        ("trapped_passenger", "acknowledged"),
    ]
    assert centre[0]["rescue_code"] == lifts[0].rescue_code and centre[0]["address"]
    assert centre[0]["use_unit"] == "Unit 1" and centre[0]["maintainer"] == lifts[0].firm
    assert {b["code"] for b in receiver.bodies("/firm-b")} == {"door_held_open"}
    assert receiver.verify("hook-secret", "/firm-a")
    assert receiver.verify("fallback-secret", "/centre")
    sent_before = sorted(r["headers"]["x-liftwatch-delivery"] for r in receiver.requests)
    assert len(sent_before) == len(set(sent_before))

    # Restart and replay every fault event: no new incident, change or notification.
    await produce_faults(alerts_settings, events)
    async with running_service(alerts_settings) as registry:
        await eventually(
            lambda: _async(
                registry.get_sample_value("liftwatch_alerts_fault_events_total", {"outcome": "duplicate"}) == 9
            ),
            what="replayed events recognised",
        )
    assert len(await query(database_url, "SELECT id FROM incidents")) == 4
    changes = await read_incident_changes(alerts_settings, 9)
    ids = [c.change_id for c in changes]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 9
    assert changes[-1].kind == "acknowledged" and changes[-1].actor == "op1" and changes[-1].note == "on it"
    assert {c.maintainer for c in changes if c.code == "trapped_passenger"} == {lifts[0].firm}
    assert sorted(r["headers"]["x-liftwatch-delivery"] for r in receiver.requests) == sent_before
    # The refused records went to the dead-letter topic with their reasons, once per reading.
    consumer = AIOKafkaConsumer(
        alerts_settings.topic("deadletter"), bootstrap_servers=alerts_settings.kafka_bootstrap,
        auto_offset_reset="earliest",
    )  # fmt: skip
    await consumer.start()
    letters: list[DeadLetter] = []
    try:

        async def read() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            letters.extend(decode_dead_letter(m.value) for messages in batch.values() for m in messages)
            return len(letters) >= 14

        await eventually(read, what="dead letters")
    finally:
        await consumer.stop()
    assert len(letters) == 14
    assert sorted(letter.reason for letter in letters) == sorted(["undecodable", "undecodable", "schema", "schema",
        "schema", "schema", "future_timestamp"] * 2)  # fmt: skip
    # Which input became which letter; the decoder's and the database's own words are not asserted.
    nested, untranslatable = events[4], events[5]
    assert isinstance(nested, bytes) and isinstance(untranslatable, bytes)
    assert any(letter.payload and nested.startswith(letter.payload) for letter in letters)  # cut to 4 KiB
    assert any(letter.payload == untranslatable and letter.reason == "schema" for letter in letters)
    assert any(letter.payload.startswith(b"\xc1not") for letter in letters)
    assert any("evidence is not JSON" in letter.detail for letter in letters)


def _deeply_nested(event: FaultEvent) -> bytes:
    """The event's msgpack with its evidence value nested 10,000 arrays deep."""
    flat = encode_record(event)
    value = b"\xa5speed\xcb" + bytes(8)  # "speed": 0.0
    assert value in flat
    return flat.replace(value, b"\xa5speed" + b"\x91" * 10_000 + b"\xc0")


def _now() -> datetime:
    return datetime.now(UTC)


async def _async(value: object) -> object:
    return value


async def _count_events(url: str, count: int) -> bool:
    rows = await query(url, "SELECT count(*) AS n FROM incident_events")
    return bool(rows[0]["n"] >= count)
