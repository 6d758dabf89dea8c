"""The writer's transaction against real PostgreSQL: re-delivered rows are stored and counted once."""

from __future__ import annotations

import time

import psycopg
import pytest
from liftwatch.ingest.rows import RawRecord, decode_batch
from liftwatch.ingest.writer import _STAGING_DDL, store_batch
from liftwatch.schema import TelemetryRecord, encode_record

from tests.fixtures.ingest import sample, scalar

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)


def records(seqs: range, terminal: str = "S1") -> list[RawRecord]:
    return [
        RawRecord(
            "t",
            0,
            seq,
            encode_record(
                TelemetryRecord(
                    terminal=terminal, seq=seq, received_ms=NOW, samples=[sample(NOW + 10 * seq + i) for i in range(3)]
                )
            ),
        )
        for seq in seqs
    ]


async def test_redelivered_and_overlapping_batches_store_each_sample_once(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute(_STAGING_DDL)
        await conn.commit()
        first, _ = decode_batch(records(range(0, 10)), "t", "d")
        assert await store_batch(conn, first, "UTC") == 30
        assert await store_batch(conn, first, "UTC") == 0  # the whole batch again
        overlapping, _ = decode_batch(records(range(5, 15)) + records(range(14, 15)), "t", "d")
        assert await store_batch(conn, overlapping, "UTC") == 15  # seqs 10-14, seq 14 twice in the batch
    assert await scalar(database_url, "SELECT count(*) FROM telemetry") == 45
    assert await scalar(database_url, "SELECT sum(samples) FROM terminal_activity") == 45
