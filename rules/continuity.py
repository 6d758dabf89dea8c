"""Message-sequence continuity: which of a terminal's samples can be judged now (pure, no I/O).

Terminals number their messages ``seq`` = 0, 1, 2, ... (back to 0 after a reboot). When the
messages of a terminal have arrived without a hole, nothing older can still come, so every sample
up to the newest is released to the rules at once instead of waiting out the allowed lateness.
Only a real hole waits: the messages after it are held until it fills, or until it has been open
for the allowed lateness (in gateway receive time while the terminal speaks, in processing time
when it has gone silent, see :meth:`Continuity.expire`).

Per terminal slot the state is three columns of :class:`~liftwatch.rules.state.State`
(checkpointed with the rest of it) and, only while a hole is open, the messages seen beyond it:

* ``seq_next``: the seq that continues the gap-free run (-1: no message seen yet);
* ``seq_bound``: the newest sample time of that run; samples up to it are released;
* ``hole_since``: when the open hole was first seen (``NONE``: no hole).

Transitions for a message (seq ``s``, newest sample ``m``) of a terminal:

* first message, or ``s == seq_next``: the run grows (``seq_bound = max(seq_bound, m)``) and takes
  in any held messages that now follow on;
* ``s > seq_next``: a hole; the message is held (``beyond``) and the clock of the hole starts;
  unless no hole is open and all its samples are older than ``seq_bound``: a buffer numbered after
  the live messages; its samples are late and the count moves on to it (no hole waits);
* ``s < seq_next`` and ``m <= seq_bound``: a copy of a message already judged (a gateway
  re-delivered it after a restart): dropped, counted as a duplicate, never as late; unless it is
  one the run skipped and has not had yet (``skipped``): then its samples are late;
* ``s < seq_next`` and newer samples: the terminal rebooted and counts again: a new run starts;
* a hole open longer than the allowed lateness is given up: the run resumes at the oldest held
  message (the missing ones, should they come, are late). The first message seen of a terminal,
  and a reboot's first message seen, skip the seqs before them the same way.

Each message's samples are judged late when older than ``seq_bound`` as it was before the message
arrived (the engine's ``floor``): samples up to it have been released to the rules already.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from liftwatch.rules.state import NONE, State

# Held messages beyond one terminal's hole at most; more gives the hole up (memory bound).
MAX_BEYOND = 1_000
# Given-up holes remembered per terminal, to tell a late message from a re-delivered copy.
MAX_SKIPPED = 8


@dataclass(frozen=True, slots=True)
class Skipped:
    """Seqs ``lo..hi`` the run went past without them; such a message is late, once.

    ``after``..``newest`` bound their newest sample (the run's bound before them, the newest
    sample of the message the run resumed at): a message of another run (before or after a reboot)
    with a seq in the range is older or newer, so a copy of it is not mistaken for a skipped one.
    """

    lo: int
    hi: int
    after: int
    newest: int


@dataclass(slots=True)
class Admission:
    """What :meth:`Continuity.admit` decided for a batch of messages (arrays in arrival order)."""

    floor: np.ndarray[Any, np.dtype[np.int64]]
    """Per message: its terminal's ``seq_bound`` before it (samples older than that are late)."""
    keep: np.ndarray[Any, np.dtype[np.bool_]]
    """Per message: False for a duplicate of a message already judged."""

    @property
    def duplicates(self) -> int:
        return int(np.count_nonzero(~self.keep))


