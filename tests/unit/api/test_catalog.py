"""``GET /api/v1/catalog`` says what the lifecycle and the fault catalog say, in the API's spelling."""

from __future__ import annotations

from typing import get_args

from liftwatch.alerts import lifecycle
from liftwatch.api import models
from liftwatch.api.catalog import build_catalog
from liftwatch.schema import FAULT_SEVERITY, IncidentStatus


def test_statuses_their_actions_and_causes_are_the_lifecycles() -> None:
    catalog = build_catalog().model_dump(mode="json")
    assert [entry["status"] for entry in catalog["statuses"]] == [str(status) for status in IncidentStatus]
    by_status = {entry["status"]: entry for entry in catalog["statuses"]}
    assert [s for s, entry in by_status.items() if entry["open"]] == list(lifecycle.OPEN_STATUSES)
    assert [s for s, entry in by_status.items() if entry["at_risk"]] == list(lifecycle.AT_RISK_STATUSES)
    assert by_status["detected"]["actions"] == ["acknowledge", "false-alarm", "escalate"]
    assert by_status["released"]["actions"] == ["close", "false-alarm", "escalate"]
    for status in IncidentStatus:
        accepted = [models.ACTION_NAMES[action] for action in lifecycle.actions(status)]
        assert by_status[status]["actions"] == accepted
    assert catalog["close_causes"] == [str(cause) for cause in lifecycle.CloseCause]
    assert catalog["max_escalation_level"] == lifecycle.MAX_ESCALATION_LEVEL
    assert catalog["severities"] == ["critical", "major", "minor"]
    assert {f["code"]: f["severity"] for f in catalog["faults"]} == {str(c): str(s) for c, s in FAULT_SEVERITY.items()}


def test_the_api_types_are_the_lifecycles_words_in_the_wire_spelling() -> None:
    assert get_args(models.Action) == (
        "acknowledge",
        "dispatch",
        "arrive",
        "release",
        "close",
        "false-alarm",
        "escalate",
    )
    assert get_args(models.Status) == tuple(str(status) for status in IncidentStatus)
    assert get_args(models.CloseCause) == tuple(str(cause) for cause in lifecycle.CloseCause)
    assert all(type(value) is str for value in get_args(models.Status) + get_args(models.CloseCause))
