"""Grounding checks: is what the model wrote supported by the source text? Pure functions.

Every check is driven by the schema's traits (summarizer/traits.py), never by a field name.
`run_checks` returns {"passed", "grounding", "unsupported": [{"field", "value"}], "failures": [str],
"detected_languages": {"source", "summary", "title"}, "skipped": [str], "evidence": [...]}:

- every Verbatim value must be anchored in the source (summarizer/anchoring.py: exact, normalized
  or fuzzy, for any script); `evidence` lists each value with its offsets into the decoded text,
  the matched source text and how it matched ("grounding": "checked"; "not_checked" when the
  schema marks no field Verbatim, and `skipped` says so);
- English fields (Title, Summary, English) must be English, the SourceLanguage field must agree
  with a detector run on the source (CLD2 via pycld2: fast and deterministic);
- every LinksTo value must be one of its target's values (or the same items' Verbatim values);
- a schema may add checks that need the run's day with a classmethod
  `run_day_checks(cls, result: dict, today: date) -> list[str]` (the article's signing date).

`passed` is null when nothing at all could be checked, never true for want of checks.
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

from .anchoring import anchor_fields
from .traits import SchemaTraits, strings_at, traits_of

if TYPE_CHECKING:
    from .documents import Document

CHECKS_VERSION = "3"  # bump when a check changes, so cached results are checked again
CONFIDENT = 0.9  # the detector's top language must be at least this likely to fail a result
PLAUSIBLE = 0.1  # a claimed language at least this likely is accepted even if it is not the top one
MIN_WORDS = 6  # fewer words than this: too little text for a statistical language verdict
_LETTER = re.compile(r"[^\W\d_]")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00aa\u00b5\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]")
_ALIASES = {"zh-cn": "zh", "zh-tw": "zh", "nb": "no", "nn": "no", "iw": "he"}


def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form both sides are compared in."""
    return fold(text)  # the same key the schemas' duplicate checks use


def unsupported_sentence(field: str, value: str) -> str:
    """The failure sentence for a value that is not in the source (the report filters on it)."""
    return (f"{field} {value!r} does not occur in the source text: copy it exactly as written there, "
            "or leave the item out if the text does not state it")


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


SOURCE_SAMPLE = 100_000  # characters of a source the language is detected on: plenty, and bounded


def detect_language(text: str) -> dict[str, float]:
    """Language code -> share of the text for `text` (empty when there is nothing to go on)."""
    return dict(_detect_language(text))


def source_language(source: str) -> dict[str, float]:
    """detect_language for a document's source text: the processor's hint and the checks' verdict
    come from this one detection on the same sample."""
    return dict(_source_language(source[:SOURCE_SAMPLE]))


# The processor and the checks ask about the same source in turn: one detection. Small, as each
# entry keeps a sample alive; field values are not cached (cheap, and they would push sources out).
@lru_cache(maxsize=8)
def _source_language(sample: str) -> tuple[tuple[str, float], ...]:
    return _detect_language(sample)


def _detect_language(text: str) -> tuple[tuple[str, float], ...]:
    cld = _detector()
    if cld is None:
        return ()
    try:
        reliable, _, details = cld.detect(text)
    except cld.error:  # bytes CLD2 rejects (unpaired surrogates and the like)
        return ()
    # CLD2 (~0.1 ms per document, deterministic) reports the share of the text in each language;
    # an unreliable verdict is halved so it never reaches CONFIDENT on its own.
    weight = 1.0 if reliable else 0.5
    probabilities: dict[str, float] = {}
    for _, code, percent, _ in details:
        if code == "un" or not percent:
            continue
        code = _ALIASES.get(code.lower(), code.lower().split("-")[0])
        probabilities[code] = probabilities.get(code, 0.0) + percent / 100 * weight
    return tuple(probabilities.items())


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


