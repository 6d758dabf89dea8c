"""Columnar samples: one numpy array per field, the form the rule engine evaluates.

Strings are coded as small integers in the order of ``liftwatch.schema.MODES`` / ``DOOR_STATES``;
the terminal is a *slot* (an index into the engine's per-terminal state arrays). :class:`Messages`
adds the per-message arrays (seq, receive time, sample count) that continuity reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from liftwatch.columnar import CODE_BITS, DOOR_MASK, DOOR_SHIFT, MODE_MASK, MODE_SHIFT
from liftwatch.schema import DOOR_STATES, MODES

MODE_CODE: dict[str, int] = {mode: code for code, mode in enumerate(MODES)}
DOOR_CODE: dict[str, int] = {door: code for code, door in enumerate(DOOR_STATES)}
NORMAL, INSPECTION, MAINTENANCE = MODE_CODE["normal"], MODE_CODE["inspection"], MODE_CODE["maintenance"]
OPEN, OPENING, CLOSING, CLOSED = (DOOR_CODE[d] for d in ("open", "opening", "closing", "closed"))

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I16 = npt.NDArray[np.int16]
I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
IP = npt.NDArray[np.intp]

DTYPES: dict[str, type[np.generic]] = {
    "slot": np.int32,
    "ts": np.int64,
    "mode": np.int8,
    "floor": np.int16,
    "door_zone": np.bool_,
    "speed": np.float64,
    "door": np.int8,
    "occupied": np.bool_,
    "safety": np.bool_,
    "alarm": np.bool_,
    "power": np.bool_,
    "limit_up": np.bool_,
    "limit_down": np.bool_,
}
"""The fields of a sample the rules read."""

# The flags, mode and door of a sample are packed in one uint16 (``code``): reordering a batch is
# then five gathers instead of thirteen; unpacking afterwards is sequential and cheap. The packing
# is the Kafka record's (``liftwatch.columnar``), so a ``telemetry.columns.v1`` record's ``code``
# is read as it comes; the bits the rules do not read (direction, door lock) are ignored.
_FLAG_BITS = {
    "door_zone": CODE_BITS["door_zone"],
    "occupied": CODE_BITS["occupied"],
    "safety": CODE_BITS["safety_circuit"],
    "alarm": CODE_BITS["alarm_button"],
    "power": CODE_BITS["power"],
    "limit_up": CODE_BITS["limit_up"],
    "limit_down": CODE_BITS["limit_down"],
}
_MODE_SHIFT, _DOOR_SHIFT = MODE_SHIFT, DOOR_SHIFT
RAW_FIELDS: dict[str, type[np.generic]] = {
    "slot": np.int32,
    "ts": np.int64,
    "speed": np.float64,
    "floor": np.int16,
    "code": np.uint16,
}


def pack(**fields: Any) -> npt.NDArray[np.uint16]:
    """The ``code`` column of flags, mode and door arrays."""
    code = np.asarray(fields["mode"], np.uint16) << np.uint16(_MODE_SHIFT)
    code |= np.asarray(fields["door"], np.uint16) << np.uint16(_DOOR_SHIFT)
    for name, bit in _FLAG_BITS.items():
        code |= np.asarray(fields[name], np.uint16) << np.uint16(bit)
    return code


class Columns:
    """A batch of samples of many terminals, one array per field, all the same length.

    Immutable: derived field arrays are computed once and cached.
    """

    __slots__ = ("_cache", "code", "floor", "slot", "speed", "ts")

    def __init__(self, slot: I32, ts: I64, speed: F64, floor: I16, code: npt.NDArray[np.uint16]) -> None:
        self.slot = slot
        self.ts = ts
        self.speed = speed
        self.floor = floor
        self.code = code
        self._cache: dict[str, np.ndarray[Any, Any]] = {}

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def _flag(self, name: str) -> B:
        value = self._cache.get(name)
        if value is None:
            value = self._cache[name] = (self.code & (1 << _FLAG_BITS[name])) != 0
        return value

    @property
    def mode(self) -> I8:
        value = self._cache.get("mode")
        if value is None:
            value = self._cache["mode"] = ((self.code >> _MODE_SHIFT) & MODE_MASK).astype(np.int8)
        return value

    @property
    def door(self) -> I8:
        value = self._cache.get("door")
        if value is None:
            value = self._cache["door"] = ((self.code >> _DOOR_SHIFT) & DOOR_MASK).astype(np.int8)
        return value

    @property
    def door_zone(self) -> B:
        return self._flag("door_zone")

    @property
    def occupied(self) -> B:
        return self._flag("occupied")

    @property
    def safety(self) -> B:
        return self._flag("safety")

    @property
    def alarm(self) -> B:
        return self._flag("alarm")

    @property
    def power(self) -> B:
        return self._flag("power")

    @property
    def limit_up(self) -> B:
        return self._flag("limit_up")

    @property
    def limit_down(self) -> B:
        return self._flag("limit_down")

    @classmethod
    def empty(cls) -> Columns:
        return cls(**{name: np.empty(0, dtype) for name, dtype in RAW_FIELDS.items()})

    @classmethod
    def from_arrays(cls, **arrays: Any) -> Columns:
        """Build from array-likes (missing optional fields take the schema defaults)."""
        n = len(arrays["ts"])
        defaults = {"alarm": False, "power": True, "limit_up": False, "limit_down": False}
        fields = {}
        for name in DTYPES:
            value = arrays.get(name)
            if value is None:
                if name not in defaults:
                    raise KeyError(name)
                value = np.full(n, defaults[name], np.bool_)
            fields[name] = value
        return cls(
            slot=np.asarray(fields["slot"], np.int32),
            ts=np.asarray(fields["ts"], np.int64),
            speed=np.asarray(fields["speed"], np.float64),
            floor=np.asarray(fields["floor"], np.int16),
            code=pack(**fields),
        )

    @classmethod
    def from_raw(cls, **raw: Any) -> Columns:
        """Build from the packed arrays of :meth:`raw`."""
        return cls(**{name: np.asarray(raw[name], dtype) for name, dtype in RAW_FIELDS.items()})

    def raw(self) -> dict[str, np.ndarray[Any, Any]]:
        """The packed arrays (for snapshots)."""
        return {"slot": self.slot, "ts": self.ts, "speed": self.speed, "floor": self.floor, "code": self.code}

    def take(self, index: IP | B) -> Columns:
        """The rows selected by an index array or boolean mask."""
        if index.dtype == np.bool_:
            # Positions first: a boolean mask would be scanned (with branch mispredictions) once per column.
            index = np.flatnonzero(index)
        return Columns(
            np.take(self.slot, index),
            np.take(self.ts, index),
            np.take(self.speed, index),
            np.take(self.floor, index),
            np.take(self.code, index),
        )

    @staticmethod
    def concat(parts: Sequence[Columns]) -> Columns:
        if len(parts) == 1:
            return parts[0]
        return Columns(
            *(np.concatenate([getattr(p, name) for p in parts]) for name in ("slot", "ts", "speed", "floor", "code"))
        )


@dataclass(frozen=True, slots=True)
class Messages:
    """Telemetry messages of many terminals in arrival order: per message its slot, ``seq``, gateway
    receive time and sample count; their samples as :class:`Columns` (message after message)."""

    slot: I64
    seq: I64
    received: I64
    count: I64
    samples: Columns

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    @staticmethod
    def concat(parts: Sequence[Messages]) -> Messages:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            empty = np.zeros(0, np.int64)
            return Messages(empty, empty, empty, empty, Columns.empty())
        return Messages(
            slot=np.concatenate([p.slot for p in parts]),
            seq=np.concatenate([p.seq for p in parts]),
            received=np.concatenate([p.received for p in parts]),
            count=np.concatenate([p.count for p in parts]),
            samples=Columns.concat([p.samples for p in parts]),
        )
