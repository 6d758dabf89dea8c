"""The writer's transaction against real PostgreSQL: re-delivered rows are stored and counted once,
and both record forms store exactly the rows their samples say."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from liftwatch.columnar import TelemetryArrays
from liftwatch.ingest.rows import Batch, LastSeenMarks, RawRecord, StoredDeadLetter, decode_batch
from liftwatch.ingest.writer import prepare_session, store_batch
from liftwatch.presence import last_seen_sql
from liftwatch.schema import (
    DIRECTIONS,
    DOOR_STATES,
    MODES,
    DeadLetter,
    DeadLetterReason,
    Sample,
    TelemetryRecord,
    encode_record,
)

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
        await prepare_session(conn)
        first, _ = decode_batch(records(range(0, 10)), "t", "d")
        assert await store_batch(conn, first, "UTC") == 30
        assert await store_batch(conn, first, "UTC") == 0  # the whole batch again
        overlapping, _ = decode_batch(records(range(5, 15)) + records(range(14, 15)), "t", "d")
        assert await store_batch(conn, overlapping, "UTC") == 15  # seqs 10-14, seq 14 twice in the batch
    assert await scalar(database_url, "SELECT count(*) FROM telemetry") == 45
    assert await scalar(database_url, "SELECT sum(samples) FROM terminal_activity") == 45


samples = st.builds(
    Sample,
    ts=st.integers(NOW - 86_400_000, NOW + 86_400_000),
    mode=st.sampled_from(MODES),
    floor=st.integers(-10, 200),
    door_zone=st.booleans(),
    direction=st.sampled_from(DIRECTIONS),
    speed=st.floats(0, 25),
    door=st.sampled_from(DOOR_STATES),
    occupied=st.booleans(),
    safety_circuit=st.booleans(),
    door_lock=st.none() | st.booleans(),
    alarm_button=st.booleans(),
    power=st.booleans(),
    load_pct=st.none() | st.floats(0, 200),
    limit_up=st.booleans(),
    limit_down=st.booleans(),
)
messages = st.lists(
    st.builds(
        TelemetryRecord,
        terminal=st.sampled_from(["A", "B", "LW-000042"]),
        seq=st.integers(0, 2**40),
        received_ms=st.integers(NOW - 1000, NOW + 1000),
        samples=st.lists(samples, min_size=1, max_size=12, unique_by=lambda s: s.ts),
    ),
    min_size=1,
    max_size=15,
    unique_by=lambda m: (m.terminal, m.seq),
)


def expected_rows(batch: list[TelemetryRecord], prefix: str) -> list[tuple[object, ...]]:
    """The row of every sample, field by field from the message (``speed`` and ``load_pct`` are ``real``)."""
    return sorted(
        (
            prefix + m.terminal,
            s.ts,
            m.seq,
            idx,
            s.mode,
            s.floor,
            s.door_zone,
            s.direction,
            float(np.float32(s.speed)),
            s.door,
            s.occupied,
            s.safety_circuit,
            s.door_lock,
            s.alarm_button,
            s.power,
            None if s.load_pct is None else float(np.float32(s.load_pct)),
            s.limit_up,
            s.limit_down,
            m.received_ms,
        )
        for m in batch
        for idx, s in enumerate(m.samples)
    )


STORED = """
SELECT terminal_id, (extract(epoch FROM ts) * 1000)::bigint, seq, idx, mode, floor, door_zone, direction, speed, door,
       occupied, safety_circuit, door_lock, alarm_button, power, load_pct, limit_up, limit_down,
       (extract(epoch FROM received_at) * 1000)::bigint
