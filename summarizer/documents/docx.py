"""DOCX text: the body in document order (paragraphs, tables, content controls, text boxes,
tracked insertions; not deleted text or field codes), then footnotes and endnotes."""

from __future__ import annotations

from .ooxml import MC_FALLBACK, Package, TextSink

# Transitional (what Word writes) and Strict OOXML name the same elements differently.
_W = ("http://schemas.openxmlformats.org/wordprocessingml/2006/main",
      "http://purl.oclc.org/ooxml/wordprocessingml/main")
_NOTES = ("word/footnotes.xml", "word/endnotes.xml")


def docx_to_text(package: Package, main: str) -> str:
    """All the text a reader of the document sees, paragraphs on their own lines."""
    sink = TextSink(package)
    for part in (main, *(n for n in _NOTES if n in package.names)):
        _read_part(package, part, sink)
        sink.add("\n\n")
    return sink.text()


def _read_part(package: Package, part: str, sink: TextSink) -> None:
    in_text = False
    skipping = 0  # depth inside mc:Fallback (a duplicate of the text box just read)
    cells = 0  # depth inside table cells: a cell's paragraphs share its line

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal in_text, skipping, cells
        if skipping or name == MC_FALLBACK:
            skipping += 1
            return
        namespace, _, local = name.rpartition(" ")
        if namespace not in _W:
            return
        if local == "t":
            in_text = True
        elif local == "tab":
            sink.add("\t")
        elif local in ("br", "cr"):
            sink.add("\n")
        elif local == "noBreakHyphen":
            sink.add("-")
        elif local == "tc":
            cells += 1

    def end(name: str) -> None:
        nonlocal in_text, skipping, cells
        if skipping:
            skipping -= 1
            return
        namespace, _, local = name.rpartition(" ")
        if namespace not in _W:
            return
        if local == "t":
            in_text = False
        elif local == "p":
            sink.add(" " if cells else "\n\n")  # a blank line between paragraphs, as for HTML
        elif local == "tc":
            cells -= 1
            sink.add("\t")
        elif local == "tr":
            sink.add("\n")
        elif local == "tbl":
            sink.add("\n")

    def text(data: str) -> None:
        if in_text and not skipping:
            sink.add(data)

    package.parse(part, start, end, text)
