"""Office Open XML packages (DOCX, PPTX): a ZIP of XML parts, read part by part with expat.

Not python-docx: measured on the same files, its paragraph API drops text inside content
controls (w:sdt, common in templates) and tracked insertions (w:ins, common in contracts),
and it pulls in lxml (12 MB). Streaming the parts through the stdlib's expat keeps every w:t
in document order, in flat memory, with no dependency. A DTD is refused outright (Office never
writes one), so entity expansion attacks cannot start; decompressed bytes are capped (zip bombs).
"""

from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from collections.abc import Callable
from xml.parsers import expat

from ..errors import CorruptDocument, EncryptedDocument, NotTextDocument, TooLarge
from .limits import MAX_XML_BYTES, check_chars

_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFICE_DOCUMENT = ("http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument",
                    "http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument")
# Word and PowerPoint save a text box twice: the modern form in mc:Choice, an old one in mc:Fallback.
MC_FALLBACK = "http://schemas.openxmlformats.org/markup-compatibility/2006 Fallback"
_DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError, NotImplementedError,
            expat.ExpatError, KeyError)


class Package:
    """An opened OOXML package: its part names and a guarded way to read or stream a part."""

    def __init__(self, path: str, data: bytes, max_chars: int) -> None:
        self.path = path
        self.max_chars = max_chars
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            self.names = set(self.zip.namelist())
        except _DAMAGED as exc:
            raise NotTextDocument(f"{path}: not a text document (ZIP archive that cannot be opened: damaged or "
                                  f"truncated: {exc}); repair or re-save it") from None
        self.read_bytes = 0

    def main_part(self) -> str | None:
        """The officeDocument part named in _rels/.rels (word/document.xml, ppt/presentation.xml...)."""
        if "_rels/.rels" not in self.names:
            return None
        for rel in self.relationships("_rels/.rels").values():
            if rel[0] in _OFFICE_DOCUMENT:
                return rel[1]
        return None

    def relationships(self, rels_part: str) -> dict[str, tuple[str, str]]:
        """Id -> (type, target part name) of a .rels part; targets resolved against its source part."""
        base = posixpath.dirname(posixpath.dirname(rels_part))  # word/_rels/document.xml.rels -> word
        found: dict[str, tuple[str, str]] = {}

        def start(name: str, attrs: dict[str, str]) -> None:
            if name == f"{_RELS} Relationship" and attrs.get("TargetMode") != "External":
                target = attrs.get("Target", "")
                absolute = target.startswith("/")
                part = target.lstrip("/") if absolute else posixpath.normpath(posixpath.join(base, target))
                found[attrs.get("Id", "")] = (attrs.get("Type", ""), part)

        self.parse(rels_part, start, lambda name: None, lambda text: None)
        return found

    def parse(self, part: str, start: Callable[[str, dict[str, str]], None], end: Callable[[str], None],
              text: Callable[[str], None]) -> None:
        """Stream one part through expat ("namespace localname" element names), bytes capped."""
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.StartDoctypeDeclHandler = self._refuse_dtd
        parser.EntityDeclHandler = self._refuse_dtd
        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = text
        parser.buffer_text = True  # one call per text run, not per line or entity
        try:
            with self.zip.open(part) as stream:
                while chunk := stream.read(1 << 16):
                    self.read_bytes += len(chunk)
                    if self.read_bytes > MAX_XML_BYTES:
                        raise TooLarge(f"{self.path}: too large (more than {MAX_XML_BYTES >> 20} MB of XML "
                                       "inside the file, a zip bomb or a huge document); split it")
                    parser.Parse(chunk, False)
            parser.Parse(b"", True)
        except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required"
            if "encrypted" not in str(exc):
                raise
            raise EncryptedDocument(f"{self.path}: encrypted (password-protected ZIP); remove the password "
                                    "first") from None
        except _DAMAGED as exc:
            raise CorruptDocument(f"{self.path}: not a text document (damaged {part} inside: {exc}); "
                                  "open and re-save it") from None

    def _refuse_dtd(self, *args: object) -> None:
        raise CorruptDocument(f"{self.path}: not a text document (a DTD inside an Office file, which Office "
                              "never writes: a crafted file); re-save it from Office")


class TextSink:
    """Collects extracted text and enforces the character limit as it grows."""

    def __init__(self, package: Package) -> None:
        self.path = package.path
        self.max_chars = package.max_chars
        self.parts: list[str] = []
        self.chars = 0

    def add(self, text: str) -> None:
        """Append text; raise TooLarge once the whole passes the limit."""
        self.parts.append(text)
        self.chars += len(text)
        check_chars(self.path, self.chars, self.max_chars)

    def text(self) -> str:
        """Everything collected, in order."""
        return "".join(self.parts)
