"""The printable monthly report (A4, reportlab) with charts, in Chinese or English.

Chinese needs a font with TrueType outlines embedded in the file (reportlab cannot embed the CFF
outlines of Noto CJK): the first of :data:`CJK_FONT_CANDIDATES` that exists is used, from the
Debian package ``fonts-wqy-microhei`` (or ``fonts-wqy-zenhei`` / ``fonts-arphic-uming``). Charts
use a grey scale and hatching-free solid bars so they read well printed in black and white.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from pathlib import Path
from typing import Any

from liftwatch.i18n import format_datetime
from liftwatch.reports.errors import ReportError
from liftwatch.reports.export import Table, scope_label, t, tables
from liftwatch.reports.monthly import MonthlyReport
from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, TableStyle
from reportlab.platypus import Table as PdfTable

# (path, sub-font index of a .ttc collection); TrueType outlines only.
CJK_FONT_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
)
FONT_NAME = "LiftwatchCJK"
INK = colors.HexColor("#222222")
BAR = colors.HexColor("#555555")
BAR_LIGHT = colors.HexColor("#aaaaaa")
GRID = colors.HexColor("#999999")
MARGIN = 18 * mm
CONTENT_WIDTH = A4[0] - 2 * MARGIN


class FontMissing(ReportError):
    """No CJK TrueType font is installed (install the Debian package fonts-wqy-microhei)."""

    reason = "font_missing"


@functools.cache
def cjk_font() -> str:
    """Register the CJK font once; return its reportlab name."""
    for path, index in CJK_FONT_CANDIDATES:
        if Path(path).exists():
            pdfmetrics.registerFont(TTFont(FONT_NAME, path, subfontIndex=index))
            return FONT_NAME
    raise FontMissing("no CJK TrueType font found; install the Debian package fonts-wqy-microhei")


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=font, fontSize=9, leading=13, textColor=INK, wordWrap="CJK")
    return {
        "title": ParagraphStyle("title", parent=base, fontSize=18, leading=24, spaceAfter=4),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=11, leading=15),
        "h2": ParagraphStyle("h2", parent=base, fontSize=12, leading=16, spaceBefore=10, spaceAfter=4),
        "body": base,
        "note": ParagraphStyle("note", parent=base, fontSize=8, textColor=colors.HexColor("#444444")),
    }


def _numeric(values: list[object]) -> bool:
    """A column of numbers (or percentages): right-aligned, header included, so digits line up."""
    present = [v for v in values if v not in (None, "")]
    return bool(present) and all(
        isinstance(v, int | float) or (isinstance(v, str) and v.endswith("%") and v[:-1].replace(".", "").isdigit())
        for v in present
    )


def _number(value: float) -> str:
    """A chart's value label: 30,000 and 57.1, never 3e+04."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _cells(table: Table) -> list[list[str]]:
    """The rows as text; a column of decimals shows them all with its most decimals (130.00 under
    154.17, not 130.0)."""
    decimals = []
    for index in range(len(table.headers)):
        floats = [v for row in table.rows if isinstance(v := row[index], float)]
        decimals.append(max((len(repr(v).partition(".")[2]) for v in floats), default=0))
    return [
        [
            "" if v is None else f"{v:.{min(decimals[i], 2)}f}" if isinstance(v, float) else str(v)
            for i, v in enumerate(row)
        ]
        for row in table.rows
    ]


def _column_widths(table: Table, font: str, header_size: float, body_size: float) -> list[float]:
    """Each column as wide as its longest cell and its longest header word (headers wrap between
    words; Chinese between characters), the spare width shared out; shrunk to the page if needed."""
    padding = 8.0
    minimums = []
    for index, header in enumerate(table.headers):
        words = header.split() or [header]
        if any("\u4e00" <= ch <= "\u9fff" for ch in header):
            words = [header[i : i + 4] for i in range(0, len(header), 4)]  # up to 4 characters a line
        widest_word = max(pdfmetrics.stringWidth(w, font, header_size) for w in words)
        widest_cell = max(
            [pdfmetrics.stringWidth("" if r[index] is None else str(r[index]), font, body_size) for r in table.rows]
            or [0.0]
        )
        minimums.append(max(widest_word, widest_cell) + padding)
    total = sum(minimums)
    if total >= CONTENT_WIDTH:
        return [w * CONTENT_WIDTH / total for w in minimums]
    # Narrow tables stay narrow (a two-column summary need not span the page).
    target = max(total, min(CONTENT_WIDTH, total * 1.6, 75 * mm * len(minimums)))
    spare = (target - total) / len(minimums)
    return [w + spare for w in minimums]


