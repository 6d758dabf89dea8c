"""When a terminal was last heard from: what ``terminals.last_seen_at`` holds, and how exactly.

``last_seen_at`` is the latest ``received_at`` of a terminal's stored samples **rounded down to
LAST_SEEN_RESOLUTION_MS** (counted from the Unix epoch). Raising it is a row update of the
registry per terminal and writer transaction, and such an update costs the database about as much
as storing a 10-sample message's rows (``bench/writer.py``); at a resolution of 30 s the writer
writes it at most twice a minute per terminal and skips every update that would not change it
(:class:`liftwatch.ingest.rows.LastSeenMarks`). Rounding the value, instead of writing it whenever
30 s have passed, keeps it a function of the stored rows alone: the same whatever the batching,
restarts and re-deliveries (tests/integration/ingest/test_store.py holds the writer to it).

Values written before issue 20 were exact; migration 101 rounded them down once.

Readers judge presence over windows much longer than the resolution (online: 5 minutes in the
API, 120 s in the dashboards; offline: 24 h in the risk list): a terminal that reports shows as
seen at most 30 s earlier than its last message.
"""

from __future__ import annotations

from typing import overload

import numpy as np
import numpy.typing as npt

LAST_SEEN_RESOLUTION_MS = 30_000


@overload
def last_seen_mark(received_ms: int) -> int: ...
@overload
def last_seen_mark(received_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]: ...
def last_seen_mark(received_ms: int | npt.NDArray[np.int64]) -> int | npt.NDArray[np.int64]:
    """The ``last_seen_at`` (epoch ms) that a sample received at ``received_ms`` accounts for."""
    return received_ms - received_ms % LAST_SEEN_RESOLUTION_MS


def last_seen_sql(received_at: str) -> str:
    """SQL for :func:`last_seen_mark` of the ``timestamptz`` expression ``received_at``."""
    return f"date_bin(interval '{LAST_SEEN_RESOLUTION_MS} milliseconds', {received_at}, timestamptz 'epoch')"
