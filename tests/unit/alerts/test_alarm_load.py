"""Alarm load, pure: per 10 minutes, flood time, bad actors (EEMUA 191's bounds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from liftwatch.alerts import alarm_load
from liftwatch.alerts.alarm_load import Alarm

DAY = datetime(2026, 3, 2, tzinfo=UTC)
M = timedelta(minutes=1)


def test_a_day_with_one_flood() -> None:
    storm = [Alarm(DAY + 8 * 60 * M + i * 20 * timedelta(seconds=1), f"L{i % 3}", "power_failure") for i in range(25)]
    quiet = [Alarm(DAY + h * 60 * M, "L9", "door_held_open") for h in range(0, 24, 4)]  # 6 over the day
    outside = [Alarm(DAY - M, "L1", "power_failure"), Alarm(DAY + 24 * 60 * M, "L1", "power_failure")]
    load = alarm_load.alarm_load([*storm, *quiet, *outside], DAY, DAY + timedelta(days=1), stale=2, shelved=1)
    assert load.alarms == 31 and load.intervals == 144
    assert load.average_per_10_min == round(31 / 144, 3)
    # 25 alarms from 08:00 every 20 s: 08:00-08:10 holds 30 slots -> 25 and the 6 quiet ones elsewhere
    # (the 08:00 one is in that interval too: 26).
    assert (load.peak_per_10_min, load.peak_at) == (26, DAY + 8 * 60 * M)
    assert (load.flood_intervals, load.flood_minutes) == (1, 10)
    assert load.flood_share == round(1 / 144, 4)
    assert [(a.registration_code, a.code, a.alarms) for a in load.bad_actors[:2]] == [
        ("L0", "power_failure", 9), ("L1", "power_failure", 8),
    ]  # fmt: skip
    assert (load.stale, load.shelved, load.chattering) == (2, 1, 0)


def test_ten_in_ten_minutes_is_not_yet_a_flood_and_bad_actors_stop_at_ten() -> None:
    ten = [Alarm(DAY + i * M, f"L{i}", "alarm_button") for i in range(10)]
    many = [Alarm(DAY + 60 * M + i * M / 2, f"M{i}", "alarm_button") for i in range(11)]  # 11 in 5.5 min
    load = alarm_load.alarm_load([*ten, *many], DAY, DAY + 2 * 60 * M)
    assert load.flood_intervals == 1  # the 11, not the 10
    assert len(load.bad_actors) == 10


@pytest.mark.parametrize(
    ("start", "end", "problem"),
    [(DAY, DAY, "before"), (DAY, DAY + timedelta(days=32), "31 days"), (DAY.replace(tzinfo=None), DAY, "offset")],
)
def test_periods_are_bounded(start: datetime, end: datetime, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        alarm_load.check_period(start, end)


def test_the_csv_rows() -> None:
    load = alarm_load.alarm_load([Alarm(DAY, "L1", "overspeed")], DAY, DAY + 60 * M)
    rows = alarm_load.csv_rows("=Desk 1", DAY, DAY + 60 * M, load)
    assert rows[0] == ["desk", "=Desk 1", None] and ["alarms", 1, None] in rows
    assert rows[-1] == ["bad_actor:overspeed", "L1", 1]
