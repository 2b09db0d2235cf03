"""Turn raw bytes into clean text: binary detection, encoding detection, HTML and junk removal."""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser

from .errors import EmptyDocument, NotTextDocument

_MAGIC = {
    b"\x89PNG": "PNG image",
    b"%PDF": "PDF file",
    b"GIF8": "GIF image",
    b"\xff\xd8\xff": "JPEG image",
    b"PK\x03\x04": "ZIP archive (or DOCX/XLSX)",
    b"\x1f\x8b": "gzip archive",
    b"\x7fELF": "executable",
    b"RIFF": "RIFF media file",
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\ufffd]")
_HTML_HINT = re.compile(r"^\s*(?:<!doctype html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I)
_BLANKS = re.compile(r"[ \t\u00a0]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Document:
    """A document ready for the model: clean text plus where it came from."""

    path: str
    text: str
    sha256: str  # of the file's bytes
    encoding: str
    format: str = "text"  # text | html

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def load_document(path: str, data: bytes) -> Document:
    """Decode and clean one document, or raise EmptyDocument / NotTextDocument."""
    kind = _binary_kind(data)
    if kind:
        raise NotTextDocument(f"{path}: not a text document ({kind}); convert it to text first")
    text, encoding = decode(data)
    fmt = "text"
    if _HTML_HINT.match(text[:2000]) or _looks_like_html(text):
        text, fmt = html_to_text(text), "html"
    text = clean_text(text)
    if not text.strip():
        raise EmptyDocument(f"{path}: empty document (no text after decoding); nothing to summarize")
    return Document(path=path, text=text, sha256=hashlib.sha256(data).hexdigest(), encoding=encoding, format=fmt)


def _binary_kind(data: bytes) -> str | None:
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    if any(data.startswith(bom) for bom, _ in _BOMS):
        return None  # UTF-16/32 text is full of NUL bytes by design
    if b"\x00" in data[:65536]:
        return "contains NUL bytes"
    return None


def decode(data: bytes) -> tuple[str, str]:
    """Decode bytes by BOM, then strict UTF-8, then charset detection; return (text, encoding)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding), encoding.replace("-sig", "") + ("-bom" if "sig" in encoding else "")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes  # imported only for non-UTF-8 input

    best = from_bytes(data).best()
    if best is None:
        return data.decode("utf-8", errors="replace"), "utf-8-replaced"
    encoding = best.encoding
    return data.decode(encoding), encoding


def clean_text(text: str) -> str:
    """NFC, no terminal escapes or control characters, tidy whitespace; keeps paragraphs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ANSI.sub("", text)
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text))
    lines = [_BLANKS.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def _looks_like_html(text: str) -> bool:
    head = text[:5000].lower()
    return head.count("</p>") + head.count("<div") + head.count("<br") >= 3


_DROP = {"script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg", "iframe",
         "template", "button", "select", "head"}
_BLOCK = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
          "section", "article", "blockquote", "pre", "hr", "dd", "dt", "main", "figcaption"}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
_BOILERPLATE = re.compile(r"cookie|consent|gdpr|banner|newsletter|subscribe|popup|modal|advert|share|social|related",
                          re.I)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag in _BLOCK and not self._skip_stack:
                self.parts.append("\n")
            return
        marker = " ".join(v or "" for k, v in attrs if k in ("id", "class", "role", "aria-label"))
        if self._skip_stack or tag in _DROP or (marker and _BOILERPLATE.search(marker)):
            self._skip_stack.append(tag)
            return
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skip_stack:
            if tag in self._skip_stack:
                while self._skip_stack and self._skip_stack.pop() != tag:
                    pass
            return
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_stack:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible article text of an HTML page: scripts, styles, navigation and banners dropped."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)
