"""Anchoring: where a verbatim value stands in the source text, as offsets into that text. Pure.

`anchor(value, text)` returns the first occurrence found by the strictest tier that finds one, as
`Anchor(start, end, match, score, source, count, accents_ignored)` with `text[start:end] == source`
(Python str offsets into the ORIGINAL text), or None: the text does not support the value.

1. exact: `text.find(value)`.
2. normalized (score 1.0): both sides folded: NFKC, case-folded, typographic quotes and dashes as
   ASCII, every decimal digit as ASCII (٢٠٢٣ -> 2023), format characters and tatweel dropped,
   whitespace runs as one space; then the same without any whitespace (CJK, Thai and Lao do not
   space words, and models add or drop spaces: "CATL与" / "CATL 与"); then also without the accents
   of Latin, Greek, Cyrillic, Arabic and Hebrew letters (`accents_ignored=True`; Thai, Lao and Indic
   vowel signs are letters and always count). The folded text keeps a map back to the original:
   characters that fold one for one form linear pieces; every other segment (a character with the
   marks or jamo that compose with it) is one piece, so changed lengths ('ﬁ'->'fi', '①'->'1',
   'ẞ'->'ss', jamo->syllable, 'ｶﾞ'->'ガ') map back to whole original characters. The whitespace-free
   and accent-free tiers are views of the folded text that only drop or replace characters one for
   one, mapped back with a sorted list of dropped positions.
3. fuzzy (score = Indel similarity 2*LCS/(len(value)+len(window)) of the folded strings):
   RapidFuzz's `partial_ratio_alignment` (bit-parallel LCS, O(len(text) * ceil(len(value)/64)))
   finds the best window of the folded text; its ends are moved by up to a few characters, and out
   to word boundaries in scripts that space words, to maximise the score. Accepted only when the
   score is at least `FUZZY_MIN` (0.85), the value has `FUZZY_MIN_CHARS` (5) to `FUZZY_MAX_CHARS`
   letters, every digit agrees, every word of three or more letters on either side has a
   counterpart on the other that differs from it only in its last letters (about a quarter of the
   word, accents aside: inflection, not 'Henan' / 'Hunan'), and in scripts without spaces the value
   has no character the evidence lacks: inflection, typos and omissions pass ("Правительство" /
   "правительством", 0.98; "宁德时代新能源科技有限公司" for "...科技股份有限公司", 0.93), another word or
   character never does ("Ministry of Energy of Laos" / "Ministry of Energy and Mines", "广东" / "广西").

Evidence never starts or ends inside a letter: not between a consonant and its vowel sign or a
letter and its combining accent, never on half of what one character folds to ('Gros' in 'Große').
A 50 KB text is folded once (about 10 ms, cached for the last few texts); each value then costs
well under a millisecond, a fuzzy search about one millisecond.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal

from rapidfuzz.distance import Indel
from rapidfuzz.fuzz import partial_ratio_alignment

from summarizer.traits import strings_at

FUZZY_MIN = 0.85  # Indel similarity of value and evidence; inflected names score ~0.9-0.98
FUZZY_MIN_CHARS = 5  # shorter values (codes, 4-character names, years) must match exactly or normalized
FUZZY_MAX_CHARS = 1000  # a longer "verbatim" value that is not there as written is not there at all
WORD_MIN = 0.6  # a chunk of an unspaced script must have a counterpart at least this similar

MatchKind = Literal["exact", "normalized", "fuzzy"]

# Typographic punctuation models retype as ASCII (and the other way round); tatweel is decoration.
_PUNCTUATION = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2033": '"', "\u2039": '"', "\u203a": '"', "\u300c": '"', "\u300d": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u0640": None,
})
_FORMAT = re.compile(r"[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]")
_SPACES = re.compile(r"\s+")
# Marks that are accents rather than letters: Latin/Greek/Cyrillic combining blocks, Arabic harakat,
# Hebrew points. Thai, Lao and Indic vowel signs are letters and are never ignored.
_ACCENTS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
                      "\u064b-\u065f\u0670\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7]")
# Characters that compose with the character before them (the second half of a canonical pair,
# Hangul vowel and final jamo included); tests check this class against Python's Unicode data.
_COMPOSES = re.compile(
    "[\u0300-\u0304\u0306-\u030c\u030f\u0311\u0313\u0314\u031b\u0323-\u0328\u032d\u032e\u0330\u0331"
    "\u0338\u0342\u0345\u05b4\u05b7-\u05b9\u05bc\u05bf\u05c1\u05c2\u0653-\u0655\u093c\u09bc\u09be"
    "\u09d7\u0a3c\u0b3c\u0b3e\u0b56\u0b57\u0bbe\u0bd7\u0c56\u0cc2\u0cd5\u0cd6\u0d3e\u0d57\u0dca"
    "\u0dcf\u0ddf\u0f72\u0f74\u0f80\u0fb5\u0fb7\u102e\u1161-\u1175\u11a8-\u11c2\u1b35\u3099\u309a"
    "\U000110ba\U00011127\U0001133e\U00011357\U000114b0\U000114ba\U000114bd\U000115af\U00011930"
    "\U0001d165\U0001d16e-\U0001d172]")
# Scripts that do not space words: a fuzzy window there is not widened to a word boundary.
_UNSPACED = re.compile("[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u9fff\uac00-\ud7af"
                       "\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003ffff]")


@dataclass(frozen=True)
class Anchor:
    """Where a value stands in the source: `text[start:end] == source`."""

    start: int
    end: int
    match: MatchKind
    score: float  # 1.0 for exact and normalized; the Indel similarity for fuzzy
    source: str
    count: int = 1  # occurrences found by the same tier (fuzzy: 1)
    accents_ignored: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, stored as a field's evidence."""
        return asdict(self)


