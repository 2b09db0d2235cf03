"""Grounding checks: is what the model wrote supported by the source text? Pure functions.

`run_checks` returns {"passed", "unsupported": [{"field", "value"}], "failures": [str],
"detected_languages": {"source", "summary", "title"}, "skipped": [str]}:

- every verbatim value (`name_original`, `signed_on.as_written`, `key_figures[].value`) must occur
  in the source once both sides are NFKC-normalized, case-folded and stripped of whitespace, so the
  test needs no word boundaries and works the same for Latin, Cyrillic, CJK, Thai or Lao text;
- `summary` and `title` must be English, `source_language` must agree with a detector run on the
  source (CLD2 via pycld2: fast and deterministic);
- agreement parties must be among the organizations, and the signing date not after the run's day.

Language verdicts only fail a result when the detector is confident: a short title ("CATL-HKU
zero carbon alliance" reads as Italian to n-gram models) is judged by its script alone.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from summarizer.schemas._common import fold

if TYPE_CHECKING:
    from .documents import Document

# Typographic punctuation models retype as ASCII (and the other way round): compare them as one.
_PUNCTUATION = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2033": '"', "\u2039": '"', "\u203a": '"', "\u300c": '"', "\u300d": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
})
CHECKS_VERSION = "1"  # bump when a check changes, so cached results are checked again
CONFIDENT = 0.9  # the detector's top language must be at least this likely to fail a result
PLAUSIBLE = 0.1  # a claimed language at least this likely is accepted even if it is not the top one
MIN_WORDS = 6  # fewer words than this: too little text for a statistical language verdict
# Whitespace and the format characters (Unicode Cf) that show up in scraped text.
_INVISIBLE = re.compile(r"[\s\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+")
_LETTER = re.compile(r"[^\W\d_]")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00aa\u00b5\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]")
_ALIASES = {"zh-cn": "zh", "zh-tw": "zh", "nb": "no", "nn": "no", "iw": "he"}


def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form both sides are compared in."""
    return fold(text)  # the same key the schemas' duplicate checks use


def _compact(text: str) -> str:
    # No whitespace at all: CJK, Thai and Lao do not space words, and models add or drop spaces
    # around Latin acronyms ("CATL与" / "CATL 与"); invisible format characters go too.
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_PUNCTUATION)
    return _INVISIBLE.sub("", folded)  # a regex, not a per-character loop: this runs on every source


def _occurs(value: str, compact_source: str) -> bool:
    compact = _compact(value)
    return bool(compact) and compact in compact_source  # only invisible characters: supports nothing


def unsupported_sentence(field: str, value: str) -> str:
    """The failure sentence for a value that is not in the source (the report filters on it)."""
    return (f"{field} {value!r} does not occur in the source text: copy it exactly as written there, "
            "or leave the item out if the text does not state it")


def _quoted_values(result: dict[str, Any]) -> list[tuple[str, str]]:
    # (field, value) pairs that the schema says are copied verbatim from the source.
    values: list[tuple[str, str]] = []
    for i, org in enumerate(result.get("organizations") or []):
        values.append((f"organizations[{i}].name_original", org.get("name_original")))
    for i, person in enumerate(result.get("people") or []):
        values.append((f"people[{i}].name_original", person.get("name_original")))
    for i, entity in enumerate(result.get("entities") or []):
        values.append((f"entities[{i}].name_original", entity.get("name_original")))
    agreement = result.get("agreement") or {}
    signed = agreement.get("signed_on") or {}
    if signed.get("as_written"):
        values.append(("agreement.signed_on.as_written", signed["as_written"]))
    for i, figure in enumerate(result.get("key_figures") or []):
        values.append((f"key_figures[{i}].value", figure.get("value")))
    return [(f, v) for f, v in values if isinstance(v, str) and v.strip()]


@lru_cache(maxsize=1)
def _detector() -> Any:
    """The CLD2 detector module, imported once per process; None if not installed."""
    try:
        import pycld2
    except ImportError:
        return None
    return pycld2


@lru_cache(maxsize=1)
def detector_languages() -> frozenset[str]:
    """ISO 639-1 codes the detector knows; a claim outside this set cannot be verified."""
    cld = _detector()
    if cld is None:
        return frozenset()
    detected = set(cld.DETECTED_LANGUAGES)
    return frozenset(_ALIASES.get(code, code) for name, code in cld.LANGUAGES if name in detected)


def detect_language(text: str) -> dict[str, float]:
    """Language code -> share of the text for `text` (empty when there is nothing to go on)."""
    cld = _detector()
    if cld is None:
        return {}
    try:
        reliable, _, details = cld.detect(text)
    except cld.error:  # bytes CLD2 rejects (unpaired surrogates and the like)
        return {}
    # CLD2 (~0.1 ms per document, deterministic) reports the share of the text in each language;
    # an unreliable verdict is halved so it never reaches CONFIDENT on its own.
    weight = 1.0 if reliable else 0.5
    probabilities: dict[str, float] = {}
    for _, code, percent, _ in details:
        if code == "un" or not percent:
            continue
        code = _ALIASES.get(code.lower(), code.lower().split("-")[0])
        probabilities[code] = probabilities.get(code, 0.0) + percent / 100 * weight
    return probabilities