FROM telemetry WHERE terminal_id LIKE %s ORDER BY 1, 2, 3, 4
"""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=messages, cut=st.integers(0, 15))
def test_either_record_form_stores_exactly_the_rows_of_its_samples(
    database_url: str, batch: list[TelemetryRecord], cut: int
) -> None:
    """Per-message records and columns records (the batch cut in two) give the same rows, field by
    field what the messages say: the COPY built from the arrays loses and invents nothing."""
    run = secrets.token_hex(3)

    def renamed(prefix: str) -> list[TelemetryRecord]:
        return [msgspec.structs.replace(m, terminal=prefix + m.terminal) for m in batch]

    per_message = [encode_record(m) for m in renamed(f"m{run}-")]
    packed = renamed(f"c{run}-")
    columns = [
        encode_record(TelemetryArrays.from_records(part).to_record()) for part in (packed[:cut], packed[cut:]) if part
    ]

    async def store() -> dict[str, list[tuple[object, ...]]]:
        stored = {}
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await prepare_session(conn)
            for prefix, values in ((f"m{run}-", per_message), (f"c{run}-", columns)):
                raw = [RawRecord("t", 0, offset, value) for offset, value in enumerate(values)]
                decoded, bad = decode_batch(raw, "t", "d")
                assert not bad
                assert await store_batch(conn, decoded, "UTC") == sum(len(m.samples) for m in batch)
                async with conn.cursor(binary=True) as cur:
                    await cur.execute(STORED, (f"{prefix}%",))
                    stored[prefix] = [tuple(row) for row in await cur.fetchall()]
        return stored

    stored = asyncio.run(store())
    assert stored[f"m{run}-"] == expected_rows(batch, f"m{run}-")
    assert stored[f"c{run}-"] == expected_rows(batch, f"c{run}-")


def _utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# Instants where the site-local date or offset changes: midnight in Shanghai (no DST), New York's
# DST switches, Lord Howe's half-hour one, and Santiago's, which falls back from 00:00 to 23:00 of
# the day before (the local date goes backwards).
AROUND = {
    "Asia/Shanghai": ["2026-12-05T16:00:00+00:00", "2026-12-06T16:00:00+00:00"],
    "America/New_York": ["2026-03-08T07:00:00+00:00", "2026-11-01T06:00:00+00:00", "2026-11-02T05:00:00+00:00"],
    "Australia/Lord_Howe": ["2026-04-04T15:00:00+00:00", "2026-10-03T15:30:00+00:00"],
    "America/Santiago": ["2026-04-05T03:00:00+00:00", "2026-09-06T04:00:00+00:00"],
    "UTC": ["2026-12-06T00:00:00+00:00"],
}
HOUR_MS = 3_600_000

# terminal_activity and last_seen_at as the rows stored say they should be (the definition).
EXPECTED_ACTIVITY = """
SELECT terminal_id, (ts AT TIME ZONE %s)::date, count(*), min(ts), max(ts)
FROM telemetry WHERE terminal_id LIKE %s GROUP BY 1, 2 ORDER BY 1, 2
"""
ACTIVITY = "SELECT * FROM terminal_activity WHERE terminal_id LIKE %s ORDER BY 1, 2"
EXPECTED_SEEN = f"""
SELECT terminal_id, {last_seen_sql("max(received_at)")}
FROM telemetry WHERE terminal_id LIKE %s GROUP BY 1 ORDER BY 1
"""
SEEN = "SELECT terminal_id, last_seen_at FROM terminals WHERE terminal_id LIKE %s ORDER BY 1"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    zone=st.sampled_from(sorted(AROUND)),
    twice=st.booleans(),
    restarted=st.booleans(),
    narrow=st.booleans(),
)
def test_activity_counts_each_sample_once_on_its_site_local_day(
    database_url: str, data: st.DataObject, zone: str, twice: bool, restarted: bool, narrow: bool
) -> None:
    """Across local midnights and DST switches, new batches (counted from the arrays) and re-delivered
    ones (counted by PostgreSQL from the rows it inserted) keep terminal_activity and last_seen_at
    what the stored rows say, however the messages are cut into batches, whether the writer
    remembers the last_seen_at it wrote or restarted in between (liftwatch.presence), and whether a
    re-delivery comes alone or with new messages (the idempotent way inserting rows)."""
    run = secrets.token_hex(3)
    anchor = _utc_ms(data.draw(st.sampled_from(AROUND[zone])))
    spread = 90_000 if narrow else 2 * HOUR_MS  # narrow: messages share 30 s marks
    instants = st.integers(anchor - spread, anchor + spread)
    batch = data.draw(
        st.lists(
            st.builds(
                TelemetryRecord,
                terminal=st.sampled_from([f"a{run}", f"b{run}"]),
                seq=st.integers(0, 50),
                received_ms=instants,
                samples=st.lists(instants.map(sample), min_size=0, max_size=8, unique_by=lambda s: s.ts),
            ),
            min_size=1,
            max_size=12,
            unique_by=lambda m: (m.terminal, m.seq),
        )
    )
    redelivered = data.draw(st.lists(st.sampled_from(batch), max_size=3)) if twice else []
    cut = data.draw(st.integers(0, len(batch)))
    again = data.draw(st.lists(st.sampled_from(batch[:cut]), max_size=2)) if twice and cut else []

    async def store() -> list[list[tuple[object, ...]]]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await prepare_session(conn)
            await conn.execute("INSERT INTO terminals (terminal_id) VALUES (%s), (%s)", (f"a{run}", f"b{run}"))
            await conn.commit()
            marks = LastSeenMarks()
            for part in (batch[:cut], again + batch[cut:], redelivered):
                raw = [RawRecord("t", 0, offset, encode_record(m)) for offset, m in enumerate(part)]
                decoded, _ = decode_batch(raw, "t", "d")
                await store_batch(conn, decoded, zone, marks)
                if restarted:
                    marks = LastSeenMarks()
            like = f"_{run}"
            return [
                await (await conn.execute(sql, params)).fetchall()
                for sql, params in (
                    (EXPECTED_ACTIVITY, (zone, like)),
                    (ACTIVITY, (like,)),
                    (EXPECTED_SEEN, (like,)),
                    (SEEN, (like,)),
                )
            ]

    expected_activity, activity, expected_seen, seen = asyncio.run(store())
    assert activity == expected_activity
    heard = {terminal for terminal, _ in expected_seen}
    assert [row for row in seen if row[0] in heard] == expected_seen
    assert all(at is None for terminal, at in seen if terminal not in heard)


MARK = 1_800_000_000_000 - 1_800_000_000_000 % 30_000  # on a 30 s boundary


def _one(terminal: str, seq: int, received_ms: int) -> Batch:
    record = TelemetryRecord(terminal=terminal, seq=seq, received_ms=received_ms, samples=[sample(received_ms)])
    decoded, bad = decode_batch([RawRecord("t", 0, seq, encode_record(record))], "t", "d")
    assert not bad
    return decoded


async def _seen_and_definition(conn: psycopg.AsyncConnection[Any], terminal: str) -> tuple[object, object]:
    seen = await (
        await conn.execute("SELECT last_seen_at FROM terminals WHERE terminal_id = %s", (terminal,))
    ).fetchone()
    latest = f"SELECT {last_seen_sql('max(received_at)')} FROM telemetry WHERE terminal_id = %s"
    wanted = await (await conn.execute(latest, (terminal,))).fetchone()
    assert seen is not None and wanted is not None
    return seen[0], wanted[0]


async def _writer_session(conn: psycopg.AsyncConnection[Any], terminal: str) -> LastSeenMarks:
    """A writer's session with ``terminal`` registered, and a writer's empty memory of last_seen_at."""
    await prepare_session(conn)
    await conn.execute("INSERT INTO terminals (terminal_id) VALUES (%s)", (terminal,))
    await conn.commit()
    return LastSeenMarks()


async def test_last_seen_of_a_terminal_registered_after_its_first_samples(database_url: str) -> None:
    """The update found no row: nothing is remembered, the next batch of the same 30 s writes it."""
    terminal = f"R{secrets.token_hex(3)}"
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await prepare_session(conn)
        marks = LastSeenMarks()
        await store_batch(conn, _one(terminal, 1, MARK + 1_000), "UTC", marks)
        await conn.execute("INSERT INTO terminals (terminal_id) VALUES (%s)", (terminal,))
        await conn.commit()
        await store_batch(conn, _one(terminal, 2, MARK + 2_000), "UTC", marks)
        seen, wanted = await _seen_and_definition(conn, terminal)
    assert seen == wanted is not None


async def test_last_seen_is_not_remembered_inside_a_callers_transaction(database_url: str) -> None:
    """Inside a transaction of the caller the batch is a savepoint: rolled back with it, its values
    must be written again when the batch is re-delivered."""
    terminal = f"O{secrets.token_hex(3)}"
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        marks = await _writer_session(conn, terminal)
        await conn.execute("SELECT 1")  # a transaction the caller left open
        await store_batch(conn, _one(terminal, 1, MARK + 1_000), "UTC", marks)
        await conn.rollback()
        await store_batch(conn, _one(terminal, 1, MARK + 1_000), "UTC", marks)
        seen, wanted = await _seen_and_definition(conn, terminal)
    assert seen == wanted is not None


async def test_last_seen_of_a_failed_transaction_is_not_remembered(database_url: str) -> None:
    """The fast insert went through, the dead letters of the same transaction did not: nothing was
    kept, so nothing may be remembered (else the re-delivered batch would skip its update)."""
    terminal = f"F{secrets.token_hex(3)}"
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        marks = await _writer_session(conn, terminal)
        batch = _one(terminal, 1, MARK + 1_000)
        refused = DeadLetter(
            received_ms=MARK, source="s", topic="t", reason=DeadLetterReason.SCHEMA, detail="nul\x00", payload=b""
        )
        batch.dead_letters.append(StoredDeadLetter(refused, None, None))
        with pytest.raises(psycopg.DataError):
            await store_batch(conn, batch, "UTC", marks)
        await store_batch(conn, _one(terminal, 1, MARK + 1_000), "UTC", marks)
        seen, wanted = await _seen_and_definition(conn, terminal)
    assert seen == wanted is not None


def test_migration_101_rounds_values_written_before(database_url: str) -> None:
    """An exact value of the old writer would beat its own rounded one in greatest(): rounded once."""
    terminal = f"M{secrets.token_hex(3)}"
    migration = Path(__file__).resolve().parents[3] / "core" / "migrations" / "101_last_seen_rounded.sql"
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO terminals (terminal_id, last_seen_at) VALUES (%s, timestamptz 'epoch' + %s * interval '1 ms')",
            (terminal, MARK + 29_999),
        )
        conn.execute(migration.read_text(encoding="utf-8"))
        row = conn.execute(
            "SELECT last_seen_at = timestamptz 'epoch' + %s * interval '1 ms' FROM terminals WHERE terminal_id = %s",
            (MARK, terminal),
        ).fetchone()
        conn.rollback()
    assert row == (True,)
