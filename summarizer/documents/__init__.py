"""Turn a file's bytes into clean text for the model, whatever the format.

Formats are told apart by magic bytes first (PDF, ZIP-based Office files, old Office files,
images and archives), then by content (mail headers, HTML), then by the file's extension
(Markdown, .eml, .html). Modules: sniff (what a file is), decode (bytes to str), clean (junk
characters), html, markdown, mail (.eml, .mbox), pdf, ooxml (DOCX and PPTX packages), docx, pptx,
limits (pages and characters one document may hold).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import CorruptDocument, EmptyDocument, EncryptedDocument, NotTextDocument
from . import sniff
from .clean import clean_text
from .decode import decode, decode_scored, junk_share, suspicion
from .html import html_to_text, looks_like_html
from .limits import MAX_CHARS, check_chars

__all__ = ["Document", "clean_text", "decode", "html_to_text", "load_document", "suspicion"]

# Office 2007+ files saved with a password are OLE containers holding this stream (UTF-16 name).
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")


@dataclass(frozen=True)
class Document:
    """A document ready for the model: clean text plus where it came from."""

    path: str
    text: str
    sha256: str  # of the file's bytes
    encoding: str  # of the text; "pdf" for a PDF's text layer, "utf-8" for DOCX/PPTX XML
    format: str = "text"  # text | html | markdown | eml | mbox | pdf | docx | pptx

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def load_document(path: str, data: bytes, *, max_chars: int = MAX_CHARS) -> Document:
    """Extract, decode and clean one document, or raise an InputError saying why it cannot be read.

    Extraction stops with TooLarge as soon as the text passes max_chars: a small compressed file
    (PDF, DOCX) cannot grow into gigabytes of text in memory.
    """
    text, encoding, fmt = _extract(path, data, max_chars)
    text = clean_text(text)
    check_chars(path, len(text), max_chars)
    if not text.strip():
        raise EmptyDocument(f"{path}: empty document (no text after decoding); nothing to summarize")
    return Document(path=path, text=text, sha256=hashlib.sha256(data).hexdigest(), encoding=encoding, format=fmt)


def _extract(path: str, data: bytes, max_chars: int) -> tuple[str, str, str]:
    """(raw text, encoding, format) of any supported file."""
    container = sniff.container(path, data)
    if container == sniff.PDF:
        from .pdf import pdf_to_text

        text, _pages = pdf_to_text(path, data, max_chars)
        return text, "pdf", "pdf"
    if container == sniff.ZIP:
        return _office(path, data, max_chars)
    if container == sniff.OLE:
        if _ENCRYPTED_PACKAGE in data:
            raise EncryptedDocument(f"{path}: encrypted (password-protected Office file); open it in Office, "
                                    "remove the password and save it again")
        raise NotTextDocument(f"{path}: not a text document (old Office document: DOC/XLS/PPT); convert it to "
                              "DOCX, PDF or text first, e.g. libreoffice --headless --convert-to docx FILE")
    kind = sniff.binary_kind(data)
    if kind:
        raise NotTextDocument(f"{path}: not a text document ({kind}); convert it to text first")
    check_chars(path, len(data) // 4, max_chars)  # even UTF-32 holds a character in 4 bytes: no need to decode
    mail = sniff.mail_format(path, data)
    if mail:
        from .mail import eml_to_text, mbox_to_text

        text, encoding = (mbox_to_text if mail == "mbox" else eml_to_text)(path, data, max_chars)
        return text, encoding, mail
    text, encoding, suspicious = decode_scored(data)
    if suspicious > 0.25 or junk_share(text) > 0.1:
        raise NotTextDocument(f"{path}: not a text document (binary data, no text encoding fits); "
                              "convert it to text first")
    named = sniff.text_format(path)
    if named == "markdown":
        from .markdown import markdown_to_text

        return markdown_to_text(text), encoding, "markdown"
    if named == "html" or looks_like_html(text):
        return html_to_text(text), encoding, "html"
    return text, encoding, "text"


def _office(path: str, data: bytes, max_chars: int) -> tuple[str, str, str]:
    from .ooxml import Package

    package = Package(path, data, max_chars)
    main = package.main_part()
    if main is not None and main.startswith("word/") and main in package.names:
        from .docx import docx_to_text

        return docx_to_text(package, main), "utf-8", "docx"
    if main is not None and main.startswith("ppt/") and main in package.names:
        from .pptx import pptx_to_text

        return pptx_to_text(package, main), "utf-8", "pptx"
    if "word/document.xml" in package.names or "ppt/presentation.xml" in package.names:
        raise CorruptDocument(f"{path}: not a text document (an Office file without its part list, "
                              "_rels/.rels: damaged); open and re-save it")
    if "xl/workbook.xml" in package.names:
        kind, advice = "XLSX spreadsheet", "save it as CSV, which is read as text"
    elif "content.xml" in package.names and "mimetype" in package.names:
        kind, advice = "OpenDocument file", "save it as DOCX or PDF"
    else:
        kind, advice = "ZIP archive", "unpack it and summarize the files inside"
    raise NotTextDocument(f"{path}: not a text document ({kind}); {advice}")
