"""Changing a rescue deadline is one setting: the incidents opened after it carry the new deadline,
and the alert service, the API, the monthly report and the Grafana dashboard all read that."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest
from liftwatch.alerts import deadlines_store, faults_store, outbox, service
from liftwatch.alerts.deadlines import DueKind, due
from liftwatch.api.incidents import incident_model
from liftwatch.config import AlertsSettings
from liftwatch.reports import monthly, stats
from liftwatch.schema import FaultCode
from psycopg.rows import dict_row

from tests.fixtures.alerts import T0, Lift, fault, query

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[3] / "dashboards" / "regulator_monthly.json"
MONTH = dt.date(2026, 3, 1)


def _within_sql() -> str:
    """The regulator dashboard's "within the arrival deadline" panel, with its variables filled in."""
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    found = [t["rawSql"] for p in panels for t in p.get("targets", []) if "within" in t.get("rawSql", "")]
    assert len(found) == 1
    return found[0].replace("${month:sqlstring}", "'2026-03'").replace("${district:sqlstring}", "'all'")


async def test_the_arrival_target_is_changed_in_one_place(database_url: str, lifts: list[Lift]) -> None:
    before, after = lifts[0], lifts[1]
    t0_ms = int(T0.timestamp() * 1000)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        # An entrapment opened under the shipped policy (30 minutes) ...
        await outbox.lock_outbox(conn)
        await faults_store.record_faults(conn, [fault(before, FaultCode.TRAPPED_PASSENGER, since_ms=t0_ms)], now=T0)
        await conn.commit()
        # ... then the target is changed to 20 minutes: the alert service saves its policy when it starts.
        policy = service.deadline_policy(AlertsSettings(arrival_deadline_s=20 * 60))
        await deadlines_store.save_deadline_policy(conn, policy)
        await outbox.lock_outbox(conn)
        await faults_store.record_faults(conn, [fault(after, FaultCode.TRAPPED_PASSENGER, since_ms=t0_ms)], now=T0)
        await conn.commit()
    rows = await query(
        database_url,
        "SELECT i.*, NULL AS maintainer, NULL AS address, NULL AS rescue_code, NULL AS suppressed"
        " FROM incidents i ORDER BY id",
    )
    old, new = rows
    assert old["arrival_deadline_at"] == T0 + dt.timedelta(minutes=30)  # kept what it opened with
    assert new["arrival_deadline_at"] == T0 + dt.timedelta(minutes=20)
    assert old["dispatch_deadline_at"] == new["dispatch_deadline_at"] == T0 + dt.timedelta(minutes=5)

    # The alert service judges each by its own deadline ...
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        candidates = await deadlines_store.deadline_candidates(conn, policy, T0 + dt.timedelta(minutes=21))
    arrival = [d for d in due(candidates, T0 + dt.timedelta(minutes=21), policy) if d.kind is DueKind.ARRIVAL_MISSED]
    assert [(d.incident_id, d.deadline) for d in arrival] == [(new["id"], new["arrival_deadline_at"])]
    # ... the API shows the same instants ...
    for row in rows:
        shown = incident_model(row)
        assert (shown.dispatch_deadline_at, shown.arrival_deadline_at) == (
            row["dispatch_deadline_at"],
            row["arrival_deadline_at"],
        )

    # ... and both firms arrive after 25 minutes: within the old incident's deadline, not the new one's.
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(
            "UPDATE incidents SET status = 'arrived', acknowledged_at = %(t)s, dispatched_at = %(t)s,"
            " arrived_at = %(arrived)s",
            {"t": T0 + dt.timedelta(minutes=1), "arrived": T0 + dt.timedelta(minutes=25)},
        )
        report = monthly.monthly_report(conn, MONTH, stats.Scope("city"), "UTC", dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
        assert (report.rescue.entrapments, report.rescue.arrived_within_30min) == (2, 1)
        dashboard = conn.execute(_within_sql()).fetchone()
        assert dashboard is not None and list(dashboard.values()) == [0.5]
