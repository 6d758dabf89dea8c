"""Monthly statistics on a simulated fleet month: every number equals the hand-computed truth."""

from __future__ import annotations

import datetime as dt
from dataclasses import astuple

import psycopg
import pytest
from liftwatch.reports import monthly, rollup, stats

from tests.fixtures.reports import GROUND_TRUTH, MONTH, Fleet, code_of

pytestmark = pytest.mark.integration

TZ = "Asia/Shanghai"
AFTER = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def _r(value: float | None) -> float | None:
    """Percentiles are interpolated in floating point: compare to 9 decimals."""
    return None if value is None else round(value, 9)


def _report(fleet: Fleet, scope: str = "city", **kwargs: object) -> monthly.MonthlyReport:
    with psycopg.connect(fleet.url) as conn:
        return monthly.monthly_report(conn, MONTH, stats.parse_scope(scope), TZ, AFTER, **kwargs)  # type: ignore[arg-type]


def test_city_month_matches_ground_truth(reports_fleet: Fleet) -> None:
    report = _report(reports_fleet)
    truth = GROUND_TRUTH
    assert (report.elevators, report.incidents, report.entrapments, report.false_alarms) == (
        truth["elevators"],
        truth["incidents"],
        truth["entrapments"],
        truth["false_alarms"],
    )
    assert {c.code: (c.incidents, c.per_10k, c.entrapments, c.false_alarms) for c in report.codes} == truth["codes"]
    assert {s.step: (s.count, _r(s.median_s), _r(s.p90_s)) for s in report.rescue.steps} == truth["steps"]
    assert (report.rescue.arrived_within_30min, report.rescue.arrived_within_30min_share) == truth[
        "arrived_within_30min"
    ]
    cov = report.coverage
    assert (cov.covered, cov.coverage, _r(cov.online_rate)) == (*truth["coverage"][:2], _r(truth["coverage"][2]))
    assert cov.days_observed == 31
    assert [(e.registration_code, e.incidents) for e in report.top_elevators] == truth["top_elevators"]
    assert {a.band: (a.elevators, a.incidents, a.per_10k, a.entrapments) for a in report.age_bands} == truth[
        "age_bands"
    ]
    firms = [astuple(f)[1:] for f in report.firms]  # all but the maintainer id
    assert [(*f[:3], _r(f[3]), *f[4:]) for f in firms] == [(*f[:3], _r(f[3]), *f[4:]) for f in truth["firms"]]
    assert report.complete


def test_scopes_filter_fleet_and_incidents(reports_fleet: Fleet) -> None:
    xuhui = _report(reports_fleet, "district:Xuhui")
    assert (xuhui.elevators, xuhui.incidents, xuhui.entrapments) == (6, 3, 3)
    assert [(f.name, f.elevators, f.incidents) for f in xuhui.firms] == [("Firm A", 6, 3)]
    firm_b = _report(reports_fleet, f"maintainer:{reports_fleet.firm_b}")
    assert (firm_b.elevators, firm_b.incidents, firm_b.false_alarms) == (3, 3, 1)
    assert [e.registration_code for e in firm_b.top_elevators] == [code_of(8)]
    unit_2 = _report(reports_fleet, f"use_unit:{reports_fleet.unit_2}")
    assert (unit_2.elevators, unit_2.incidents) == (5, 4)  # e5-e9; incidents on e6, e7, e8 (x2)


def test_trend_covers_twelve_months_and_refresh_is_idempotent(reports_fleet: Fleet) -> None:
    report = _report(reports_fleet, trend_months=12)
    assert next(p.month for p in report.trend) == "2025-04"
    assert [(p.month, p.incidents) for p in report.trend][-2:] == [("2026-02", 1), ("2026-03", 8)]
    with psycopg.connect(reports_fleet.url) as conn:
        rollup.refresh_month(conn, MONTH, TZ, AFTER)
        rollup.refresh_month(conn, MONTH, TZ, AFTER)
    assert _report(reports_fleet).to_json() == report.to_json() | {"trend": []}


@pytest.mark.parametrize("scope", ["city", "district:Pudong", "maintainer:B", "use_unit:2"])
def test_each_trend_point_carries_the_months_own_figures(reports_fleet: Fleet, scope: str) -> None:
    """The statistics page charts every figure over 12 months: a point equals that month's report."""
    ids = {"maintainer:B": f"maintainer:{reports_fleet.firm_b}", "use_unit:2": f"use_unit:{reports_fleet.unit_2}"}
    scope = ids.get(scope, scope)
    report = _report(reports_fleet, scope, trend_months=12)
    for point in report.trend[-2:]:
        with psycopg.connect(reports_fleet.url) as conn:
            month = monthly.monthly_report(conn, stats.parse_month(point.month), stats.parse_scope(scope), TZ, AFTER)
        arrive = next(s for s in month.rescue.steps if s.step == "arrive")
        assert (point.incidents, point.entrapments, point.elevators, point.per_10k) == (
            month.incidents,
            month.entrapments,
            month.elevators,
            month.per_10k,
        )
        assert point.entrapments_per_10k == stats.per_10k(month.entrapments, month.elevators)
        assert (_r(point.arrive_median_s), _r(point.arrive_p90_s)) == (_r(arrive.median_s), _r(arrive.p90_s))
        assert point.arrived_within_30min_share == month.rescue.arrived_within_30min_share
        assert point.codes == {c.code: c.incidents for c in month.codes}
        assert point.age_bands == {a.band: a.per_10k for a in month.age_bands}


