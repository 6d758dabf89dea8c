"""Telemetry between processes as columns: many MQTT messages in one Kafka record, packed arrays.

The gateway packs the messages it accepted for one partition into one ``telemetry.columns.v1``
record (:class:`liftwatch.schema.TelemetryColumns`); the rules and the writer unpack it with
``numpy.frombuffer`` (no Python object per sample) into :class:`TelemetryArrays`. Fewer, larger
records is also what cuts the broker's cost per sample. Within a record the messages keep the
order the gateway received them in, so a terminal's order holds exactly as with one record a
message (``docs/protocol/kafka.md``).

Layout: every array is little-endian, of fixed width; per message: ``terminal`` (index into
``terminals``, u4), ``seq`` (i8), ``received_ms`` (i8), ``count`` (samples of the message, u2);
per sample, in message order: ``ts`` (i8), ``floor`` (i2), ``speed`` (f8), ``load_pct`` (f8, NaN
when not reported) and ``code`` (u2), which packs the flags, mode, door, direction and door lock as
:data:`CODE_BITS` says. The rules read ``code`` as it comes (their columns use the same packing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any, get_args, get_type_hints

import msgspec
import numpy as np
import numpy.typing as npt
from liftwatch.schema import DIRECTIONS, DOOR_STATES, MODES, Sample, TelemetryColumns, TelemetryRecord

CODE_BITS: dict[str, int] = {
    "door_zone": 0,
    "occupied": 1,
    "safety_circuit": 2,
    "alarm_button": 3,
    "power": 4,
    "limit_up": 5,
    "limit_down": 6,
    "door_lock_reported": 7,
    "door_lock": 11,
}
"""Bit of each boolean of a sample in ``code`` (``door_lock`` means something only when reported)."""
MODE_SHIFT, MODE_MASK = 8, 0b111
"""``mode`` is bits 8-10: its index in ``liftwatch.schema.MODES``."""
DOOR_SHIFT, DOOR_MASK = 12, 0b11
"""``door`` is bits 12-13: its index in ``DOOR_STATES``."""
DIRECTION_SHIFT, DIRECTION_MASK = 14, 0b11
"""``direction`` is bits 14-15: its index in ``DIRECTIONS``."""

MESSAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "terminal": np.dtype("<u4"),
    "seq": np.dtype("<i8"),
    "received_ms": np.dtype("<i8"),
    "count": np.dtype("<u2"),
}
SAMPLE_DTYPES: dict[str, np.dtype[Any]] = {
    "ts": np.dtype("<i8"),
    "floor": np.dtype("<i2"),
    "speed": np.dtype("<f8"),
    "load_pct": np.dtype("<f8"),
    "code": np.dtype("<u2"),
}
_COLUMNS = (*MESSAGE_DTYPES, *SAMPLE_DTYPES)
MAX_SAMPLES_PER_MESSAGE = 100
"""As the MQTT contract allows (``TelemetryMessage.samples``)."""


def _bounds(name: str) -> tuple[float, float]:
    """The (ge, le) bounds the contract's ``Sample`` declares for a numeric field."""
    hint = get_type_hints(Sample, include_extras=True)[name]
    for arg in (hint, *get_args(hint)):
        for meta in getattr(arg, "__metadata__", ()):
            if isinstance(meta, msgspec.Meta) and meta.ge is not None and meta.le is not None:
                return float(meta.ge), float(meta.le)
    raise LookupError(name)


