"""Grounding checks: is what the model wrote supported by the source text? Pure functions."""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from .documents import Document


def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form both sides are compared in."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


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
    return [(f, v) for f, v in values if v]


def run_checks(result: BaseModel, document: Document, today: date | None = None) -> dict[str, Any]:
    """All checks of one result against its source; stored under `checks` in the output."""
    data = result.model_dump(mode="json")
    source = normalize(document.text)
    unsupported = [
        {"field": field, "value": value}
        for field, value in _quoted_values(data)
        if normalize(value) not in source
    ]
    failures = [f"{u['field']} {u['value']!r} does not occur in the source text" for u in unsupported]
    agreement = data.get("agreement") or {}
    signed = agreement.get("signed_on") or {}
    today = today or date.today()
    if signed.get("year") and signed.get("month") and signed.get("day"):
        try:
            signed_on = date(signed["year"], signed["month"], signed["day"])
            if signed_on > today:
                failures.append(f"agreement.signed_on {signed_on.isoformat()} is in the future of this run")
        except ValueError:
            failures.append("agreement.signed_on is not a real calendar date")
    names = {normalize(o.get("name", "")) for o in data.get("organizations") or []}
    for party in agreement.get("parties") or []:
        if normalize(party) not in names:
            failures.append(f"agreement party {party!r} is not among the organizations")
    return {"passed": not failures, "unsupported": unsupported, "failures": failures}


def failures(checks: dict[str, Any]) -> list[str]:
    """The failed checks as sentences the model can act on (for --strict re-asks)."""
    return list(checks.get("failures", []))
