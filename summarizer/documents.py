"""Turn raw bytes into clean text: binary detection, encoding detection, HTML and junk removal."""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
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
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "old Office document (DOC/XLS/PPT)",
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
_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8", "utf-8-bom"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16-be"),
)
# Terminal escapes: CSI (7- and 8-bit), OSC, DCS/SOS/PM/APC strings, nF and two-byte escapes.
# An unterminated string stops at the line's end: it must not swallow the rest of the document.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[PX^_][^\x1b\x9c\n]*(?:\x1b\\|\x9c)?"
    r"|\x1b[ -/]+[0-~]|\x1b[0-~]"
)
_LINE_BREAKS = re.compile(r"[\x0b\x0c\x85\u2028]")
# Invisible or direction-changing characters: C0/C1 controls, zero-width and bidi controls, soft
# hyphens, the replacement character, and Unicode "tag" characters (used to smuggle hidden text).
_CONTROL = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u206f"
    "\ufeff\ufff9-\ufffb\ufffd\U000e0000-\U000e007f]"
)
# ZWNJ and ZWJ spell words in Persian and Indic scripts and join emoji: kept between non-ASCII.
_JOINERS = re.compile(r"[\u200c\u200d]+")
_HTML_HINT = re.compile(r"^\s*(?:<!--.*?-->\s*)*(?:<!doctype html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I | re.S)
_BLANKS = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]{2,40})""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,100}?encoding\s*=\s*["']([A-Za-z0-9_.:\-]{2,40})""", re.I)


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
    text, encoding, suspicious = _decode(data)
    if suspicious > 0.25 or _junk_share(text) > 0.1:
        raise NotTextDocument(f"{path}: not a text document (binary data, no text encoding fits); "
                              "convert it to text first")
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
            if magic == b"BZh" and data[4:10] != b"1AY&SY":
                continue  # text that merely starts with "BZh"
            if magic == b"MZ" and b"This program cannot be run in DOS mode" not in data[:1024]:
                continue  # "MZ" also starts ordinary words and names
            return kind
    if any(data.startswith(bom) for bom, _, _ in _BOMS):
        return None  # UTF-16/32 text is full of NUL bytes by design
    if b"\x00" in data[:65536]:
        return "contains NUL bytes"
    return None


_LAYOUT = dict.fromkeys(map(ord, "\t\n\r\x0b\x0c"))  # removed before the printable test


def _junk_share(text: str) -> float:
    # Share of characters no text contains: what binary data turns into when decoded anyway.
    sample = _ANSI.sub("", text[:20000])
    if not sample:
        return 0.0
    if "\ufffd" not in sample and sample.translate(_LAYOUT).isprintable():
        return 0.0  # C-speed fast path: nothing but printable characters and layout whitespace
    junk = sum(1 for ch in sample if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\n\r\x0b\x0c")
               or 0x7f <= ord(ch) <= 0x9f or unicodedata.category(ch) in ("Co", "Cn", "Cs"))
    return junk / len(sample)


def decode(data: bytes) -> tuple[str, str]:
    """Decode bytes by BOM, strict UTF-8, declared HTML/XML charset or detection; return (text, encoding)."""
    text, encoding, _ = _decode(data)
    return text, encoding


def _decode(data: bytes) -> tuple[str, str, float]:
    # Also returns how suspicious a legacy decoding looks per character (binary data scores high).
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            body = data[len(bom):]
            try:
                return body.decode(codec), name, 0.0
            except UnicodeDecodeError:  # a truncated or damaged file: keep what can be read
                return body.decode(codec, errors="replace"), name + "-damaged", 0.0
    try:
        return data.decode("utf-8"), "utf-8", 0.0
    except UnicodeDecodeError as exc:
        if _mostly_utf8(data, exc):
            return data.decode("utf-8", errors="replace"), "utf-8-damaged", 0.0
    best = _best_legacy_decoding(data)
    if best is None:
        return data.decode("utf-8", errors="replace"), "utf-8-replaced", 0.0
    return best


