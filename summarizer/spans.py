"""Candidate source spans: the strings a verbatim field may take when decoding is constrained. Pure.

A grammar that offers only spans of the document makes an invented verbatim value impossible
rather than merely detectable. Names and figures are what verbatim fields hold, so the candidates
are runs of capitalized words (names, in any cased script) and the words around each number
(dates, amounts), plus runs of an uncased script (CJK, Thai, Lao...) between punctuation: each
an exact substring of the text, in order of first appearance, at most `limit` of them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

MAX_RUN_WORDS = 6  # a name longer than this is rare; every shorter run inside a longer one counts too
MAX_SPAN_CHARS = 100  # the tiny model's cap on verbatim fields
DEFAULT_LIMIT = 300  # enough for a long article's names and figures, small enough for a grammar

_WORD = re.compile(r"\S+")
# Punctuation a word may carry at its edges that is not part of a name or figure.
_EDGE = "\"'«»„“”‘’()[]{}<>,;:!?。，、；：！？（）「」『』-"
_OPENERS = "(«[{„“‘「『（"
_CLOSERS = ").;:!?»]}”’」』）。；：！？"
_UNCASED_RUN = re.compile(r"[^\s\d\W]{2,}")
# Figures in scripts without spaces: "2023年3月1日", "700兆瓦时" (digits with their CJK/Thai/Lao units).
_UNCASED_FIGURE = re.compile(r"(?:\d[\d.,]*[\u0e00-\u0eff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]{0,3}){1,4}")


def candidate_spans(text: str, limit: int = DEFAULT_LIMIT) -> tuple[str, ...]:
    """Names and figures of `text` as exact substrings, first appearance first, at most `limit`."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text[:200_000])]
    found: dict[str, None] = {}

    def add(start: int, end: int) -> None:
        while start < end and text[start] in _EDGE:
            start += 1
        while end > start and (text[end - 1] in _EDGE or (text[end - 1] == "." and not _abbreviation(text, start, end))):
            end -= 1
        span = text[start:end]
        if span and len(span) <= MAX_SPAN_CHARS and '"' not in span and "\\" not in span and not _control(span):
            found.setdefault(span)

    run: list[tuple[int, int]] = []
    for index, (start, end) in enumerate(words):
        raw = text[start:end]
        word = raw.strip(_EDGE)
        if raw[:1] in _OPENERS:  # "(CATL" starts a name of its own
            _add_runs(run, add, text)
            run = []
        if run and _particle(word) and index + 1 < len(words) and _capitalized(text, words[index + 1]):
            run.append((start, end))  # "Governo Municipal de Lanzhou", "University of Hong Kong"
        elif word[:1].isupper():
            run.append((start, end))
            if raw.rstrip("-")[-1:] in _CLOSERS and not _abbreviation(text, start, end):
                _add_runs(run, add, text)  # "(CATL)." or "Lanzhou." ends the name
                run = []
        else:
            _add_runs(run, add, text)
            run = []
        if any(ch.isdigit() for ch in word):
            for before, after in ((0, 0), (1, 0), (0, 1), (1, 1), (0, 2)):
                first, last = index - before, index + after
                if first >= 0 and last < len(words):
                    add(words[first][0], words[last][1])
        if len(found) >= limit * 2:
            break
    _add_runs(run, add, text)
    for match in _UNCASED_RUN.finditer(text[:200_000]):
        if _uncased(match.group()):
            add(match.start(), match.end())
    for match in _UNCASED_FIGURE.finditer(text[:200_000]):
        if not match.group().isdigit() or len(match.group()) > 1:
            add(match.start(), match.end())
    return tuple(list(found)[:limit])


def _add_runs(run: list[tuple[int, int]], add: Callable[[int, int], None], text: str) -> None:
    """Every run of up to MAX_RUN_WORDS words inside `run` that neither starts nor ends with a particle."""
    inner = [not _particle(text[start:end].strip(_EDGE)) for start, end in run]
    for i in range(len(run)):
        for j in range(i, min(len(run), i + MAX_RUN_WORDS)):
            if inner[i] and inner[j]:
                add(run[i][0], run[j][1])


def _particle(word: str) -> bool:
    # A short lowercase word inside a name: de, da, of, und, и...
    return 1 <= len(word) <= 3 and word.isalpha() and word.islower()


def _capitalized(text: str, word: tuple[int, int]) -> bool:
    return text[word[0]:word[1]].strip(_EDGE)[:1].isupper()


def _abbreviation(text: str, start: int, end: int) -> bool:
    # "Co." and "Ltd." keep their dot; a sentence's last word does not.
    word = text[start:end].rsplit(None, 1)[-1]
    return len(word) <= 4 and word[:1].isupper()


def _uncased(run: str) -> bool:
    # Scripts without letter case (Han, Kana, Thai, Lao...): words there are not capitalized.
    return all(unicodedata.category(ch) == "Lo" for ch in run[:4])


def _control(span: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in span)
