"""A partition's queue releases records strictly in queue order, across batch boundaries and failures,
and what one send holds is built from its head in that order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from liftwatch.columnar import TelemetryArrays
from liftwatch.ingest import ordering
from liftwatch.ingest.handling import Out, OutRecord, OutTelemetry
from liftwatch.ingest.ordering import Chunk, KafkaRecord, PartitionQueue, build_records
from liftwatch.schema import TelemetryColumns, TelemetryRecord, decode_telemetry

from tests.fixtures.ingest import sample


def chunk(*values: str) -> Chunk:
    records = [OutRecord("telemetry", b"T1", value.encode()) for value in values]
    return Chunk(records, asyncio.get_running_loop().create_future())


def waiting(queue: PartitionQueue) -> list[str]:
    return [record.value.decode() for record in queue.waiting()]


async def test_a_batch_boundary_inside_a_chunk_completes_it_only_when_all_of_it_is_in() -> None:
    queue = PartitionQueue()
    first, second = chunk("a", "b", "c"), chunk("d")
    queue.put(first)
    queue.put(second)
    assert waiting(queue) == ["a", "b", "c", "d"]
    queue.acknowledged(2)  # a batch that took two records
    assert not first.done.done()
    assert waiting(queue) == ["c", "d"]
    queue.acknowledged(2)
    assert first.done.result() is True and second.done.result() is True
    assert len(queue) == 0


async def test_after_a_failure_the_same_records_come_first_again() -> None:
    queue = PartitionQueue()
    queue.put(chunk("a", "b"))
    queue.acknowledged(1)
    # the next batch ("b") failed: the sender reports nothing, and a later chunk queues behind
    queue.put(chunk("c"))
    assert waiting(queue) == ["b", "c"]


async def test_abandoning_gives_up_what_is_queued_and_everything_put_later() -> None:
    queue = PartitionQueue()
    queued = chunk("a")
    queue.put(queued)
    queue.abandon()
    later = chunk("b")
    queue.put(later)
    assert queued.done.result() is False and later.done.result() is False
    assert waiting(queue) == []


def telemetry(terminal: str, seq: int, count: int) -> OutTelemetry:
    samples = [sample(1_000 + 10 * i) for i in range(count)]
    return OutTelemetry(TelemetryRecord(terminal=terminal, seq=seq, received_ms=5, samples=samples), terminal.encode())


def batch_of(capacity: int) -> tuple[list[KafkaRecord], Callable[[KafkaRecord], bool]]:
    taken: list[KafkaRecord] = []

    def append(record: KafkaRecord) -> bool:
        if len(taken) >= capacity:
            return False
        taken.append(record)
        return True

    return taken, append


def messages_of(value: bytes) -> list[tuple[str, int, int]]:
    record = decode_telemetry(value)
    assert isinstance(record, TelemetryColumns)
    return [(r.terminal, r.seq, len(r.samples)) for r in TelemetryArrays.from_record(record).records()]


def test_messages_format_builds_one_record_per_entry_until_the_batch_is_full() -> None:
    entries: list[Out] = [telemetry("T1", 0, 2), telemetry("T2", 0, 1), telemetry("T1", 1, 3)]
    taken, append = batch_of(2)
    built = build_records(entries, "messages", append)
    assert built.taken == 2 and built.records == taken
    assert [key for key, _ in built.records] == [b"T1", b"T2"]


def test_columns_split_at_the_sample_bound_and_stop_when_the_batch_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ordering, "COLUMNS_MAX_SAMPLES", 5)
    entries: list[Out] = [telemetry("T1", 0, 2), telemetry("T2", 0, 2), telemetry("T1", 1, 2), telemetry("T3", 0, 3)]
    _, append = batch_of(10)
    built = build_records(entries, "columns", append)
    assert built.taken == 4 and [key for key, _ in built.records] == [None, None]
    assert [messages_of(value) for _, value in built.records] == [
        [("T1", 0, 2), ("T2", 0, 2)],
        [("T1", 1, 2), ("T3", 0, 3)],
    ]
    _, append = batch_of(1)
    built = build_records(entries, "columns", append)
    assert built.taken == 2 and len(built.records) == 1  # the rest waits for the next send


def test_other_records_keep_their_place_between_packed_telemetry() -> None:
    letter = OutRecord("deadletter", None, b"x")
    entries: list[Out] = [telemetry("T1", 0, 1), letter, telemetry("T1", 1, 1)]
    _, append = batch_of(10)
    built = build_records(entries, "columns", append)
    assert built.taken == 3 and built.records[1] == (None, b"x")
    assert [messages_of(built.records[i][1]) for i in (0, 2)] == [[("T1", 0, 1)], [("T1", 1, 1)]]


def test_the_record_a_full_batch_refused_starts_the_next_one_as_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ordering, "COLUMNS_MAX_SAMPLES", 4)
    entries: list[Out] = [telemetry("T1", 0, 2), telemetry("T2", 0, 2), telemetry("T1", 1, 3), telemetry("T3", 0, 3)]
    _, append = batch_of(1)
    first = build_records(entries, "columns", append)
    assert first.taken == 2 and first.refused is not None and first.refused.entries == 1
    assert messages_of(first.refused.record[1]) == [("T1", 1, 3)]
    # once the first two are in, the refused record's entry is the head: it goes first as built
    taken, append = batch_of(10)
    second = build_records(entries[2:], "columns", append, first.refused)
    assert second.taken == 2 and second.refused is None
    assert taken[0] is first.refused.record
    assert [messages_of(value) for _, value in taken] == [[("T1", 1, 3)], [("T3", 0, 3)]]


def test_a_refused_record_is_refused_again_only_by_a_batch_that_is_not_empty() -> None:
    letter = OutRecord("deadletter", None, b"x")
    entries: list[Out] = [letter, telemetry("T1", 0, 1)]
    _, append = batch_of(1)
    first = build_records(entries, "messages", append)
    assert first.taken == 1 and first.refused is not None and first.refused.entries == 1
    taken, append = batch_of(1)
    second = build_records(entries[1:], "messages", append, first.refused)
    assert second.taken == 1 and taken == [first.refused.record] and second.refused is None


def test_a_refused_pack_of_several_messages_holds_all_their_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next send skips every entry of the refused pack, not one: each message is packed once."""
    monkeypatch.setattr(ordering, "COLUMNS_MAX_SAMPLES", 4)
    entries: list[Out] = [
        telemetry("T1", 0, 2),
        telemetry("T2", 0, 2),
        telemetry("T1", 1, 1),
        telemetry("T3", 0, 1),
        telemetry("T2", 1, 1),
    ]
    _, append = batch_of(1)
    first = build_records(entries, "columns", append)
    assert first.taken == 2 and first.refused is not None and first.refused.entries == 3
    assert messages_of(first.refused.record[1]) == [("T1", 1, 1), ("T3", 0, 1), ("T2", 1, 1)]
    taken, append = batch_of(10)
    second = build_records([*entries[2:], telemetry("T4", 0, 1)], "columns", append, first.refused)
    assert second.taken == 4 and second.refused is None
    assert [messages_of(value) for _, value in taken] == [
        [("T1", 1, 1), ("T3", 0, 1), ("T2", 1, 1)],
        [("T4", 0, 1)],
    ]
