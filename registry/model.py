"""The registry's rows: the typed value of one elevator of the registry CSV, and writing them as CSV.

The format is ``docs/protocol/registry.md`` (the shared contract); decisions it leaves open are in
``docs/registry.md``.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import TextIO

import msgspec


class ElevatorKind(enum.StrEnum):
    """What kind of lift equipment a registry row describes."""

    TRACTION = "traction"
    HYDRAULIC = "hydraulic"
    ESCALATOR = "escalator"
    MOVING_WALK = "moving_walk"


class RegistryRow(msgspec.Struct, frozen=True):
    """One elevator of the registry; the fields are the CSV columns, in the contract's order."""

    registration_code: str
    """设备注册代码: 20 characters ``[0-9A-Z]``."""
    rescue_code: str
    """应急救援识别码: 5 or 6 digits, unique in the city."""
    terminal_id: str | None
    """The monitoring terminal fitted to the elevator (its MQTT topic id), if any."""
    kind: ElevatorKind
    address: str
    district: str
    latitude: float | None
    """WGS-84 degrees."""
    longitude: float | None
    use_unit: str
    """使用单位: the owner or property company."""
    maintainer: str
    """维保单位: the maintenance firm's registered name."""
    manufacturer: str | None
    model: str | None
    installed_on: date
    rated_speed: float
    """m/s."""
    rated_load: int | None
    """kg."""
    bottom_floor: int
    top_floor: int
    last_inspection: date | None
    next_inspection_due: date | None
    insured: bool | None
    """Elevator liability insurance in force."""


REGISTRY_COLUMNS: tuple[str, ...] = RegistryRow.__struct_fields__
"""Every column of the registry CSV, in the contract's order."""

REQUIRED_COLUMNS: frozenset[str] = frozenset(
    {
        "registration_code",
        "rescue_code",
        "kind",
        "address",
        "district",
        "use_unit",
        "maintainer",
        "installed_on",
        "rated_speed",
        "bottom_floor",
        "top_floor",
    }
)


def format_cell(value: object) -> str:
    """The CSV text of one typed value (empty for None, ``true``/``false``, ISO dates)."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def row_cells(row: RegistryRow) -> list[str]:
    """The CSV cells of a row, in column order."""
    return [format_cell(value) for value in msgspec.structs.astuple(row)]


def _csv_values(row: RegistryRow) -> tuple[object, ...]:
    # Fast path for the csv module, which writes None as "" and str() of the rest (ISO dates,
    # StrEnum values); only the boolean needs its contract spelling.
    values = msgspec.structs.astuple(row)
    insured = values[-1]
    return (*values[:-1], "" if insured is None else ("true" if insured else "false"))


def write_registry_csv(rows: Iterable[RegistryRow], file: TextIO | Path | str) -> None:
    """Write rows as a registry CSV (header first) to an open text file or a path."""
    if isinstance(file, (str, Path)):
        with Path(file).open("w", encoding="utf-8", newline="") as handle:
            write_registry_csv(rows, handle)
        return
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(REGISTRY_COLUMNS)
    writer.writerows(_csv_values(row) for row in rows)


def registry_csv_text(rows: Iterable[RegistryRow]) -> str:
    """The registry CSV of ``rows`` as a string."""
    buffer = io.StringIO()
    write_registry_csv(rows, buffer)
    return buffer.getvalue()
