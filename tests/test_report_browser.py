"""The HTML report in a real browser: headless Chromium renders it (skipped without Chromium)."""

from __future__ import annotations

import copy
import json
import re
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from summarizer.checks import run_checks
from summarizer.documents import load_document
from summarizer.report_html_assets import CSS
from summarizer.schemas.article import Article
from .report_fixtures import SEED_RESULTS, article, org, signed

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "screenshot_report.sh"
TITLES = ["CATL and Lanzhou sign strategic cooperation agreement", "宁德时代与香港大学签署战略合作协议",
          "<script>alert(1)</script> | pipe"]
SEEDS = Path(__file__).resolve().parent.parent / "seeds"
CHINESE = ("新华社香港6月11日电 宁德时代新能源科技股份有限公司(宁德时代)与香港大学于11日签署战略合作协议，双方将在"
           "零碳政策标准、技术创新和能源转型方面开展合作。宁德时代董事长曾毓群表示，香港是国际金融中心。")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")


def checked_output(result: dict[str, Any], path: str, text: str) -> dict[str, Any]:
    """An output as the runner writes it: the real checks against the text, and the text itself."""
    document = load_document(path, text.encode("utf-8"))
    checks = run_checks(Article.model_validate(result), document)
    return {"document": {"path": path, "text": document.text}, "schema": {"id": "article", "version": "1"},
            "checks": checks, "result": result}


def evidence_outputs() -> dict[str, dict[str, Any]]:
    """Flagged Russian and Chinese documents with exact, normalized, fuzzy and invented values, and a hostile one."""
    russian = copy.deepcopy(SEED_RESULTS["000_f5657d2c5e6c31f2"])
    russian["organizations"][0]["name_original"] = "Китайской группы по энергосбережению и охране окружающей среды"
    russian["organizations"][1]["name_original"] = "catl"  # normalized: case
    russian["organizations"][2]["name_original"] = "Fangda Holdings"  # invented
    chinese = article(
        TITLES[1], "CATL and the University of Hong Kong signed a strategic cooperation agreement on 11 June. "
        "They will work on zero-carbon policy standards, innovation and the energy transition.", "zh",
        [org("CATL", "宁德时代新能源科技有限公司"), org("The University of Hong Kong", "香港 大学"),
         org("BYD", "比亚迪股份有限公司", role="mentioned")],
        ["CATL", "The University of Hong Kong"], signed(None, 6, 11, "11日"), ["zero-carbon policy standards"],
        ["zero carbon"], people=[{"name": "Robin Zeng", "name_original": "曾毓群", "title": "Chairman",
                                  "organization": "CATL"}])
    hostile = copy.deepcopy(SEED_RESULTS["003_912c44fa5303de8d"])
    hostile["title"] = TITLES[2]
    return {
        "ru": checked_output(russian, "seeds/000_f5657d2c5e6c31f2.txt",
                             (SEEDS / "000_f5657d2c5e6c31f2.txt").read_text("utf-8")),
        "zh": checked_output(chinese, "news/hku.txt", CHINESE),
        "pt": checked_output(hostile, "seeds/003_912c44fa5303de8d.txt",
                             (SEEDS / "003_912c44fa5303de8d.txt").read_text("utf-8")
                             + "\n</pre><script>alert(2)</script>"),
    }


@pytest.fixture
def outputs() -> dict[str, dict[str, Any]]:
    return evidence_outputs()


@pytest.fixture
def report_html(cli: Any, tmp_path: Path, outputs: dict[str, dict[str, Any]]) -> Path:
    out = tmp_path / "outputs"
    out.mkdir()
    for name, output in outputs.items():
        (out / f"{name}.json").write_text(json.dumps(output, ensure_ascii=False), "utf-8")
    target = tmp_path / "report.html"
    assert cli("report", out, "--format", "html", "-o", target).code == 0
    return target