def test_current_month_is_refreshed_on_demand_when_stale(reports_fleet: Fleet) -> None:
    during = dt.datetime(2026, 3, 10, 4, tzinfo=dt.UTC)  # March 10th, noon local
    with psycopg.connect(reports_fleet.url) as conn:
        first = monthly.monthly_report(conn, MONTH, stats.Scope("city"), TZ, during)
        assert not first.complete and first.coverage.days_observed == 10
        conn.execute("DELETE FROM incidents WHERE code = 'overspeed'")
        conn.commit()
        cached = monthly.monthly_report(conn, MONTH, stats.Scope("city"), TZ, during + dt.timedelta(minutes=1))
        fresh = monthly.monthly_report(conn, MONTH, stats.Scope("city"), TZ, during + dt.timedelta(hours=1))
    assert cached.incidents == 8
    assert fresh.incidents == 7


def test_refresh_due_computes_open_months_once_they_are_final(reports_fleet: Fleet) -> None:
    with psycopg.connect(reports_fleet.url, autocommit=True) as conn:
        first = rollup.refresh_due(conn, TZ, AFTER)
        again = rollup.refresh_due(conn, TZ, AFTER)
    # February and March have incidents and are final on May 1st; April ended hours ago (not final
    # before 2 days), May is the current month: those two are recomputed on every run.
    assert [f"{s.month:%Y-%m}" for s in first] == ["2026-02", "2026-03", "2026-04", "2026-05"]
    assert [f"{s.month:%Y-%m}" for s in again] == ["2026-04", "2026-05"]
    assert [s.complete for s in first] == [True, True, False, False]


def test_scope_rollup_sums_the_base_rollup_per_city_and_district(reports_fleet: Fleet) -> None:
    """The pre-summed scope rows (migration 052) equal the base rows summed per scope, both ways."""
    with psycopg.connect(reports_fleet.url, autocommit=True) as conn:
        rollup.refresh_month(conn, MONTH, TZ, AFTER)
        scopes = "CASE WHEN s.d IS NULL THEN 'city' ELSE 'district:' || s.d END"
        checks = {
            "report_scope_fleet": (
                "maintainer_id, age_band, sum(elevators), sum(covered), sum(active_days)",
                "maintainer_id, age_band, elevators, covered, active_days",
                "report_fleet",
                "maintainer_id, age_band",
            ),
            "report_scope_counts": (
                "maintainer_id, age_band, code, sum(incidents), sum(entrapments), sum(false_alarms),"
                " sum(dispatch_missed), sum(arrival_missed), sum(repeats)",
                "maintainer_id, age_band, code, incidents, entrapments, false_alarms, dispatch_missed,"
                " arrival_missed, repeats",
                "report_incident_counts",
                "maintainer_id, age_band, code",
            ),
        }
        for table, (sums, columns, base, keys) in checks.items():
            expected = (
                f"SELECT {scopes} AS scope, {sums} FROM {base} b"
                f" JOIN (SELECT DISTINCT district AS d FROM {base} WHERE district IS NOT NULL"
                f"       UNION ALL SELECT NULL) s ON s.d IS NULL OR s.d = b.district"
                f" WHERE month = %(m)s GROUP BY 1, {keys}"
            )
            actual = f"SELECT scope, {columns} FROM {table} WHERE month = %(m)s"
            for left, right in ((expected, actual), (actual, expected)):
                missing = conn.execute(f"{left} EXCEPT ALL {right}".encode(), {"m": MONTH}).fetchall()
                assert missing == [], (table, missing)
        scope_names = {r[0] for r in conn.execute("SELECT DISTINCT scope FROM report_scope_counts").fetchall()}
    assert scope_names == {"city", "district:Xuhui", "district:Pudong"}


def test_every_scope_kind_reads_consistent_totals(reports_fleet: Fleet) -> None:
    """City = sum of districts = sum of firms = sum of use units (the unregistered terminal aside)."""
    city = _report(reports_fleet)
    parts = {
        "district": [_report(reports_fleet, f"district:{d}") for d in ("Xuhui", "Pudong")],
        "maintainer": [_report(reports_fleet, f"maintainer:{f}") for f in (reports_fleet.firm_a, reports_fleet.firm_b)],
        "use_unit": [_report(reports_fleet, f"use_unit:{u}") for u in (reports_fleet.unit_1, reports_fleet.unit_2)],
    }
    for kind, reports in parts.items():
        assert sum(r.elevators for r in reports) == city.elevators, kind
        assert sum(r.incidents for r in reports) == city.incidents - 1, kind  # unregistered_terminal
        assert sum(r.entrapments for r in reports) == city.entrapments, kind
        assert sum(r.coverage.covered for r in reports) == city.coverage.covered, kind
        for band in range(3):
            assert sum(r.age_bands[band].incidents for r in reports) == city.age_bands[band].incidents, kind
        firm_incidents = {f.name: f.incidents for f in city.firms}
        for report in reports:
            for firm in report.firms:
                assert firm.incidents <= firm_incidents[firm.name]
    firm_b = parts["maintainer"][1]
    assert [(f.name, f.dispatch_missed, f.arrival_missed, f.repeats) for f in firm_b.firms] == [("Firm B", 1, 0, 1)]
