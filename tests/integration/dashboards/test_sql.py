"""Every PostgreSQL panel (and variable) of the dashboards runs against a real database with data."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from liftwatch.alerts import lifecycle
from liftwatch.dashboards.library import POSTGRES_UID, load_dashboards, panels
from liftwatch.reports import export, monthly, rollup, stats

from tests.fixtures.reports import MONTH, Fleet

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
START = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def grafana_sql(text: str, variables: dict[str, str]) -> str:
    """The SQL Grafana's PostgreSQL datasource would send: macros and $variables substituted."""
    text = re.sub(
        r"\$__timeGroupAlias\(([^,]+),\s*'(\d+)h'\)",
        lambda m: (
            f'floor(extract(epoch FROM {m.group(1)}) / {int(m.group(2)) * 3600}) * {int(m.group(2)) * 3600} AS "time"'
        ),
        text,
    )
    text = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m.group(1)} BETWEEN '{START.isoformat()}' AND '{END.isoformat()}'",
        text,
    )
    text = text.replace("$__timeFrom()", f"'{START.isoformat()}'").replace("$__timeTo()", f"'{END.isoformat()}'")
    for name, value in variables.items():
        # Grafana's sqlstring format: the value quoted, quotes inside doubled.
        text = text.replace(f"${{{name}:sqlstring}}", "'" + value.replace("'", "''") + "'")
        text = text.replace(f"${name}", value)  # unformatted: pasted as it is
    assert "$" not in text, f"unsubstituted macro or variable in: {text}"
    return text


def _queries() -> list[tuple[str, str, str]]:
    found = []
    for dashboard in load_dashboards():
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("datasource", {}).get("uid") == POSTGRES_UID:
                found.append((dashboard["uid"], f"variable {variable['name']}", variable["query"]))
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("uid") == POSTGRES_UID:
                    found.append((dashboard["uid"], panel["title"], target["rawSql"]))
    return found


def test_dashboards_have_postgres_panels() -> None:
    titles = {(uid, title) for uid, title, _ in _queries()}
    assert ("liftwatch-live", "Open incidents by severity") in titles
    assert ("liftwatch-regulator", "Maintenance firms (worst first)") in titles


def test_open_and_closed_incidents_are_the_lifecycles_conditions() -> None:
    """Grafana's SQL cannot import the lifecycle: a list of statuses in a panel must be its condition
    as ``liftwatch.alerts.lifecycle`` builds it (the partial indexes' text, too)."""
    conditions = [
        (title, condition)
        for _, title, text in _queries()
        for condition in re.findall(r"\bstatus (?:NOT )?IN \([^)]*\)", text)
    ]
    assert ("Open incidents by severity", lifecycle.OPEN_SQL) in conditions
    assert {condition for _, condition in conditions} <= {lifecycle.OPEN_SQL, lifecycle.FINAL_SQL}


