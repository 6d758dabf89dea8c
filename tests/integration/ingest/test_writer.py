"""The writer against real tansu and PostgreSQL: records the database refuses and columns records whose
arrays do not fit together are dead-lettered, not retried forever; the rest is stored."""

from __future__ import annotations

import time

import msgspec
import pytest
from liftwatch.columnar import TelemetryArrays
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
        good = TelemetryRecord(terminal="W3", seq=1, received_ms=now, samples=[sample(now), sample(now + 1)])
        columns = TelemetryArrays.from_records([good]).to_record()
        broken = msgspec.structs.replace(columns, count=b"\x03\x00")  # says 3 samples, holds 2
        for record in (broken, columns):
            await producer.send_and_wait(writer_settings.topic("telemetry"), encode_record(record), partition=0)
    finally:
        await producer.stop()

    async with running(writer.serve, writer_settings) as registry:

        async def done() -> bool:
            rows = await scalar(database_url, "SELECT count(*) FROM telemetry")
            letters = await scalar(database_url, "SELECT count(*) FROM dead_letters")
            return bool(rows == 6 and letters == 3)

        await wait_until(done)
    reasons = await scalar(database_url, "SELECT string_agg(reason, ',' ORDER BY reason) FROM dead_letters")
    assert reasons == "schema,schema,undecodable"
    detail = await scalar(database_url, "SELECT detail FROM dead_letters WHERE detail LIKE 'count:%%'")
    assert detail == "count: the messages hold 3 samples, not 2"
    source = f"kafka:{writer_settings.topic('telemetry')}"
    assert registry.get_sample_value("liftwatch_dead_letters_total", {"source": source, "reason": "schema"}) == 2
    assert registry.get_sample_value("liftwatch_writer_rows_written_total", {"table": "telemetry"}) == 6
