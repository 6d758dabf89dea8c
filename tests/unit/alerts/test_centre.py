"""The centre's work on incidents, pure: calls open or join, assignment, comments, phone numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from liftwatch.alerts import centre
from liftwatch.alerts.errors import IllegalTransition
from liftwatch.alerts.incidents import CHANGE_KINDS
from liftwatch.schema import FaultCode

AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _call(phone: str | None = None) -> centre.Call:
    return centre.Call("31104403000000000001", FaultCode.TRAPPED_PASSENGER, "op1", AT, "caller stuck", phone)


def test_a_call_opens_when_nothing_is_open_and_joins_the_open_incident_otherwise() -> None:
    opened = centre.call_decision(_call("13800138000"), None)
    assert (opened.outcome, opened.kind, opened.incident_id) == (centre.CallOutcome.OPENED, "opened", None)
    assert opened.data == {"source": "call", "caller_phone": "13800138000"}
    joined = centre.call_decision(_call(), 42)
    assert (joined.outcome, joined.kind, joined.incident_id) == (centre.CallOutcome.JOINED, "called", 42)
    assert joined.data == {"source": "call"}


def test_a_call_opens_with_the_catalog_severity_and_its_own_time_as_detection() -> None:
    fields = centre.opening_fields(_call())
    assert fields["severity"] == "critical" and fields["source"] == "call" and fields["detected_at"] == AT


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("138 0013 8000", "13800138000"), ("+86-21-96333", "+862196333"), (None, None), ("  ", None)],
)
def test_phone_numbers_are_stored_without_separators(typed: str | None, stored: str | None) -> None:
    assert centre.normalise_phone(typed) == stored


@pytest.mark.parametrize("typed", ["call me", "12", "+", "1380013800012345678901234567", "138\x000"])
def test_what_is_not_a_phone_number_is_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="phone"):
        centre.normalise_phone(typed)


def test_assignment_records_from_whom_to_whom_and_nothing_when_unchanged() -> None:
    assert centre.assignment("detected", None, "op1") == {"from": None, "to": "op1"}
    assert centre.assignment("dispatched", "op1", "op2") == {"from": "op1", "to": "op2"}
    assert centre.assignment("acknowledged", "op1", None) == {"from": "op1", "to": None}
    assert centre.assignment("acknowledged", "op1", "op1") is None
    with pytest.raises(IllegalTransition) as refused:
        centre.assignment("closed", "op1", "op2")
    assert refused.value.reason == "illegal_transition"


def test_comments_are_trimmed_and_never_empty() -> None:
    assert centre.check_comment("  caller calm, 3 people  ") == "caller calm, 3 people"
    for bad in ("", "   ", "x" * (centre.COMMENT_MAX + 1)):
        with pytest.raises(ValueError, match="comment"):
            centre.check_comment(bad)


def test_the_centres_kinds_are_change_kinds() -> None:
    # quiet_kinds is validated against CHANGE_KINDS, and the console names every kind.
    assert {"called", "comment", "assigned"} <= CHANGE_KINDS


def test_by_default_calls_and_comments_are_notified_and_claims_are_not() -> None:
    from liftwatch.alerts import service
    from liftwatch.alerts.routing import ChangeFacts, Target, Webhook, recipients
    from liftwatch.config import AlertsSettings

    policy = service.routing_policy(AlertsSettings())
    firm = Webhook(1, "firm", Target.MAINTENANCE_FIRM, "https://firm.example/hook", "s" * 16, maintainer_id=7)
    notified = {
        kind: bool(recipients(ChangeFacts(kind, "critical", 7, "Futian", 1), [firm], policy))
        for kind in ("called", "comment", "assigned")
    }
    assert notified == {"called": True, "comment": True, "assigned": False}
