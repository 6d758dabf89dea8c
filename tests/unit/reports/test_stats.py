"""The definitions behind the regulators' numbers: months, scopes, age bands, coverage, percentiles."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from liftwatch.reports import export, stats
from liftwatch.reports.errors import BadMonth, BadScope

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("installed", "band"),
    [
        (dt.date(2016, 3, 2), stats.AgeBand.UNDER_10),  # 9 years and 364 days
        (dt.date(2016, 3, 1), stats.AgeBand.FROM_10_TO_15),  # exactly 10 years
        (dt.date(2011, 3, 2), stats.AgeBand.FROM_10_TO_15),
        (dt.date(2011, 3, 1), stats.AgeBand.OVER_15),  # exactly 15 years
        (dt.date(1990, 1, 1), stats.AgeBand.OVER_15),
        (dt.date(2026, 2, 28), stats.AgeBand.UNDER_10),
    ],
)
def test_age_band_at_the_first_day_of_the_month(installed: dt.date, band: stats.AgeBand) -> None:
    assert stats.age_band(installed, dt.date(2026, 3, 1)) is band


def test_month_is_site_local() -> None:
    start, end = stats.month_bounds(dt.date(2026, 3, 1), "Asia/Shanghai")
    assert start == dt.datetime(2026, 2, 28, 16, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 3, 31, 16, tzinfo=dt.UTC)
    assert stats.previous_month(dt.date(2026, 1, 1), 12) == dt.date(2025, 1, 1)
    assert stats.next_month(dt.date(2026, 12, 1)) == dt.date(2027, 1, 1)


def test_days_observed_counts_begun_local_days() -> None:
    march = dt.date(2026, 3, 1)
    assert stats.days_observed(march, dt.datetime(2026, 2, 28, 15, 59, tzinfo=dt.UTC), "Asia/Shanghai") == 0
    assert stats.days_observed(march, dt.datetime(2026, 2, 28, 16, 0, tzinfo=dt.UTC), "Asia/Shanghai") == 1
    assert stats.days_observed(march, dt.datetime(2026, 6, 1, tzinfo=dt.UTC), "Asia/Shanghai") == 31


@pytest.mark.parametrize(("observed", "minimum"), [(31, 28), (30, 27), (28, 26), (10, 9), (1, 1)])
def test_coverage_needs_ninety_percent_of_the_days(observed: int, minimum: int) -> None:
    assert stats.min_covered_days(observed) == minimum
    assert stats.covered(minimum, observed) and not stats.covered(minimum - 1, observed)


def test_rates_and_shares() -> None:
    assert stats.per_10k(3, 300_000) == 0.1
    assert stats.per_100(4, 7) == pytest.approx(57.142857)
    assert stats.per_10k(1, 0) is None and stats.share(1, 0) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1e5, allow_nan=False), min_size=1, max_size=40), st.sampled_from([0.5, 0.9]))
def test_percentile_is_postgres_percentile_cont(values: list[float], fraction: float) -> None:
    result = stats.percentile(values, fraction)
    assert result is not None and min(values) <= result <= max(values)
    ordered = sorted(values)
    below = sum(1 for v in ordered if v < result)
    assert below <= fraction * (len(values) - 1) + 1


def test_percentile_examples() -> None:
    assert stats.percentile([30, 60, 90, 120], 0.5) == 75
    assert stats.percentile([30, 60, 90, 120], 0.9) == pytest.approx(111)
    assert stats.percentile([], 0.5) is None


@pytest.mark.parametrize("text", ["2026-3", "2026-13", "1999-12", "march", "2026-03-01", ""])
def test_bad_months_are_refused(text: str) -> None:
    with pytest.raises(BadMonth):
        stats.parse_month(text)


def test_scopes() -> None:
    assert stats.parse_scope("city") == stats.Scope("city")
    assert stats.parse_scope("district:徐汇") == stats.Scope("district", "徐汇")
    assert stats.parse_scope("maintainer:12").column == "maintainer_id"
    assert stats.parse_scope("use_unit:3").text == "use_unit:3"
    for bad in ("maintainer:x", "use_unit:", "district", "firm:1", "maintainer:1e3", "maintainer:" + "9" * 19):
        with pytest.raises(BadScope):
            stats.parse_scope(bad)


def test_report_catalogs_have_the_same_keys_in_both_languages() -> None:
    zh = json.loads((ROOT / "core/locales/zh/reports.json").read_text(encoding="utf-8"))
    en = json.loads((ROOT / "core/locales/en/reports.json").read_text(encoding="utf-8"))
    assert set(zh) == set(en)
    assert all(len(title) <= 31 for k, title in en.items() if k.startswith("section."))  # XLSX sheet names
    assert all(len(title) <= 31 for k, title in zh.items() if k.startswith("section."))


def test_report_numbers_are_rounded_half_up() -> None:
    """Files and dashboards (PostgreSQL numeric round) show the same figure: 75 s is 1.3 min, not 1.2."""
    assert export._minutes(75) == 1.3
    assert export._round(0.125) == 0.13 and export._round(400 / 7) == 57.14
    assert export._round(None) is None and export._minutes(1800) == 30.0
