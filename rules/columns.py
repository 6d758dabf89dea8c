"""Columnar samples: one numpy array per field, the form the rule engine evaluates.

Strings are coded as small integers in the order of ``liftwatch.schema.MODES`` / ``DOOR_STATES``;
the terminal is a *slot* (an index into the engine's per-terminal state arrays).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
from liftwatch.schema import DOOR_STATES, MODES, Sample

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


@dataclass(slots=True)
class Columns:
    """A batch of samples of many terminals, one array per field, all the same length."""

    slot: I32
    ts: I64
    mode: I8
    floor: I16
    door_zone: B
    speed: F64
    door: I8
    occupied: B
    safety: B
    alarm: B
    power: B
    limit_up: B
    limit_down: B

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def empty(cls) -> Columns:
        return cls(**{name: np.empty(0, dtype) for name, dtype in DTYPES.items()})

    @classmethod
    def from_arrays(cls, **arrays: Any) -> Columns:
        """Build from array-likes (missing optional fields take the schema defaults)."""
        n = len(arrays["ts"])
        defaults = {"alarm": False, "power": True, "limit_up": False, "limit_down": False}
        built = {}
        for name, dtype in DTYPES.items():
            value = arrays.get(name)
            if value is None:
                if name not in defaults:
                    raise KeyError(name)
                built[name] = np.full(n, defaults[name], dtype)
            else:
                built[name] = np.asarray(value, dtype)
        return cls(**built)

    def take(self, index: IP | B) -> Columns:
        """The rows selected by an index array or boolean mask."""
        return Columns(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def concat(parts: Sequence[Columns]) -> Columns:
        if len(parts) == 1:
            return parts[0]
        return Columns(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Columns)))

    def as_dict(self) -> dict[str, np.ndarray[Any, Any]]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def from_samples(slots: Iterable[int], samples: Sequence[Sample]) -> Columns:
    """Columns of decoded samples (``slots`` gives each sample's terminal slot)."""
    n = len(samples)
    mode_code, door_code = MODE_CODE, DOOR_CODE
    return Columns(
        slot=np.fromiter(slots, np.int32, n),
        ts=np.fromiter((s.ts for s in samples), np.int64, n),
        mode=np.fromiter((mode_code[s.mode] for s in samples), np.int8, n),
        floor=np.fromiter((s.floor for s in samples), np.int16, n),
        door_zone=np.fromiter((s.door_zone for s in samples), np.bool_, n),
        speed=np.fromiter((s.speed for s in samples), np.float64, n),
        door=np.fromiter((door_code[s.door] for s in samples), np.int8, n),
        occupied=np.fromiter((s.occupied for s in samples), np.bool_, n),
        safety=np.fromiter((s.safety_circuit for s in samples), np.bool_, n),
        alarm=np.fromiter((s.alarm_button for s in samples), np.bool_, n),
        power=np.fromiter((s.power for s in samples), np.bool_, n),
        limit_up=np.fromiter((s.limit_up for s in samples), np.bool_, n),
        limit_down=np.fromiter((s.limit_down for s in samples), np.bool_, n),
    )
