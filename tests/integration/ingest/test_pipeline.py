"""End to end through real Mosquitto, tansu and PostgreSQL: every accepted sample stored once."""

from __future__ import annotations

import time
from collections import Counter

import psycopg
import pytest
from liftwatch.config import GatewaySettings, WriterSettings
from liftwatch.ingest import gateway, writer
from liftwatch.presence import last_seen_sql
from liftwatch.schema import DeadLetterReason, decode_status_record

from tests.fixtures.ingest import (
    gateway_subscribed,
    publisher,
    read_records,
    read_topic,
    running,
    scalar,
    telemetry_payload,
    wait_until,
)

pytestmark = pytest.mark.integration


async def test_n_samples_in_n_rows_out(
    gateway_settings: GatewaySettings, writer_settings: WriterSettings, database_url: str
) -> None:
    terminals, messages, per_message = 5, 40, 3
    expected = terminals * messages * per_message
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("INSERT INTO terminals (terminal_id) VALUES ('T0')")
        await conn.commit()
    async with running(writer.serve, writer_settings), running(gateway.serve, gateway_settings) as registry:
        await gateway_subscribed(registry)
        async with publisher(str(gateway_settings.mqtt_url)) as pub:
            for seq in range(messages):
                for t in range(terminals):
                    terminal = f"T{t}"
                    topic = gateway_settings.mqtt_topic(f"lift/v1/{terminal}/telemetry")
                    pub.publish(topic, telemetry_payload(terminal, seq, per_message))
            pub.publish(gateway_settings.mqtt_topic("lift/v1/T0/status"), b"online")
            pub.publish(gateway_settings.mqtt_topic("lift/v1/T1/status"), b'{"v": 1, "status": "offline"}')
            await pub.wait_below(1)

        async def all_stored() -> bool:
            return bool(await scalar(database_url, "SELECT count(*) FROM telemetry") == expected)

        await wait_until(all_stored)
    assert registry.get_sample_value("liftwatch_gateway_samples_out_total") == expected
    distinct = await scalar(database_url, "SELECT count(DISTINCT (terminal_id, seq, idx)) FROM telemetry")
    assert distinct == expected
    activity = await scalar(database_url, "SELECT sum(samples) FROM terminal_activity")
    assert activity == expected
    last_seen = await scalar(database_url, "SELECT last_seen_at FROM terminals WHERE terminal_id = 'T0'")
    latest = f"SELECT {last_seen_sql('max(received_at)')} FROM telemetry WHERE terminal_id = 'T0'"
    assert last_seen == await scalar(database_url, latest)
    statuses = await read_records(gateway_settings, "status", 2, decode_status_record)
    assert sorted((s.terminal, s.status) for s in statuses) == [("T0", "online"), ("T1", "offline")]


async def test_mixed_good_and_bad_messages(
    gateway_settings: GatewaySettings, writer_settings: WriterSettings, database_url: str
) -> None:
    now = int(time.time() * 1000)
    root = gateway_settings.mqtt_topic_root
    good = [(f"{root}lift/v1/G{i}/telemetry", telemetry_payload(f"G{i}", 1, 2, now)) for i in range(10)]
    bad = [
        (f"{root}lift/v1/B1/telemetry", b"\x00not json", DeadLetterReason.UNDECODABLE),
        (f"{root}lift/v1/B2/telemetry", b'{"v": 1, "terminal": "B2"}', DeadLetterReason.SCHEMA),
        (f"{root}lift/v1/B3/telemetry", telemetry_payload("OTHER", 1, 1, now), DeadLetterReason.TOPIC_MISMATCH),
        (f"{root}lift/v1/B4/telemetry", b"[" * 300_000, DeadLetterReason.OVERSIZED),
        (
            f"{root}lift/v1/B5/telemetry",
            telemetry_payload("B5", 1, 1, now + 2 * 86_400_000),
            DeadLetterReason.FUTURE_TIMESTAMP,
        ),
        (f"{root}lift/v1/B6/status", b"sleepy", DeadLetterReason.UNDECODABLE),
    ]
    sent = bad + bad[:4]
    async with running(writer.serve, writer_settings), running(gateway.serve, gateway_settings) as registry:
        await gateway_subscribed(registry)
        async with publisher(str(gateway_settings.mqtt_url)) as pub:
            for (topic, payload), (bad_topic, bad_payload, _) in zip(good, sent, strict=True):
                pub.publish(topic, payload)
                pub.publish(bad_topic, bad_payload)
            await pub.wait_below(1)

        async def stored() -> bool:
            rows = await scalar(database_url, "SELECT count(*) FROM telemetry")
            letters = await scalar(database_url, "SELECT count(*) FROM dead_letters")
            return bool(rows == 20 and letters == 10)

        await wait_until(stored)
    for reason, count in Counter(r for _, _, r in sent).items():
        labels = {"source": "mqtt", "reason": reason.value}
        assert registry.get_sample_value("liftwatch_dead_letters_total", labels) == count, reason
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (
            await conn.execute("SELECT terminal_id, reason FROM dead_letters ORDER BY terminal_id")
        ).fetchall()
    assert sorted(rows) == sorted([(t.split("/")[-2], r.value) for t, _, r in sent])
    letters = await read_topic(gateway_settings, "deadletter", 10)
    assert sorted((d.terminal, d.reason) for d in letters) == sorted((t.split("/")[-2], r) for t, _, r in sent)