def dump_dom(page: Path) -> str:
    """The page's DOM after its script ran, as headless Chromium serializes it."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120)
    assert "<h1>Summarizer report</h1>" in done.stdout, done.stderr[-2000:]
    return done.stdout


class Marks(HTMLParser):
    """Every highlighted span of the source texts: (article id, class, title, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.article = ""
        self.open: list[list[str]] = []
        self.marks: list[tuple[str, str, str, str]] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "article":
            self.article = found.get("id") or ""
        if tag == "pre":
            self.depth += 1
        if tag == "mark" and self.depth:
            self.open.append([found.get("class") or "", found.get("title") or "", ""])

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self.depth -= 1
        if tag == "mark" and self.open:
            kind, title, text = self.open.pop()
            self.marks.append((self.article, kind, title, text))

    def handle_data(self, data: str) -> None:
        if self.open:
            self.open[-1][2] += data


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def png_pixels(path: Path) -> tuple[list[tuple[int, int, int]], Counter[tuple[int, int, int]]]:
    """The first row's RGB pixels and every colour's pixel count of an 8-bit RGB(A) PNG (no imaging library)."""
    data = path.read_bytes()
    pos, idat, width, height, color_type = 8, b"", 0, 0, 2
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
            assert body[8] == 8, "expected 8 bits per channel"
            color_type = body[9]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = {2: 3, 6: 4}[color_type]
    stride, raw = width * bpp, zlib.decompress(idat)
    previous, first, colors = bytearray(stride), [], Counter()
    for y in range(height):  # undo each row's PNG filter (None, Sub, Up, Average, Paeth)
        kind, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride) if kind else ():
            a = row[i - bpp] if i >= bpp else 0
            b, c = previous[i], (previous[i - bpp] if i >= bpp else 0)
            if kind == 1:
                row[i] = (row[i] + a) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + b) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (a + b) // 2) & 0xFF
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        pixels = [tuple(row[x:x + 3]) for x in range(0, stride, bpp)]
        first = first or pixels
        colors.update(pixels)
        previous = row
    return first, colors  # type: ignore[return-value]


def css_color(selector: str) -> tuple[int, int, int]:
    """The background colour the report's style sheet gives `selector`."""
    value = re.search(re.escape(selector) + r" \{ background: #([0-9a-f]{6})", CSS)
    assert value, selector
    return tuple(bytes.fromhex(value.group(1)))  # type: ignore[return-value]


