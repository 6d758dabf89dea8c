"""The fault catalog (rules/catalog.py) is the one declaration of every fault rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from liftwatch.rules import catalog
from liftwatch.rules.engine import JUDGES
from liftwatch.rules.processor import EVIDENCE
from liftwatch.rules.thresholds import RuleSet
from liftwatch.schema import FaultCode
from liftwatch.simulators.faults import TIMINGS

ROOT = Path(__file__).resolve().parents[3]

WHEN = "when"
"""Judged by its condition held for the hold time (``FaultSpec.when``)."""

# code -> (how it is judged on samples: WHEN, a composite judge of the engine, or None for not on samples;
# hold thresholds of its raise conditions): the table a new code adds a row to.
EXPECTED: dict[FaultCode, tuple[str | None, tuple[str, ...]]] = {
    FaultCode.TRAPPED_PASSENGER: ("trapped", ("between_floors_hold_s", "at_landing_hold_s")),
    FaultCode.OVERSPEED: (WHEN, ("hold_s",)),
    FaultCode.DOOR_OPEN_WHILE_MOVING: (WHEN, ()),
    FaultCode.OVERTRAVEL_TOP: (WHEN, ()),
    FaultCode.OVERTRAVEL_BOTTOM: (WHEN, ()),
    FaultCode.STOPPED_OUTSIDE_DOOR_ZONE: (WHEN, ("hold_s",)),
    FaultCode.SAFETY_CIRCUIT_OPEN: (WHEN, ("hold_s",)),
    FaultCode.DOOR_REOPEN_LOOP: ("reopen_loop", ()),
    FaultCode.DOOR_HELD_OPEN: (WHEN, ("hold_s",)),
    FaultCode.POWER_FAILURE: (WHEN, ("hold_s",)),
    FaultCode.ALARM_BUTTON: (WHEN, ("hold_s",)),
    FaultCode.TERMINAL_OFFLINE: (None, ()),
    FaultCode.UNREGISTERED_TERMINAL: (None, ()),
}


def test_every_fault_code_has_one_spec_in_the_catalogs_order() -> None:
    assert [spec.code for spec in catalog.CATALOG] == list(FaultCode)


@pytest.mark.parametrize("spec", catalog.CATALOG, ids=lambda spec: spec.code.value)
def test_spec(spec: catalog.FaultSpec) -> None:
    judged_by, holds = EXPECTED[spec.code]
    on_samples = judged_by is not None
    assert spec.on_samples is on_samples
    # a rule on samples is judged by exactly one of its condition and a composite judge; others by neither
    assert (WHEN if spec.when is not None else spec.judge) == judged_by
    assert spec.when is None or spec.judge is None
    assert tuple(h.hold_param for h in spec.holds if h.raises and h.hold_param) == holds
    section = RuleSet.model_fields.get(spec.code.value)
    if on_samples:
        assert section is not None, "a rule judged on samples has a thresholds section named by its code"
        for hold in spec.holds:
            assert hold.hold_param is None or hold.hold_param in catalog.defaults(spec)
            assert hold.min_samples_param is None or hold.min_samples_param in catalog.defaults(spec)
        if spec.when is not None:
            assert len(spec.holds) == 1, "a condition held for its hold time is the rule's one tracked condition"
        assert set(spec.evidence) <= set(EVIDENCE), "every evidence field has a reader in the processor"
    # the simulator injects each variant for longer than the catalog's hold time
    for injection in spec.injections:
        assert TIMINGS[(spec.code, injection.variant)] is injection  # type: ignore[index]
        params = catalog.defaults(spec) if section is not None else {}
        name = f"{spec.code.value}.{injection.variant}" if injection.variant else spec.code.value
        hold = next((h for h in spec.holds if h.name == name), None)
        if hold is not None and hold.hold_param is not None:
            assert injection.minimum_s > float(params[hold.hold_param])  # type: ignore[arg-type]


def test_the_engine_judges_the_catalog_and_nothing_else() -> None:
    """Every composite judge of the engine is named by a spec: evaluate judges only the catalog's codes."""
    assert set(JUDGES) == {spec.judge for spec in catalog.SAMPLE_RULES if spec.judge is not None}


def test_docs_rule_table_is_the_catalog() -> None:
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    table = catalog.docs_table()
    assert table in text, f"docs/rules.md's rule table differs from rules/catalog.py; paste:\n{table}"