@lru_cache(maxsize=4096)
def _joins(ch: str) -> bool:
    """Whether `ch` can combine with the character before it (so no match may start or end there)."""
    if unicodedata.category(ch)[0] == "M" or _COMPOSES.match(ch):  # Thai and Lao vowel signs: class 0
        return True
    compat = unicodedata.normalize("NFKC", ch)  # halfwidth 'ﾞ' becomes the combining U+3099
    return bool(compat) and (unicodedata.combining(compat[0]) > 0 or bool(_COMPOSES.match(compat[0])))


def _fold_chars(chars: str) -> str:
    """The folded form of `chars`, whitespace not yet collapsed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", chars).casefold())
    folded = _FORMAT.sub("", folded.translate(_PUNCTUATION))
    if any(c.isdecimal() for c in folded):  # Arabic-Indic, Lao, full-width... digits as ASCII
        folded = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in folded)
    return folded


_fold_segment = lru_cache(maxsize=65536)(_fold_chars)  # a text's characters and segments repeat


@dataclass(frozen=True)
class _Folded:
    """A folded text and the map back: piece i covers folded[pos[i]:pos[i+1]]."""

    text: str
    pos: list[int]  # folded offset where each piece starts
    orig: list[int]  # original offset where each piece starts
    orig_end: list[int]  # original end of a segment piece; -1 for a linear (one to one) piece

    def _piece(self, at: int) -> int:
        return bisect_right(self.pos, at) - 1

    def aligned(self, start: int, end: int) -> bool:
        """Whether [start, end) begins and ends on whole pieces (never half of 'ß' -> 'ss')."""
        i, j = self._piece(start), self._piece(end - 1)
        if self.orig_end[i] >= 0 and self.pos[i] != start:
            return False
        following = self.pos[j + 1] if j + 1 < len(self.pos) else len(self.text)
        return self.orig_end[j] < 0 or following == end

    def original(self, start: int, end: int) -> tuple[int, int]:
        """Original offsets of folded [start, end), widened to whole segments."""
        i, j = self._piece(start), self._piece(end - 1)
        first = self.orig[i] + (start - self.pos[i]) if self.orig_end[i] < 0 else self.orig[i]
        last = self.orig[j] + (end - self.pos[j]) if self.orig_end[j] < 0 else self.orig_end[j]
        return first, last


def _char_class(chars: Iterable[str]) -> str:
    return "[" + "".join(re.escape(c) for c in sorted(chars)) + "]"


def _replace(text: str, table: dict[int, str]) -> str:
    """`text.translate(table)`, faster when few characters change (translate looks up every one)."""
    if not table:
        return text
    return re.sub(_char_class(map(chr, table)), lambda m: table[ord(m.group())], text)


@lru_cache(maxsize=4)
def _fold(text: str) -> _Folded:
    """Fold `text`, whitespace runs as one space, keeping the map back (cached per text)."""
    table: dict[int, str] = {}
    special: set[str] = set()  # characters that start a segment of their own
    joining: set[str] = set()  # join the segment before them: composing or changed by folding
    marks: set[str] = set()  # combining marks that fold to themselves and compose with nothing
    blank: set[str] = set()  # fold to whitespace or to nothing
    chars = set(text)
    for ch in chars:
        folded = _fold_segment(ch)
        if _joins(ch):
            # Thai, Lao, Indic vowel signs stay in linear pieces unless next to another mark (reordering).
            stays = folded == ch and not _COMPOSES.match(ch)
            (marks if stays else joining).add(ch)
        elif folded != " " and (len(folded) != 1 or folded.isspace()):
            special.add(ch)
        elif folded != ch:  # one for one, whitespace between two letters included ("\n" -> " ")
            table[ord(ch)] = folded
        if not folded.strip():
            blank.add(ch)
    # Runs of characters that do not fold one for one, found by character classes (C speed); a lone
    # whitespace between letters, or a lone mark that folds to itself, stays in its linear piece.
    starts = special | joining | (blank - {" "})
    reordered = {c for c in marks | joining if unicodedata.combining(c)}  # NFKC sorts marks in a row
    patterns = [_char_class(starts) + "+"] if starts else []
    patterns += [_char_class(reordered) + "{2,}"] if reordered else []
    patterns += ["  +"] if " " in blank else []
    found = sorted(m.span() for pattern in patterns for m in re.finditer(pattern, text))
    joiners = joining | marks
    spans: list[list[int]] = []
    for a, b in found:
        if b - a == 1 and text[a] not in special and text[a] not in joining and not (
                text[a - 1:a] in blank or text[b:b + 1] in blank):
            continue  # one whitespace between letters: one for one
        while a > 0 and (text[a] in joiners or text[a - 1] in blank):  # the base a mark belongs to
            a -= 1
        while b < len(text) and text[b] in blank:
            b += 1
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(b, spans[-1][1])
        else:
            spans.append([a, b])
    out: list[str] = []
    pos: list[int] = []
    orig: list[int] = []
    orig_end: list[int] = []
    size, last, done = 0, " ", 0  # `last` starts as a space: leading whitespace is dropped

    def emit(piece: str, start: int, end: int) -> None:
        nonlocal size, last
        pos.append(size), orig.append(start), orig_end.append(end), out.append(piece)
        size += len(piece)
        last = piece[-1]

    # One for one: positions in `mapped` are positions in `text`. Mostly a change of case: lower() first.
    lowered = {c: c.lower() for c in chars}
    if all(len(low) == 1 for low in lowered.values()) and all(
            table.get(ord(c), c) == table.get(ord(low), _fold_segment(low))
            for c, low in lowered.items() if c not in special and c not in joining):
        rest = {c for c in lowered.values() if _fold_segment(c) != c and len(_fold_segment(c)) == 1}
        mapped = _replace(text.lower(), {ord(c): _fold_segment(c) for c in rest})
    else:
        mapped = _replace(text, table)
    for a, b in spans:
        if a > done:
            emit(mapped[done:a], done, -1)
        i = a
        while i < b:
            j = i + 1
            while j < b and text[j] in joiners:
                j += 1
            piece = _SPACES.sub(" ", _fold_segment(text[i:j]))
            if piece[:1] == " " and last == " ":
                piece = piece[1:]
            if piece:
                emit(piece, i, j)
            i = j
        done = b
    if done < len(text):
        emit(mapped[done:], done, -1)
    return _Folded("".join(out), pos, orig, orig_end)


def _needle(value: str) -> str:
    # A value folds in one piece: the same result as the pieces of a text, without the map.
    return _SPACES.sub(" ", _fold_chars(value)).strip()


def fold(text: str) -> str:
    """The comparison form of `text`: NFKC, case-folded, quotes/dashes/digits unified, spaces collapsed."""
    return _needle(text)


@lru_cache(maxsize=65536)
def _view_char(ch: str, accents_ignored: bool) -> str:
    """What one folded character becomes in a view: no whitespace; accents gone if ignored."""
    if ch.isspace():
        return ""
    if not accents_ignored:
        return ch
    bare = unicodedata.normalize("NFC", _ACCENTS.sub("", unicodedata.normalize("NFD", ch)))
    return bare if len(bare) <= 1 else ch


def _view_table(chars: Iterable[str], accents_ignored: bool) -> dict[int, str]:
    return {ord(c): v for c in chars if (v := _view_char(c, accents_ignored)) != c}


@dataclass(frozen=True)
class _View:
    """The folded text without whitespace (and accents): characters only dropped or replaced one for one."""

    text: str
    shifted: list[int]  # for the i-th dropped character of the folded text: its offset minus i
    dropped: frozenset[str]

    def folded_offset(self, at: int) -> int:
        """Offset in the folded text of the view's character at `at`."""
        return at + bisect_right(self.shifted, at)