def _table(table: Table, font: str, lang: str) -> PdfTable:
    """A table that fits the page width: text columns left, number columns (and their headers)
    right, headers wrapped between words so a word is never cut."""
    header_size, body_size = 7.5, 8.0
    numeric = [_numeric([row[i] for row in table.rows]) for i in range(len(table.headers))]
    header_styles = [
        ParagraphStyle(
            f"th{int(right)}",
            fontName=font,
            fontSize=header_size,
            leading=9,
            textColor=INK,
            wordWrap="CJK" if lang == "zh" else None,
            alignment=TA_RIGHT if right else TA_LEFT,
        )
        for right in (False, True)
    ]
    headers = [Paragraph(text, header_styles[numeric[i]]) for i, text in enumerate(table.headers)]
    data: list[list[Any]] = [headers, *_cells(table)]
    widths = _column_widths(table, font, header_size, body_size)
    pdf = PdfTable(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    style = [
        ("FONTNAME", (0, 0), (-1, -1), font),
        ("FONTSIZE", (0, 0), (-1, -1), body_size),
        ("TEXTCOLOR", (0, 0), (-1, -1), INK),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, INK),
        ("LINEBELOW", (0, -1), (-1, -1), 0.4, GRID),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f0f0f0")]),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]
    style += [("ALIGN", (i, 1), (i, -1), "RIGHT") for i, right in enumerate(numeric) if right]
    pdf.setStyle(TableStyle(style))
    return pdf


def _bar_chart(title: str, labels: list[str], values: list[float], font: str, *, horizontal: bool = False) -> Drawing:
    width, height = 170 * mm, (max(60.0, 7.0 * len(labels) + 20) * mm if horizontal else 70 * mm)
    drawing = Drawing(width, height)
    chart = HorizontalBarChart() if horizontal else VerticalBarChart()
    chart.x, chart.y = (45 * mm, 8 * mm) if horizontal else (15 * mm, 18 * mm)
    chart.width = width - chart.x - 10 * mm
    chart.height = height - chart.y - 14 * mm
    chart.data = [values or [0.0]]
    chart.categoryAxis.categoryNames = labels or [""]
    chart.categoryAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = 7
    if not horizontal:
        chart.categoryAxis.labels.angle = 30 if len(labels) > 6 else 0
        chart.categoryAxis.labels.boxAnchor = "ne" if len(labels) > 6 else "n"
    chart.valueAxis.labels.fontName = font
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.visibleGrid = True
    chart.valueAxis.gridStrokeColor = BAR_LIGHT
    chart.valueAxis.gridStrokeWidth = 0.25
    chart.bars[0].fillColor = BAR
    chart.bars[0].strokeColor = INK
    chart.barLabelFormat = _number
    chart.barLabels.fontName = font
    chart.barLabels.fontSize = 6
    chart.barLabels.nudge = 6
    if horizontal:
        chart.barLabels.boxAnchor = "w"
    drawing.add(chart)
    drawing.add(String(0, height - 6 * mm, title, fontName=font, fontSize=10, fillColor=INK))
    return drawing


def to_pdf(report: MonthlyReport, lang: str, now: dt.datetime) -> bytes:
    """The report as an A4 PDF with the CJK font embedded (a subset of the glyphs used)."""
    font = cjk_font()
    styles = _styles(font)
    by_key = {table.key: table for table in tables(report, lang)}
    story: list[object] = [
        Paragraph(t("reports.title", lang), styles["title"]),
        Paragraph(
            t(
                "reports.subtitle",
                lang,
                scope=scope_label(report, lang, {f.maintainer_id: f.name for f in report.firms}),
                month=report.month,
                timezone=report.site_timezone,
            ),
            styles["subtitle"],
        ),
        Paragraph(
            t(
                "reports.generated",
                lang,
                at=format_datetime(now, report.site_timezone),
                refreshed=format_datetime(dt.datetime.fromisoformat(report.refreshed_at), report.site_timezone),
            ),
            styles["note"],
        ),
    ]
    if not report.complete:
        story.append(Paragraph(t("reports.preliminary", lang), styles["note"]))

    def section(key: str, *extra: object) -> None:
        table = by_key.get(key)
        if table is None:
            return
        block: list[object] = [Paragraph(table.title, styles["h2"]), *extra]
        block.append(_table(table, font, lang) if table.rows else Paragraph(t("reports.none", lang), styles["body"]))
        story.append(KeepTogether(block))

    section("summary")
    if report.trend:
        story.append(
            KeepTogether(
                [
                    Paragraph(t("reports.section.trend", lang), styles["h2"]),
                    _bar_chart(
                        t("reports.chart.trend", lang),
                        [p.month for p in report.trend],
                        [float(p.incidents) for p in report.trend],
                        font,
                    ),
                ]
            )
        )
    codes_chart = _bar_chart(
        t("reports.chart.codes", lang),
        # reportlab draws the first category at the bottom: reversed, the most frequent is on top.
        [t(f"common.fault.{c.code}", lang) for c in reversed(report.codes)],
        [float(c.incidents) for c in reversed(report.codes)],
        font,
        horizontal=True,
    )
    section("codes", codes_chart)
    section("rescue")
    section("age")
    ranked = report.firms[:15]
    firms_chart = _bar_chart(
        t("reports.chart.firms", lang),
        [f.name for f in reversed(ranked)],
        [f.per_100 or 0.0 for f in reversed(ranked)],
        font,
        horizontal=True,
    )
    section("firms", firms_chart)
    section("top")
    if report.trend:
        section("trend")

    scope = scope_label(report, lang, {f.maintainer_id: f.name for f in report.firms})
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"{t('reports.title', lang)} {report.month}",
        author="liftwatch",
    )

    def footer(canvas: object, document: object) -> None:
        canvas.saveState()  # type: ignore[attr-defined]
        canvas.setFont(font, 7)  # type: ignore[attr-defined]
        canvas.drawRightString(  # type: ignore[attr-defined]
            A4[0] - 18 * mm,
            10 * mm,
            f"{report.month} · {scope} · {document.page}",  # type: ignore[attr-defined]
        )
        canvas.restoreState()  # type: ignore[attr-defined]

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