@pytest.mark.parametrize("district", ["all", "Xuhui"])
def test_every_postgres_panel_runs(reports_fleet: Fleet, district: str) -> None:
    results: dict[str, list[Any]] = {}
    with psycopg.connect(reports_fleet.url, autocommit=True) as conn:
        rollup.refresh_month(conn, MONTH, "Asia/Shanghai", END)
        for uid, title, raw in _queries():
            query = grafana_sql(raw, {"month": "2026-03", "district": district})
            try:
                results[f"{uid}/{title}"] = conn.execute(query.encode()).fetchall()
            except psycopg.Error as error:
                pytest.fail(f"{uid} / {title}: {error}\n{query}")
    # The regulator's panels show the numbers of the report of the same scope.
    scope = stats.Scope("city") if district == "all" else stats.Scope("district", district)
    with psycopg.connect(reports_fleet.url, autocommit=True) as conn:
        report = monthly.monthly_report(conn, MONTH, scope, "Asia/Shanghai", END)
    panel = {
        title.split("/", 1)[1]: rows for title, rows in results.items() if title.startswith("liftwatch-regulator/")
    }
    assert panel["Registered elevators"] == [(report.elevators,)]
    assert panel["Terminal coverage"] == [(report.coverage.coverage,)]
    assert panel["Online rate"] == [(pytest.approx(report.coverage.online_rate),)]
    assert panel["Reached within the arrival deadline"] == [(report.rescue.arrived_within_30min_share,)]
    assert [
        (code, incidents, entrapments, false_alarms)
        for _, code, incidents, _, entrapments, false_alarms in panel["Incidents by fault type"]
    ] == [(c.code, c.incidents, c.entrapments, c.false_alarms) for c in report.codes]
    assert [row[1:3] for row in panel["Incidents by elevator age"]] == [
        (a.elevators, a.incidents) for a in report.age_bands
    ]
    assert [(row[0], *row[1:3], *row[4:]) for row in panel["Maintenance firms (worst first)"]] == [
        (
            f.name,
            f.elevators,
            f.incidents,
            f.entrapments,
            f.dispatch_missed,
            f.arrival_missed,
            f.repeats,
            f.false_alarms,
        )
        for f in report.firms
    ]
    assert [row[0] for row in panel["Elevators with the most incidents"]] == [
        e.registration_code for e in report.top_elevators
    ]
    rescue = {row[0]: row[1:] for row in panel["Entrapment rescue times (minutes)"]}
    for step in report.rescue.steps:
        if step.count:
            assert (rescue[step.step][0], float(rescue[step.step][1])) == (step.count, export._minutes(step.median_s))
    assert panel["Incidents per month"][-1][1:] == (report.incidents, report.entrapments)
    if district == "all":
        assert panel["Registered elevators"] == [(10,)]
        assert panel["Reached within the arrival deadline"] == [(0.5,)]
        assert [row[:3] for row in panel["Maintenance firms (worst first)"]] == [("Firm B", 3, 3), ("Firm A", 7, 4)]
        assert ("2026-03",) in panel["variable month"]
        open_by_severity = dict(results["liftwatch-live/Open incidents by severity"])
        assert open_by_severity["critical"] == 1  # the dispatched entrapment on e8
    else:
        assert panel["Registered elevators"] == [(6,)]


def test_prometheus_panels_use_metrics_the_processes_export() -> None:
    sources = "".join(
        path.read_text(encoding="utf-8")
        for folder in ("core", "ingest", "rules", "alerts", "api")
        for path in (ROOT / folder).glob("*.py")
    )
    exprs = [
        target["expr"]
        for dashboard in load_dashboards()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    assert exprs
    for expr in exprs:
        for name in re.findall(r"liftwatch_[a-z_]+", expr):
            base = re.sub(r"_(total|bucket|sum|count)$", "", name)
            assert f'"{base}"' in sources or f'"{name}"' in sources, f"{name} is not exported by any process"


def test_dashboard_variables_reach_sql_only_as_quoted_strings() -> None:
    """A viewer chooses a variable's value (a URL ?var-district=... is not checked against the list),
    so every variable reaches SQL as ${name:sqlstring}, which Grafana quotes and escapes."""
    for uid, title, raw in _queries():
        unformatted = re.findall(r"\$(?!__)\{?([A-Za-z_]\w*)(?::(\w+))?\}?", raw)
        for name, fmt in unformatted:
            assert fmt == "sqlstring", f"{uid} / {title}: ${name} is pasted into SQL unquoted"


def test_a_crafted_variable_value_stays_a_string(reports_fleet: Fleet) -> None:
    """What a crafted URL sends: with the variables quoted, the injection is a district name nobody has."""
    crafted = "x' OR 'a'='a') UNION SELECT secret FROM alerts_webhooks --"
    with psycopg.connect(reports_fleet.url, autocommit=True) as conn:
        rollup.refresh_month(conn, MONTH, "Asia/Shanghai", END)
        for uid, title, raw in _queries():
            if "district" not in raw:
                continue
            try:
                rows = conn.execute(grafana_sql(raw, {"month": "2026-03", "district": crafted}).encode()).fetchall()
            except psycopg.Error as error:
                pytest.fail(f"{uid} / {title}: the crafted value broke out of its string: {error}")
            if title == "Registered elevators":
                assert rows == [(0,)], rows


def test_regulator_fault_names_are_the_catalogs() -> None:
    """The regulator's fault table names faults in Chinese, from the zh message catalog."""
    catalog = json.loads((ROOT / "core/locales/zh/common.json").read_text(encoding="utf-8"))
    expected = {k.removeprefix("fault."): v for k, v in catalog.items() if k.startswith("fault.")}
    (raw,) = [r for uid, title, r in _queries() if title == "Incidents by fault type"]
    assert dict(re.findall(r"\('([a-z_]+)', '([^']+)'\)", raw)) == expected
