"""The project's protocol docs are the shared contract, verbatim."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "contract"


@pytest.mark.parametrize("name", ["telemetry.schema.json", "faults.md", "registry.md"])
def test_protocol_docs_match_the_shared_contract(name: str) -> None:
    ours = ROOT / "docs" / "protocol" / name
    assert ours.exists()
    if SHARED.exists():  # the shared folder sits beside every checkout, CI's included
        assert ours.read_text(encoding="utf-8") == (SHARED / name).read_text(encoding="utf-8")
