"""The rule engine's own health figures (pure, no I/O): the share of late samples over a window."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

LATE_WINDOW_S = 300.0
"""The late share is taken over the last five minutes: long enough not to flap on one burst."""


@dataclass
class LateShare:
    """Late and evaluated sample counts per batch, summed over the last ``window_s`` seconds."""

    window_s: float = LATE_WINDOW_S
    _batches: deque[tuple[float, int, int]] = field(default_factory=deque)
    _late: int = 0
    _total: int = 0

    def record(self, now: float, late: int, evaluated: int) -> None:
        if late or evaluated:
            self._batches.append((now, late, evaluated))
            self._late += late
            self._total += late + evaluated
        self._expire(now)

    def share(self, now: float) -> float:
        """Late samples / all samples that arrived in the window (0 when none arrived)."""
        self._expire(now)
        return self._late / self._total if self._total else 0.0

    def _expire(self, now: float) -> None:
        while self._batches and self._batches[0][0] < now - self.window_s:
            _, late, evaluated = self._batches.popleft()
            self._late -= late
            self._total -= late + evaluated
