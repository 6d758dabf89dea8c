"""The fault catalog (rules/catalog.py) is the one declaration of every fault rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from liftwatch.rules import catalog
from liftwatch.rules.processor import EVIDENCE
from liftwatch.rules.thresholds import RuleSet
from liftwatch.schema import FaultCode
from liftwatch.simulators.faults import TIMINGS

ROOT = Path(__file__).resolve().parents[3]

# code -> (evaluated on samples, hold thresholds of its raise conditions): the table a new code adds a row to.
EXPECTED: dict[FaultCode, tuple[bool, tuple[str, ...]]] = {
    FaultCode.TRAPPED_PASSENGER: (True, ("between_floors_hold_s", "at_landing_hold_s")),
    FaultCode.OVERSPEED: (True, ("hold_s",)),
    FaultCode.DOOR_OPEN_WHILE_MOVING: (True, ()),
    FaultCode.OVERTRAVEL_TOP: (True, ()),
    FaultCode.OVERTRAVEL_BOTTOM: (True, ()),
    FaultCode.STOPPED_OUTSIDE_DOOR_ZONE: (True, ("hold_s",)),
    FaultCode.SAFETY_CIRCUIT_OPEN: (True, ("hold_s",)),
    FaultCode.DOOR_REOPEN_LOOP: (True, ()),
    FaultCode.DOOR_HELD_OPEN: (True, ("hold_s",)),
    FaultCode.POWER_FAILURE: (True, ("hold_s",)),
    FaultCode.ALARM_BUTTON: (True, ("hold_s",)),
    FaultCode.TERMINAL_OFFLINE: (False, ()),
    FaultCode.UNREGISTERED_TERMINAL: (False, ()),
}


def test_every_fault_code_has_one_spec_in_the_catalogs_order() -> None:
    assert [spec.code for spec in catalog.CATALOG] == list(FaultCode)


@pytest.mark.parametrize("spec", catalog.CATALOG, ids=lambda spec: spec.code.value)
def test_spec(spec: catalog.FaultSpec) -> None:
    on_samples, holds = EXPECTED[spec.code]
    assert spec.on_samples is on_samples
    assert tuple(h.hold_param for h in spec.holds if h.raises and h.hold_param) == holds
    section = RuleSet.model_fields.get(spec.code.value)
    if on_samples:
        assert section is not None, "a rule judged on samples has a thresholds section named by its code"
        for hold in spec.holds:
            assert hold.hold_param is None or hold.hold_param in catalog.defaults(spec)
        assert set(spec.evidence) <= set(EVIDENCE), "every evidence field has a reader in the processor"
    # the simulator injects each variant for longer than the catalog's hold time
    for injection in spec.injections:
        assert TIMINGS[(spec.code, injection.variant)] is injection  # type: ignore[index]
        params = catalog.defaults(spec) if section is not None else {}
        name = f"{spec.code.value}.{injection.variant}" if injection.variant else spec.code.value
        hold = next((h for h in spec.holds if h.name == name), None)
        if hold is not None and hold.hold_param is not None:
            assert injection.minimum_s > float(params[hold.hold_param])  # type: ignore[arg-type]


def test_docs_rule_table_is_the_catalog() -> None:
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    table = catalog.docs_table()
    assert table in text, f"docs/rules.md's rule table differs from rules/catalog.py; paste:\n{table}"
