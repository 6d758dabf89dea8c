"""Replay: the same rules over stored telemetry (table ``telemetry``), for judging thresholds on history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from liftwatch.rules.columns import DOOR_CODE, MODE_CODE, Columns
from liftwatch.rules.processor import RuleProcessor
from liftwatch.rules.registry import load_registry_sync
from liftwatch.rules.thresholds import Thresholds
from liftwatch.schema import FaultEvent

CHUNK = 200_000

QUERY = """
SELECT terminal_id, (extract(epoch FROM ts) * 1000)::bigint, mode, floor, door_zone, speed, door, occupied,
       safety_circuit, alarm_button, power, limit_up, limit_down
FROM telemetry
WHERE ts >= %(start)s AND ts < %(end)s AND (%(terminals)s::text[] IS NULL OR terminal_id = ANY(%(terminals)s))
ORDER BY terminal_id, ts, seq, idx
"""


@dataclass
class ReplayResult:
    events: list[FaultEvent] = field(default_factory=list)
    samples: int = 0
    late: int = 0


def replay_events(
    conn: psycopg.Connection[Any],
    thresholds: Thresholds,
    start: datetime,
    end: datetime,
    *,
    terminals: list[str] | None = None,
    lateness_ms: int = 5_000,
    day_offset_ms: int = 0,
) -> ReplayResult:
    """Evaluate the rules over the stored samples of [start, end); samples are read in chunks."""
    processor = RuleProcessor(thresholds, lateness_ms=lateness_ms, day_offset_ms=day_offset_ms)
    processor.set_registry(load_registry_sync(conn))
    result = ReplayResult()
    with conn.cursor(name="liftwatch_replay") as cursor:
        cursor.execute(QUERY, {"start": start, "end": end, "terminals": terminals})
        while True:
            rows = cursor.fetchmany(CHUNK)
            if not rows:
                break
            events, det = processor.evaluate(_columns(processor, rows))
            result.events.extend(events)
            result.samples += det.evaluated
            result.late += det.late
    events, det = processor.evaluate(Columns.empty(), flush=True)
    result.events.extend(events)
    result.samples += det.evaluated
    result.events.sort(key=lambda e: (e.at_ms, e.terminal, e.code.value))
    return result


def _columns(processor: RuleProcessor, rows: list[tuple[Any, ...]]) -> Columns:
    (terminal, ts, mode, floor, door_zone, speed, door, occupied, safety, alarm, power, up, down) = zip(
        *rows, strict=True
    )
    return Columns.from_arrays(
        slot=np.fromiter((processor.slot(t) for t in terminal), np.int32, len(rows)),
        ts=ts,
        mode=[MODE_CODE[m] for m in mode],
        floor=floor,
        door_zone=door_zone,
        speed=speed,
        door=[DOOR_CODE[d] for d in door],
        occupied=occupied,
        safety=safety,
        alarm=alarm,
        power=power,
        limit_up=up,
        limit_down=down,
    )
