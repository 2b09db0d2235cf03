"""The evidence of one output document, for reports: its source text cut into spans, and what it lacks. Pure.

Read from data only (an output's `document.text` and `checks`), defensively: a file may hold any
shape. Each verbatim value the checks anchored is a `Support` (offsets into the decoded text, the
matched source text, how it matched); `segments` cut the text into consecutive pieces, each
highlighted piece naming every support it covers. Anchors that do not fit the text (malformed,
outside it, or not what the text has there) are listed but highlight nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .anchoring import highlight_spans
from .report_load import OutputDocument

MATCHES = ("exact", "normalized", "fuzzy")  # strictest first; a segment shows its weakest support


@dataclass(frozen=True)
class Support:
    """One verbatim value anchored in the source: `text[start:end] == source`."""

    path: str
    value: str
    match: str  # exact | normalized | fuzzy
    score: float
    source: str
    start: int
    end: int

    def describe(self) -> str:
        """`organizations[0].name_original: fuzzy match (0.93) of “…”`, for a tooltip."""
        how = f"{self.match} match" + (f" ({self.score:.2f})" if self.match == "fuzzy" else "")
        wrote = f" of “{self.value}”" if self.value != self.source else ""
        return f"{self.path}: {how}{wrote}"


@dataclass(frozen=True)
class Segment:
    """A piece of the source text; highlighted when `supports` is not empty."""

    start: int
    end: int
    supports: tuple[Support, ...] = ()

    @property
    def match(self) -> str:
        """The weakest match among the supports ('' when not highlighted)."""
        return max((s.match for s in self.supports), key=MATCHES.index, default="")


@dataclass
class Evidence:
    """What one document's checks found: supported values (placed in its text or not) and unsupported ones."""

    text: str | None  # the decoded source text, when the output carries it
    grounding: str  # checked | not_checked | unknown
    supports: list[Support] = field(default_factory=list)
    unsupported: list[tuple[str, str]] = field(default_factory=list)  # (path, value)
    segments: list[Segment] = field(default_factory=list)

    def placed(self, support: Support) -> int | None:
        """Index of the highlighted segment showing `support`, or None when the text cannot show it."""
        for i, segment in enumerate(self.segments):
            if support in segment.supports:
                return i
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _support(item: dict[str, Any]) -> Support | None:
    anchor = _dict(item.get("anchor"))
    start, end, source = anchor.get("start"), anchor.get("end"), anchor.get("source")
    if not (type(start) is int and type(end) is int and isinstance(source, str)):
        return None
    match = anchor.get("match") if anchor.get("match") in MATCHES else "fuzzy"  # unknown kinds: the weakest
    score = anchor.get("score")
    return Support(str(item.get("path", "")), str(item.get("value", "")), match,
                   float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else 0.0,
                   source, start, end)


def document_evidence(doc: OutputDocument) -> Evidence:
    """The evidence of one output document (empty lists for outputs written before anchoring)."""
    checks = doc.checks
    text = _dict(doc.envelope.get("document")).get("text")
    text = text if isinstance(text, str) else None
    grounding = checks.get("grounding") if checks.get("grounding") in ("checked", "not_checked") else "unknown"
    items = [item for item in (checks.get("evidence") if isinstance(checks.get("evidence"), list) else [])
             if isinstance(item, dict)]
    supports = [s for s in (_support(item) for item in items) if s is not None]
    unsupported = [(str(u.get("field", "")), str(u.get("value", ""))) for u in
                   (checks.get("unsupported") if isinstance(checks.get("unsupported"), list) else [])
                   if isinstance(u, dict)]
    evidence = Evidence(text, grounding, supports, unsupported)
    if text is not None:
        fitting = [s for s in supports if 0 <= s.start < s.end <= len(text) and text[s.start:s.end] == s.source]
        evidence.segments = [
            Segment(start, end, tuple(s for s in fitting if s.start < end and start < s.end) if lit else ())
            for start, end, lit in highlight_spans(text, [{"start": s.start, "end": s.end, "source": s.source}
                                                          for s in fitting])]
    return evidence
