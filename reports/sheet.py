"""One table as a CSV or XLSX download (the console's list exports).

Cells a spreadsheet would run as a formula (text starting with = + - @, tab or carriage return)
get a leading apostrophe: addresses and names come from the registry, which people type.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

Cell = str | int | float | None
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe(cell: Cell) -> Cell:
    """``cell``, or the text with an apostrophe first when a spreadsheet would evaluate it."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def to_csv(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> bytes:
    """UTF-8 with a byte-order mark, so Excel shows Chinese."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe(h) for h in headers])
    writer.writerows([["" if c is None else safe(c) for c in row] for row in rows])
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(title: str, headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> bytes:
    """One sheet, bold frozen header."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    fill(sheet, headers, rows)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def fill(sheet: Any, headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
    """Write a table into an empty openpyxl worksheet: bold frozen header, formula-safe text cells."""
    from openpyxl.styles import Font

    sheet.append([safe(h) for h in headers])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([safe(c) for c in row])
    for cells in sheet.iter_rows():
        for cell in cells:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text stays text, whatever it looks like
    sheet.freeze_panes = "A2"
