"""Pure statistics for the regulators' monthly report: months, scopes, rates, percentiles, age bands.

No database and no clock here: the SQL in :mod:`liftwatch.reports.rollup` and
:mod:`liftwatch.reports.monthly` produces the raw numbers, these functions give them their meaning,
and the unit tests pin the definitions.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal
from zoneinfo import ZoneInfo

from liftwatch.reports.errors import BadMonth, BadScope

# An elevator's terminal "covers" the month when it sent data on at least this share of the days.
COVERAGE_MIN_DAY_SHARE = 0.9
# A repeat fault: same elevator, same code, within this many days after the previous one.
REPEAT_WINDOW_DAYS = 30

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class AgeBand(IntEnum):
    """Elevator age at the first day of the month, in whole years."""

    UNDER_10 = 0
    FROM_10_TO_15 = 1
    OVER_15 = 2

    @property
    def key(self) -> str:
        return ("lt10", "10to15", "ge15")[self.value]


def age_band(installed_on: dt.date, month: dt.date) -> AgeBand:
    """Band of an elevator installed on ``installed_on`` for the month starting ``month``."""
    years = month.year - installed_on.year - ((month.month, month.day) < (installed_on.month, installed_on.day))
    if years < 10:
        return AgeBand.UNDER_10
    if years < 15:
        return AgeBand.FROM_10_TO_15
    return AgeBand.OVER_15


def parse_month(text: str) -> dt.date:
    """``YYYY-MM`` -> the first day of that month."""
    match = _MONTH.match(text)
    # Bounded above too: the month after, or a trend's months, must still be a valid date.
    if not match or not 1 <= int(match.group(2)) <= 12 or not 2000 <= int(match.group(1)) <= 2199:
        raise BadMonth(text)
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def previous_month(month: dt.date, count: int = 1) -> dt.date:
    index = month.year * 12 + month.month - 1 - count
    return dt.date(index // 12, index % 12 + 1, 1)


def days_in_month(month: dt.date) -> int:
    return (next_month(month) - month).days


def month_bounds(month: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The site-local month as a half-open UTC interval [start, end)."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(month, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(next_month(month), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def days_observed(month: dt.date, now: dt.datetime, timezone: str) -> int:
    """Days of the site-local month that had begun at ``now`` (all of them once it is over)."""
    local_today = now.astimezone(ZoneInfo(timezone)).date()
    if local_today < month:
        return 0
    if local_today >= next_month(month):
        return days_in_month(month)
    return (local_today - month).days + 1


def covered(active_days: int, observed_days: int) -> bool:
    """True when a terminal active on ``active_days`` of ``observed_days`` covers the period."""
    return observed_days > 0 and active_days >= math.ceil(COVERAGE_MIN_DAY_SHARE * observed_days - 1e-9)


def min_covered_days(observed_days: int) -> int:
    """The fewest active days that count as covered (the SQL uses this threshold)."""
    return max(1, math.ceil(COVERAGE_MIN_DAY_SHARE * observed_days - 1e-9))


def per_10k(count: int, elevators: int) -> float | None:
    """Incidents per 10,000 registered elevators (None without a fleet)."""
    return None if elevators <= 0 else count * 10_000 / elevators


def per_100(count: int, elevators: int) -> float | None:
    return None if elevators <= 0 else count * 100 / elevators


def share(part: int, whole: int) -> float | None:
    """part / whole in [0, 1], None when there is nothing to divide."""
    return None if whole <= 0 else part / whole


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear-interpolated percentile, the definition of PostgreSQL's ``percentile_cont``."""
    data = sorted(values)
    if not data:
        return None
    position = fraction * (len(data) - 1)
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (position - low)


ScopeKind = Literal["city", "district", "maintainer", "use_unit"]


@dataclass(frozen=True, slots=True)
class Scope:
    """Which part of the city a report covers."""

    kind: ScopeKind
    value: str | int | None = None

    @property
    def text(self) -> str:
        return "city" if self.kind == "city" else f"{self.kind}:{self.value}"

    @property
    def column(self) -> str | None:
        """The rollup column this scope filters on (None for the whole city)."""
        return {"city": None, "district": "district", "maintainer": "maintainer_id", "use_unit": "use_unit_id"}[
            self.kind
        ]


def parse_scope(text: str) -> Scope:
    """``city`` | ``district:<name>`` | ``maintainer:<id>`` | ``use_unit:<id>``."""
    if text == "city":
        return Scope("city")
    kind, sep, value = text.partition(":")
    if not sep or not value:
        raise BadScope(text)
    if kind == "district":
        return Scope("district", value)
    if kind in ("maintainer", "use_unit"):
        if not value.isdigit() or len(value) > 18:
            raise BadScope(text)
        return Scope(kind, int(value))  # type: ignore[arg-type]
    raise BadScope(text)
