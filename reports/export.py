"""The monthly report as files a regulator opens: CSV, XLSX and a printable PDF with charts, zh or en.

All three render the same localized tables (:func:`tables`), so a number never differs between
formats. CSV is UTF-8 with a byte-order mark (Excel then shows Chinese correctly).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Literal

from liftwatch.i18n import t as translate
from liftwatch.reports.monthly import MonthlyReport
from liftwatch.reports.sheet import fill, safe

Format = Literal["csv", "xlsx", "pdf"]
Cell = str | int | float | None


def t(key: str, lang: str, **params: object) -> str:
    """Report texts live in ``core/locales/<lang>/reports.json`` (the ``reports`` domain)."""
    return translate(key, lang, **params)


@dataclass(frozen=True, slots=True)
class Table:
    """One localized table of the report."""

    key: str
    title: str
    headers: list[str]
    rows: list[list[Cell]]


def _round(value: float | None, digits: int = 2) -> float | None:
    """Rounded half up, as people (and PostgreSQL's numeric round in the dashboards) do: 1.25 -> 1.3."""
    if value is None:
        return None
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else _round(seconds / 60, 1)


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def scope_label(report: MonthlyReport, lang: str, firm_names: dict[int, str] | None = None) -> str:
    kind, _, value = report.scope.partition(":")
    if kind == "maintainer" and firm_names and int(value) in firm_names:
        value = firm_names[int(value)]
    return t(f"reports.scope.{kind}", lang, value=value)


def tables(report: MonthlyReport, lang: str) -> list[Table]:
    """Every table of the report, with localized titles, headers and labels."""

    def col(*keys: str) -> list[str]:
        return [t(f"reports.col.{k}", lang) for k in keys]

    def fault(code: str) -> str:
        return t(f"common.fault.{code}", lang)

    firm_names = {f.maintainer_id: f.name for f in report.firms}
    summary = Table(
        "summary",
        t("reports.section.summary", lang),
        col("metric", "value"),
        [
            [t("reports.metric.elevators", lang), report.elevators],
            [t("reports.metric.incidents", lang), report.incidents],
            [t("reports.metric.per_10k", lang), _round(report.per_10k)],
            [t("reports.metric.entrapments", lang), report.entrapments],
            [t("reports.metric.false_alarms", lang), report.false_alarms],
            [t("reports.metric.arrived_30", lang), _percent(report.rescue.arrived_within_30min_share)],
            [t("reports.metric.coverage", lang), _percent(report.coverage.coverage)],
            [t("reports.metric.online_rate", lang), _percent(report.coverage.online_rate)],
            [t("reports.metric.days_observed", lang), report.coverage.days_observed],
        ],
    )
    codes = Table(
        "codes",
        t("reports.section.codes", lang),
        col("code", "incidents", "per_10k", "entrapments", "false_alarms"),
        [[fault(c.code), c.incidents, _round(c.per_10k), c.entrapments, c.false_alarms] for c in report.codes],
    )
    rescue = Table(
        "rescue",
        t("reports.section.rescue", lang),
        col("step", "count", "median", "p90"),
        [
            [t(f"reports.step.{s.step}", lang), s.count, _minutes(s.median_s), _minutes(s.p90_s)]
            for s in report.rescue.steps
        ],
    )
    top = Table(
        "top",
        t("reports.section.top", lang),
        col("registration_code", "district", "firm", "incidents", "entrapments", "repeats"),
        [
            [
                e.registration_code,
                e.district,
                firm_names.get(e.maintainer_id or 0, ""),
                e.incidents,
                e.entrapments,
                e.repeats,
            ]
            for e in report.top_elevators
        ],
    )
    ages = Table(
        "age",
        t("reports.section.age", lang),
        col("band", "elevators", "incidents", "per_10k", "entrapments"),
        [
            [t(f"reports.band.{a.band}", lang), a.elevators, a.incidents, _round(a.per_10k), a.entrapments]
            for a in report.age_bands
        ],
    )
    firms = Table(
        "firms",
        t("reports.section.firms", lang),
        col(
            "firm",
            "elevators",
            "incidents",
            "per_100",
            "entrapments",
            "dispatch_missed",
            "arrival_missed",
            "repeats",
            "false_alarms",
        ),
        [
            [
                f.name,
                f.elevators,
                f.incidents,
                _round(f.per_100),
                f.entrapments,
                f.dispatch_missed,
                f.arrival_missed,
                f.repeats,
                f.false_alarms,
            ]
            for f in report.firms
        ],
    )
    result = [summary, codes, rescue, top, ages, firms]
    if report.trend:
        result.append(
            Table(
                "trend",
                t("reports.section.trend", lang),
                col("month", "incidents", "entrapments", "per_10k"),
                [[p.month, p.incidents, p.entrapments, _round(p.per_10k)] for p in report.trend],
            )
        )
    return result


def to_csv(report: MonthlyReport, lang: str) -> bytes:
    """The tables one after another, each under its title row, separated by an empty line.

    Firm names and districts come from the registry, which people type: a cell a spreadsheet would
    run as a formula (``= + - @``, tab, carriage return first) is neutralised (``sheet.safe``), in
    the XLSX too, where every text cell is also written as a string cell.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe(t("reports.title", lang)), safe(scope_label(report, lang)), report.month])
    for table in tables(report, lang):
        writer.writerow([])
        writer.writerow([safe(table.title)])
        writer.writerow([safe(h) for h in table.headers])
        writer.writerows([["" if v is None else safe(v) for v in row] for row in table.rows])
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(report: MonthlyReport, lang: str) -> bytes:
    """One worksheet per table, header row bold and frozen, columns sized to their content."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for table in tables(report, lang):
        sheet = book.create_sheet(title=table.title[:31])
        fill(sheet, table.headers, table.rows)
        for index, header in enumerate(table.headers, start=1):
            width = max([len(str(header))] + [len(str(r[index - 1] or "")) for r in table.rows])
            sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = min(60, width * 2 + 2)
    book.properties.title = f"{t('reports.title', lang)} {report.month}"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def render(report: MonthlyReport, fmt: Format, lang: str, now: dt.datetime | None = None) -> bytes:
    """The report file in ``fmt``."""
    if fmt == "csv":
        return to_csv(report, lang)
    if fmt == "xlsx":
        return to_xlsx(report, lang)
    from liftwatch.reports.pdf import to_pdf

    return to_pdf(report, lang, now or dt.datetime.now(dt.UTC))


def write(report: MonthlyReport, fmt: Format, lang: str, output: Path) -> None:
    """Write atomically: a half-written report is never left under the final name."""
    data = render(report, fmt, lang)
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(data)
    partial.replace(output)
