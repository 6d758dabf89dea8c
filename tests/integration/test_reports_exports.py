"""`liftwatch report monthly` writes CSV, XLSX and PDF files in Chinese and English."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pypdf
import pytest
from liftwatch.cli import app
from liftwatch.reports.pdf import CJK_FONT_CANDIDATES
from reportlab.pdfbase.ttfonts import TTFontFile
from typer.testing import CliRunner

from tests.fixtures.reports import Fleet

pytestmark = pytest.mark.integration


def _run(fleet: Fleet, tmp_path: Path, fmt: str, lang: str, scope: str = "city") -> Path:
    output = tmp_path / f"report.{lang}.{fmt}"
    result = CliRunner().invoke(
        app,
        [
            "report",
            "monthly",
            "--month",
            "2026-03",
            "--format",
            fmt,
            "--lang",
            lang,
            "--scope",
            scope,
            "--output",
            str(output),
        ],
        env={"LIFTWATCH_DATABASE_URL": fleet.url, "LIFTWATCH_SITE_TIMEZONE": "Asia/Shanghai"},
    )
    assert result.exit_code == 0, result.output
    return output


def _csv_tables(path: Path) -> dict[str, list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    blocks: dict[str, list[list[str]]] = {}
    for i, row in enumerate(rows):
        if not row and i + 1 < len(rows):
            title = rows[i + 1][0]
            blocks[title] = []
            for body in rows[i + 2 :]:
                if not body:
                    break
                blocks[title].append(body)
    return blocks


def test_csv_headers_and_labels_follow_the_language(reports_fleet: Fleet, tmp_path: Path) -> None:
    zh = _csv_tables(_run(reports_fleet, tmp_path, "csv", "zh"))
    en = _csv_tables(_run(reports_fleet, tmp_path, "csv", "en"))
    assert zh["按故障类型统计"][0] == ["故障类型", "故障数", "万台故障率", "困人数", "误报数"]
    assert zh["按故障类型统计"][1] == ["困人", "5", "5000.0", "4", "1"]
    assert en["Incidents by fault type"][1] == ["Trapped passenger", "5", "5000.0", "4", "1"]
    assert en["Maintenance firms"][1][:4] == ["Firm B", "3", "3", "100.0"]
    rescue = {row[0]: row[1:] for row in en["Entrapment rescue times"][1:]}
    assert rescue["Arrive on site"] == ["3", "30.0", "38.0"]  # 1800 s and 2280 s, in minutes


def test_xlsx_has_one_sheet_per_table(reports_fleet: Fleet, tmp_path: Path) -> None:
    book = openpyxl.load_workbook(_run(reports_fleet, tmp_path, "xlsx", "en"))
    assert "Incidents by elevator age" in book.sheetnames
    sheet = book["Incidents by elevator age"]
    assert [c.value for c in sheet[1]] == ["Age", "Elevators", "Incidents", "Per 10,000 elevators", "Entrapments"]
    assert [c.value for c in sheet[4]] == ["15 years and older", 2, 2, 10000, 1]
    assert len(book["Trend, last 12 months"]["A"]) == 13


def test_chinese_pdf_embeds_a_font_that_renders_the_text(reports_fleet: Fleet, tmp_path: Path) -> None:
    pdf = pypdf.PdfReader(_run(reports_fleet, tmp_path, "pdf", "zh"))
    text = "".join(page.extract_text() for page in pdf.pages)
    for expected in ("电梯安全运行月度报告", "困人", "维保单位", "30分钟内到场率", "Firm B"):
        assert expected in text
    fonts = {
        font["/BaseFont"]: font
        for page in pdf.pages
        for font in (page["/Resources"]["/Font"].get_object()).values()
        if "/FontDescriptor" in font.get_object() or "/DescendantFonts" in font.get_object()
    }
    embedded = [
        name
        for name, font in fonts.items()
        if any(k in font.get_object()["/FontDescriptor"] for k in ("/FontFile2", "/FontFile3"))
    ]
    assert embedded and all("WenQuanYi" in name or "Liftwatch" in name or "+" in name for name in embedded)
    # Every Chinese character shown has a real glyph in the embedded font (not a .notdef box).
    path, _ = next((p, i) for p, i in CJK_FONT_CANDIDATES if Path(p).exists())
    cmap = TTFontFile(path, subfontIndex=0).charToGlyph
    chinese = {ch for ch in text if "\u4e00" <= ch <= "\u9fff"}
    assert len(chinese) > 30
    assert all(cmap.get(ord(ch), 0) != 0 for ch in chinese)


def test_english_pdf_and_unknown_scope(reports_fleet: Fleet, tmp_path: Path) -> None:
    pdf = pypdf.PdfReader(_run(reports_fleet, tmp_path, "pdf", "en", scope=f"maintainer:{reports_fleet.firm_a}"))
    text = "".join(page.extract_text() for page in pdf.pages)
    assert "Elevator safety monthly report" in text and "Maintenance firm Firm A" in text
    result = CliRunner().invoke(
        app,
        [
            "report",
            "monthly",
            "--month",
            "2026-03",
            "--format",
            "csv",
            "--scope",
            "maintainer:999",
            "--output",
            str(tmp_path / "x.csv"),
        ],
        env={"LIFTWATCH_DATABASE_URL": reports_fleet.url},
    )
    assert result.exit_code == 2 and not (tmp_path / "x.csv").exists()


def test_an_empty_month_still_renders(database_url: str, tmp_path: Path) -> None:
    """No registry, no incidents: empty charts and tables, not a crash."""
    output = tmp_path / "empty.pdf"
    result = CliRunner().invoke(
        app,
        ["report", "monthly", "--month", "2026-03", "--format", "pdf", "--lang", "zh", "--output", str(output)],
        env={"LIFTWATCH_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    text = "".join(page.extract_text() for page in pypdf.PdfReader(output).pages)
    assert "电梯安全运行月度报告" in text and "无" in text
