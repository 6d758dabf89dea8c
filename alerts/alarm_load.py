"""Alarm load of an operator desk (ISA-18.2, EEMUA 191): how many alarms people had to handle. Pure.

An **alarm** is an incident opened (by the rules or a call) on an elevator of the desk's
districts. Over a period, cut into 10-minute intervals: the average and peak alarms per
interval, the time in **flood** (an interval with more than :data:`FLOOD_PER_10_MIN` alarms,
EEMUA 191's "more than 10 in 10 minutes"), the top-10 **bad actors** (elevator + code with the
most alarms), and, from the incidents themselves, the **chattering** ones and the **stale** ones
(still open more than :data:`STALE_AFTER` at the end of the period); plus how many alarms were
shelved and how many elevators were out of service.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

INTERVAL = timedelta(minutes=10)
FLOOD_PER_10_MIN = 10
STALE_AFTER = timedelta(hours=24)
TOP = 10
MAX_PERIOD = timedelta(days=31)


@dataclass(frozen=True, slots=True)
class Alarm:
    at: datetime
    registration_code: str | None
    code: str


@dataclass(frozen=True, slots=True)
class BadActor:
    registration_code: str | None
    code: str
    alarms: int


@dataclass(frozen=True, slots=True)
class AlarmLoad:
    alarms: int
    intervals: int
    average_per_10_min: float
    peak_per_10_min: int
    peak_at: datetime | None
    flood_intervals: int
    flood_minutes: int
    flood_share: float
    """Share of the period spent in flood."""
    bad_actors: list[BadActor] = field(default_factory=list)
    chattering: int = 0
    stale: int = 0
    shelved: int = 0
    out_of_service: int = 0


def check_period(start: datetime, end: datetime) -> None:
    """ValueError unless ``start`` < ``end``, both aware, at most :data:`MAX_PERIOD` apart."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("times need a UTC offset")
    if start >= end:
        raise ValueError("from must be before to")
    if end - start > MAX_PERIOD:
        raise ValueError(f"a period is at most {MAX_PERIOD.days} days")


def alarm_load(
    alarms: Iterable[Alarm],
    start: datetime,
    end: datetime,
    *,
    chattering: int = 0,
    stale: int = 0,
    shelved: int = 0,
    out_of_service: int = 0,
) -> AlarmLoad:
    """The load of ``alarms`` over [start, end) (alarms outside are ignored)."""
    check_period(start, end)
    intervals = max(1, -(-int((end - start) / timedelta(seconds=1)) // int(INTERVAL.total_seconds())))
    buckets: Counter[int] = Counter()
    actors: Counter[tuple[str | None, str]] = Counter()
    total = 0
    for alarm in alarms:
        if not start <= alarm.at < end:
            continue
        total += 1
        buckets[int((alarm.at - start) / INTERVAL)] += 1
        actors[(alarm.registration_code, alarm.code)] += 1
    peak_bucket, peak = max(buckets.items(), key=lambda item: (item[1], -item[0]), default=(0, 0))
    flood = sum(1 for count in buckets.values() if count > FLOOD_PER_10_MIN)
    ranked = sorted(actors.items(), key=lambda item: (-item[1], item[0][0] or "", item[0][1]))[:TOP]
    return AlarmLoad(
        alarms=total,
        intervals=intervals,
        average_per_10_min=round(total / intervals, 3),
        peak_per_10_min=peak,
        peak_at=start + peak_bucket * INTERVAL if peak else None,
        flood_intervals=flood,
        flood_minutes=flood * int(INTERVAL.total_seconds() // 60),
        flood_share=round(flood / intervals, 4),
        bad_actors=[BadActor(code, fault, count) for (code, fault), count in ranked],
        chattering=chattering,
        stale=stale,
        shelved=shelved,
        out_of_service=out_of_service,
    )


CSV_HEADERS = ("metric", "value", "alarms")


def csv_rows(desk: str, start: datetime, end: datetime, load: AlarmLoad) -> list[list[str | int | float | None]]:
    """The report as CSV rows under :data:`CSV_HEADERS`: one metric a row, then the bad actors."""
    rows: list[list[str | int | float | None]] = [
        ["desk", desk, None],
        ["from", start.isoformat(), None],
        ["to", end.isoformat(), None],
        ["alarms", load.alarms, None],
        ["average_per_10_min", load.average_per_10_min, None],
        ["peak_per_10_min", load.peak_per_10_min, None],
        ["peak_at", load.peak_at.isoformat() if load.peak_at else None, None],
        ["flood_minutes", load.flood_minutes, None],
        ["flood_share", load.flood_share, None],
        ["chattering", load.chattering, None],
        ["stale", load.stale, None],
        ["shelved", load.shelved, None],
        ["out_of_service", load.out_of_service, None],
    ]
    rows.extend([f"bad_actor:{actor.code}", actor.registration_code, actor.alarms] for actor in load.bad_actors)
    return rows