SAMPLE_BOUNDS: dict[str, tuple[float, float]] = {name: _bounds(name) for name in ("floor", "speed", "load_pct")}
"""What a sample's numbers may be (``Sample``'s bounds): a columns record is held to them as the
per-message form is by msgspec (NaN speed fails both comparisons, so it is refused too)."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def unpackable(record: TelemetryRecord) -> str | None:
    """Why a per-message record cannot be packed into arrays (a number beyond 64 bits, too many
    samples), or None: a consumer dead-letters such a record instead of failing on it."""
    if not 1 <= len(record.samples) <= MAX_SAMPLES_PER_MESSAGE:
        return f"samples: {len(record.samples)}, not 1 to {MAX_SAMPLES_PER_MESSAGE}"
    for name, value in (("seq", record.seq), ("received_ms", record.received_ms)):
        if not INT64_MIN <= value <= INT64_MAX:
            return f"{name}: {value} is beyond 64 bits"
    times = [sample.ts for sample in record.samples]
    if min(times) < INT64_MIN or max(times) > INT64_MAX:
        return "ts: a sample time beyond 64 bits"
    return None


_MODE_INDEX = {mode: index for index, mode in enumerate(MODES)}
_DOOR_INDEX = {door: index for index, door in enumerate(DOOR_STATES)}
_DIRECTION_INDEX = {direction: index for index, direction in enumerate(DIRECTIONS)}


def sample_code(sample: Sample) -> int:
    """The packed ``code`` of one sample, as :data:`CODE_BITS` and the shifts lay it out."""
    code = (
        (_MODE_INDEX[sample.mode] << MODE_SHIFT)
        | (_DOOR_INDEX[sample.door] << DOOR_SHIFT)
        | (_DIRECTION_INDEX[sample.direction] << DIRECTION_SHIFT)
    )
    for name, bit in CODE_BITS.items():
        if name == "door_lock_reported":
            code |= (sample.door_lock is not None) << bit
        elif getattr(sample, name):  # door_lock None packs as not locked, told apart by the bit above
            code |= 1 << bit
    return code


_CODE_FIELDS = (*(name for name in CODE_BITS if name != "door_lock_reported"), "mode", "door", "direction")
_code_key = attrgetter(*_CODE_FIELDS)


class _CodeMemo(dict[tuple[Any, ...], int]):
    """``code`` by the fields it packs: a lookup instead of arithmetic per sample (bounded by the
    contract's enumerations: at most 2^7 * 3 * 6 * 4 * 3 entries)."""

    def __missing__(self, key: tuple[Any, ...]) -> int:
        fields = dict(zip(_CODE_FIELDS, key, strict=True))
        code = self[key] = sample_code(Sample(ts=0, floor=0, speed=0.0, **fields))
        return code


_CODES = _CodeMemo()
_samples_of = attrgetter("samples")
_seq_of, _received_of = attrgetter("seq"), attrgetter("received_ms")
_ts_of, _floor_of, _speed_of, _load_of = (attrgetter(name) for name in ("ts", "floor", "speed", "load_pct"))


@dataclass(frozen=True, slots=True)
class TelemetryArrays:
    """Accepted telemetry messages as arrays: per message (``terminal`` .. ``count``), per sample (``ts`` ..)."""

    terminals: list[str]
    terminal: npt.NDArray[np.uint32]
    seq: npt.NDArray[np.int64]
    received_ms: npt.NDArray[np.int64]
    count: npt.NDArray[np.uint16]
    ts: npt.NDArray[np.int64]
    floor: npt.NDArray[np.int16]
    speed: npt.NDArray[np.float64]
    load_pct: npt.NDArray[np.float64]
    code: npt.NDArray[np.uint16]

    @property
    def messages(self) -> int:
        return int(self.seq.shape[0])

    @property
    def samples(self) -> int:
        return int(self.ts.shape[0])

    def sample_terminal(self) -> npt.NDArray[np.uint32]:
        """Each sample's terminal (index into ``terminals``)."""
        return np.repeat(self.terminal, self.count)

    def index_of_sample(self) -> npt.NDArray[np.int16]:
        """Each sample's position in its message (0 for the first)."""
        starts = np.cumsum(self.count, dtype=np.int64) - self.count
        return (np.arange(self.samples, dtype=np.int64) - np.repeat(starts, self.count)).astype(np.int16)

    def flag(self, name: str) -> npt.NDArray[np.bool_]:
        """A boolean field of every sample (``CODE_BITS``)."""
        flag: npt.NDArray[np.bool_] = (self.code & np.uint16(1 << CODE_BITS[name])) != 0
        return flag

    def mode(self) -> npt.NDArray[np.uint16]:
        return ((self.code >> np.uint16(MODE_SHIFT)) & np.uint16(MODE_MASK)).astype(np.uint16)

    def door(self) -> npt.NDArray[np.uint16]:
        return ((self.code >> np.uint16(DOOR_SHIFT)) & np.uint16(DOOR_MASK)).astype(np.uint16)

    def direction(self) -> npt.NDArray[np.uint16]:
        return ((self.code >> np.uint16(DIRECTION_SHIFT)) & np.uint16(DIRECTION_MASK)).astype(np.uint16)

    @classmethod
    def from_records(cls, records: Sequence[TelemetryRecord]) -> TelemetryArrays:
        """Pack per-message records (the gateway's accepted messages, in receive order)."""
        # One C-level pass per column (map + attrgetter into fromiter): the gateway packs every
        # sample it accepts, so no Python-level code runs per sample but a dict lookup for ``code``.
        index: dict[str, int] = {}
        terminal = np.fromiter((index.setdefault(r.terminal, len(index)) for r in records), np.uint32, len(records))
        per_message = list(map(_samples_of, records))
        samples = list(chain.from_iterable(per_message))
        n = len(samples)
        return cls(
            terminals=list(index),
            terminal=terminal,
            seq=np.fromiter(map(_seq_of, records), np.int64, len(records)),
            received_ms=np.fromiter(map(_received_of, records), np.int64, len(records)),
            count=np.fromiter(map(len, per_message), np.uint16, len(records)),
            ts=np.fromiter(map(_ts_of, samples), np.int64, n),
            floor=np.fromiter(map(_floor_of, samples), np.int16, n),
            speed=np.fromiter(map(_speed_of, samples), np.float64, n),
            load_pct=np.fromiter(map(_load_of, samples), np.float64, n),  # None becomes NaN
            code=np.fromiter(map(_CODES.__getitem__, map(_code_key, samples)), np.uint16, n),
        )

    @classmethod
    def concat(cls, parts: Sequence[TelemetryArrays]) -> TelemetryArrays:
        """Several records' arrays as one, in order (terminal indexes renumbered over the union)."""
        if len(parts) <= 1:
            return parts[0] if parts else cls.from_records([])
        index: dict[str, int] = {}
        terminal = []
        for part in parts:
            renumber = np.fromiter((index.setdefault(t, len(index)) for t in part.terminals), np.uint32)
            terminal.append(renumber[part.terminal] if part.messages else part.terminal)
        columns = {name: np.concatenate([getattr(p, name) for p in parts]) for name in _COLUMNS if name != "terminal"}
        return cls(terminals=list(index), terminal=np.concatenate(terminal).astype(np.uint32), **columns)

    def take(self, start: int, end: int) -> TelemetryArrays:
        """Messages ``start`` to ``end`` (exclusive) with their samples, and only their terminals."""
        first = int(self.count[:start].sum(dtype=np.int64))
        last = first + int(self.count[start:end].sum(dtype=np.int64))
        per_message = {name: getattr(self, name)[start:end] for name in MESSAGE_DTYPES if name != "terminal"}
        per_sample = {name: getattr(self, name)[first:last] for name in SAMPLE_DTYPES}
        used, terminal = np.unique(self.terminal[start:end], return_inverse=True)
        return TelemetryArrays(
            terminals=[self.terminals[int(i)] for i in used],
            terminal=terminal.astype(np.uint32),
            **per_message,
            **per_sample,
        )

    def to_record(self) -> TelemetryColumns:
        """The Kafka record (encode with ``liftwatch.schema.encode_record``)."""
        return TelemetryColumns(
            terminals=self.terminals,
            terminal=self.terminal.astype(MESSAGE_DTYPES["terminal"], copy=False).tobytes(),
            seq=self.seq.astype(MESSAGE_DTYPES["seq"], copy=False).tobytes(),
            received_ms=self.received_ms.astype(MESSAGE_DTYPES["received_ms"], copy=False).tobytes(),
            count=self.count.astype(MESSAGE_DTYPES["count"], copy=False).tobytes(),
            ts=self.ts.astype(SAMPLE_DTYPES["ts"], copy=False).tobytes(),
            floor=self.floor.astype(SAMPLE_DTYPES["floor"], copy=False).tobytes(),
            speed=self.speed.astype(SAMPLE_DTYPES["speed"], copy=False).tobytes(),
            load_pct=self.load_pct.astype(SAMPLE_DTYPES["load_pct"], copy=False).tobytes(),
            code=self.code.astype(SAMPLE_DTYPES["code"], copy=False).tobytes(),
        )

    @classmethod
    def from_record(cls, record: TelemetryColumns) -> TelemetryArrays:
        """Unpack and check a record; raises ValueError saying what is wrong (the caller dead-letters it)."""
        arrays: dict[str, Any] = {}
        for name, dtype in (MESSAGE_DTYPES | SAMPLE_DTYPES).items():
            data: bytes = getattr(record, name)
            if len(data) % dtype.itemsize:
                raise ValueError(f"{name}: {len(data)} bytes is not a whole number of {dtype.itemsize}-byte values")
            arrays[name] = np.frombuffer(data, dtype)
        messages, samples = len(arrays["count"]), len(arrays["ts"])
        for name in MESSAGE_DTYPES:
            if len(arrays[name]) != messages:
                raise ValueError(f"{name}: {len(arrays[name])} values for {messages} messages")
        for name in SAMPLE_DTYPES:
            if len(arrays[name]) != samples:
                raise ValueError(f"{name}: {len(arrays[name])} values for {samples} samples")
        count = arrays["count"]
        if messages and (int(count.min()) < 1 or int(count.max()) > MAX_SAMPLES_PER_MESSAGE):
            raise ValueError(f"count: a message holds 1 to {MAX_SAMPLES_PER_MESSAGE} samples")
        if int(count.sum(dtype=np.int64)) != samples:
            raise ValueError(f"count: the messages hold {int(count.sum(dtype=np.int64))} samples, not {samples}")
        if messages and int(arrays["terminal"].max()) >= len(record.terminals):
            raise ValueError(f"terminal: an index beyond the {len(record.terminals)} terminals")
        code = arrays["code"]
        if samples and (
            int(((code >> MODE_SHIFT) & MODE_MASK).max()) >= len(MODES)
            or int(((code >> DIRECTION_SHIFT) & DIRECTION_MASK).max()) >= len(DIRECTIONS)
        ):
            raise ValueError("code: a mode or direction beyond the contract's")
        if len(set(record.terminals)) != len(record.terminals):
            # Two indexes for one terminal would make its messages two terminals downstream.
            raise ValueError("terminals: a terminal id listed twice")
        for name in ("floor", "speed"):
            low, high = SAMPLE_BOUNDS[name]
            values = arrays[name]
            if samples and not (bool(np.all(values >= low)) and bool(np.all(values <= high))):
                raise ValueError(f"{name}: a value outside {low}..{high}")
        load = arrays["load_pct"]
        low, high = SAMPLE_BOUNDS["load_pct"]
        reported = load[~np.isnan(load)]
        if reported.size and not (bool(np.all(reported >= low)) and bool(np.all(reported <= high))):
            raise ValueError(f"load_pct: a value outside {low}..{high}")
        return cls(terminals=list(record.terminals), **arrays)

    def records(self) -> list[TelemetryRecord]:
        """Back to one record a message (tests, and consumers of the per-message form)."""
        modes, doors, directions = self.mode(), self.door(), self.direction()
        flags = {name: self.flag(name) for name in CODE_BITS}
        out: list[TelemetryRecord] = []
        start = 0
        for m in range(self.messages):
            end = start + int(self.count[m])
            samples = []
            for i in range(start, end):
                load = float(self.load_pct[i])
                samples.append(
                    Sample(
                        ts=int(self.ts[i]),
                        mode=MODES[int(modes[i])],
                        floor=int(self.floor[i]),
                        door_zone=bool(flags["door_zone"][i]),
                        direction=DIRECTIONS[int(directions[i])],
                        speed=float(self.speed[i]),
                        door=DOOR_STATES[int(doors[i])],
                        occupied=bool(flags["occupied"][i]),
                        safety_circuit=bool(flags["safety_circuit"][i]),
                        door_lock=bool(flags["door_lock"][i]) if flags["door_lock_reported"][i] else None,
                        alarm_button=bool(flags["alarm_button"][i]),
                        power=bool(flags["power"][i]),
                        load_pct=None if math.isnan(load) else load,
                        limit_up=bool(flags["limit_up"][i]),
                        limit_down=bool(flags["limit_down"][i]),
                    )
                )
            out.append(
                TelemetryRecord(
                    terminal=self.terminals[int(self.terminal[m])],
                    seq=int(self.seq[m]),
                    received_ms=int(self.received_ms[m]),
                    samples=samples,
                )
            )
            start = end
        return out
