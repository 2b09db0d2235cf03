"""How much one document may hold: a hostile file must not exhaust memory or time."""

from __future__ import annotations

from ..errors import TooLarge

MAX_PAGES = 2_000  # PDF pages, PPTX slides
MAX_CHARS = 5_000_000  # extracted characters by default (settings.max_doc_chars): over a million tokens
MAX_XML_BYTES = 256 * 1024 * 1024  # decompressed XML read from one DOCX/PPTX (zip bombs)


def check_chars(path: str, chars: int, max_chars: int) -> None:
    """Raise TooLarge once the text extracted so far passes max_chars."""
    if chars > max_chars:
        raise TooLarge(f"{path}: more than {max_chars:,} characters of text, over --max-doc-chars {max_chars:,}: "
                       "split it, or raise --max-doc-chars")


def check_pages(path: str, pages: int, what: str = "pages") -> None:
    """Raise TooLarge for a document with more than MAX_PAGES pages (or slides)."""
    if pages > MAX_PAGES:
        raise TooLarge(f"{path}: too large ({pages:,} {what}, more than the {MAX_PAGES:,} read from one "
                       f"document); split it, e.g. qpdf --split-pages=1000 in.pdf out.pdf")
