"""Batches sorted by (slot, ts): per-terminal groups, searches and merges, shared by the rule modules.

Every rule works on a batch sorted by terminal slot, then time: a terminal's samples are one
contiguous *group*. :class:`SortedBatch` holds the group bounds and answers the questions the rules
ask of positions (the previous position where a mask held, the first position at a time); the
functions below find the groups, order batches by slot and merge sorted batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from liftwatch.rules.columns import I64, IP, B, Columns


@dataclass(slots=True)
class SortedBatch:
    """A batch sorted by (slot, ts), with its per-terminal groups."""

    slot: np.ndarray[Any, np.dtype[np.int32]]
    ts: I64
    gstart: IP
    gend: IP
    gslot: IP
    key: I64
    tmin: int
    span: int
    fresh: B
    """Groups whose terminal has no carried state yet."""
    any_fresh: bool
    row_group: IP
    """Group index of every row."""
    marks: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)

    def prev(self, name: str, mask: B, true_pos: IP, pos: IP) -> IP:
        """For each position, the last position strictly before it where ``mask`` (true at ``true_pos``) holds, or -1.

        Few positions: a binary search each. Many (e.g. one per terminal): one running maximum over
        the batch, built once per mask and batch.
        """
        n = mask.shape[0]
        if true_pos.shape[0] == 0:
            return np.full(pos.shape[0], -1, np.intp)
        if pos.shape[0] * 16 <= n:
            return prev_index(true_pos, pos)
        mark = self.marks.get(name)
        if mark is None:
            dtype = np.int32 if n < 2**31 - 1 else np.intp
            mark = np.full(n + 1, -1, dtype)
            mark[true_pos + 1] = true_pos
            np.maximum.accumulate(mark, out=mark)
            self.marks[name] = mark
        found: IP = mark[pos]
        return found

    def true_pos(self, name: str, mask: B) -> IP:
        """The positions where a mask holds (computed once per batch)."""
        key = f"{name}:pos"
        cached = self.marks.get(key)
        if cached is None:
            cached = self.marks[key] = np.flatnonzero(mask)
        return cached

    def per_row(self, values: np.ndarray[Any, Any]) -> Any:
        """A per-group value repeated for every row of its group (cheaper than a gather by row)."""
        return np.repeat(values, self.gend - self.gstart)

    def gid(self, pos: IP) -> IP:
        return self.row_group[pos]

    def search(self, gid: IP, ts: I64) -> IP:
        """First position in group ``gid`` with a ts >= the given one (may be past the group)."""
        target = gid * self.span + np.clip(ts - self.tmin, -1, self.span)
        return np.searchsorted(self.key, target, "left")


def bounds(slot: np.ndarray[Any, Any]) -> tuple[IP, IP]:
    """Start and end of each run of equal slots."""
    n = slot.shape[0]
    new_group = np.empty(n, np.bool_)
    new_group[0] = True
    np.not_equal(slot[1:], slot[:-1], out=new_group[1:])
    gstart = np.flatnonzero(new_group)
    gend = np.append(gstart[1:], n)
    return gstart, gend


def row_group(gstart: IP, gend: IP) -> IP:
    """The run index of every row."""
    return np.repeat(np.arange(gstart.shape[0], dtype=np.intp), gend - gstart)


def groups(slot: np.ndarray[Any, Any]) -> tuple[IP, IP, IP]:
    """Start and end of each run of equal slots, and the run index of every row."""
    gstart, gend = bounds(slot)
    return gstart, gend, row_group(gstart, gend)


def group_key(gid: IP, ts: I64) -> tuple[I64, int, int]:
    """A key increasing with (group, ts), for searchsorted."""
    tmin = int(ts.min())
    span = int(ts.max()) - tmin + 2
    key = gid * span
    key += ts
    key -= tmin
    return key, tmin, span


def prev_index(sorted_pos: IP, pos: IP) -> IP:
    """For each position, the largest element of ``sorted_pos`` strictly below it (-1 if none)."""
    if sorted_pos.shape[0] == 0:
        return np.full(pos.shape[0], -1, np.intp)
    i = np.searchsorted(sorted_pos, pos, "left") - 1
    return np.where(i >= 0, sorted_pos[np.maximum(i, 0)], -1)


def next_index(sorted_pos: IP, pos: IP, side: str, default: IP) -> IP:
    """For each position, the smallest element of ``sorted_pos`` >= (left) or > (right) it, else default."""
    i = np.searchsorted(sorted_pos, pos, side)  # type: ignore[call-overload]
    if sorted_pos.shape[0] == 0:
        return default.copy()
    found = i < sorted_pos.shape[0]
    return np.where(found, sorted_pos[np.minimum(i, sorted_pos.shape[0] - 1)], default)


def slot_order(slot: np.ndarray[Any, Any]) -> IP:
    """A stable ordering by slot (arrival order kept within a terminal).

    Timsort is fast on the usual layouts (long ascending runs: a round of the fleet, a partition's
    records); a batch of short runs (shuffled terminals) is sorted by two 16-bit radix passes instead.
    """
    n = slot.shape[0]
    if n < 65_536 or int(np.count_nonzero(slot[1:] < slot[:-1])) < n // 256:
        return np.argsort(slot, kind="stable")
    low = np.argsort((slot & 0xFFFF).astype(np.uint16), kind="stable")
    high = np.argsort((slot[low] >> 16).astype(np.uint16), kind="stable")
    ordered: IP = low[high]
    return ordered


def merge_all(parts: list[Columns]) -> Columns:
    """Batches sorted by (slot, ts), in arrival order, merged into one; on a tie the earlier arrival comes first."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Columns.empty()
    if len(parts) == 1:
        return parts[0]
    both = Columns.concat(parts)
    # Usually a terminal's later arrivals are also later in time: merging by slot alone is enough.
    merged = both.take(np.argsort(both.slot, kind="stable"))  # a few sorted runs: timsort merges them
    ts, slot = merged.ts, merged.slot
    if not bool(np.any((ts[1:] < ts[:-1]) & (slot[1:] == slot[:-1]))):
        return merged
    tmin = int(both.ts.min())
    span = int(both.ts.max()) - tmin + 1
    if (int(both.slot.max()) + 1) * span < 2**62:
        key = both.slot.astype(np.int64)
        key *= span
        key += both.ts
        key -= tmin
        order = np.argsort(key, kind="stable")
    else:  # a key would overflow (timestamps decades apart): sort by the two columns
        order = np.lexsort((both.ts, both.slot))
    return both.take(order)


def slot_rows(samples: Columns, slots: np.ndarray[Any, Any]) -> tuple[IP, IP]:
    """Start and end of the rows of each of ``slots`` (sorted) in a batch sorted by slot (equal: none)."""
    return np.searchsorted(samples.slot, slots, "left"), np.searchsorted(samples.slot, slots, "right")


def pull(samples: Columns, slots: np.ndarray[Any, Any]) -> tuple[Columns, Columns]:
    """The rows of the other slots and the rows of ``slots`` (sorted) of a batch sorted by slot."""
    lo, hi = slot_rows(samples, slots)
    held = hi > lo
    if not held.any():
        return samples, Columns.empty()
    # slots are distinct, so their ranges are disjoint: +1 at each start, -1 at each end
    edges = np.zeros(len(samples) + 1, np.int8)
    edges[lo[held]] = 1
    edges[hi[held]] -= 1
    inside = np.cumsum(edges[:-1], dtype=np.int8) > 0
    return samples.take(~inside), samples.take(inside)
