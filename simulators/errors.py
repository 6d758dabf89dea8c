"""Errors of the simulator."""

from __future__ import annotations

from liftwatch.errors import LiftwatchError


class ScenarioError(LiftwatchError):
    """A scenario (file or arguments) asks for something the simulator cannot do."""

    reason = "scenario"
