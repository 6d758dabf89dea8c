"""Storm rules, pure: who groups with whom, what inhibits what, and what is never hidden."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from liftwatch.alerts import service, storms
from liftwatch.alerts.errors import AlertsConfigError
from liftwatch.alerts.storms import GroupRule, InhibitRule, StormIncident
from liftwatch.config import AlertsSettings

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def _incident(id: int, code: str = "power_failure", *, lift: str = "L1", district: str = "Futian",
              at: timedelta = timedelta(0), **more: object) -> StormIncident:  # fmt: skip
    return StormIncident(id, code, lift, district, more.pop("firm", 1), T0 + at, **more)  # type: ignore[arg-type]


def test_a_storm_of_one_code_in_one_district_forms_one_group_led_by_the_first() -> None:
    rule = GroupRule()
    first = _incident(1, lift="L1")
    assert storms.group_leader(first, [], rule) is None  # alone: no group yet
    second = _incident(2, lift="L2", at=10 * S)
    assert storms.group_leader(second, [first], rule) == 1  # the first now leads a group
    led = replace(first, group_id=1)
    third = _incident(3, lift="L3", at=200 * S, firm=2)  # another firm's elevator: same group
    assert storms.group_leader(third, [led, replace(second, group_id=1)], rule) == 1


@pytest.mark.parametrize(
    ("new", "why"),
    [
        (_incident(2, district="Nanshan", at=10 * S), "another district"),
        (_incident(2, "safety_circuit_open", at=10 * S), "another code"),
        (_incident(2, at=301 * S), "outside the window"),
        (_incident(2, "trapped_passenger", at=10 * S), "an entrapment is never grouped"),
        (_incident(2, district=None, at=10 * S), "no district"),  # type: ignore[arg-type]
    ],
)
def test_what_does_not_group(new: StormIncident, why: str) -> None:
    assert storms.group_leader(new, [_incident(1), _incident(9, "trapped_passenger")], GroupRule()) is None, why


def test_grouping_can_be_turned_off() -> None:
    assert storms.group_leader(_incident(2, at=S), [_incident(1)], GroupRule(window_s=0)) is None


def test_a_lasting_power_failure_inhibits_its_elevators_derived_faults_only() -> None:
    rules = storms.DEFAULT_INHIBIT_RULES
    power = _incident(1, lift="L1")
    derived = _incident(2, "stopped_outside_door_zone", lift="L1", at=5 * S)
    at = T0 + 10 * S
    assert storms.inhibitor(derived, at, [power], rules) == 1
    assert storms.inhibitor(replace(derived, registration_code="L2"), at, [power], rules) is None  # other lift
    for code in ("trapped_passenger", "overspeed", "alarm_button", "power_failure"):
        assert storms.inhibitor(replace(derived, code=code), at, [power], rules) is None, code
    cleared = replace(power, condition_cleared_at=T0 + 8 * S)
    assert storms.inhibitor(derived, at, [cleared], rules) is None  # the supply is back: it is news again
    closed = replace(power, closed_at=T0 + 9 * S)
    assert storms.inhibitor(derived, at, [closed], rules) is None
    offline = _incident(3, "terminal_offline", lift="L1")
    assert storms.inhibitor(derived, at, [offline], rules) == 3


@pytest.mark.parametrize(
    ("group", "inhibit", "problem"),
    [
        (GroupRule(by=("district",)), (), "code"),
        (GroupRule(by=("code", "address")), (), "code"),
        (GroupRule(), (InhibitRule(frozenset({"power_failure"}), frozenset({"trapped_passenger"})),), "never"),
        (GroupRule(), (InhibitRule(frozenset({"power_cut"}), frozenset({"door_held_open"})),), "unknown"),
        (GroupRule(), (InhibitRule(frozenset({"power_failure"}), frozenset({"door_held_open"}), ("floor",)),), "equal"),
    ],
)
def test_rules_that_hide_entrapments_or_name_nothing_are_refused(
    group: GroupRule, inhibit: tuple[InhibitRule, ...], problem: str
) -> None:
    with pytest.raises(AlertsConfigError, match=problem):
        storms.check_rules(group, inhibit)


def test_the_settings_build_the_policy_and_refuse_bad_rules_at_start() -> None:
    policy = service.storm_policy(AlertsSettings())
    assert policy.group == GroupRule() and policy.inhibit == storms.DEFAULT_INHIBIT_RULES
    custom = service.storm_policy(
        AlertsSettings(group_window_s=60, inhibit_rules=[{"source": ["power_failure"], "target": ["door_held_open"]}])
    )
    assert custom.group.window_s == 60
    assert custom.inhibit == (InhibitRule(frozenset({"power_failure"}), frozenset({"door_held_open"})),)
    for rules in ([{"source": ["power_failure"], "target": ["trapped_passenger"]}], [{"source": ["power_failure"]}]):
        with pytest.raises(AlertsConfigError, match="LIFTWATCH_INHIBIT_RULES"):
            service.storm_policy(AlertsSettings(inhibit_rules=rules))


# --- reminders per severity (deadlines.DeadlinePolicy.reminders_s) -------------------------------


def test_unacknowledged_incidents_are_reminded_per_severity_until_acknowledged() -> None:
    from liftwatch.alerts.deadlines import DueKind, IncidentTimes, due_for

    policy = service.deadline_policy(AlertsSettings())  # critical 60 s, major 900 s, minor never
    assert (policy.reminder_s("critical"), policy.reminder_s("major"), policy.reminder_s("minor")) == (60, 900, None)

    def reminded(severity: str, after_s: int, status: str = "detected") -> bool:
        incident = IncidentTimes(1, "power_failure", severity, status, T0, T0, last_notified_at=T0)
        return DueKind.RENOTIFY in {d.kind for d in due_for(incident, T0 + after_s * S, policy)}

    assert reminded("critical", 60) and not reminded("critical", 59)
    assert reminded("major", 900) and not reminded("major", 899)
    assert not reminded("minor", 86_400)
    assert not reminded("major", 5_000, status="acknowledged")
    custom = service.deadline_policy(AlertsSettings(reminder_intervals_s={"major": 120, "minor": 3600}))
    assert (custom.reminder_s("major"), custom.reminder_s("minor")) == (120, 3600)
    with pytest.raises(AlertsConfigError, match="REMINDER"):
        service.deadline_policy(AlertsSettings(reminder_intervals_s={"major": 0}))
