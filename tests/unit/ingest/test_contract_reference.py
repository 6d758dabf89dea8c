"""The decoder implements the telemetry JSON Schema exactly.

Two checks against ``docs/protocol/telemetry.schema.json`` (the shared contract, verbatim): the
structs' own JSON Schema has the contract's fields, types, enums and bounds; and on arbitrary
near-valid documents the decoder accepts exactly what a reference JSON Schema validator accepts,
refusing with a path the validator also names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # test-only reference validator
import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st
from liftwatch.ingest.contract import MAX_SEQ, Accepted, Rejection, TimeLimits, decode_telemetry
from liftwatch.schema import TelemetryMessage

CONTRACT = json.loads(
    (Path(__file__).resolve().parents[3] / "docs" / "protocol" / "telemetry.schema.json").read_text(encoding="utf-8")
)
_COMPARED = ("type", "enum", "minimum", "maximum", "pattern", "minItems", "maxItems")


def _normalised(prop: dict[str, Any]) -> dict[str, Any]:
    """The constraints of one property, in a form both schemas can be compared in."""
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    # Optional fields are modelled as `X | None` (None = not reported); an explicit null is
    # refused by the decoder separately, so the null branch is not part of the contract.
    assert len(branches) == 1, prop
    branch = dict(branches[0])
    if "const" in branch:
        branch["enum"] = [branch.pop("const")]
    if "enum" in branch:
        branch["enum"] = sorted(branch["enum"], key=str)
    if "pattern" in branch:
        branch["pattern"] = branch["pattern"].replace("\\Z", "$")
    return {key: branch[key] for key in _COMPARED if key in branch}


def test_the_structs_have_the_contracts_fields_types_and_bounds() -> None:
    ours = msgspec.json.schema(TelemetryMessage)["$defs"]
    pairs = [(CONTRACT, ours["TelemetryMessage"]), (CONTRACT["properties"]["samples"]["items"], ours["Sample"])]
    for contract, struct in pairs:
        assert contract["additionalProperties"] is False and struct["additionalProperties"] is False
        assert set(struct["required"]) == set(contract["required"])
        assert list(struct["properties"]) == list(contract["properties"])
        for name, prop in contract["properties"].items():
            if name == "samples":
                assert _normalised(struct["properties"][name]) == _normalised(prop) | {"type": "array"}
                continue
            assert _normalised(struct["properties"][name]) == _normalised(prop), name


# The reference: a Draft 2020-12 validator. The schema's regex dialect is ECMA-262, where `$` is
# the end of the text; Python's `re` (which the validator uses) also lets `$` match before a final
# newline, so the reference gets `\Z` for the same meaning.
_REFERENCE = jsonschema.Draft202012Validator(json.loads(json.dumps(CONTRACT).replace('{1,64}$"', '{1,64}\\\\Z"')))
_NOW = 1_790_000_000_000
_OPEN = TimeLimits(max_future_ms=10**30, max_age_ms=10**30)  # timestamps are checked separately
_VALID_SAMPLE: dict[str, Any] = {
    "ts": _NOW,
    "mode": "normal",
    "floor": 3,
    "door_zone": True,
    "direction": "up",
    "speed": 1.5,
    "door": "closed",
    "occupied": True,
    "safety_circuit": True,
    "door_lock": True,
    "alarm_button": False,
    "power": True,
    "load_pct": 40,
    "limit_up": False,
    "limit_down": False,
}
# Values near every boundary of the contract, of every JSON type.
_EDGES = st.sampled_from(
    [
        None, True, False, 0, 1, -1, 1.0, 0.5, 7.0, -10, -11, 200, 201, 25, 25.0, 25.001, 100, 199.99, 200.0, 200.5,
        -0.0, 1e3, 1.79e12, 2**53, 2**63, 2**64, -(2**63), "", "1", "true", "normal", "NORMAL", "up", "stop",
        "closed", "open", "opening", "T1", "T1\n", "T" * 64, "T" * 65, "a-b_C9", "T 1", "Ţ1", [], [1], {}, {"a": 1},
    ]
)  # fmt: skip
_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=2) | st.dictionaries(st.text(max_size=4), children, max_size=2),
    max_leaves=4,
)


@st.composite
def _documents(draw: st.DrawFn) -> Any:
    samples = [dict(_VALID_SAMPLE) for _ in range(draw(st.integers(1, 3)))]
    document: dict[str, Any] = {"v": 1, "terminal": "T1", "seq": 7, "samples": samples}
    for _ in range(draw(st.integers(1, 3))):
        target = document if draw(st.integers(0, 4)) == 0 else draw(st.sampled_from(samples))
        key = draw(st.sampled_from([*sorted(target), "extra"]))
        action = draw(st.sampled_from(["edge", "edge", "any", "drop"]))
        if action == "drop":
            target.pop(key, None)
        else:
            target[key] = draw(_EDGES if action == "edge" else _ANY)
    if draw(st.integers(0, 9)) == 0:
        document["samples"] = draw(st.sampled_from([[], samples * 34, "x", None]))
    return document


def _reference_paths(document: Any) -> set[str]:
    """The JSON paths the reference validator reports (a missing or unknown field named itself)."""
    paths = set()
    for error in _REFERENCE.iter_errors(document):
        base = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        if error.validator == "required":
            paths |= {f"{base}.{name}" for name in re.findall(r"'([^']*)'", error.message)[:1]}
        elif error.validator == "additionalProperties":  # from the instance: the message repr()s odd names
            allowed = set(error.schema.get("properties", {}))
            paths |= {f"{base}.{name}" for name in error.instance if name not in allowed}
        else:
            paths.add(base)
    return paths


@settings(max_examples=200, deadline=None)
@given(document=_documents())
@example(document={"v": 1.0, "terminal": "T1", "seq": 7.0, "samples": [_VALID_SAMPLE | {"ts": 1.79e12, "floor": 3.0}]})
@example(document={"v": 1, "terminal": "T1\n", "seq": 7, "samples": [_VALID_SAMPLE]})
@example(document={"v": 1, "terminal": "T1", "seq": 7.5, "samples": [_VALID_SAMPLE | {"floor": 2.0}]})
@example(document={"v": 1, "terminal": "T1", "seq": 2**64, "samples": [_VALID_SAMPLE]})
def test_the_decoder_accepts_exactly_what_the_json_schema_accepts(document: Any) -> None:
    payload = json.dumps(document).encode()
    terminal = document.get("terminal") if isinstance(document.get("terminal"), str) else "T1"
    result = decode_telemetry(payload, terminal, _NOW, max_bytes=len(payload), limits=_OPEN)
    paths = _reference_paths(document)
    seq = document.get("seq")
    if isinstance(seq, (int, float)) and not isinstance(seq, bool) and seq > MAX_SEQ:
        paths.add("$.seq")  # the one documented limit beyond the schema: 64-bit sequence numbers
    assert isinstance(result, Accepted) == (not paths), (result, paths)
    if isinstance(result, Rejection):
        assert result.field in paths, (result, paths)
    else:
        # Integral floats of integer fields come out as ints; everything else as sent.
        assert msgspec.to_builtins(result.message)["seq"] == document["seq"]
