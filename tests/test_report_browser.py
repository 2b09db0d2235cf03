"""The HTML report in a real browser: headless Chromium renders it (skipped without Chromium)."""

from __future__ import annotations

import json
import struct
import zlib
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "screenshot_report.sh"
TITLES = ["CATL and Lanzhou sign strategic cooperation agreement", "宁德时代与香港大学签署战略合作协议",
          "<script>alert(1)</script> | pipe"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")


def output_document(title: str, stem: str) -> dict[str, Any]:
    result = {
        "title": title,
        "summary": "CATL signed a strategic cooperation agreement. The partners will work on batteries.",
        "source_language": "pt",
        "organizations": [{"name": "CATL", "name_original": "CATL", "type": "company", "role": "party",
                           "country": "China"}],
        "people": [],
        "agreement": {"kind": "strategic cooperation agreement", "parties": ["CATL"],
                      "signed_on": {"year": None, "month": 5, "day": 29, "as_written": "29 de maio"},
                      "place": None, "term_years": None, "areas": ["batteries"]},
        "key_figures": [],
        "topics": ["batteries"],
    }
    return {"document": {"path": f"seeds/{stem}.txt"}, "schema": {"id": "article", "version": "1"},
            "checks": {"passed": False, "unsupported": [{"field": "organizations[0].name_original", "value": "CATL"}],
                       "failures": []},
            "result": result}


@pytest.fixture
def report_html(cli: Any, tmp_path: Path) -> Path:
    out = tmp_path / "outputs"
    out.mkdir()
    for i, title in enumerate(TITLES):
        (out / f"doc{i}.json").write_text(json.dumps(output_document(title, f"doc{i}"), ensure_ascii=False), "utf-8")
    target = tmp_path / "report.html"
    assert cli("report", out, "--format", "html", "-o", target).code == 0
    return target


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def first_row_pixel(path: Path, x: int) -> tuple[int, int, int]:
    """RGB of pixel (x, 0) of an 8-bit RGB or RGBA PNG (no imaging library needed)."""
    data = path.read_bytes()
    pos, idat, color_type = 8, b"", 2
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            assert body[8] == 8, "expected 8 bits per channel"
            color_type = body[9]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = {2: 3, 6: 4}[color_type]
    width = struct.unpack(">I", data[16:20])[0]
    raw = zlib.decompressobj().decompress(idat, 1 + width * bpp)
    kind, row = raw[0], bytearray(raw[1:1 + width * bpp])
    for i in range(len(row)):  # the first row: the row above is all zeros
        left = row[i - bpp] if i >= bpp else 0
        row[i] = (row[i] + {0: 0, 1: left, 2: 0, 3: left // 2, 4: left}[kind]) & 0xFF
    return tuple(row[x * bpp:x * bpp + 3])  # type: ignore[return-value]


def test_screenshot_script_renders_the_report(report_html: Path, tmp_path: Path) -> None:
    png = tmp_path / "shot.png"
    done = subprocess.run(["bash", str(SCRIPT), str(report_html), str(png), "1280x1400"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert png_size(png) == (1280, 1400)
    # A blank page compresses to a few kilobytes; tables, text and colours do not.
    assert png.stat().st_size > 30_000
    # The page's own style sheet applied under its strict CSP: the body's grey, then the white page.
    assert first_row_pixel(png, 2) == (0xF6, 0xF8, 0xFA)
    assert first_row_pixel(png, 640) == (0xFF, 0xFF, 0xFF)


def test_browser_dom_shows_every_title_as_text(report_html: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", report_html.as_uri()],
            capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert "<h1>Summarizer report</h1>" in dom, done.stderr[-2000:]
    assert TITLES[0] in dom and TITLES[1] in dom
    assert "The partners will work on batteries." in dom  # each document's summary
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | pipe" in dom  # text in the page, not an element
    assert "<script" not in dom


def test_screenshot_script_explains_a_missing_report(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "missing.html")], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and "usage:" in done.stderr
