"""Per-terminal message sequence tracking: duplicates, gaps and reboots (pure, no I/O).

Terminals number their messages ``seq`` = 0, 1, 2, ... and start again at 0 after a reboot. For
each terminal the tracker keeps the highest ``seq`` seen and a bit mask of which of the
``window`` numbers below it were seen, so memory is two integers per terminal whatever the
window (300,000 terminals fit in tens of megabytes).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SeqVerdict(enum.Enum):
    """What a message's sequence number says about it."""

    NEW = "new"
    """Next in line, late but unseen within the window, or the first from this terminal."""
    DUPLICATE = "duplicate"
    """Seen within the recent window: drop it."""
    RESTART = "restart"
    """The terminal started counting again (seq 0, or far below the window): a reboot, not a gap."""


@dataclass(frozen=True, slots=True)
class SeqResult:
    """The verdict and how many numbers were skipped (messages lost on the terminal side)."""

    verdict: SeqVerdict
    gap: int = 0


_NEW = SeqResult(SeqVerdict.NEW)
_DUPLICATE = SeqResult(SeqVerdict.DUPLICATE)
_RESTART = SeqResult(SeqVerdict.RESTART)
"""The verdicts without a gap, shared (frozen): nearly every message gets one, and a frozen
dataclass costs 0.4 us to make."""


class SequenceTracker:
    """Remembers, per terminal, the highest seq and which of the ``window`` below it were seen."""

    def __init__(self, window: int = 64) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        # terminal -> (highest seq, mask); bit k of mask set = (highest - k) was seen.
        self._state: dict[str, tuple[int, int]] = {}
        self._full = (1 << (window + 1)) - 1

    def __len__(self) -> int:
        return len(self._state)

    def observe(self, terminal: str, seq: int) -> SeqResult:
        """Classify ``seq`` from ``terminal`` and remember it."""
        state = self._state.get(terminal)
        if state is None:
            self._state[terminal] = (seq, 1)
            return _NEW
        high, mask = state
        if seq > high:
            shift = seq - high
            self._state[terminal] = (seq, ((mask << shift) | 1) & self._full if shift <= self.window else 1)
            return SeqResult(SeqVerdict.NEW, gap=shift - 1) if shift > 1 else _NEW
        behind = high - seq
        if behind <= self.window:
            bit = 1 << behind
            if mask & bit:
                return _DUPLICATE
            if seq == 0:
                # seq 0 never seen recently while far ahead of it: the terminal rebooted.
                self._state[terminal] = (0, 1)
                return _RESTART
            self._state[terminal] = (high, mask | bit)
            return _NEW
        # Far below anything recent: a reboot whose first messages we missed, not a replay we
        # could recognise (the writer's primary key absorbs any true replay).
        self._state[terminal] = (seq, 1)
        return _RESTART

    def forget(self, terminal: str) -> None:
        """Drop what is known about ``terminal``."""
        self._state.pop(terminal, None)
