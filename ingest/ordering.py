"""What the gateway may append to one Kafka partition next, so a terminal's records keep their order.

A terminal's records all go to one partition (the key is the terminal id), and the rules engine
reads them in partition order. Several MQTT batches are in flight at once, so their records must
not race each other into the producer: each partition has one queue, and its sender appends one
Kafka batch at a time from the head of the queue, awaits the acknowledgement, and on a failure
sends the same records again before anything later. Nothing later was appended, so the order holds
across retries; a retry after an ambiguous failure (appended, acknowledgement lost) at worst repeats
records right after themselves, which the writer (primary key) and the rules engine (seq) absorb.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from .handling import OutRecord


@dataclass(slots=True, eq=False)
class Chunk:
    """The records of one MQTT batch for one partition."""

    records: list[OutRecord]
    """In receive order."""
    done: asyncio.Future[bool]
    """True once every record is acknowledged by Kafka; False if abandoned (the gateway stops)."""
    acknowledged: int = 0
    """How many of ``records`` Kafka has acknowledged (a chunk can span batches)."""


class PartitionQueue:
    """The records waiting for one partition, released strictly in the order they were queued.

    Transitions of the records at the head:
      ``put`` queues a chunk behind everything else;
      ``waiting`` offers the records not yet acknowledged, oldest first (the sender appends as many
      as one Kafka batch takes and sends them);
      ``acknowledged(n)`` removes the first ``n`` and completes every chunk wholly acknowledged;
      after a failure nothing changes: the same records come first again;
      ``abandon`` (stopping with Kafka away) completes every chunk left as not delivered, and every
      chunk put afterwards at once: nothing later may reach this partition before them.
    """

    def __init__(self) -> None:
        self._chunks: deque[Chunk] = deque()
        self._abandoned = False

    def __len__(self) -> int:
        """Chunks waiting."""
        return len(self._chunks)

    def put(self, chunk: Chunk) -> None:
        """Queue a chunk behind everything queued before it."""
        if self._abandoned:
            _complete(chunk, False)
        else:
            self._chunks.append(chunk)

    def waiting(self) -> Iterator[OutRecord]:
        """The records not yet acknowledged, in queue order."""
        for chunk in self._chunks:
            yield from chunk.records[chunk.acknowledged :]

    def acknowledged(self, count: int) -> None:
        """The first ``count`` waiting records are in Kafka."""
        chunks = self._chunks
        while count:
            chunk = chunks[0]
            taken = min(count, len(chunk.records) - chunk.acknowledged)
            chunk.acknowledged += taken
            count -= taken
            if chunk.acknowledged == len(chunk.records):
                chunks.popleft()
                _complete(chunk, True)

    def abandon(self) -> None:
        """Give up every waiting chunk, and every later one (the gateway stops)."""
        self._abandoned = True
        while self._chunks:
            _complete(self._chunks.popleft(), False)


def _complete(chunk: Chunk, delivered: bool) -> None:
    if not chunk.done.done():
        chunk.done.set_result(delivered)