def _mostly_utf8(data: bytes, error: UnicodeDecodeError) -> bool:
    # A UTF-8 file cut mid-character, or with a stray byte or two, is still UTF-8: legacy
    # encodings would garble all its other non-ASCII characters to save one.
    lenient = data.decode("utf-8", errors="replace")
    bad = lenient.count("\ufffd")
    good = len(lenient) - len(lenient.encode("ascii", "ignore")) - bad  # non-ASCII characters that decoded
    if error.end == len(data) and error.reason == "unexpected end of data" and bad == 1:
        return good >= 1  # cut mid-character, with real UTF-8 before the cut
    return bad <= 8 and good >= 20 * bad


# Likely legacy encodings, tried after charset-normalizer's own ranking (ties keep its order).
_FALLBACKS = ("cp1252", "cp1251", "gb18030", "cp1250", "koi8_r", "shift_jis", "big5", "euc_kr",
              "cp1253", "cp1254", "cp1257", "cp1255", "cp1256", "iso8859-15")
# When several encodings give the very same text, report the most common one.
_POPULAR = ("cp1252", "cp1251", "gb18030", "shift_jis", "big5", "euc_kr", "koi8-r", "cp1250", "iso8859-1",
            "iso8859-15")
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "ascii": "cp1252", "iso8859-1": "cp1252"}


def _codec_name(label: str) -> str | None:
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return _SUPERSETS.get(name, name)


def _declared_charset(data: bytes) -> str | None:
    head = data[:4096]
    match = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
    if not match:
        return None
    name = _codec_name(match.group(1).decode("ascii"))
    return None if name is None or name.startswith(("utf-16", "utf-32")) else name


def _best_legacy_decoding(data: bytes) -> tuple[str, str, float] | None:
    """Decode with the candidate encoding whose text looks least like mojibake.

    charset-normalizer ranks candidates well on long texts but guesses wrong on short ones (German
    as cp775, Portuguese as cp1250, KOI8-R as Shift-JIS), so its ranking only breaks ties between
    decodings that look equally plausible. Candidates are judged on the first 20 kB; only the
    winner decodes the whole file (strictly: one that fails there gives way to the next).
    """
    from charset_normalizer import from_bytes  # imported only for non-UTF-8 input

    ranked: list[str] = []
    declared = _declared_charset(data)
    if declared:
        ranked.append(declared)  # an HTML page's own charset comes first, but must still look right
    ranked.extend(match.encoding for match in from_bytes(data))
    ranked.extend(_FALLBACKS)
    sample = data[:20000]
    scored: list[tuple[int, int, str, str]] = []  # penalty, rank, name, decoded sample
    seen: set[str] = set()
    for rank, label in enumerate(ranked):
        name = _codec_name(label)
        if name is None or name in seen or name.startswith(("utf-16", "utf-32", "utf-8")):
            continue
        seen.add(name)
        try:  # incremental: a multi-byte character cut at the end of the sample is not an error
            head = codecs.getincrementaldecoder(name)().decode(sample, final=len(sample) == len(data))
        except (UnicodeDecodeError, LookupError):
            continue
        scored.append((suspicion(head), rank, name, head))
    scored.sort()
    for penalty, _, _name, head in scored:
        # The same text under several names: report the most common encoding.
        same = sorted((n for p, _, n, h in scored if p == penalty and h == head),
                      key=lambda n: _POPULAR.index(n) if n in _POPULAR else len(_POPULAR))
        for candidate in same:
            try:
                return data.decode(candidate), candidate, penalty / max(len(head), 1)
            except UnicodeDecodeError:
                continue
    return None


