"""Errors of the rule engine."""

from __future__ import annotations

from liftwatch.errors import ConfigError, LiftwatchError


class RulesConfigError(ConfigError):
    """The thresholds file or a ``--set`` assignment is invalid; the engine refuses to start."""

    reason = "rules_config"


class CheckpointError(LiftwatchError):
    """A stored checkpoint cannot be read (corrupt or written by an incompatible version)."""

    reason = "checkpoint"
