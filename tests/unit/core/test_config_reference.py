"""docs/operations.md's configuration reference is generated from the settings classes, and stays so."""

from pathlib import Path

from liftwatch.config import settings_reference

OPERATIONS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"
START = "Generated from the classes (`liftwatch.config.settings_reference()`):\n\n"
END = "\nOutside the settings classes:"


def test_the_configuration_reference_in_the_docs_is_the_generated_one() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    assert START in text and END in text
    documented = text[text.index(START) + len(START) : text.index(END)]
    assert documented == settings_reference(), (
        "docs/operations.md is out of date: paste liftwatch.config.settings_reference() between the markers"
    )