# Letters beyond ASCII that each language (or group of close ones) writes with.
_ALPHABETS = tuple(frozenset(letters) for letters in (
    "áâãàçéêíóôõúü", "áéíóúñü", "àçéèíïóòúü", "àâæçéèêëîïôœùûüÿ", "àèéìíîòóùú", "äöüß", "éëïöüèáó",
    "åäöæøéü", "áðéíóúýþæö", "äöõüšž", "ąćęłńóśźż", "áčďéěíňóřšťúůýž", "áäčďéíĺľňóôŕšťúýž",
    "áéíóöőúüű", "ăâîșțşţ", "čćđšž", "çğıöşüâîû", "ąčęėįšųūž", "āčēģīķļņšūž", "çë", "ĉĝĥĵŝŭ",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя", "абвгдежзийклмнопрстуфхцчшщьюяєіїґ",
    "абвгдеёжзйклмнопрстуфхцчшыьэюяіў", "абвгдежзийклмнопрстуфхцчшщъьюя",
    "абвгдђежзијклљмнњопрстћуфхцчџш", "абвгдѓежзѕијклљмнњопрстќуфхцчџш",
    "αβγδεζηθικλμνξοπρστυφχψωςάέήίόύώϊϋΐΰ",
))
_NEUTRAL_SYMBOLS = frozenset("€£¥©®°±×÷§¶·•…–—‘’‚“”„«»‹›†‡‰′″™№¢¿¡ªº")
_WORD = re.compile(r"[^\W\d_]+")
_SCRIPT_GROUPS = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "KATAKANA-HIRAGANA": "CJK", "HANGUL": "CJK",
                  "BOPOMOFO": "CJK", "CJK": "CJK", "FULLWIDTH": "CJK", "IDEOGRAPHIC": "CJK"}


@lru_cache(maxsize=4096)
def _char_info(ch: str) -> tuple[str, str]:
    category = unicodedata.category(ch)
    script = unicodedata.name(ch, "").split(" ")[0]
    return category, _SCRIPT_GROUPS.get(script, script)


def suspicion(text: str) -> int:
    """How implausible a decoding looks: 0 for clean text, more for each mojibake sign."""
    penalty = 0
    letters: Counter[str] = Counter()  # non-ASCII Latin, and Cyrillic/Greek letters, lower-cased
    scripts: Counter[str] = Counter()
    previous = " "
    for ch in text:
        if ch < "\x80":
            if ch < " " and ch not in "\t\n\r\x0c":
                penalty += 3
            previous = ch
            continue
        category, script = _char_info(ch)
        if category[0] == "L":
            scripts[script] += 1
            if script in ("LATIN", "CYRILLIC", "GREEK"):
                letters[ch.lower()] += 1
            elif script == "HALFWIDTH":
                penalty += 1  # half-width katakana: the classic sign of Shift-JIS misreading
        elif category in ("Cc", "Cn", "Co", "Cs") or ch == "\ufffd":
            penalty += 3
        elif category == "Cf" or (category[0] in "SN" and ch not in _NEUTRAL_SYMBOLS):
            penalty += 1
        elif category == "Mn" and not previous.isalpha():
            penalty += 1
        previous = ch
    if letters:  # letters no single language (or close group) writes together
        total = sum(letters.values())
        penalty += total - max(sum(n for ch, n in letters.items() if ch in alphabet) for alphabet in _ALPHABETS)
    if len(scripts) > 1:  # letters of scripts beyond Latin and the main other one
        main = [s for s, _ in scripts.most_common() if s != "LATIN"][:1]
        penalty += sum(n for s, n in scripts.items() if s != "LATIN" and s not in main)
    for word in _WORD.findall(text):
        if word.isascii() or len(word) < 2:
            continue
        word_scripts = {_char_info(ch)[1] for ch in word} - {"CJK"}
        if len(word_scripts) > 1:
            penalty += 2
        if any(a.islower() and b.isupper() for a, b in zip(word, word[1:])):
            penalty += 1  # "tЕПЮКЭ", "MoĹźe": case flips inside a word
        latin = [ch for ch in word if _char_info(ch)[1] == "LATIN"]
        if len(latin) >= 3 and sum(ch > "\x7f" for ch in latin) * 2 > len(latin):
            penalty += 1  # "Ðóññêèé": Latin words made mostly of accented letters
    return penalty


