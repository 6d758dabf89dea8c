"""The identifiers of the platform's things: what a terminal id, a registration code and a rescue
code look like. Every entry point (MQTT topics, Kafka records, the registry file, the HTTP API,
MQTT credentials) checks them through this module.

Python checks use :meth:`IdPattern.matches` (``re.fullmatch``): ``re.match`` with a trailing
``$`` would accept ``"T1\\n"``, since Python's ``$`` also matches before a final newline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class IdPattern:
    """One identifier's alphabet and length, with the anchored forms each validator needs."""

    body: str
    """The regular expression of the whole identifier, unanchored; one term (no top-level ``|``), so
    anchoring it needs no group and the documents' patterns read the same (``^[A-Z]{2}$``)."""
    rule: str
    """The rule in words, for error messages."""
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.body))

    def matches(self, text: str) -> bool:
        """True when ``text`` is exactly one such identifier (nothing before or after, not a newline)."""
        return self.regex.fullmatch(text) is not None

    @property
    def search_pattern(self) -> str:
        """Anchored for validators that *search* with Python's ``re`` (msgspec ``Meta(pattern=)``)."""
        return rf"^{self.body}\Z"

    @property
    def schema_pattern(self) -> str:
        """Anchored for JSON Schema / pydantic ``Field(pattern=)``: in their dialects (ECMA-262, Rust
        ``regex``) ``$`` is the end of the text, and ``\\Z`` is not understood."""
        return rf"^{self.body}$"


TERMINAL_ID = IdPattern(r"[A-Za-z0-9_-]{1,64}", "1-64 characters A-Z a-z 0-9 _ -")
"""A monitoring terminal, also its MQTT user name and a topic level. Service accounts of the broker
are named outside this alphabet (they contain a ``.``)."""

REGISTRATION_CODE = IdPattern(r"[0-9A-Z]{20}", "20 characters 0-9 A-Z")
"""设备注册代码: the elevator's national registration code."""

RESCUE_CODE = IdPattern(r"[0-9]{5,6}", "5 or 6 digits")
"""应急救援识别码: the code on the car's plate that a trapped passenger reads out."""