def _source_language_problem(field: str, claimed: str, source: str) -> tuple[str | None, str | None]:
    """(detected source language, failure sentence if it confidently contradicts the claim)."""
    probabilities = source_language(source)
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
        return script.lower(), (f"{field} {claimed!r} does not match the source text, which is written "
                                f"in {script.title()} script: give the ISO 639-1 code of the source's language")
    if code != claimed and probability >= CONFIDENT and probabilities.get(claimed, 0.0) < PLAUSIBLE:
        return code, (f"{field} {claimed!r} does not match the source text, which reads as {code!r}: "
                      "give the ISO 639-1 code of the source's language")
    return code, None


@lru_cache(maxsize=64)
def schema_traits(model: type[BaseModel]) -> SchemaTraits:
    """The traits of a schema model, read once per model."""
    return traits_of(model)


def _evidence(data: dict[str, Any], traits: SchemaTraits, text: str) -> list[dict[str, Any]]:
    """Where each verbatim value stands in the source (offsets, matched text, how), or None."""
    return anchor_fields(data, traits.verbatim, text)


def _link_problems(data: dict[str, Any], traits: SchemaTraits) -> list[str]:
    """Each LinksTo value that names none of its targets (by the target field or the items' Verbatim fields)."""
    problems = []
    for path, target in traits.links.items():
        known = {normalize(value) for name in traits.link_names(target) for _, value in strings_at(data, name)}
        for where, value in strings_at(data, path):
            if normalize(value) not in known:
                problems.append(f"{where} {value!r} is not among the values of {target}: "
                                f"use one of them exactly, or add it there")
    return problems


def _language_problems(data: dict[str, Any], traits: SchemaTraits, source: str,
                       detected: dict[str, str | None]) -> list[str]:
    problems: list[str] = []
    roles = {traits.title: "title", traits.summary: "summary"}
    for path in traits.english_paths:
        for where, value in strings_at(data, path):
            code, problem = _english_problem(where, value)
            if path in roles and where == path:  # reported under its role, whatever the field's name
                detected[roles[path]] = code
            problems += [problem] if problem else []
    if traits.language is not None:
        for _, claimed in strings_at(data, traits.language):
            detected["source"], problem = _source_language_problem(traits.language, claimed, source)
            problems += [problem] if problem else []
    return problems


def run_checks(result: BaseModel, document: Document, today: date | None = None, *,
               schema: type[BaseModel] | None = None) -> dict[str, Any]:
    """All checks of one result against its source; stored under `checks` in the output.

    `schema` is the result's model class (default: the result's own class).
    """
    model = schema if schema is not None else type(result)
    traits = schema_traits(model)
    data = result.model_dump(mode="json")
    evidence = _evidence(data, traits, document.text)
    unsupported = [{"field": e["path"], "value": e["value"]} for e in evidence if e["anchor"] is None]
    failures = [unsupported_sentence(u["field"], u["value"]) for u in unsupported]
    detected: dict[str, str | None] = {}
    skipped: list[str] = []
    ran = bool(traits.verbatim or traits.links)
    if not traits.verbatim:
        skipped.append("grounding: the schema marks no field Verbatim(), so no value was compared with the source")
    languages = bool(traits.english_paths or traits.language)
    if languages and _detector() is None:
        skipped.append("language checks: the pycld2 package is not installed")
    elif languages:
        ran = True
        failures += _language_problems(data, traits, document.text, detected)
    failures += _link_problems(data, traits)
    day_checks = getattr(model, "run_day_checks", None)
    if callable(day_checks):
        ran = True
        failures += [str(p) for p in day_checks(data, today or date.today())]
    if not ran:
        skipped.append("nothing was checked: mark the schema's fields with Verbatim(), English(), SourceLanguage() "
                       "or LinksTo() (see summarizer/traits.py)")
    return {"passed": (not failures) if ran else None, "grounding": "checked" if traits.verbatim else "not_checked",
            "unsupported": unsupported, "failures": failures, "detected_languages": detected, "skipped": skipped,
            "evidence": evidence}


def failures(checks: dict[str, Any]) -> list[str]:
    """The failed checks as sentences the model can act on (for --strict re-asks)."""
    return list(checks.get("failures", []))
