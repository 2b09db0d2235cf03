"""Text a report may show: escapes, control characters, bidi overrides and lone surrogates removed.

Every value of every report format goes through `clean` (or `clean_data` for JSON Lines);
`csv_cell` also keeps a spreadsheet from reading a value as a formula.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .render import safe

# Lone surrogates come from JSON escapes ("\ud800"); they cannot even be written as UTF-8.
_SURROGATES = re.compile("[\ud800-\udfff]")
# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = frozenset("=+-@")
_FORMULA_CONTROL = ("\t", "\r")


def clean(value: Any) -> str:
    """One value as display text: lists joined with "; ", None as "", nothing a terminal or viewer obeys."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = "; ".join(clean(v) for v in value if v is not None)
    return _SURROGATES.sub("", safe(str(value)).plain)


def clean_data(value: Any) -> Any:
    """A JSON value with every string (keys too) cleaned; numbers, booleans and null unchanged."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(k): clean_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_data(v) for v in value]
    return value


def is_formula(text: str) -> bool:
    """True when a spreadsheet could take the text for a formula (full-width and padded forms too)."""
    if text.startswith(_FORMULA_CONTROL):
        return True
    # NFKC folds full-width ＝＋－＠ and the small forms ﹦﹢﹣﹫ to ASCII; invisible format
    # characters (zero-width space, BOM) and leading spaces are dropped before looking.
    folded = unicodedata.normalize("NFKC", text)
    probe = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf").lstrip()
    return probe[:1] in _FORMULA_START or probe.startswith(_FORMULA_CONTROL)


def csv_cell(value: Any) -> str:
    """A CSV cell: cleaned, and a leading ' when a spreadsheet would otherwise run it as a formula."""
    text = clean(value)
    return "'" + text if is_formula(text) else text


def alias_key(text: str) -> str:
    """Comparison key of a name: no case, punctuation, spaces or leading "the"."""
    # So "The University of Hong Kong" = "University of Hong Kong", "Co., Limited" = "Co. Limited".
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded).split()
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    return "".join(words)