@lru_cache(maxsize=8)
def _view(text: str, accents_ignored: bool) -> _View:
    """A view of `text`'s folded form, derived from it by C-speed passes (cached per text)."""
    folded = _fold(text).text
    table = _view_table(set(folded), accents_ignored)
    dropped = frozenset(chr(k) for k, v in table.items() if v == "")
    if not dropped:
        return _View(_replace(folded, table), [], dropped)
    gone = re.compile(_char_class(dropped))
    where = [m.start() for m in gone.finditer(folded)]
    kept = gone.sub("", _replace(folded, {k: v for k, v in table.items() if v}))
    return _View(kept, [at - i for i, at in enumerate(where)], dropped)


def _cuts(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] begins or ends inside a combining sequence ("e" of "e\u0301")."""
    return _joins(text[start]) or (end < len(text) and _joins(text[end]))


def _exact(value: str, text: str) -> Anchor | None:
    start = text.find(value)
    while start >= 0:
        end = start + len(value)
        if not _cuts(text, start, end):
            return Anchor(start, end, "exact", 1.0, value, text.count(value))
        start = text.find(value, start + 1)
    return None


def _normalized(value: str, text: str, view: int) -> Anchor | None:
    """Match in the folded text (view 0), without whitespace (1), or with accents ignored too (2)."""
    needle = _needle(value)
    folded = _fold(text)
    hay = folded.text
    if view:
        shown = _view(text, view == 2)
        needle = needle.translate(_view_table(set(needle), view == 2))
        hay = shown.text
    if not needle:
        return None
    at = hay.find(needle)
    while at >= 0:
        start, end = at, at + len(needle)
        if view:
            start, end = shown.folded_offset(start), shown.folded_offset(end - 1) + 1
            while view == 2 and end < len(folded.text) and folded.text[end] in shown.dropped - {" "}:
                end += 1  # the ignored accents after the last letter are part of the evidence
        if folded.aligned(start, end):
            start, end = folded.original(start, end)
            if not _cuts(text, start, end):
                return Anchor(start, end, "normalized", 1.0, text[start:end], hay.count(needle), view == 2)
        at = hay.find(needle, at + 1)
    return None


def _words(text: str) -> list[str]:
    # Words of three or more letters, punctuation trimmed (not \w: it splits Thai and Lao at vowel signs).
    trimmed = (w.strip("\"'()[]{}.,;:!?-/«»") for w in text.split())
    return [w for w in trimmed if len(w) >= 3]


def _same_word(a: str, b: str) -> bool:
    """Whether two words are one word, inflected: they differ only in their last letters.

    'правительство' / 'правительством', 'Technology' / 'Technologies', 'Kraków' / 'Krakowie' are;
    'Henan' / 'Hunan' is not. Chunks of unspaced scripts are compared as wholes.
    """
    if _UNSPACED.search(a) or _UNSPACED.search(b):
        return Indel.normalized_similarity(a, b) >= WORD_MIN
    a, b = (unicodedata.normalize("NFC", _ACCENTS.sub("", unicodedata.normalize("NFD", w))) for w in (a, b))
    shorter = min(len(a), len(b))
    return len(os.path.commonprefix([a, b])) >= shorter - max(1, shorter // 4)


def _counterparts(ours: list[str], theirs: list[str]) -> bool:
    return all(any(_same_word(w, t) for t in theirs) for w in ours)


def _adds(needle: str, window: str) -> bool:
    """Whether the value has a character of an unspaced script that the evidence lacks.

    Without spaces there are no words to compare: one more or another ideograph or Lao consonant
    is another name ('广东' / '广西', '宁德时代新能源汽车'). Evidence may have more ('股份', a tone mark
    the model left out): the value then says less than the text, nothing it does not say.
    """
    return any(op.tag == "delete" and _UNSPACED.match(needle[op.src_pos]) for op in Indel.editops(needle, window))


def _spaced(ch: str) -> bool:
    # A letter, digit or mark of a script that spaces its words.
    return (ch.isalnum() or unicodedata.category(ch)[0] == "M") and not _UNSPACED.match(ch)


def _widen_start(text: str, start: int, limit: int) -> int:
    """`start` moved back to the beginning of its word where the script spaces words; no spaces kept."""
    low = max(0, start - limit)
    while start > low and _spaced(text[start - 1]) and _spaced(text[start]):
        start -= 1
    while start < len(text) and text[start] == " ":
        start += 1
    return start


def _widen_end(text: str, end: int, limit: int) -> int:
    """`end` moved on to the end of its word where the script spaces words; no spaces kept."""
    high = min(len(text), end + limit)
    while end < high and _spaced(text[end - 1]) and _spaced(text[end]):
        end += 1
    while end > 0 and text[end - 1] == " ":
        end -= 1
    return end


def _fuzzy(value: str, text: str, min_score: float) -> Anchor | None:
    needle = _needle(value)
    if not FUZZY_MIN_CHARS <= sum(not c.isspace() for c in needle) <= FUZZY_MAX_CHARS:
        return None
    folded = _fold(text)
    hay = folded.text
    if not hay.strip():
        return None
    if len(needle) >= len(hay):
        rough = (0, len(hay))
    else:
        found = partial_ratio_alignment(needle, hay, score_cutoff=max(0.0, min_score * 100 - 10))
        if found is None:
            return None
        rough = (found.dest_start, found.dest_end)
    slack = min(12, math.ceil(len(needle) * (1 - min_score)) + 2)  # (2*slack+1)^2 windows at most
    first, last = max(0, rough[0] - slack), min(len(hay), rough[1] + slack)
    starts = sorted({_widen_start(hay, s, slack) for s in range(first, min(len(hay), rough[0] + slack + 1))})
    ends = sorted({_widen_end(hay, e, slack) for e in range(max(1, rough[1] - slack), last + 1)})
    best: tuple[float, int, int] | None = None
    for s in starts:
        for e in ends:
            if e > s:
                score = Indel.normalized_similarity(needle, hay[s:e])
                if best is None or score > best[0]:  # ties keep the earliest start, then the shortest
                    best = (score, s, e)
    if best is None or best[0] < min_score:
        return None
    score, s, e = best
    window = hay[s:e]
    if [c for c in needle if c.isdecimal()] != [c for c in window if c.isdecimal()]:
        return None  # "2023" is never evidence for "2024", nor "15,000" for "16,000"
    if not (_counterparts(_words(needle), _words(window)) and _counterparts(_words(window), _words(needle))):
        return None  # a word of one side has nothing like it on the other: not the same name
    if _adds(needle, window):
        return None
    start, end = folded.original(s, e)
    while start > 0 and _joins(text[start]):  # whole letters: a Thai or Lao vowel sign with its consonant
        start -= 1
    while end < len(text) and _joins(text[end]):
        end += 1
    return Anchor(start, end, "fuzzy", round(score, 3), text[start:end])


def anchor(value: str, text: str, min_score: float = FUZZY_MIN) -> Anchor | None:
    """Where `value` stands in `text` (first occurrence, strictest tier first); None: not supported.

    `min_score` is the fuzzy tier's threshold (Indel similarity of value and evidence, 0..1).
    """
    value = value.strip()
    if not text or not _needle(value):  # only whitespace or invisible characters: supports nothing
        return None
    return (_exact(value, text) or _normalized(value, text, 0) or _normalized(value, text, 1)
            or _normalized(value, text, 2) or _fuzzy(value, text, min_score))


def anchor_fields(result: Mapping[str, Any], verbatim_paths: Iterable[str], text: str) -> list[dict[str, Any]]:
    """Evidence for every verbatim string in `result`: {"path", "value", "anchor": dict | None}."""
    found: list[dict[str, Any]] = []
    for path in verbatim_paths:
        for where, value in strings_at(result, path):  # a field that is a whole list: each of its strings
            hit = anchor(value, text)
            found.append({"path": where, "value": value, "anchor": hit.as_dict() if hit else None})
    return found


def highlight_spans(text: str, anchors: Iterable[Anchor | Mapping[str, Any] | None]) -> list[tuple[int, int, bool]]:
    """`text` cut into consecutive (start, end, highlighted) segments, overlapping anchors merged.

    Anchors may come back from output files: anything malformed, outside the text, or whose
    `source` is not what the text has there (another version of the document) is ignored.
    """
    spans: list[tuple[int, int]] = []
    for item in anchors:
        if isinstance(item, Anchor):
            start, end, source = item.start, item.end, item.source
        elif isinstance(item, Mapping):
            start, end, source = item.get("start"), item.get("end"), item.get("source")
        else:
            continue
        if type(start) is int and type(end) is int and 0 <= start < end <= len(text):
            if source is None or source == text[start:end]:
                spans.append((start, end))
    segments: list[tuple[int, int, bool]] = []
    done = 0
    for start, end in sorted(spans):
        if start <= done and segments and segments[-1][2]:
            if end > done:
                segments[-1] = (segments[-1][0], end, True)
                done = end
            continue
        if start > done:
            segments.append((done, start, False))
        segments.append((start, end, True))
        done = end
    if done < len(text):
        segments.append((done, len(text), False))
    return segments
