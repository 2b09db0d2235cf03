"""What a file is: magic bytes first, the file name's extension second."""

from __future__ import annotations

import os

import re

from .decode import BOMS

# Binary files this tool cannot read, named for the error message.
_MAGIC = {
    b"\x89PNG": "PNG image",
    b"GIF8": "GIF image",
    b"\xff\xd8\xff": "JPEG image",
    b"\x1f\x8b": "gzip archive",
    b"\x7fELF": "executable",
    b"RIFF": "RIFF media file",
    b"7z\xbc\xaf\x27\x1c": "7-Zip archive",
    b"Rar!\x1a\x07": "RAR archive",
    b"\xfd7zXZ\x00": "xz archive",
    b"BZh": "bzip2 archive",
    b"OggS": "Ogg media file",
    b"fLaC": "FLAC audio",
    b"\xca\xfe\xba\xbe": "Java class or Mach-O binary",
    b"SQLite format 3\x00": "SQLite database",
    b"\x28\xb5\x2f\xfd": "zstd archive",
    b"MZ": "Windows executable",
}


PDF, ZIP, OLE = "pdf", "zip", "ole"  # containers opened by their own readers
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MARKDOWN = {".md", ".markdown", ".mdown", ".mkd", ".mkdn"}
_HTML = {".html", ".htm", ".xhtml"}
_MAIL = {".eml", ".msg822"}
# A mail header block: "Name: value" lines (continuations indented) up to the first blank line.
_HEADER_LINE = re.compile(rb"[!-9;-~]+:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*\r?\n")
_MAIL_HEADERS = {b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"received",
                 b"return-path", b"delivered-to", b"reply-to", b"cc", b"content-type", b"x-mailer"}
_MBOX_FROM = re.compile(rb"From \S+.*\r?\n")


def container(path: str, data: bytes) -> str | None:
    """PDF, ZIP (DOCX, PPTX...) or OLE (old Office, encrypted Office) by magic bytes; None otherwise."""
    if data.startswith(b"%PDF-") or (_suffix(path) == ".pdf" and b"%PDF-" in data[:1024]):
        return PDF  # readers accept a PDF header anywhere in the first kilobyte
    if data.startswith(b"PK\x03\x04"):
        return ZIP
    if data.startswith(OLE_MAGIC):
        return OLE
    return None


def mail_format(path: str, data: bytes) -> str | None:
    """"mbox" or "eml" when the bytes start like a mailbox or a message (or the name says so)."""
    match = _MBOX_FROM.match(data)
    if match and _is_header_block(data[match.end():match.end() + 65536]):
        return "mbox"
    if _suffix(path) == ".mbox":
        return "mbox"
    if _suffix(path) in _MAIL or _is_header_block(data):
        return "eml"
    return None


def _is_header_block(data: bytes) -> bool:
    # Header lines only, at least two of them known mail headers, then a blank line: a message.
    position, names = 0, set()
    head = data[:65536]
    while match := _HEADER_LINE.match(head, position):
        names.add(match.group(0).split(b":", 1)[0].lower())
        position = match.end()
    return len(names & _MAIL_HEADERS) >= 2 and head.startswith((b"\n", b"\r\n"), position)


def text_format(path: str) -> str | None:
    """"markdown" or "html" when the file name says so; None leaves it to the content."""
    suffix = _suffix(path)
    if suffix in _MARKDOWN:
        return "markdown"
    if suffix in _HTML:
        return "html"
    return None


def _suffix(path: str) -> str:
    # os.path, not PurePath: this runs for every document, and building a path object costs ~50 µs.
    name = os.path.basename(path)
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def binary_kind(data: bytes) -> str | None:
    """What binary file this is ("PNG image", "contains NUL bytes"...), or None for text."""
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            if magic == b"BZh" and data[4:10] != b"1AY&SY":
                continue  # text that merely starts with "BZh"
            if magic == b"MZ" and b"This program cannot be run in DOS mode" not in data[:1024]:
                continue  # "MZ" also starts ordinary words and names
            return kind
    if any(data.startswith(bom) for bom, _, _ in BOMS):
        return None  # UTF-16/32 text is full of NUL bytes by design
    if b"\x00" in data[:65536]:
        return "contains NUL bytes"
    return None

