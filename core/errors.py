"""The root of liftwatch's exceptions; each package adds its own in its ``errors.py``.

Errors carry machine-readable attributes (``reason``, ``retriable``) so callers branch on data,
never on message text.
"""

from __future__ import annotations


class LiftwatchError(Exception):
    """Root of every liftwatch error."""

    reason: str = "error"
    retriable: bool = False

    def __init__(self, message: str, *, reason: str | None = None, retriable: bool | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        if retriable is not None:
            self.retriable = retriable


class ConfigError(LiftwatchError):
    """A setting is missing or wrong; the process refuses to start."""

    reason = "config"


class ServiceUnavailable(LiftwatchError):
    """A broker or database could not be reached or started."""

    reason = "unavailable"
    retriable = True


class InvalidSettings(ConfigError, ValueError):
    """``LIFTWATCH_*`` settings that fail validation; the message names each variable and why."""

    def __init__(self, message: str, problems: dict[str, str]) -> None:
        super().__init__(message)
        self.problems = problems
        """Environment variable -> what is wrong with its value."""
