"""Aggregate output documents into a Report, from each document's schema traits (never a field name).

Traits give each document's title, summary and language; its entity lists, grouped across
documents by their key and verbatim spellings; its links (values that must name an entity),
shown per document, on the linked entities, and as a table of the objects that hold them (a
timeline when those carry a date); and its English string lists, counted across documents when
they hold short terms. One convention on shapes, not names: an object whose "year" and "month"
(and "day") are integers or null is a date.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .checks import normalize, unsupported_sentence
from .report_entities import EntitySection, merge_entities
from .report_evidence import Evidence, document_evidence
from .report_load import OutputDocument
from .report_paths import (DATE_PARTS, date_key, find_dates, format_date, humanize, is_date, label, one, scalars,
                           values_at)
from .traits import iter_values

TERM_LENGTH = 40  # string lists averaging at most this many characters are terms, counted across documents
META_COLUMNS = ("document", "output", "schema", "title", "summary", "language")
CHECK_COLUMNS = ("checks", "failures", "unsupported", "model", "created_at")


@dataclass(frozen=True)
class DocumentRow:
    """The flat facts of one document; `fields` maps a column (a trait path) to its values."""

    document: str
    output: str
    schema: str
    title: str
    summary: str
    language: str
    checks: str  # passed | failed | not run
    failures: int
    unsupported: int
    model: str
    created_at: str
    fields: dict[str, list[str]]

    @property
    def flagged(self) -> bool:
        """Valid but not supported: its checks failed (the run's status `flagged`)."""
        return self.checks == "failed"

    def column(self, name: str) -> Any:
        """A CSV / JSON Lines column by name: a meta or check value, else the field's values."""
        return getattr(self, name) if name in META_COLUMNS + CHECK_COLUMNS else self.fields.get(name, [])


@dataclass
class TermSection:
    title: str
    rows: list[tuple[str, int]]  # term, documents


@dataclass
class Record:
    """One object holding link fields (one deal, say), with its date if it has one."""

    document: str
    date: str
    date_text: str  # the date object's own text (as the source wrote it)
    sort: tuple[Any, ...]
    values: dict[str, list[str]]
    dated: bool  # it has a date object, known or not


@dataclass
class RecordSection:
    title: str
    dated: bool
    columns: list[str]
    records: list[Record]


@dataclass
class Report:
    """Everything a report shows, computed once, written by any format."""

    documents: list[OutputDocument]
    rows: list[DocumentRow] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # field columns over all documents, first seen first
    dates: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    entities: list[EntitySection] = field(default_factory=list)
    terms: list[TermSection] = field(default_factory=list)
    records: list[RecordSection] = field(default_factory=list)
    unsupported: list[tuple[str, str, str]] = field(default_factory=list)  # document, field, value
    failed_checks: list[tuple[str, str]] = field(default_factory=list)  # document, failure (besides unsupported)
    evidence: list[Evidence] = field(default_factory=list)  # one per document, in the order of `documents`
    # document -> value -> the fields holding it: values the checks found nowhere in that document's source
    unsupported_values: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def unsupported_in(self, value: Any, documents: list[str]) -> list[str]:
        """`document: field` for each of `documents` whose source lacks `value` (empty: supported or not verbatim)."""
        text = str(value) if isinstance(value, (str, int, float)) else ""
        return [f"{doc}: {where}" for doc in dict.fromkeys(documents)
                for where in self.unsupported_values.get(doc, {}).get(text, [])]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def document_fields(doc: OutputDocument) -> dict[str, list[str]]:
    """Column -> values of one document: entity keys, links, dates, then other English and verbatim fields."""
    traits, result = doc.traits, doc.result
    fields: dict[str, list[str]] = {}
    for path, key in traits.entities.items():
        fields[label(path)] = values_at(result, f"{path}[].{key}")
    for path in traits.links:
        fields.setdefault(label(path), values_at(result, path))
    for path, node in find_dates(result):
        fields.setdefault(label(path), []).append(format_date(node))
    shown = {traits.title, traits.summary, traits.language, *traits.links,
             *(f"{path}[].{key}" for path, key in traits.entities.items())}
    for path in (*traits.english, *traits.verbatim):
        if path not in shown:
            fields.setdefault(label(path), values_at(result, path))
    # A field named like a report column keeps its own column.
    return {(f"result.{name}" if name in META_COLUMNS + CHECK_COLUMNS else name): values
            for name, values in fields.items()}


def document_row(doc: OutputDocument) -> DocumentRow:
    """The overview of one document."""
    traits, result, checks = doc.traits, doc.result, doc.checks
    passed = checks.get("passed")
    unsupported = len(_list(checks.get("unsupported")))
    if unsupported:  # an output written before flagging existed may say passed with unsupported facts
        passed = False

    def text(path: str | None) -> str:
        return "; ".join(values_at(result, path)) if path else ""

    return DocumentRow(
        document=doc.label, output=str(doc.path), schema=doc.schema_id,
        title=text(traits.title), summary=text(traits.summary), language=text(traits.language),
        checks="passed" if passed is True else "failed" if passed is False else "not run",
        failures=len(_list(checks.get("failures"))), unsupported=unsupported,
        model=one(_dict(doc.envelope.get("model")).get("name")), created_at=one(doc.envelope.get("created_at")),
        fields=document_fields(doc),
    )


def count_terms(per_document: list[list[str]]) -> list[tuple[str, int]]:
    """Documents per term (spellings folded together), most frequent first."""
    counts: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = {}
    for terms in per_document:
        seen = {normalize(t): t for t in terms if t.strip()}
        for key, spelling in seen.items():
            counts[key] += 1
            spellings.setdefault(key, Counter())[spelling] += 1
    rows = [(spellings[key].most_common(1)[0][0], n) for key, n in counts.items()]
    return sorted(rows, key=lambda row: (-row[1], row[0].casefold()))


def term_sections(documents: list[OutputDocument]) -> list[TermSection]:
    """English string lists (outside entities and links) that hold short terms, counted."""
    paths: dict[str, None] = {}
    for doc in documents:
        traits = doc.traits
        inside = tuple(f"{path}[]" for path in traits.entities)
        paths.update({p: None for p in traits.english
                      if p.endswith("[]") and "[]" not in p[:-2] and not p.startswith(inside) and p not in traits.links})
    sections = []
    for path in paths:
        per_document = [values_at(doc.result, path) if path in doc.traits.english else [] for doc in documents]
        values = [v for terms in per_document for v in terms]
        if values and sum(len(v) for v in values) / len(values) <= TERM_LENGTH:
            sections.append(TermSection(humanize(path), count_terms(per_document)))
    return sections


def record_sections(documents: list[OutputDocument]) -> list[RecordSection]:
    """The objects that hold link fields (e.g. each deal), by date when they have one."""
    owners: dict[str, None] = {}
    for doc in documents:
        for link in doc.traits.links:
            owner = link.removesuffix("[]").rpartition(".")[0]
            if owner:
                owners[owner] = None
    sections = []
    for owner in owners:
        records = []
        for doc in documents:
            if not any(link.removesuffix("[]").rpartition(".")[0] == owner for link in doc.traits.links):
                continue
            for _, obj in iter_values(doc.result, owner):
                if isinstance(obj, dict):
                    records.append(_record(doc.label, obj))
        columns = list(dict.fromkeys(k for r in records for k, v in r.values.items() if v))
        dated = any(r.dated for r in records)
        records.sort(key=lambda r: (r.sort, r.document) if dated else (r.document,))
        title = f"{humanize(owner)} timeline" if dated else humanize(owner)
        sections.append(RecordSection(title, dated, columns, records))
    return sections


def _record(document: str, obj: dict[str, Any]) -> Record:
    date = next((v for v in obj.values() if is_date(v)), None)
    date_text = "; ".join(s for k, v in _dict(date).items() if k not in DATE_PARTS for s in scalars(v))
    values = {str(k): scalars(v) for k, v in obj.items() if not is_date(v)}
    return Record(document, format_date(date) or "unknown", date_text, date_key(date), values, date is not None)


def build_report(documents: list[OutputDocument]) -> Report:
    """Aggregate output documents into everything a report shows."""
    report = Report(documents=documents)
    report.rows = [document_row(doc) for doc in documents]
    report.columns = list(dict.fromkeys(name for row in report.rows for name in row.fields))
    report.dates = list(dict.fromkeys(label(p) for doc in documents for p, _ in find_dates(doc.result)))
    report.links = list(dict.fromkeys(label(p) for doc in documents for p in doc.traits.links))
    report.entities = merge_entities(documents)
    report.terms = term_sections(documents)
    report.records = record_sections(documents)
    report.evidence = [document_evidence(doc) for doc in documents]
    for doc in documents:
        listed = set()
        for item in _list(doc.checks.get("unsupported")):
            if isinstance(item, dict):
                where, value = str(item.get("field", "")), str(item.get("value", ""))
                report.unsupported.append((doc.label, where, value))
                report.unsupported_values.setdefault(doc.label, {}).setdefault(value, []).append(where)
                listed.add(unsupported_sentence(where, value))
        report.failed_checks += [(doc.label, str(f)) for f in _list(doc.checks.get("failures")) if f not in listed]
    return report
