"""Shared building blocks for the built-in schemas: language codes and duplicate checks."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

# ISO 639-1: the two-letter codes (184 of them), so "source_language" means something.
ISO_639_1 = frozenset(
    """aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy
    da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy
    hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li
    ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa
    pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th
    ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu""".split()
)

# The codes as a JSON Schema enum: a constrained decoder (OpenAI strict mode, a grammar) then
# cannot invent a code such as "hk"; the validators still normalize case and name the problem.
LANGUAGE_ENUM: dict[str, Any] = {"enum": sorted(ISO_639_1)}

_ABBREVIATIONS = re.compile(r"\b(?:Co|Ltd|Inc|Corp|Mr|Mrs|Ms|Dr|St|No|Jr|Sr|vs|etc|e\.g|i\.e|U\.S|U\.K)\.", re.I)
_SENTENCE_END = re.compile(r"[.!?。！？]+(?:[\"'”’)\]]*)(?:\s+|$)")


def check_language_code(code: str) -> str:
    """Lower-case an ISO 639-1 code, or raise ValueError naming the problem."""
    code = code.strip().lower()
    if code not in ISO_639_1:
        raise ValueError(f"{code!r} is not an ISO 639-1 language code (use two letters, e.g. 'en', 'ru', 'pt')")
    return code


def count_sentences(text: str) -> int:
    """Count sentences, ignoring the dots of common abbreviations."""
    masked = _ABBREVIATIONS.sub(lambda m: m.group(0).replace(".", "·"), text.strip())
    parts = [p for p in _SENTENCE_END.split(masked) if p.strip()]
    return len(parts)


def fold(text: str) -> str:
    """Comparison key: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def reject_duplicates(values: Iterable[str], what: str) -> None:
    """Raise ValueError when two values are the same after folding."""
    seen: set[str] = set()
    for value in values:
        key = fold(value)
        if key in seen:
            raise ValueError(f"duplicate {what}: {value!r} is listed twice; list each once")
        seen.add(key)


def drop_repeats(items: Any) -> Any:
    """A list without exact repeats (same item after folding), first kept; anything else unchanged.

    A looping model repeats whole items; dropping the echo loses nothing. Two *different* items
    with one name still fail reject_duplicates, because that is a real contradiction.
    """
    if not isinstance(items, list):
        return items
    seen: set[str] = set()
    kept = []
    for item in items:
        key = json.dumps(_folded(item), sort_keys=True, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def _folded(value: Any) -> Any:
    # Every string folded, so "Batteries " repeats "batteries".
    if isinstance(value, str):
        return fold(value)
    if isinstance(value, dict):
        return {k: _folded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_folded(v) for v in value]
    return value


def drop_repeats_in(data: Any, fields: Iterable[str]) -> Any:
    """A model's raw input with drop_repeats applied to the named list fields."""
    if not isinstance(data, dict):
        return data
    return {**data, **{k: drop_repeats(data[k]) for k in fields if k in data}}
