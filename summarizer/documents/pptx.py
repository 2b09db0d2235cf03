"""PPTX text: each slide's text frames and tables, slides in presentation order."""

from __future__ import annotations

import posixpath
import re

from .limits import check_pages
from .ooxml import MC_FALLBACK, Package, TextSink

_A = ("http://schemas.openxmlformats.org/drawingml/2006/main", "http://purl.oclc.org/ooxml/drawingml/main")
_P = ("http://schemas.openxmlformats.org/presentationml/2006/main", "http://purl.oclc.org/ooxml/presentationml/main")
_SLIDE = re.compile(r"ppt/slides/slide(\d+)\.xml")


def pptx_to_text(package: Package, main: str) -> str:
    """Every slide's text, slides separated by blank lines."""
    slides = _slide_order(package, main)
    check_pages(package.path, len(slides), "slides")
    sink = TextSink(package)
    for slide in slides:
        _read_slide(package, slide, sink)
        sink.add("\n\n")
    return sink.text()


def _slide_order(package: Package, main: str) -> list[str]:
    # The order is p:sldIdLst in presentation.xml, through its relationships; file numbers may differ.
    rels_part = posixpath.join(posixpath.dirname(main), "_rels", posixpath.basename(main) + ".rels")
    rels = package.relationships(rels_part) if rels_part in package.names else {}
    order: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        if namespace in _P and local == "sldId":
            rel_id = next((v for k, v in attrs.items() if k.endswith(" id")), "")
            if rel_id in rels and rels[rel_id][1] in package.names:
                order.append(rels[rel_id][1])

    package.parse(main, start, lambda name: None, lambda text: None)
    if order:
        return order
    numbered = [(int(m.group(1)), n) for n in package.names if (m := _SLIDE.fullmatch(n))]
    return [name for _, name in sorted(numbered)]


def _read_slide(package: Package, part: str, sink: TextSink) -> None:
    in_text = False
    skipping = 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal in_text, skipping
        if skipping or name == MC_FALLBACK:
            skipping += 1
            return
        namespace, _, local = name.rpartition(" ")
        if namespace in _A and local == "t":
            in_text = True
        elif namespace in _A and local == "br":
            sink.add("\n")

    def end(name: str) -> None:
        nonlocal in_text, skipping
        if skipping:
            skipping -= 1
            return
        namespace, _, local = name.rpartition(" ")
        if namespace in _A and local == "t":
            in_text = False
        elif namespace in _A and local == "p":
            sink.add("\n")
        elif namespace in _A and local == "tc":
            sink.add("\t")

    def text(data: str) -> None:
        if in_text and not skipping:
            sink.add(data)

    package.parse(part, start, end, text)
