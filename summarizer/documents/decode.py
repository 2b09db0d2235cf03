"""Bytes to str: BOMs, strict UTF-8, a declared HTML/XML charset, or the least mojibake-looking legacy encoding."""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections import Counter
from functools import lru_cache

from .clean import ANSI

BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8", "utf-8-bom"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16-be"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]{2,40})""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,100}?encoding\s*=\s*["']([A-Za-z0-9_.:\-]{2,40})""", re.I)


_LAYOUT = dict.fromkeys(map(ord, "\t\n\r\x0b\x0c"))  # removed before the printable test


def junk_share(text: str) -> float:
    """Share of characters no text contains: what binary data turns into when decoded anyway."""
    sample = ANSI.sub("", text[:20000])
    if not sample:
        return 0.0
    if "\ufffd" not in sample and sample.translate(_LAYOUT).isprintable():
        return 0.0  # C-speed fast path: nothing but printable characters and layout whitespace
    junk = sum(1 for ch in sample if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\n\r\x0b\x0c")
               or 0x7f <= ord(ch) <= 0x9f or unicodedata.category(ch) in ("Co", "Cn", "Cs"))
    return junk / len(sample)


def decode(data: bytes) -> tuple[str, str]:
    """Decode bytes by BOM, strict UTF-8, declared HTML/XML charset or detection; return (text, encoding)."""
    text, encoding, _ = decode_scored(data)
    return text, encoding


def decode_scored(data: bytes) -> tuple[str, str, float]:
    """(text, encoding, how suspicious a legacy decoding looks per character: binary data scores high)."""
    for bom, codec, name in BOMS:
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


def text_codec(label: str) -> str | None:
    """Python's name for a declared charset when it is a text encoding (not zlib, rot13, base64...)."""
    try:
        name = codecs.lookup(label).name
        # Text encodings decode any bytes to str (with "replace"); bytes-to-bytes codecs do not.
        return name if isinstance(codecs.decode(b"a\xff", name, "replace"), str) else None
    except Exception:  # LookupError, a codec that always raises ("undefined"), binascii.Error...
        return None


def _codec_name(label: str) -> str | None:
    name = text_codec(label)
    return None if name is None else _SUPERSETS.get(name, name)


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
        except (UnicodeError, LookupError):
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
