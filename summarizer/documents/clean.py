"""Text cleaning: terminal escapes, invisible and control characters, whitespace."""

from __future__ import annotations

import re
import unicodedata

# Terminal escapes: CSI (7- and 8-bit), OSC, DCS/SOS/PM/APC strings, nF and two-byte escapes.
# An unterminated string stops at the line's end: it must not swallow the rest of the document.
ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[PX^_][^\x1b\x9c\n]*(?:\x1b\\|\x9c)?"
    r"|\x1b[ -/]+[0-~]|\x1b[0-~]"
)
_LINE_BREAKS = re.compile(r"[\x0b\x0c\x85\u2028]")
# Invisible or direction-changing characters: C0/C1 controls, zero-width and bidi controls, soft
# hyphens, the replacement character, the noncharacters U+FFFE/U+FFFF, and Unicode "tag"
# characters (used to smuggle hidden text).
_CONTROL = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u206f"
    "\ufeff\ufff9-\ufffb\ufffd-\uffff\U000e0000-\U000e007f]"
)
# ZWNJ and ZWJ spell words in Persian and Indic scripts and join emoji: kept between non-ASCII.
_JOINERS = re.compile(r"[\u200c\u200d]+")
_BLANKS = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """NFC, no terminal escapes or control characters, tidy whitespace; keeps paragraphs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = ANSI.sub("", text)
    text = _LINE_BREAKS.sub("\n", text).replace("\u2029", "\n\n")
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text))
    text = _JOINERS.sub(_joiner, text)
    lines = [_BLANKS.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def _joiner(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    if 0 < start and end < len(text):
        before, after = text[start - 1], text[end]
        if before > "\x7f" and after > "\x7f" and not before.isspace() and not after.isspace():
            return match.group(0)
    return ""