def clean_text(text: str) -> str:
    """NFC, no terminal escapes or control characters, tidy whitespace; keeps paragraphs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ANSI.sub("", text)
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


def _looks_like_html(text: str) -> bool:
    head = text[:5000].lower()
    return head.count("</p>") + head.count("<div") + head.count("<br") >= 3


_DROP = {"script", "style", "noscript", "nav", "header", "footer", "aside", "svg", "iframe", "template",
         "button", "select", "textarea", "head", "dialog", "object", "canvas", "math"}
_RAW_DROP = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object"}  # fallback mode
_BLOCK = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section",
          "article", "blockquote", "pre", "hr", "dd", "dt", "dl", "main", "figure", "figcaption", "header",
          "footer", "address", "details", "summary", "caption", "form", "fieldset", "body"}
_CELLS = {"td", "th"}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr",
         "param"}
# Never dropped by a marker: a consent modal sets aria-hidden on <main>, anti-flicker snippets hide
# <body> until scripts run, and <body class="modal-open"> is just page state.
_CONTENT = {"html", "body", "main", "article"}
# Words in id/class that mark boilerplate. Not "banner", "paywall" or "subscription": hero banners
# hold headlines and paywall wrappers hold the article itself.
_BOILERPLATE_WORDS = {"cookie", "cookies", "consent", "gdpr", "newsletter", "subscribe", "popup", "modal", "advert",
                      "advertisement", "ads", "ad", "sponsored", "promo", "share", "sharing", "social", "related",
                      "breadcrumb", "breadcrumbs", "sidebar", "outbrain", "taboola", "skip", "toolbar", "menu",
                      "navbar", "nav", "navigation", "footer", "masthead"}
_LANDMARKS = {"navigation", "banner", "contentinfo", "complementary", "search", "dialog", "alertdialog", "menu",
              "menubar", "toolbar", "tablist"}
_MARKER_SPLIT = re.compile(r"[\s\-_:./]+|(?<=[a-z])(?=[A-Z])")
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


def _is_boilerplate(tag: str, attrs: dict[str, str]) -> bool:
    if tag in _CONTENT:
        return False
    if attrs.get("hidden") is not None or attrs.get("aria-hidden", "").lower() == "true":
        return True
    if re.search(r"display\s*:\s*none|visibility\s*:\s*hidden", attrs.get("style", ""), re.I):
        return True
    if attrs.get("role", "").lower() in _LANDMARKS:
        return True
    # Class tokens like "has-sidebar" or "no-ads" describe the content, they are not boilerplate.
    tokens = [t for k in ("id", "class", "aria-label") for t in attrs.get(k, "").split()
              if not t.lower().startswith(("has-", "no-", "with-", "without-"))]
    words = {w.lower() for w in _MARKER_SPLIT.split(" ".join([*tokens, tag])) if w}
    return bool(words & _BOILERPLATE_WORDS) or any(w.startswith("cookie") for w in words)


class _TextExtractor(HTMLParser):
    def __init__(self, *, lenient: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._lenient = lenient
        self._skip_stack: list[str] = []
        self._open: list[str] = []  # content elements we are inside (for <header> in <article>)
        self._pre = 0

    def _drops(self, tag: str, attrs: dict[str, str]) -> bool:
        if self._lenient:
            return tag in _RAW_DROP
        if tag in ("header", "footer") and ("article" in self._open or "main" in self._open):
            return _is_boilerplate(tag, attrs)  # an article's own header holds its headline
        return tag in _DROP or _is_boilerplate(tag, attrs)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag in _BLOCK and not self._skip_stack:
                self.parts.append("\n")
            return
        if self._skip_stack or self._drops(tag, {k: v or "" for k, v in attrs}):
            self._skip_stack.append(tag)
            return
        if tag in ("article", "main"):
            self._open.append(tag)
        if tag == "pre":
            self._pre += 1
        if tag in _BLOCK:
            self.parts.append("\n")
        elif tag in _CELLS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # Browsers would leave <div/> open; closing it here keeps a dropped <div class="ad"/>
        # from swallowing the rest of the page.
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip_stack:
            if tag in self._skip_stack:
                while self._skip_stack and self._skip_stack.pop() != tag:
                    pass
            return
        if tag in ("article", "main") and tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag)]  # the innermost one
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag in _BLOCK:
            self.parts.append("\n")
        elif tag in _CELLS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_stack:
            # Outside <pre>, HTML source line breaks are just spaces.
            self.parts.append(data if self._pre else _HTML_SPACE.sub(" ", data))


def html_to_text(html: str) -> str:
    """Visible article text of an HTML page: scripts, styles, navigation and banners dropped."""
    text = _extract(html, lenient=False)
    if not clean_text(text):  # the heuristics dropped everything: keep all visible text instead
        text = _extract(html, lenient=True)
    return text


def _extract(html: str, *, lenient: bool) -> str:
    parser = _TextExtractor(lenient=lenient)
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    return "\n".join(lines)
