"""The writer against real tansu and PostgreSQL: records the database refuses are dead-lettered, not retried forever."""

from __future__ import annotations

import time

import pytest
from liftwatch.config import WriterSettings
from liftwatch.ingest import writer
from liftwatch.kafka import ensure_topics, make_producer
from liftwatch.schema import TelemetryRecord, encode_record

from tests.fixtures.ingest import running, sample, scalar, wait_until

pytestmark = pytest.mark.integration


async def test_a_record_the_database_refuses_is_dead_lettered_and_the_rest_stored(
    writer_settings: WriterSettings, database_url: str
) -> None:
    now = int(time.time() * 1000)
    await ensure_topics(writer_settings)
    producer = make_producer(writer_settings)
    await producer.start()
    try:
        for terminal in ("W1", "nul\x00byte", "W2"):  # PostgreSQL text cannot hold NUL
            record = TelemetryRecord(terminal=terminal, seq=1, received_ms=now, samples=[sample(now), sample(now + 1)])
            await producer.send_and_wait(writer_settings.topic("telemetry"), encode_record(record), partition=0)
        await producer.send_and_wait(writer_settings.topic("telemetry"), b"\x93garbage", partition=0)
    finally:
        await producer.stop()

    async with running(writer.serve, writer_settings) as registry:

        async def done() -> bool:
            rows = await scalar(database_url, "SELECT count(*) FROM telemetry")
            letters = await scalar(database_url, "SELECT count(*) FROM dead_letters")
            return bool(rows == 4 and letters == 2)

        await wait_until(done)
    reasons = await scalar(database_url, "SELECT string_agg(reason, ',' ORDER BY reason) FROM dead_letters")
    assert reasons == "schema,undecodable"
    source = f"kafka:{writer_settings.topic('telemetry')}"
    assert registry.get_sample_value("liftwatch_dead_letters_total", {"source": source, "reason": "schema"}) == 1
    assert registry.get_sample_value("liftwatch_writer_rows_written_total", {"table": "telemetry"}) == 4
