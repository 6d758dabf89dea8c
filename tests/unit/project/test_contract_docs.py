"""The project's protocol docs are the shared contract, verbatim."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT.parent / "shared" / "contract"


@pytest.mark.parametrize("name", ["telemetry.schema.json", "faults.md", "registry.md"])
def test_protocol_docs_match_the_shared_contract(name: str) -> None:
    ours = ROOT / "docs" / "protocol" / name
    assert ours.exists()
    if not SHARED.exists():
        # CI clones the repository with shared/ beside it: there the comparison must run.
        assert not os.environ.get("CI"), f"{SHARED} is missing: cannot check docs/protocol against the contract"
        pytest.skip(f"no shared contract beside this checkout ({SHARED})")
    assert ours.read_text(encoding="utf-8") == (SHARED / name).read_text(encoding="utf-8"), (
        f"docs/protocol/{name} differs from the shared contract: copy {SHARED / name} over it"
    )


def _record_sections(text: str) -> dict[str, str]:
    """``tag -> section text`` of the record sections (``## `tag`: ...``) of the Kafka page."""
    sections: dict[str, str] = {}
    for chunk in text.split("\n## `")[1:]:
        tag, _, body = chunk.partition("`")
        sections[tag] = body
    return sections


def test_kafka_records_page_lists_every_record_and_field() -> None:
    import msgspec
    from liftwatch import schema

    sections = _record_sections((ROOT / "docs" / "protocol" / "kafka.md").read_text(encoding="utf-8"))
    records: tuple[type[msgspec.Struct], ...] = schema.KafkaRecord.__args__
    tags = {str(record.__struct_config__.tag): record for record in records}
    assert set(sections) == set(tags)
    for tag, record in tags.items():
        documented = [line.split("|")[1].strip().strip("`") for line in sections[tag].splitlines() if line[:3] == "| `"]
        assert documented == list(record.__struct_fields__), tag