def test_screenshot_script_renders_the_report(report_html: Path, tmp_path: Path) -> None:
    png = tmp_path / "shot.png"
    done = subprocess.run(["bash", str(SCRIPT), str(report_html), str(png), "1280x1400"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert png_size(png) == (1280, 1400)
    # A blank page compresses to a few kilobytes; tables, text and colours do not.
    assert png.stat().st_size > 30_000
    first_row, colors = png_pixels(png)
    # The page's own style sheet applied under its strict CSP: the body's grey, then the white page.
    assert first_row[2] == (0xF6, 0xF8, 0xFA) and first_row[640] == (0xFF, 0xFF, 0xFF)
    # The first document's source text is on screen with its spans highlighted: exact, normalized and
    # fuzzy matches each in their colour (the legend alone has far fewer pixels of each), and the red
    # of the value that is not in the source.
    for selector in ("mark.exact", "mark.normalized", "mark.fuzzy", "mark.bad"):
        assert colors[css_color(selector)] > 1500, selector


def test_browser_dom_shows_every_title_as_text(report_html: Path) -> None:
    dom = dump_dom(report_html)
    assert TITLES[1] in dom
    assert "CATL and the University of Hong Kong signed" in dom  # each document's summary
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | pipe" in dom  # text in the page, not an element
    assert "&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in dom  # the hostile source text, as text
    assert dom.count("<script") == 1  # the report's own script, and nothing the data brought


def test_highlighted_spans_are_exactly_the_evidence_in_cyrillic_and_cjk(report_html: Path,
                                                                        outputs: dict[str, dict[str, Any]]) -> None:
    parser = Marks()
    parser.feed(dump_dom(report_html))
    ids = {"ru": "doc-2", "zh": "doc-3", "pt": "doc-1"}  # outputs are read in file-name order: pt, ru, zh
    for name, output in outputs.items():
        marks = [m for m in parser.marks if m[0] == ids[name]]
        anchored = [e for e in output["checks"]["evidence"] if e["anchor"] is not None]
        assert anchored and len(marks) == len(anchored), name  # these fixtures' anchors do not overlap
        for item in anchored:
            # The span whose tooltip names this field shows exactly the source text the anchor matched.
            (mark,) = [m for m in marks if m[2].split(":")[0] == item["path"]]
            assert mark[3] == item["anchor"]["source"], item["path"]
            assert mark[1] == item["anchor"]["match"] and item["anchor"]["match"] in mark[2]
    by_text = {m[3]: m[1] for m in parser.marks if m[0] in (ids["ru"], ids["zh"])}
    assert by_text["Китайская группа по энергосбережению и охране окружающей среды"] == "fuzzy"
    assert by_text["CATL"] == "normalized" and by_text["香港大学"] == "normalized"
    assert by_text["曾毓群"] == "exact" and by_text["宁德时代新能源科技股份有限公司"] == "fuzzy"
    assert outputs["zh"]["checks"]["passed"] is False and outputs["ru"]["checks"]["passed"] is False


def test_flagged_documents_come_first_and_their_invented_values_are_marked(report_html: Path) -> None:
    dom = dump_dom(report_html)
    table = dom.split('id="doc-table"')[1].split("</table>")[0]
    rows = table.split("<tr")[2:]
    flagged = [("flagged" in row.split(">")[0]) for row in rows]
    assert flagged == [True, True, False]  # flagged first; the passing document last
    assert '<mark class="bad"' in rows[0] and "Fangda Holdings" in table and "比亚迪股份有限公司" in table
    # The entity tables mark an invented name too, not only the table at the bottom.
    organizations = dom.split("<h2>Organizations</h2>")[1].split("</section>")[0]
    assert '<mark class="bad" title="not found in the source text: news/hku.txt: organizations[2].name_original">' \
           '比亚迪股份有限公司</mark>' in organizations
    # The inline script ran under the CSP: it turned every header of the documents table into a sort button.
    assert table.count('<button type="button" class="sort">') == table.split("</thead>")[0].count("</th>") == 7
    assert '<input type="search" id="doc-filter"' in dom and 'id="doc-filter" placeholder' in dom


def test_screenshot_script_explains_a_missing_report(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "missing.html")], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and "usage:" in done.stderr


def test_the_inline_script_sorts_and_filters_the_documents_table(report_html: Path, tmp_path: Path) -> None:
    # A copy of the page with a driver script after the report's own (the CSP is taken out so the driver
    # may run; that the report's script runs under the CSP is shown by the sort buttons above).
    page = report_html.read_text("utf-8")
    page = page.split('<meta http-equiv="Content-Security-Policy"')[0] + page.split('no-referrer">', 1)[1]
    driver = """<script>
      const buttons = document.querySelectorAll("#doc-table button.sort");
      buttons[3].click();  // Language, ascending
      document.body.dataset.sorted = Array.from(document.querySelectorAll("#doc-table tbody td:nth-child(4)"))
        .map((td) => td.textContent).join(",");
      buttons[3].click();  // descending
      document.body.dataset.reversed = Array.from(document.querySelectorAll("#doc-table tbody td:nth-child(4)"))
        .map((td) => td.textContent).join(",");
      const filter = document.getElementById("doc-filter");
      filter.value = "hong kong";
      filter.dispatchEvent(new Event("input"));
      document.body.dataset.shown = Array.from(document.querySelectorAll("#doc-table tbody tr"))
        .filter((tr) => !tr.hidden).map((tr) => tr.cells[3].textContent).join(",");
      document.body.dataset.count = document.getElementById("doc-count").textContent;
    </script></body>"""
    driven = tmp_path / "driven.html"
    driven.write_text(page.replace("</body>", driver), "utf-8")
    dom = dump_dom(driven)
    assert 'data-sorted="pt,ru,zh"' in dom and 'data-reversed="zh,ru,pt"' in dom
    assert 'data-shown="zh"' in dom and 'data-count="1 of 3 documents match"' in dom
