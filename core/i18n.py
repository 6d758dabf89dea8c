"""Translations of every text a person reads: message catalogs, language negotiation, local times.

Catalogs are JSON files ``locales/<lang>/<domain>.json`` of this package, one flat object of
``key -> text`` per domain (``common``: fault names, severities, statuses, deadline labels;
``console``; ``errors``; ``reports``). A message is addressed as ``<domain>.<key>``, e.g.
``t("common.fault.trapped_passenger", "zh") == "困人"``. Texts may hold ``{name}`` placeholders
filled from keyword arguments. Times are stored in UTC and shown in the site's time zone.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Literal, TypeAlias, cast
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

Language: TypeAlias = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
DEFAULT_LANGUAGE: Language = "zh"


def as_language(value: str | None, default: Language = DEFAULT_LANGUAGE) -> Language:
    """``value`` if it is a supported language, else ``default``."""
    if value == "zh":
        return "zh"
    if value == "en":
        return "en"
    return default


@functools.cache
def catalogs() -> dict[Language, dict[str, dict[str, str]]]:
    """language -> domain -> key -> text, read once from the package's locale files."""
    found: dict[Language, dict[str, dict[str, str]]] = {lang: {} for lang in LANGUAGES}
    root = resources.files("liftwatch").joinpath("locales")
    for lang in LANGUAGES:
        for entry in root.joinpath(lang).iterdir():
            if not entry.name.endswith(".json"):
                continue
            data = json.loads(entry.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise ValueError(f"locales/{lang}/{entry.name}: must be a flat object of strings")
            found[lang][entry.name[: -len(".json")]] = cast(dict[str, str], data)
    return found


def domain(name: str, lang: Language) -> dict[str, str]:
    """Every text of one domain in one language (what the console downloads)."""
    return dict(catalogs()[lang].get(name, {}))


class _KeepMissing(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def has(key: str, lang: str = DEFAULT_LANGUAGE) -> bool:
    """Whether ``<domain>.<key>`` has a text in ``lang``."""
    domain_name, _, name = key.partition(".")
    return name in catalogs()[as_language(lang)].get(domain_name, {})


def t(key: str, lang: str, /, **params: object) -> str:
    """The text of ``<domain>.<key>`` in ``lang`` (falls back to Chinese, then to the key itself)."""
    domain_name, _, name = key.partition(".")
    books = catalogs()
    chosen = as_language(lang)
    text = books[chosen].get(domain_name, {}).get(name)
    if text is None:
        text = books[DEFAULT_LANGUAGE].get(domain_name, {}).get(name)
    if text is None:
        log.warning("missing translation %s", key)
        return key
    return text.format_map(_KeepMissing(params)) if params else text


def negotiate(accept_language: str | None, default: str = DEFAULT_LANGUAGE) -> Language:
    """The supported language the client prefers most (``Accept-Language``), else ``default``."""
    fallback = as_language(default)
    if not accept_language:
        return fallback
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate(accept_language.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-", 1)[0]
        if primary not in LANGUAGES:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        candidate = (-quality, position, as_language(primary))
        if best is None or candidate < best:
            best = candidate
    return best[2] if best is not None else fallback


def site_time(moment: datetime, timezone: str) -> datetime:
    """A stored (UTC) time as wall-clock time of the site."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: liftwatch stores aware UTC times")
    return moment.astimezone(ZoneInfo(timezone))


def format_datetime(moment: datetime | None, timezone: str) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in the site's time zone (the same layout in both languages)."""
    if moment is None:
        return ""
    return site_time(moment, timezone).strftime("%Y-%m-%d %H:%M:%S")


def format_epoch_ms(ms: int, timezone: str) -> str:
    """Like :func:`format_datetime` for milliseconds since the epoch."""
    return format_datetime(datetime.fromtimestamp(ms / 1000, tz=UTC), timezone)


def labels(lang: str, domains: Mapping[str, object] | None = None) -> dict[str, str]:
    """Every ``<domain>.<key>`` text of ``lang`` (optionally only some domains), flattened."""
    chosen = as_language(lang)
    out: dict[str, str] = {}
    for name, texts in catalogs()[chosen].items():
        if domains is not None and name not in domains:
            continue
        out.update({f"{name}.{key}": text for key, text in texts.items()})
    return out