def _top(probabilities: dict[str, float]) -> tuple[str | None, float]:
    if not probabilities:
        return None, 0.0
    code = max(probabilities, key=probabilities.__getitem__)
    return code, probabilities[code]


def _mostly_non_latin(text: str) -> str | None:
    # The script of most letters when it is not Latin ("CYRILLIC", "CJK", "LAO"): certain at any length.
    letters = len(_LETTER.findall(text))
    if not letters or len(_LATIN_LETTER.findall(text)) * 2 > letters:
        return None  # the common case, decided by two C-speed regex scans
    scripts: dict[str, int] = {}
    for ch in text:
        if ch.isalpha():
            script = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
            scripts[script] = scripts.get(script, 0) + 1
    letters = sum(scripts.values())
    if not letters or scripts.get("LATIN", 0) * 2 > letters:
        return None
    return max(scripts, key=scripts.__getitem__)


def _english_problem(field: str, text: str) -> tuple[str | None, str | None]:
    """(detected language or script, failure sentence if `text` is confidently not English)."""
    script = _mostly_non_latin(text)
    if script is not None:
        code, _ = _top(detect_language(text))
        label = code or script.lower()
        return label, (f"{field} is not in English (written in {script.title()} script, detected {label!r}): "
                       "write it in English")
    if len(text.split()) < MIN_WORDS:
        return None, None
    probabilities = detect_language(text)
    code, probability = _top(probabilities)
    if code not in (None, "en") and probability >= CONFIDENT and probabilities.get("en", 0.0) < PLAUSIBLE:
        return code, f"{field} is not in English (detected {code!r}): write it in English"
    return code, None


def _source_language_problem(claimed: str, source: str) -> tuple[str | None, str | None]:
    """(detected source language, failure sentence if it confidently contradicts the claim)."""
    probabilities = detect_language(source)
    code, probability = _top(probabilities)
    known = detector_languages()
    claimed = _ALIASES.get(claimed.lower(), claimed.lower())
    if claimed not in known:  # e.g. Lao: the detector has no profile, so it cannot object
        return code, None
    if code is None:
        script = _mostly_non_latin(source)
        if script is None:  # digits, symbols: nothing to go on
            return None, None
        # Letters the detector knows no language for: the text is not in any language it knows.
        return script.lower(), (f"source_language {claimed!r} does not match the source text, which is written "
                                f"in {script.title()} script: give the ISO 639-1 code of the source's language")
    if code != claimed and probability >= CONFIDENT and probabilities.get(claimed, 0.0) < PLAUSIBLE:
        return code, (f"source_language {claimed!r} does not match the source text, which reads as {code!r}: "
                      "give the ISO 639-1 code of the source's language")
    return code, None


def _date_problem(signed: dict[str, Any], today: date) -> str | None:
    year, month, day = signed.get("year"), signed.get("month"), signed.get("day")
    if not isinstance(year, int):
        return None  # without a year a date cannot be placed before or after today
    try:
        earliest = date(year, month or 1, day or 1)  # a partial date is in the future only if all of it is
    except (TypeError, ValueError):
        return f"agreement.signed_on {year}-{month}-{day} is not a real calendar date"
    if earliest > today:
        shown = "-".join(f"{v:02d}" for v in (year, month, day) if isinstance(v, int))
        return (f"agreement.signed_on {shown} is in the future of this run ({today.isoformat()}): "
                "use the date the text gives, or null")
    return None


def run_checks(result: BaseModel, document: Document, today: date | None = None) -> dict[str, Any]:
    """All checks of one result against its source; stored under `checks` in the output."""
    data = result.model_dump(mode="json")
    source = _compact(document.text)
    unsupported = [{"field": f, "value": v} for f, v in _quoted_values(data) if not _occurs(v, source)]
    failures = [unsupported_sentence(u["field"], u["value"]) for u in unsupported]
    detected: dict[str, str | None] = {}
    skipped: list[str] = []
    if _detector() is None:
        skipped.append("language checks: the pycld2 package is not installed")
    else:
        for field in ("summary", "title"):
            if isinstance(data.get(field), str):
                detected[field], problem = _english_problem(field, data[field])
                failures += [problem] if problem else []
        if isinstance(data.get("source_language"), str):
            detected["source"], problem = _source_language_problem(data["source_language"], document.text)
            failures += [problem] if problem else []
    agreement = data.get("agreement") or {}
    problem = _date_problem(agreement.get("signed_on") or {}, today or date.today())
    failures += [problem] if problem else []
    organizations = data.get("organizations") or []
    known = {normalize(o.get(k) or "") for o in organizations for k in ("name", "name_original")}
    for party in agreement.get("parties") or []:
        if normalize(party) not in known:
            failures.append(f"agreement party {party!r} is not among the organizations: add it or use its 'name'")
    return {"passed": not failures, "unsupported": unsupported, "failures": failures,
            "detected_languages": detected, "skipped": skipped}


def failures(checks: dict[str, Any]) -> list[str]:
    """The failed checks as sentences the model can act on (for --strict re-asks)."""
    return list(checks.get("failures", []))
