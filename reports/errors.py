"""Errors of the reports package (machine-readable ``reason``; callers map them to 4xx or exit codes)."""

from __future__ import annotations

from liftwatch.errors import LiftwatchError


class ReportError(LiftwatchError):
    """Root of the reports errors."""


class BadMonth(ReportError):
    """The month is not ``YYYY-MM`` (2000 to 2199)."""

    reason = "bad_month"

    def __init__(self, text: str) -> None:
        super().__init__(f"month must be YYYY-MM, got {text!r}")
        self.text = text


class BadScope(ReportError):
    """The scope is not ``city`` / ``district:<name>`` / ``maintainer:<id>`` / ``use_unit:<id>``."""

    reason = "bad_scope"

    def __init__(self, text: str) -> None:
        super().__init__(f"scope must be city, district:<name>, maintainer:<id> or use_unit:<id>, got {text!r}")
        self.text = text
