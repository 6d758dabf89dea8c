"""Message catalogs: every key in both languages, negotiation, site-time formatting."""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from liftwatch import i18n
from liftwatch.schema import FaultCode, Severity


def _domains() -> dict[str, dict[str, dict[str, str]]]:
    """domain -> lang -> key -> text, discovered from the files (not from the loader)."""
    root = resources.files("liftwatch").joinpath("locales")
    found: dict[str, dict[str, dict[str, str]]] = {}
    for lang in i18n.LANGUAGES:
        for entry in root.joinpath(lang).iterdir():
            if entry.name.endswith(".json"):
                found.setdefault(entry.name[:-5], {})[lang] = json.loads(entry.read_text(encoding="utf-8"))
    return found


@pytest.mark.parametrize("domain", sorted(_domains()))
def test_every_key_exists_in_every_language(domain: str) -> None:
    books = _domains()[domain]
    assert set(books) == set(i18n.LANGUAGES), f"{domain}.json missing in {set(i18n.LANGUAGES) - set(books)}"
    keys = {lang: set(texts) for lang, texts in books.items()}
    for lang in i18n.LANGUAGES:
        for other in i18n.LANGUAGES:
            assert not keys[lang] - keys[other], f"{domain}: only in {lang}: {sorted(keys[lang] - keys[other])}"


@pytest.mark.parametrize("domain", sorted(_domains()))
def test_placeholders_agree_between_languages(domain: str) -> None:
    books = _domains()[domain]

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    for key in books["zh"]:
        assert fields(books["zh"][key]) == fields(books["en"][key]), f"{domain}.{key}"


def test_every_fault_severity_and_status_has_a_name() -> None:
    for lang in i18n.LANGUAGES:
        for code in FaultCode:
            assert i18n.t(f"common.fault.{code}", lang) != f"common.fault.{code}"
        for severity in Severity:
            assert i18n.t(f"common.severity.{severity}", lang) != f"common.severity.{severity}"


def _fault_catalog_terms() -> dict[str, str]:
    """code -> first Chinese name in the table of docs/protocol/faults.md (运行中开门 of "运行中开门 / 开门走车")."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "protocol" / "faults.md").read_text(encoding="utf-8")
    terms: dict[str, str] = {}
    for match in re.finditer(r"^\| `([a-z_]+)` \| ([^|]+?) \|", text, re.MULTILINE):
        terms.setdefault(match[1], re.split(r" \(| / ", match[2].strip())[0])
    return terms


def test_fault_names_use_the_catalog_terms() -> None:
    terms = _fault_catalog_terms()
    assert terms["trapped_passenger"] == "困人" and terms["door_open_while_moving"] == "运行中开门"
    assert set(terms) == {code.value for code in FaultCode} - {"unregistered_terminal"}
    for code, zh in terms.items():
        assert i18n.t(f"common.fault.{code}", "zh") == zh, code


def test_every_value_a_person_sees_has_a_name_in_both_languages() -> None:
    from liftwatch.alerts.incidents import CHANGE_KINDS
    from liftwatch.alerts.lifecycle import CloseCause
    from liftwatch.api.auth import ROLES
    from liftwatch.api.models import ACTION_NAMES
    from liftwatch.schema import DOOR_STATES, MODES, IncidentStatus

    wanted = [f"common.status.{s}" for s in IncidentStatus] + [f"common.kind.{k}" for k in CHANGE_KINDS]
    wanted += [f"common.action.{name}" for name in ACTION_NAMES.values()]
    wanted += [f"common.cause.{c}" for c in CloseCause] + [f"common.role.{r}" for r in ROLES]
    wanted += [f"console.door.{d}" for d in DOOR_STATES] + [f"console.mode.{m}" for m in MODES]
    for lang in i18n.LANGUAGES:
        missing = [key for key in wanted if i18n.t(key, lang) == key]
        assert not missing, (lang, missing)


def test_the_console_uses_only_keys_that_exist() -> None:
    """Literal keys in the page and the script (data-t="..." and tr("...")) are all in the catalogs."""
    static = resources.files("liftwatch.api").joinpath("static")
    source = static.joinpath("index.html").read_text(encoding="utf-8") + static.joinpath("console.js").read_text(
        encoding="utf-8"
    )
    used = set(re.findall(r'data-t="([a-z_.]+)"', source)) | set(re.findall(r'tr\("([a-z_.-]+)"', source))
    used |= set(re.findall(r'clock\("([a-z_.]+)"', source)) | set(re.findall(r'field\("([a-z_.]+)"', source))
    assert len(used) > 40
    known = i18n.labels("en")
    assert not sorted(used - set(known))


def test_parameters_are_filled_and_missing_ones_kept() -> None:
    assert i18n.t("errors.validation_error", "en", detail="limit") == "Invalid request: limit"
    assert "{detail}" in i18n.t("errors.validation_error", "en")


def test_unknown_language_falls_back_to_chinese_and_unknown_key_to_itself() -> None:
    assert i18n.t("common.severity.critical", "fr") == "紧急"
    assert i18n.t("common.no_such_key", "en") == "common.no_such_key"
    assert i18n.has("common.severity.critical", "en") and not i18n.has("common.no_such_key")


@pytest.mark.parametrize(
    ("header", "default", "expected"),
    [
        (None, "zh", "zh"),
        (None, "en", "en"),
        ("", "zh", "zh"),
        ("en-US,en;q=0.9", "zh", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "en", "zh"),
        ("fr-FR, en;q=0.5, zh;q=0.7", "en", "zh"),
        ("fr, de", "en", "en"),
        ("en;q=0, zh;q=0.1", "en", "zh"),
        ("en;q=abc", "zh", "zh"),
        ("zh-Hant-TW", "en", "zh"),
    ],
)
def test_negotiate(header: str | None, default: str, expected: str) -> None:
    assert i18n.negotiate(header, default) == expected


def test_times_are_shown_in_the_site_time_zone() -> None:
    moment = datetime(2026, 1, 31, 16, 30, tzinfo=UTC)
    assert i18n.format_datetime(moment, "Asia/Shanghai") == "2026-02-01 00:30:00"
    assert i18n.format_epoch_ms(int(moment.timestamp() * 1000), "UTC") == "2026-01-31 16:30:00"
    with pytest.raises(ValueError, match="naive"):
        i18n.site_time(datetime(2026, 1, 1), "UTC")  # noqa: DTZ001
