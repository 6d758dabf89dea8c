"""The firm league's flag rule: which thresholds a firm's record crosses."""

from __future__ import annotations

from typing import Any

import pytest
from liftwatch.config import LeagueThresholds
from liftwatch.reports import league

BOUNDS = LeagueThresholds(min_entrapments=2, min_incidents=4)


def _row(**counts: int) -> dict[str, Any]:
    base = {"maintainer_id": 1, "name": "F", "elevators": 100_000, "elevator_months": 3_000_000, "incidents": 10,
            "entrapments": 4, "dispatch_missed": 0, "arrival_missed": 0, "repeats": 0, "false_alarms": 0}  # fmt: skip
    return base | counts


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, []),
        ({"dispatch_missed": 1}, ["dispatch_missed_share"]),  # 1/4 > 10 %
        ({"arrival_missed": 1, "entrapments": 10}, []),  # exactly 10 %: not above
        ({"arrival_missed": 1, "entrapments": 1}, []),  # too few entrapments for a share
        ({"repeats": 3}, ["repeat_share"]),  # 3/10 > 20 %
        ({"false_alarms": 3, "incidents": 3, "entrapments": 0}, []),  # too few incidents for a share
        ({"false_alarms": 4, "incidents": 10}, ["false_alarm_share"]),
        ({"elevator_months": 2_000}, []),  # 4 x 10,000 / 2,000 elevator-months = 20 a month: not above
        ({"elevator_months": 1_999}, ["entrapments_per_10k"]),
        ({"elevator_months": 0, "elevators": 0, "entrapments": 0}, []),  # no fleet: no rate
    ],
)
def test_a_firm_is_flagged_for_each_threshold_it_crosses(counts: dict[str, int], expected: list[str]) -> None:
    row = _row(**counts)
    assert league.record(row, BOUNDS).flags == expected


def test_the_monthly_rate_is_per_elevator_month() -> None:
    record = league.record(_row(entrapments=3, elevator_months=30_000), BOUNDS)
    assert record.entrapments_per_10k == 1.0 and record.dispatch_missed_share == 0.0
