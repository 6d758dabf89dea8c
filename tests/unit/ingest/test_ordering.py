"""A partition's queue releases records strictly in queue order, across batch boundaries and failures."""

from __future__ import annotations

import asyncio

from liftwatch.ingest.handling import OutRecord
from liftwatch.ingest.ordering import Chunk, PartitionQueue


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