@dataclass
class Continuity:
    """Sequence tracking of every terminal slot, over the columns of a rules :class:`State`."""

    lateness_ms: int
    beyond: dict[int, dict[int, int]] = field(default_factory=dict)
    """slot -> {seq: newest sample ts} of the messages held beyond an open hole."""
    skipped: dict[int, list[Skipped]] = field(default_factory=dict)
    """slot -> the seq ranges of holes given up lately (a message from one is late, not a copy)."""
    holes_opened: int = 0
    """Holes seen so far (a message skipped ahead of its run): lost messages, or several gateways racing."""
    holes_given_up: int = 0
    """Holes that waited the allowed lateness without filling (their messages, if they come, are late)."""

    def admit(
        self,
        st: State,
        slot: np.ndarray[Any, Any],
        seq: np.ndarray[Any, Any],
        newest: np.ndarray[Any, Any],
        received: np.ndarray[Any, Any],
    ) -> Admission:
        """Decide a batch of messages (per message: slot, seq, newest sample ts, gateway receive time)."""
        n = slot.shape[0]
        floor = np.full(n, NONE, np.int64)
        keep = np.ones(n, np.bool_)
        if n == 0:
            return Admission(floor, keep)
        slot = slot.astype(np.intp, copy=False)
        order = np.argsort(slot, kind="stable")
        s_slot, s_seq, s_new = slot[order], seq[order], newest[order]
        first = np.flatnonzero(np.concatenate(([True], s_slot[1:] != s_slot[:-1])))
        ends = np.append(first[1:], n)
        gslot = s_slot[first]
        # The fast path: a terminal with no open hole whose messages continue its run one by one.
        step = np.ones(n, np.bool_)
        step[1:] = s_seq[1:] == s_seq[:-1] + 1
        step[first] = True
        contiguous = np.logical_and.reduceat(step, first)
        start_ok = (s_seq[first] == st.seq_next[gslot]) | (st.seq_next[gslot] < 0)
        no_hole = st.hole_since[gslot] == NONE
        fast = contiguous & start_ok & no_hole
        fast_rows = np.arange(n) if fast.all() else np.flatnonzero(np.repeat(fast, ends - first))
        if fast_rows.shape[0]:
            self._fast(st, s_slot, s_seq, s_new, first[fast], ends[fast], fast_rows, order, floor)
        for g in np.flatnonzero(~fast).tolist():
            for row in range(int(first[g]), int(ends[g])):
                i = int(order[row])
                floor[i], keep[i] = self._one(st, int(slot[i]), int(seq[i]), int(newest[i]), int(received[i]))
        return Admission(floor, keep)

    def _fast(
        self,
        st: State,
        s_slot: np.ndarray[Any, Any],
        s_seq: np.ndarray[Any, Any],
        s_new: np.ndarray[Any, Any],
        gfirst: np.ndarray[Any, Any],
        gend: np.ndarray[Any, Any],
        rows: np.ndarray[Any, Any],
        order: np.ndarray[Any, Any],
        floor: np.ndarray[Any, Any],
    ) -> None:
        """Terminals whose messages continue their run: floors are the running newest time."""
        gslot = s_slot[gfirst]
        lens = gend - gfirst
        gid = np.repeat(np.arange(gslot.shape[0]), lens)
        values = s_new[rows]
        # seeded with the bound before the batch; an unset bound (NONE) must not blow the key range
        start = np.repeat(np.maximum(st.seq_bound[gslot], int(values.min()) - 1), lens)
        # running maximum within each terminal's messages, seeded with its bound before the batch
        tmin = int(min(int(values.min()), int(start.min())))
        span = int(max(int(values.max()), int(start.max()))) - tmin + 1
        offset = gid.astype(np.int64) * span - tmin
        running = np.maximum.accumulate(np.maximum(values, start) + offset) - offset
        before = np.empty_like(running)
        before[1:] = running[:-1]
        group_start = np.concatenate(([0], np.cumsum(lens)[:-1]))
        before[group_start] = st.seq_bound[gslot]
        floor[order[rows]] = before
        # A terminal's first message seen: the seqs before it were never judged here (late if they come).
        first_seq = s_seq[rows[group_start]]
        unseen = (st.seq_next[gslot] < 0) & (first_seq > 0)
        st.seq_unseen_below[gslot[unseen]] = first_seq[unseen]
        st.seq_unseen_newest[gslot[unseen]] = values[group_start][unseen]
        last = group_start + lens - 1
        st.seq_bound[gslot] = running[last]
        st.seq_next[gslot] = s_seq[rows[last]] + 1

    def _one(self, st: State, slot: int, seq: int, newest: int, received: int) -> tuple[int, bool]:
        """One message on the slow path (a hole, a duplicate or a reboot); returns (floor, keep)."""
        since = int(st.hole_since[slot])
        if since != NONE and received - since > self.lateness_ms:
            self._give_up(st, slot, received)
        floor = int(st.seq_bound[slot])
        expected = int(st.seq_next[slot])
        held = self.beyond.get(slot)
        if expected < 0:
            if seq > 0:  # the messages before the first one seen were never judged here
                # (kept in two state columns, not as a range: every terminal has one at a cold start)
                st.seq_unseen_below[slot] = seq
                st.seq_unseen_newest[slot] = newest
            st.seq_next[slot] = seq + 1
            st.seq_bound[slot] = newest
            return floor, True
        if seq == expected:
            st.seq_next[slot] = seq + 1
            st.seq_bound[slot] = max(floor, newest)
            self._follow_on(st, slot)
            return floor, True
        if seq > expected and newest < floor and not held:
            # Older than the run, so not beyond a hole of it: a buffer numbered after the live
            # messages (late; a copy from before a reboot cannot be told from one). The run's count
            # moves on, the bound stays: no hole waits for messages whose samples would be late.
            self._skip(slot, expected, seq - 1, int(NONE), newest)
            st.seq_next[slot] = seq + 1
            return floor, True
        if seq > expected:
            if held is not None and seq in held:
                return floor, False
            if held is None:
                held = self.beyond[slot] = {}
            held[seq] = newest
            if int(st.hole_since[slot]) == NONE:
                st.hole_since[slot] = received
                self.holes_opened += 1
            if len(held) > MAX_BEYOND:
                self._give_up(st, slot, received)
            return floor, True
        if newest <= floor:
            # Already judged, unless it is one of the messages a given-up hole was missing: late.
            return floor, self._late(st, slot, seq, newest)
        # Counting again with newer samples: a reboot. Whatever was held beyond an old hole is older:
        # it is released, and the messages its hole was missing are late should they come; so are
        # the new run's messages before this one (overtaken by it).
        if held:
            floor_after = max(floor, max(held.values()))
            lo = expected
            for hi in sorted(held):
                if hi > lo:
                    self._skip(slot, lo, hi - 1, floor, floor_after)
                lo = hi + 1
            del self.beyond[slot]
        else:
            floor_after = floor
        if seq > 0:
            self._skip(slot, 0, seq - 1, floor_after, newest)
        st.hole_since[slot] = NONE
        st.seq_next[slot] = seq + 1
        st.seq_bound[slot] = max(floor_after, newest)
        return floor, True

    def _skip(self, slot: int, lo: int, hi: int, after: int, newest: int) -> None:
        ranges = self.skipped.setdefault(slot, [])
        ranges.append(Skipped(lo, hi, after, newest))
        del ranges[:-MAX_SKIPPED]

    def _late(self, st: State, slot: int, seq: int, newest: int) -> bool:
        """True (and forgotten, so a copy of it is a copy) if the message is one the run skipped."""
        below = int(st.seq_unseen_below[slot])
        if 0 <= seq < below and newest <= int(st.seq_unseen_newest[slot]):
            # from before the first message seen: the rest of those seqs become explicit ranges
            st.seq_unseen_below[slot] = -1
            for lo, hi in ((0, seq - 1), (seq + 1, below - 1)):
                if lo <= hi:
                    self._skip(slot, lo, hi, int(NONE), int(st.seq_unseen_newest[slot]))
            return True
        ranges = self.skipped.get(slot, [])
        for i, r in enumerate(ranges):
            if r.lo <= seq <= r.hi and r.after <= newest <= r.newest:
                rest = [Skipped(lo, hi, r.after, r.newest) for lo, hi in ((r.lo, seq - 1), (seq + 1, r.hi)) if lo <= hi]
                ranges[i : i + 1] = rest
                del ranges[:-MAX_SKIPPED]
                return True
        return False

    def _follow_on(self, st: State, slot: int) -> None:
        """Take in held messages that continue the run; the hole is closed when none is left."""
        held = self.beyond.get(slot)
        if held:
            nxt = int(st.seq_next[slot])
            bound = int(st.seq_bound[slot])
            while nxt in held:
                bound = max(bound, held.pop(nxt))
                nxt += 1
            st.seq_next[slot] = nxt
            st.seq_bound[slot] = bound
            if not held:
                del self.beyond[slot]
        if slot not in self.beyond:
            st.hole_since[slot] = NONE

    def _give_up(self, st: State, slot: int, now_ms: int) -> None:
        """The hole has waited long enough: resume the run at the oldest held message."""
        held = self.beyond.get(slot)
        if not held:
            st.hole_since[slot] = NONE
            return
        resume = min(held)
        self.holes_given_up += 1
        self._skip(slot, int(st.seq_next[slot]), resume - 1, int(st.seq_bound[slot]), held[resume])
        st.seq_next[slot] = resume
        self._follow_on(st, slot)
        if slot in self.beyond:  # another hole further on: its clock starts now
            st.hole_since[slot] = now_ms

    def expire(self, st: State, now_ms: int) -> bool:
        """Give up holes open for longer than the allowed lateness (a silent terminal); True if any."""
        due = [slot for slot in self.beyond if now_ms - int(st.hole_since[slot]) > self.lateness_ms]
        for slot in due:
            self._give_up(st, slot, now_ms)
        return bool(due)

    def forget(self, slots: np.ndarray[Any, Any]) -> None:
        for slot in slots.tolist():
            self.beyond.pop(int(slot), None)
            self.skipped.pop(int(slot), None)

    @staticmethod
    def _positions(slots: np.ndarray[Any, Any], present: Mapping[int, object]) -> list[tuple[int, int]]:
        """(index into ``slots``, slot) of the slots that have an entry in ``present``, in ``slots``
        order. A checkpoint asks this of every terminal of a partition while only a few have
        anything held or skipped: the walk is over the few when they are fewer."""
        if not present:
            return []
        if len(present) < len(slots):
            wanted = np.flatnonzero(np.isin(slots, np.fromiter(present, np.int64, len(present))))
            return [(i, int(slots[i])) for i in wanted.tolist()]
        return [(i, slot) for i, slot in enumerate(slots.tolist()) if slot in present]

    def held_rows(self, slots: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], ...]:
        """The held messages of some slots as (index into ``slots``, seq, newest) arrays (checkpoints)."""
        rows = [
            (i, seq, ts) for i, slot in self._positions(slots, self.beyond) for seq, ts in self.beyond[slot].items()
        ]
        columns = list(zip(*rows, strict=True)) if rows else [(), (), ()]
        return tuple(np.asarray(c, np.int64) for c in columns)

    def skipped_rows(self, slots: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], ...]:
        """The skipped ranges of some slots as (index into ``slots``, lo, hi, newest) arrays (checkpoints):
        without them a missing message that comes after a restart would be dropped as a copy."""
        rows = [
            (i, r.lo, r.hi, r.after, r.newest)
            for i, slot in self._positions(slots, self.skipped)
            for r in self.skipped[slot]
        ]
        columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
        return tuple(np.asarray(c, np.int64) for c in columns)

    def load_rows(self, slots: np.ndarray[Any, Any], index: Any, seqs: Any, newest: Any) -> None:
        """Restore held messages saved by :meth:`held_rows`."""
        for i, seq, ts in zip(index.tolist(), seqs.tolist(), newest.tolist(), strict=True):
            self.beyond.setdefault(int(slots[i]), {})[int(seq)] = int(ts)

    def load_skipped(self, slots: np.ndarray[Any, Any], index: Any, lo: Any, hi: Any, after: Any, newest: Any) -> None:
        """Restore skipped ranges saved by :meth:`skipped_rows`."""
        rows = zip(index.tolist(), lo.tolist(), hi.tolist(), after.tolist(), newest.tolist(), strict=True)
        for i, a, b, t0, t1 in rows:
            self.skipped.setdefault(int(slots[i]), []).append(Skipped(a, b, t0, t1))
