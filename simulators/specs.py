"""Where a simulated fleet comes from: registry rows, a registry CSV, or the seeded registry generator."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from liftwatch.simulators.errors import ScenarioError
from liftwatch.simulators.fleet import ElevatorSpec

if TYPE_CHECKING:
    from liftwatch.registry.model import RegistryRow

log = logging.getLogger(__name__)

# Only these kinds have a car, landings and doors to report on.
_CAR_KINDS = frozenset({"traction", "hydraulic"})
# The telemetry contract's floor range.
_MIN_FLOOR, _MAX_FLOOR = -10, 200


def _spec(terminal: str | None, code: str, kind: str, speed: float, bottom: int, top: int) -> ElevatorSpec | None:
    if not terminal or kind not in _CAR_KINDS:
        return None
    bottom, top = max(bottom, _MIN_FLOOR), min(top, _MAX_FLOOR)
    return ElevatorSpec(terminal, code, speed, bottom, max(bottom, top))


def specs_from_rows(rows: Iterable[RegistryRow]) -> list[ElevatorSpec]:
    """The simulated cars of registry rows: elevators with a terminal (escalators have no car to report)."""
    specs = []
    for row in rows:
        spec = _spec(
            row.terminal_id, row.registration_code, str(row.kind), row.rated_speed, row.bottom_floor, row.top_floor
        )
        if spec is not None:
            specs.append(spec)
    return specs


def read_registry_specs(path: Path) -> list[ElevatorSpec]:
    """The simulated cars of a registry CSV (per docs/protocol/registry.md)."""
    specs = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ScenarioError(f"{path}: not UTF-8 ({error.reason} at byte {error.start})") from error
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            line = reader.line_num
            try:
                spec = _spec(
                    row.get("terminal_id"),
                    row["registration_code"],
                    row["kind"],
                    float(row["rated_speed"]),
                    int(row["bottom_floor"]),
                    int(row["top_floor"]),
                )
            except (KeyError, TypeError, ValueError) as error:
                raise ScenarioError(f"{path}:{line}: {error}") from error
            if spec is not None:
                specs.append(spec)
    except csv.Error as error:
        raise ScenarioError(f"{path}:{reader.line_num}: {error}") from error
    if not specs:
        raise ScenarioError(f"{path}: no elevator with a terminal")
    return specs


def generated_registry(elevators: int, seed: int) -> list[RegistryRow]:
    """The seeded registry of ``elevators`` rows (the same one ``liftwatch simulate registry`` prints)."""
    from liftwatch.simulators.registry import generate_registry

    return generate_registry(elevators, seed)


def generated_specs(elevators: int, seed: int) -> list[ElevatorSpec]:
    """The simulated cars of the seeded registry of ``elevators`` rows."""
    specs = specs_from_rows(generated_registry(elevators, seed))
    log.info("fleet of %d cars from %d registry rows (seed %d)", len(specs), elevators, seed)
    return specs
