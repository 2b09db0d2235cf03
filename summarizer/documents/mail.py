"""E-mail (.eml) and mailboxes (.mbox) with the stdlib `email` package.

A message becomes its key header lines, a list of its attachments (named, never inlined) and
its body: the text/plain part, else the HTML part through the HTML extractor.
"""

from __future__ import annotations

import re
from typing import cast
from email import message_from_bytes, policy
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import EmailMessage

from .decode import decode, text_codec
from .html import html_to_text
from .limits import check_chars

_HEADERS = ("Subject", "From", "To", "Cc", "Date")
_NAMES = {name.lower() for name in _HEADERS}
_MBOX_SPLIT = re.compile(rb"(?:\A|\r?\n)From [^\r\n]*\r?\n")
_MBOX_QUOTED = re.compile(rb"^>(>*From )", re.M)  # mboxrd quoting of body lines starting with "From "


def eml_to_text(path: str, data: bytes, max_chars: int) -> tuple[str, str]:
    """(header lines, attachment list and body; the body's encoding)."""
    return _message_text(_parse(data))


def mbox_to_text(path: str, data: bytes, max_chars: int) -> tuple[str, str]:
    """Every message of a mailbox, in order, separated by a line of dashes; encoding of the first body."""
    texts: list[str] = []
    encodings: list[str] = []
    chars = 0
    for raw in _MBOX_SPLIT.split(data):
        if not raw.strip():
            continue
        text, encoding = _message_text(_parse(_MBOX_QUOTED.sub(rb"\1", raw)))
        texts.append(text)
        encodings.append(encoding)
        chars += len(text)
        check_chars(path, chars, max_chars)
    return "\n\n----------\n\n".join(texts), (encodings[0] if encodings else "utf-8")


def _parse(data: bytes) -> EmailMessage:
    return cast(EmailMessage, message_from_bytes(data, policy=policy.default))  # what policy.default builds


def _message_text(message: EmailMessage) -> tuple[str, str]:
    raw = {key.lower(): str(value) for key, value in reversed(list(message.raw_items()))}  # the first of each
    raw8bit = _raw_8bit_headers(raw)
    lines = [f"{name}: {_header(message, name, raw, raw8bit)}"
             for name in _HEADERS if raw.get(name.lower(), "").strip()]
    attachments = [_describe(part) for part in message.iter_attachments()]
    if attachments:
        lines.append("Attachments: " + "; ".join(attachments))
    body, encoding = "", "utf-8"
    part = message.get_body(preferencelist=("plain", "html"))
    if part is not None:
        body, encoding = _part_text(part)
        if part.get_content_subtype() == "html":
            body = html_to_text(body)
    elif message.get_content_maintype() == "multipart" and not message.is_multipart():
        body, encoding = _part_text(message)  # a broken multipart (no boundary, no parts): its raw text
    return "\n".join(lines) + "\n\n" + body, encoding


def _raw_8bit_headers(raw: dict[str, str]) -> dict[str, str]:
    # Raw 8-bit bytes in headers (no RFC 2047 encoding, as some clients send) are lost by the
    # parser: decode them all at once, like a text file, as one short header alone is too little
    # to tell its encoding.
    found = {key: value for key, value in raw.items()
             if key in _NAMES and any("\udc80" <= ch <= "\udcff" for ch in value)}
    if not found:
        return {}
    joined = "\n".join(" ".join(value.split()) for value in found.values()).encode("utf-8", "surrogateescape")
    return dict(zip(found, decode(joined)[0].split("\n")))


def _header(message: EmailMessage, name: str, raw: dict[str, str], raw8bit: dict[str, str]) -> str:
    key = name.lower()
    if key in raw8bit:
        return raw8bit[key]
    try:
        value = str(message[name])
    except (ValueError, TypeError, IndexError, AttributeError, MessageError):
        # The stdlib's address parser fails on some malformed headers: decode the words alone.
        try:
            value = str(make_header(decode_header(raw[key])))
        except (ValueError, TypeError, IndexError, LookupError, MessageError):
            value = raw[key]
    return " ".join(value.split())


def _part_text(part: EmailMessage) -> tuple[str, str]:
    # The declared charset when Python knows it; otherwise (none, or a made-up one) detection.
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return "", "utf-8"
    charset = part.get_content_charset()
    if charset:
        name = text_codec(charset)
        if name is not None and name != "ascii":
            return payload.decode(name, errors="replace"), name
    return decode(payload)


def _describe(part: EmailMessage) -> str:
    name = part.get_filename() or "(no name)"
    if part.get_content_type() == "message/rfc822":  # a forwarded message: named by its subject
        inner = part.get_payload()
        subject = inner[0].get("Subject") if isinstance(inner, list) and inner else None
        return f"forwarded message \"{' '.join(str(subject or '').split())}\" (message/rfc822)"
    payload = part.get_payload(decode=True)
    size = f", {_size(len(payload))}" if isinstance(payload, bytes) else ""
    return f"{' '.join(name.split())} ({part.get_content_type()}{size})"


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1024 else f"{n / 1024:.0f} kB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"
