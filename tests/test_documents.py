"""Bytes to clean text: encodings, junk characters, long lines and HTML pages (cases 13 and 14)."""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path

import pytest

from summarizer.documents import clean_text, decode, html_to_text, load_document
from summarizer.errors import EmptyDocument, NotTextDocument
from summarizer.loopback import LoopbackServer
from .helpers import SEEDS

RUSSIAN = (SEEDS / "000_f5657d2c5e6c31f2.txt").read_text("utf-8").strip()
PORTUGUESE = (SEEDS / "003_912c44fa5303de8d.txt").read_text("utf-8").strip()
RUSSIAN_PARAGRAPH = RUSSIAN.split("\n")[0]
PORTUGUESE_PARAGRAPH = PORTUGUESE.split("\n")[0]
CHINESE = (
    "宁德时代新能源科技股份有限公司与肇庆市人民政府于二月二十五日签署全面战略合作协议。双方将在新能源应用、"
    "绿色电力开发、储能技术创新和高端制造等领域深化合作，共同推动粤港澳大湾区的绿色低碳转型。根据协议，"
    "宁德时代将在肇庆建设电池生产基地，预计总投资超过一百二十亿元人民币，并为当地创造约三千个就业岗位。"
)


def _bytes(text: str, encoding: str) -> bytes:
    """The file a user would have: BOM-bearing encodings get their BOM."""
    boms = {"utf-8-bom": codecs.BOM_UTF8, "utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}
    codec = {"utf-8-bom": "utf-8"}.get(encoding, encoding)
    return boms.get(encoding, b"") + text.encode(codec)


# (case id, text, how the file is encoded, the encoding the output must record)
ENCODINGS = [
    ("utf8-bom-russian", RUSSIAN, "utf-8-bom", "utf-8-bom"),
    ("utf16le-bom-chinese", CHINESE, "utf-16-le", "utf-16-le"),
    ("utf16be-bom-russian", RUSSIAN_PARAGRAPH, "utf-16-be", "utf-16-be"),
    ("cp1251-russian-article", RUSSIAN, "cp1251", "cp1251"),
    ("cp1251-russian-paragraph", RUSSIAN_PARAGRAPH, "cp1251", "cp1251"),
    ("cp1251-russian-one-line", RUSSIAN_PARAGRAPH[:60], "cp1251", "cp1251"),
    # Latin-1 text is recorded as cp1252, its superset (what browsers do for "latin-1"); the
    # bytes are the same, and charset-normalizer alone reads the whole article as cp1250.
    ("latin1-portuguese-article", PORTUGUESE, "latin-1", "cp1252"),
    ("latin1-portuguese-paragraph", PORTUGUESE_PARAGRAPH, "latin-1", "cp1252"),
    ("latin1-portuguese-sentence", "Em 29 de maio, a CATL assinou um acordo de cooperação estratégica com o Governo "
     "Municipal de Lanzhou.", "latin-1", "cp1252"),
    ("gb18030-chinese", CHINESE, "gb18030", "gb18030"),
    ("gb18030-chinese-short", CHINESE[:20], "gb18030", "gb18030"),
    # Short texts charset-normalizer alone gets wrong (cp775, cp1250, Shift-JIS respectively).
    ("latin1-german-short", "Die Universität unterzeichnete über", "latin-1", "cp1252"),
    ("cp1252-french-short", "Le groupe français a signé un accord « stratégique » — 5 €", "cp1252", "cp1252"),
    ("koi8r-russian-short", RUSSIAN_PARAGRAPH[:40], "koi8-r", "koi8-r"),
]


@pytest.mark.parametrize(("text", "file_encoding", "recorded"), [c[1:] for c in ENCODINGS],
                         ids=[c[0] for c in ENCODINGS])
def test_13_encoding_is_detected_and_decoded_exactly(text: str, file_encoding: str, recorded: str) -> None:
    """Every case decodes to exactly the original text and names the encoding it used."""
    data = _bytes(text, file_encoding)
    document = load_document("doc.txt", data)
    assert document.text == text
    assert document.encoding == recorded
    assert decode(data) == (text, recorded)


def test_13_encodings_recorded_in_output_documents(tmp_path: Path, cli, server: LoopbackServer) -> None:
    """Through the CLI: each output's document.encoding names the file's encoding, the model gets the text."""
    folder = tmp_path / "docs"
    folder.mkdir()
    cases = {"ru-cp1251.txt": (RUSSIAN, "cp1251", "cp1251"), "pt-latin1.txt": (PORTUGUESE, "latin-1", "cp1252"),
             "zh-gb18030.txt": (CHINESE, "gb18030", "gb18030"), "zh-utf16le.txt": (CHINESE, "utf-16-le", "utf-16-le"),
             "ru-utf8bom.txt": (RUSSIAN_PARAGRAPH, "utf-8-bom", "utf-8-bom"),
             "pt-utf8.txt": (PORTUGUESE_PARAGRAPH, "utf-8", "utf-8")}
    for name, (text, encoding, _) in cases.items():
        (folder / name).write_bytes(_bytes(text, encoding))
    out = tmp_path / "out"
    result = cli("summarize", folder, "--base-url", server.url, "--out", out, "--tables", "never", "--no-cache")
    assert result.code in (0, 1), result.stderr  # 1 only if a grounding check objects to the canned answer
    documents = [_document_in(r.body) for r in server.requests]
    for name, (text, _, recorded) in cases.items():
        envelope = json.loads((out / name.replace(".txt", ".json")).read_text("utf-8"))
        assert envelope["document"]["encoding"] == recorded, name
        assert envelope["document"]["format"] == "text"
        assert envelope["document"]["chars"] == len(text)
        assert text in documents, f"{name}: the model did not get the decoded text"


def test_13_utf8_cut_mid_character_stays_utf8() -> None:
    """A UTF-8 file truncated inside a character is still read as UTF-8, not as mojibake."""
    data = RUSSIAN_PARAGRAPH.encode("utf-8")[:-1]
    document = load_document("cut.txt", data)
    assert document.text == RUSSIAN_PARAGRAPH[:-1]
    assert document.encoding.startswith("utf-8")


def test_13_damaged_utf16_does_not_crash() -> None:
    """An odd-length UTF-16 file (cut mid code unit) decodes what it can instead of raising."""
    data = codecs.BOM_UTF16_LE + CHINESE.encode("utf-16-le") + b"\x41"
    document = load_document("cut16.txt", data)
    assert document.text == CHINESE
    assert document.encoding == "utf-16-le-damaged"


def test_13_html_meta_charset_is_honoured() -> None:
    """A cp1251 page that declares its charset is decoded with it."""
    page = ('<html><head><meta charset="windows-1251"><title>x</title></head>'
            f"<body><p>{RUSSIAN_PARAGRAPH}</p></body></html>")
    document = load_document("page.html", page.encode("cp1251"))
    assert (document.text, document.encoding, document.format) == (RUSSIAN_PARAGRAPH, "cp1251", "html")


def test_13_junk_characters_removed() -> None:
    """Zero-width, control, replacement, bidi, tag characters and ANSI escapes are removed; text stays."""
    dirty = (
        "Zhao\u200bqing\u2060 signed\x07 the\x00 deal\ufffd.\x1b[31m Red\x1b[0m text,"
        " \x1b]0;window title\x07title gone, \x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ kept,"
        " \x9b31mC1 CSI gone, \u202eoverride\u202c and \u2066isolate\u2069 gone,"
        " \U000e0049\U000e0047hidden tag text gone, soft\u00adhyphen, BOM\ufeff inside.\r\n"
        "Second\x0cpage\u2028line."
    )
    assert clean_text(dirty) == (
        "Zhaoqing signed the deal. Red text, title gone, link kept, C1 CSI gone, override and isolate gone,"
        " hidden tag text gone, softhyphen, BOM inside.\nSecond\npage\nline."
    )


def test_13_unterminated_escape_does_not_swallow_the_rest() -> None:
    """An OSC or DCS string without its terminator ends at the line's end; later text is kept."""
    assert clean_text("Title\x1b]0;no terminator\nThe article text.\n\x1bPq#0\nMore text.") == (
        "Title\nThe article text.\n\nMore text.")


def test_13_joiners_kept_where_words_need_them() -> None:
    """ZWNJ inside a Persian word and ZWJ inside an emoji survive; stray ones next to ASCII do not."""
    persian = "می\u200cخواهم"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clean_text(f"{persian} {family} a\u200cb \u200dc") == f"{persian} {family} ab c"


def test_13_very_long_one_line_text_kept_intact() -> None:
    """A 200,000-character single line is neither wrapped nor truncated."""
    words = PORTUGUESE_PARAGRAPH.split()
    line = " ".join(words[i % len(words)] for i in range(40_000))[:200_000]
    document = load_document("line.txt", line.encode("utf-8"))
    assert document.text == line.strip()
    assert "\n" not in document.text


def test_11_empty_and_whitespace_raise_empty_document() -> None:
    """Nothing left after decoding and cleaning is an empty document."""
    for data in (b"", b"   \n\t\r\n  ", codecs.BOM_UTF8, codecs.BOM_UTF16_LE + " \n".encode("utf-16-le"),
                 "\u200b\u200b\ufeff\n".encode("utf-8"), b"\x1b[2J\x1b[H", b"<html><body>  </body></html>"):
        with pytest.raises(EmptyDocument, match="empty document"):
            load_document("e.txt", data)


def test_12_binary_raises_not_text() -> None:
    """Images, damaged PDFs, archives, NUL bytes and random bytes are not text documents."""
    samples = {
        "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
        "nul": b"plain text until \x00 a NUL byte appears",
        "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
        "noise": bytes((i * 7919 + 13) % 255 + 1 for i in range(4000)),  # no NUL, no magic number
    }
    for name, data in samples.items():
        with pytest.raises(NotTextDocument, match="not a text document"):
            load_document(name, data)


def test_12_text_that_merely_starts_like_magic_is_text() -> None:
    """'MZ' and 'BZh' open ordinary words too: only real signatures make a file binary."""
    assert load_document("a.txt", b"MZ Holdings signed a deal.").text == "MZ Holdings signed a deal."
    assert load_document("b.txt", b"BZh stands for nothing.").text == "BZh stands for nothing."


PAGE = """<!DOCTYPE html>
<html lang="en" class="no-js">
<head>
  <meta charset="utf-8">
  <title>CATL signs deal | Battery News</title>
  <style>body { font-family: sans-serif; } .cookie-banner { position: fixed; }</style>
  <script>window.dataLayer = []; function track() { return "<p>tracking</p>"; }</script>
</head>
<body class="home modal-open">
  <a class="skip-link" href="#main">Skip to content</a>
  <header class="site-header"><div class="logo">Battery News</div></header>
  <nav class="top-nav"><ul><li><a href="/">Home</a></li><li><a href="/markets">Markets</a></li></ul></nav>
  <div id="cookie-consent" class="cookie-banner" role="dialog">
    <p>We use cookies to improve your experience. <button>Accept all</button></p>
  </div>
  <main id="main">
    <article class="post has-sidebar">
      <header><h1>CATL &amp; Zhaoqing sign a cooperation agreement</h1>
        <p class="byline">By Li Wei</p></header>
      <p>Zhaoqing&nbsp;city signed a
         comprehensive agreement with <a href="javascript:alert(document.cookie)">CATL</a> on Monday.</p>
      <p>The characters &#x4e2d;&#x56fd; mean &quot;China&quot;; output rose 5&nbsp;% &lt;approx.&gt;.</p>
      <div class="share-buttons"><a href="#">Share on X</a> <a href="#">Share on WeChat</a></div>
      <table><tr><th>Capacity</th><td>10 GWh</td></tr></table>
      <p hidden>Hidden teaser text.</p>
      <p style="display: none">Invisible text.</p>
      <aside class="related"><h2>Related</h2><p>Other news</p></aside>
      <pre>line one
  line two</pre>
    </article>
  </main>
  <!-- a comment that is not text -->
  <footer class="site-footer"><p>&copy; 2024 Battery News. All rights reserved.</p></footer>
  <script>console.log("bye")</script>
</body>
</html>
"""
PAGE_TEXT = (
    "CATL & Zhaoqing sign a cooperation agreement\n\n"
    "By Li Wei\n\n"
    "Zhaoqing city signed a comprehensive agreement with CATL on Monday.\n\n"
    "The characters 中国 mean \"China\"; output rose 5 % <approx.>.\n\n"
    "Capacity 10 GWh\n\n"
    "line one\n"
    "line two"
)


def test_14_html_page_reduced_to_article_text() -> None:
    """Scripts, styles, navigation, cookie banner, sharing, asides, hidden parts and footer go; entities decode."""
    document = load_document("page.html", PAGE.encode("utf-8"))
    assert document.format == "html"
    assert document.text == PAGE_TEXT
    assert "javascript:" not in document.text  # attributes never become text


@pytest.mark.parametrize("boilerplate", [
    '<div id="cookie-notice"><p>We use cookies.</p></div>',
    '<div class="gdpr-consent"><p>Accept our terms.</p></div>',
    '<section class="newsletter-signup"><p>Subscribe now.</p></section>',
    '<nav><a href="/">Home</a></nav>',
    '<aside><p>Most read</p></aside>',
    '<div class="social-share"><a href="#">Tweet</a></div>',
    '<div role="navigation"><a href="/a">A</a></div>',
    '<div class="ad-slot"><p>Buy now</p></div>',
    '<form><button>Search</button></form>',
    '<cookie-banner><p>Cookies!</p></cookie-banner>',
])
def test_14_each_kind_of_boilerplate_is_dropped(boilerplate: str) -> None:
    """Each boilerplate marker alone is enough to drop its element."""
    page = f"<!doctype html><html><body>{boilerplate}<article><p>The article text.</p></article></body></html>"
    assert load_document("p.html", page.encode()).text == "The article text."


def test_14_content_classes_that_merely_mention_boilerplate_are_kept() -> None:
    """'has-sidebar', 'no-ads', hero banners, paywall wrappers and a hidden-while-modal <main> are content."""
    page = ('<!doctype html><html><body class="modal-open" style="display:none">'
            '<main aria-hidden="true"><div class="hero-banner"><h1>Headline</h1></div>'
            '<div class="entry has-sidebar no-ads"><p>Kept text.</p></div>'
            '<div class="paywall-content"><p>Subscriber text.</p></div></main>'
            '<div class="cookie-modal" role="dialog"><p>Accept cookies?</p></div></body></html>')
    assert load_document("p.html", page.encode()).text == "Headline\n\nKept text.\n\nSubscriber text."


def test_14_html_fragment_without_doctype_detected() -> None:
    """A fragment of paragraphs and line breaks is HTML too."""
    fragment = "<p>First paragraph.</p>\n<p>Second<br>line.</p><div>Third.</div>"
    document = load_document("frag.txt", fragment.encode())
    assert document.format == "html"
    assert document.text == "First paragraph.\n\nSecond\nline.\n\nThird."


def test_14_html_where_heuristics_drop_everything_falls_back_to_all_text() -> None:
    """A page whose only content sits in a 'nav'-looking wrapper still yields its text, not 'empty'."""
    page = "<!doctype html><html><body><div class='menu'><p>The only text there is.</p></div></body></html>"
    assert html_to_text(page).strip() == "The only text there is."
    assert load_document("p.html", page.encode()).text == "The only text there is."


def test_14_html_output_format_recorded(tmp_path: Path, cli, server: LoopbackServer) -> None:
    """Through the CLI: the model receives the extracted text and the output says format 'html'."""
    (tmp_path / "page.html").write_text(PAGE, "utf-8")
    out = tmp_path / "out"
    result = cli("summarize", tmp_path / "page.html", "--base-url", server.url, "--out", out, "--tables", "never")
    assert result.code in (0, 1), result.stderr
    assert len(server.requests) == 1
    assert _document_in(server.requests[0].body) == PAGE_TEXT
    envelope = json.loads((out / "page.json").read_text("utf-8"))
    assert envelope["document"]["format"] == "html"
    assert envelope["document"]["encoding"] == "utf-8"


_DOCUMENT = re.compile(r"<<<(?:ARTICLE|DOCUMENT) ([0-9a-f]+)>>>\n(.*)\n<<<END \1>>>\s*$", re.S)


def _document_in(body: dict) -> str:
    """The document text between the real delimiters of a recorded request."""
    match = _DOCUMENT.search(body["messages"][-1]["content"])
    assert match, "no delimited document in the request"
    return match.group(2)
