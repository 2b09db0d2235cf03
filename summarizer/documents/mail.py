"""E-mail (.eml) and mailboxes (.mbox) with the stdlib `email` package.

A message becomes its key header lines, a list of its attachments (named, never inlined) and
its body: the text/plain part, else the HTML part through the HTML extractor.
"""

from __future__ import annotations

import codecs
import re
from email import message_from_bytes, policy
from email.message import EmailMessage

from .decode import decode
from .html import html_to_text
from .limits import check_chars

_HEADERS = ("Subject", "From", "To", "Cc", "Date")
_MBOX_SPLIT = re.compile(rb"(?:\A|\r?\n)From [^\r\n]*\r?\n")
_MBOX_QUOTED = re.compile(rb"^>(>*From )", re.M)  # mboxrd quoting of body lines starting with "From "


def eml_to_text(path: str, data: bytes) -> tuple[str, str]:
    """(header lines, attachment list and body; the body's encoding)."""
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage objects
    return _message_text(message)


def mbox_to_text(path: str, data: bytes) -> tuple[str, str]:
    """Every message of a mailbox, in order, separated by a line of dashes; encoding of the first body."""
    texts: list[str] = []
    encodings: list[str] = []
    chars = 0
    for raw in _MBOX_SPLIT.split(data):
        if not raw.strip():
            continue
        message = message_from_bytes(_MBOX_QUOTED.sub(rb"\1", raw), policy=policy.default)
        assert isinstance(message, EmailMessage)
        text, encoding = _message_text(message)
        texts.append(text)
        encodings.append(encoding)
        chars += len(text)
        check_chars(path, chars)
    return "\n\n----------\n\n".join(texts), (encodings[0] if encodings else "utf-8")


def _message_text(message: EmailMessage) -> tuple[str, str]:
    lines = [f"{name}: {_header(message, name)}" for name in _HEADERS if message.get(name)]
    attachments = [_describe(part) for part in message.iter_attachments()]
    if attachments:
        lines.append("Attachments: " + "; ".join(attachments))
    body, encoding = "", "utf-8"
    part = message.get_body(preferencelist=("plain", "html"))
    if part is not None:
        body, encoding = _part_text(part)
        if part.get_content_subtype() == "html":
            body = html_to_text(body)
    return "\n".join(lines) + "\n\n" + body, encoding


def _header(message: EmailMessage, name: str) -> str:
    try:
        return " ".join(str(message[name]).split())
    except (ValueError, TypeError, IndexError):  # a malformed header: its raw form is still informative
        return " ".join(str(message.get_all(name, [""])[0]).split())


def _part_text(part: EmailMessage) -> tuple[str, str]:
    # The declared charset when Python knows it; otherwise (none, or a made-up one) detection.
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return "", "utf-8"
    charset = part.get_content_charset()
    if charset:
        try:
            name = codecs.lookup(charset).name
        except LookupError:
            name = None
        if name is not None and name != "ascii":
            return payload.decode(name, errors="replace"), name
    return decode(payload)


def _describe(part: EmailMessage) -> str:
    name = part.get_filename() or "(no name)"
    payload = part.get_payload(decode=True)
    size = f", {_size(len(payload))}" if isinstance(payload, bytes) else ""
    return f"{' '.join(name.split())} ({part.get_content_type()}{size})"


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1024 else f"{n / 1024:.0f} kB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"
