"""What a fault rule's condition is written in: a batch's columns and derived masks, as a :class:`Frame`.

A spec of :mod:`liftwatch.rules.catalog` states its condition as a function of a frame
(``when=lambda f: ~f.power``); the engine builds one frame per batch and hands it to every rule.
Each derived mask and per-row registry fact is computed on first use and then shared, so a rule
costs only the masks it reads. This module imports neither the catalog nor the engine: the
catalog imports it, and the engine imports both.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt
from liftwatch.rules.batches import SortedBatch
from liftwatch.rules.columns import CLOSED, F64, I8, I16, NORMAL, B, Columns

if TYPE_CHECKING:
    # a type only: params imports the catalog, which imports this module
    from liftwatch.rules.params import SlotParams

_T = TypeVar("_T", bound=np.generic)


class Frame:
    """One batch (sorted by slot, ts) as the rule conditions see it: every array has one value per row."""

    def __init__(self, samples: Columns, batch: SortedBatch, params: SlotParams) -> None:
        self.samples = samples
        self.batch = batch
        self.params = params

    # the sample's fields
    @property
    def speed(self) -> F64:
        return self.samples.speed

    @property
    def floor(self) -> I16:
        return self.samples.floor

    @property
    def mode(self) -> I8:
        return self.samples.mode

    @property
    def door(self) -> I8:
        return self.samples.door

    @property
    def door_zone(self) -> B:
        return self.samples.door_zone

    @property
    def occupied(self) -> B:
        return self.samples.occupied

    @property
    def safety(self) -> B:
        return self.samples.safety

    @property
    def power(self) -> B:
        return self.samples.power

    @property
    def alarm(self) -> B:
        return self.samples.alarm

    @property
    def limit_up(self) -> B:
        return self.samples.limit_up

    @property
    def limit_down(self) -> B:
        return self.samples.limit_down

    # the notation's masks (thresholds file, ``notation``)
    @cached_property
    def stopped(self) -> B:
        stopped: B = self.speed < self.params.stopped_below
        return stopped

    @cached_property
    def moving(self) -> B:
        moving: B = self.speed >= self.params.moving_from
        return moving

    @cached_property
    def normal(self) -> B:
        normal: B = self.mode == NORMAL
        return normal

    @cached_property
    def closed(self) -> B:
        closed: B = self.door == CLOSED
        return closed

    # registry facts and per-model thresholds of each row's terminal
    @cached_property
    def overspeed_limit(self) -> F64:
        """Overspeed factor × the registry's rated speed."""
        return self._per_row(self.params.overspeed_limit)

    @cached_property
    def top(self) -> I16:
        """The registry's top floor."""
        return self._per_row(self.params.top)

    @cached_property
    def bottom(self) -> I16:
        """The registry's bottom floor."""
        return self._per_row(self.params.bottom)

    @cached_property
    def door_open_speed(self) -> F64 | float:
        """Door-open-while-moving speed (one scalar when no elevator model overrides it)."""
        if self.params.uniform:
            return float(self.params.door_open_speed[0])
        return self._per_row(self.params.door_open_speed)

    def _per_row(self, per_slot: npt.NDArray[_T]) -> npt.NDArray[_T]:
        rows: npt.NDArray[_T] = self.batch.per_row(per_slot[self.batch.gslot])
        return rows


Condition = Callable[[Frame], B]
"""A rule's raise condition over a batch: true on the rows where it holds."""
