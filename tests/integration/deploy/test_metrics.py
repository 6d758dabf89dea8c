"""The metric catalogue in docs/operations.md is what the processes register, row for row.

Each process's metrics class is built on a fresh registry (as the process does at start) and its
metrics compared with the catalogue table: name, type, labels and help text. A metric added in
code and not documented, or documented and gone, fails here. Also checks the catalogue covers
what the production issue asks every process to expose.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from liftwatch.alerts.metrics import AlertsMetrics
from liftwatch.api.metrics import ApiMetrics
from liftwatch.badinput import BadInputPolicy
from liftwatch.ingest.metrics import GatewayMetrics, WriterMetrics
from liftwatch.rules.metrics import RulesMetrics
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
Row = tuple[str, str, str, str]  # metric (as Prometheus shows it), type, labels, help


def _registered(*builders: Callable[[CollectorRegistry], object]) -> set[Row]:
    """The metrics a process's builders register on a fresh registry, as catalogue rows."""
    registry = CollectorRegistry()
    for build in builders:
        build(registry)
    rows = set()
    for metric in registry._collector_to_names:  # the registered collectors
        assert isinstance(metric, MetricWrapperBase)
        name = metric._name + ("_total" if metric._type == "counter" else "")
        rows.add((name, str(metric._type), ", ".join(metric._labelnames), metric._documentation))
    return rows


def _code() -> dict[str, set[Row]]:
    """What each long-running process registers (its metrics class, plus the bad-input policy)."""
    return {
        "gateway": _registered(GatewayMetrics, BadInputPolicy),
        "writer": _registered(WriterMetrics, BadInputPolicy),
        "rules": _registered(RulesMetrics, BadInputPolicy),
        "alerts": _registered(AlertsMetrics, BadInputPolicy),
        "api": _registered(ApiMetrics.create),
    }


def _catalogue() -> dict[str, set[Row]]:
    text = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    section = text.split("## Metric catalogue", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, set[Row]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[1].startswith("`liftwatch_"):
            continue
        processes, metric, kind, labels, meaning = cells
        for process in re.split(r",\s*", processes):
            documented.setdefault(process, set()).add((metric.strip("`"), kind, labels, meaning))
    return documented


def test_catalogue_lists_exactly_what_each_process_registers() -> None:
    code, docs = _code(), _catalogue()
    assert set(docs) == set(code), "one catalogue section per long-running process"
    for process in code:
        assert docs[process] - code[process] == set(), f"{process}: documented but not registered"
        assert code[process] - docs[process] == set(), f"{process}: registered but not documented"


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("messages in per topic", r"liftwatch_(gateway_messages_in|writer_records_in)_total"),
        ("messages out per topic", r"liftwatch_gateway_records_out_total"),
        ("dead letters by reason", r"liftwatch_dead_letters_total"),
        ("consumer lag", r"liftwatch_(rules|writer)_consumer_lag"),
        ("batch sizes", r"liftwatch_(gateway_batch_messages|writer_batch_records|rules_batch_samples)"),
        ("rule evaluation time", r"liftwatch_rules_evaluation_seconds"),
        ("open incidents by severity", r"liftwatch_alerts_open_incidents"),
        ("deadline misses", r"liftwatch_alerts_deadline_misses_total"),
        ("notification failures", r"liftwatch_alerts_notifications_failed_total"),
    ],
)
def test_the_asked_for_metrics_exist(what: str, pattern: str) -> None:
    names = {name for rows in _code().values() for name, *_ in rows}
    assert any(re.fullmatch(pattern, name) for name in names), what
