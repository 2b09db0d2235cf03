"""The `eval` command: score output documents against hand-checked facts in a gold file.

Gold file format (see bench/seeds.gold.json), one entry per source document, keyed by its file stem:

    {"format": "summarizer-gold/1",
     "documents": {
       "001_1a11767ed79f635d": {
         "source_language": "de",                                   # ISO 639-1
         "has_agreement": true,
         "agreement_date": {"year": 2022, "month": 6, "day": 22},   # null parts: not stated; null: no date
         "parties": ["CATL", "Henan Provincial Government"],        # names of organizations below
         "organizations": [
           {"name": "CATL", "aliases": ["Contemporary Amperex Technology Co., Limited", "宁德时代"]},
           {"name": "Gasgoo", "aliases": [], "optional": true}      # optional: neither required nor wrong
         ],
         "people": [{"name": "Robin Zeng", "aliases": ["Zeng Yuqun", "曾毓群"]}],
         "notes": "why the annotator decided as they did"}}}

An output matches a gold document when its source file's stem (or, failing that, the output file's
stem) is a key of "documents". An output organization matches a gold one when its `name` or
`name_original` equals the gold name or an alias, compared without case, punctuation, spaces or a
leading "the" (English and original-script aliases alike); each gold entry matches at most once,
so a duplicate costs precision. Scores: organization precision and recall (optional entries left
out of both), party precision and recall, agreement yes/no, exact signing date (year, month, day,
with nulls; only where gold has an agreement), source language, and people recall.

Outputs are read as `report` reads them (report_load.py): data only, validated by a built-in
schema or `--schema`, never by a schema file an output names; a result read as plain JSON is
scored as it is (values of the wrong shape count as missing).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError
from .evaluate_trust import DocumentTrust, RunStatuses, document_trust, find_manifests, trust_totals
from .report_load import OutputDocument, load_outputs, print_loading, read_json_file
from .report_text import alias_key

GOLD_FORMAT = "summarizer-gold/1"


class GoldName(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    optional: bool = False

    def keys(self) -> set[str]:
        return {k for k in (alias_key(n) for n in [self.name, *self.aliases]) if k}


class GoldDate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    year: int | None
    month: int | None
    day: int | None


class GoldDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_language: str = Field(pattern=r"^[a-z]{2}$")
    has_agreement: bool
    agreement_date: GoldDate | None = None
    parties: list[str] = Field(default_factory=list)
    organizations: list[GoldName] = Field(default_factory=list)
    people: list[GoldName] = Field(default_factory=list)
    notes: str | None = None

    @model_validator(mode="after")
    def _parties_are_organizations(self) -> GoldDocument:
        names = {o.name for o in self.organizations}
        unknown = [p for p in self.parties if p not in names]
        if unknown:
            raise ValueError(f"parties {unknown} are not names of entries in organizations")
        return self


class GoldFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = Field(pattern=f"^{GOLD_FORMAT}$")
    documents: dict[str, GoldDocument]


@dataclass
class Counts:
    """True positives, false positives and false negatives of one matched list."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None


@dataclass
class DocumentScore:
    """How one output did against its gold document."""

    stem: str
    output: str
    organizations: Counts
    parties: Counts
    people: Counts
    agreement: bool
    date: bool | None  # None: gold has no agreement, so there is no date to get right
    language: bool
    missed: list[str]
    extra: list[str]
    trust: DocumentTrust


def load_gold(path: Path) -> GoldFile:
    """Read and validate a gold file; problems are configuration errors (exit 2)."""
    try:
        data = read_json_file(path)  # the same limits as output files: size, encoding, nesting
    except ValueError as exc:
        raise ConfigError(f"gold file {path}: {exc}") from exc
    try:
        return GoldFile.model_validate(data)
    except ValidationError as exc:
        from .pipeline import describe_validation_error

        raise ConfigError(f"gold file {path} does not follow the format in summarizer/evaluate.py:\n"
                          f"{describe_validation_error(exc)}") from exc


def match_names(outputs: list[set[str]], gold: list[GoldName]) -> tuple[Counts, list[int], list[int]]:
    """Match output key sets to gold entries one to one; (counts, unmatched gold, unmatched outputs)."""
    taken: set[int] = set()
    extra: list[int] = []
    for i, keys in enumerate(outputs):
        hit = next((j for j, g in enumerate(gold) if j not in taken and keys & g.keys()), None)
        if hit is None and any(keys & g.keys() for g in gold if g.optional):
            continue  # a second mention of an optional entry: not wrong either
        if hit is None:
            extra.append(i)
        else:
            taken.add(hit)
    optional_hits = sum(1 for j in taken if gold[j].optional)
    missed = [j for j, g in enumerate(gold) if j not in taken and not g.optional]
    return Counts(len(taken) - optional_hits, len(extra), len(missed)), missed, extra


def _date(signed: Any) -> tuple[Any, Any, Any]:
    signed = signed if isinstance(signed, dict) else {}
    return signed.get("year"), signed.get("month"), signed.get("day")


def _items(value: Any) -> list[Any]:
    # Results read as plain JSON (no built-in schema validated them) may hold any shape.
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return str(value) if isinstance(value, (str, int, float)) else ""


def score_document(stem: str, gold: GoldDocument, doc: OutputDocument, status: str | None = None) -> DocumentScore:
    """Score one output (validated or plain JSON) against its gold entry; `status`: its run's status, if known."""
    result = doc.result
    orgs = [o for o in _items(result.get("organizations")) if isinstance(o, dict)]
    org_keys = [{alias_key(_text(o.get(k))) for k in ("name", "name_original")} - {""} for o in orgs]
    org_counts, missed, extra = match_names(org_keys, gold.organizations)
    agreement = result.get("agreement") if isinstance(result.get("agreement"), dict) else None
    # A party is an English organization name: it also answers to that organization's name_original.
    by_name = {alias_key(_text(o.get("name"))): keys for o, keys in zip(orgs, org_keys)}
    party_keys = [by_name.get(alias_key(_text(p)), {alias_key(_text(p))})
                  for p in _items((agreement or {}).get("parties"))]
    gold_parties = [g for g in gold.organizations if g.name in gold.parties]
    party_counts, _, _ = match_names(party_keys, [g.model_copy(update={"optional": False}) for g in gold_parties])
    people_keys = [{alias_key(_text(p.get(k))) for k in ("name", "name_original")} - {""}
                   for p in _items(result.get("people")) if isinstance(p, dict)]
    people_counts, _, _ = match_names(people_keys, gold.people)
    people_counts.fp = 0  # people are scored by recall only: extra names are not hand-checked
    gold_date = _date(gold.agreement_date.model_dump() if gold.agreement_date else None)
    return DocumentScore(
        stem=stem, output=str(doc.path),
        organizations=org_counts, parties=party_counts, people=people_counts,
        agreement=(agreement is not None) == gold.has_agreement,
        date=(_date((agreement or {}).get("signed_on")) == gold_date) if gold.has_agreement else None,
        language=_text(result.get("source_language")).lower() == gold.source_language,
        missed=[gold.organizations[j].name for j in missed],
        extra=[_text(orgs[i].get("name")) for i in extra],
        trust=document_trust(doc, status),
    )


def _stem(doc: OutputDocument, known: dict[str, GoldDocument]) -> str | None:
    # The source file's stem first: output names can carry a suffix when two inputs share a name.
    return next((stem for stem in (Path(doc.label).stem, doc.path.stem) if stem in known), None)


def _share(hits: list[bool | None]) -> tuple[float | None, int]:
    scored = [h for h in hits if h is not None]
    return (sum(scored) / len(scored) if scored else None), len(scored)


def overall(scores: list[DocumentScore]) -> list[tuple[str, float | None, int]]:
    """(metric, score, how many items it is over): micro-averaged lists, accuracy for the rest."""
    orgs = sum((s.organizations for s in scores), Counts())
    parties = sum((s.parties for s in scores), Counts())
    people = sum((s.people for s in scores), Counts())
    return [
        ("organizations precision", orgs.precision, orgs.tp + orgs.fp),
        ("organizations recall", orgs.recall, orgs.tp + orgs.fn),
        ("parties precision", parties.precision, parties.tp + parties.fp),
        ("parties recall", parties.recall, parties.tp + parties.fn),
        ("agreement yes/no", *_share([s.agreement for s in scores])),
        ("signing date exact", *_share([s.date for s in scores])),
        ("source language", *_share([s.language for s in scores])),
        ("people recall", people.recall, people.tp + people.fn),
    ]


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _mark(ok: bool | None) -> str:
    return "—" if ok is None else "yes" if ok else "NO"


def run_eval(gold: Path, outputs: list[str], schema: str | None = None) -> bool:
    """The `eval` command: score every output that has a gold entry; True when some file failed."""
    from rich import box
    from rich.table import Table

    from .render import make_console, safe

    gold_file = load_gold(gold)
    loaded = load_outputs(outputs, schema)
    print_loading(loaded, sys.stderr)
    problems = loaded.problems
    err = make_console(sys.stderr)
    statuses = RunStatuses(find_manifests(outputs))
    scores = []
    for doc in loaded.documents:
        stem = _stem(doc, gold_file.documents)
        if stem is None:
            err.print(safe(f"{doc.path}: no gold entry for this document; not scored"), style="yellow")
            continue
        scores.append(score_document(stem, gold_file.documents[stem], doc, statuses.status_of(doc)))
    if not scores:
        raise ConfigError(f"no output matches a document of {gold} (outputs are matched by file stem)")
    unscored = sorted(set(gold_file.documents) - {s.stem for s in scores})
    if unscored:
        err.print(safe(f"{len(unscored)} gold document(s) have no output: {', '.join(unscored)}"), style="yellow")
    # Short headers: the per-document table fits 80 columns; what was missed gets its own table.
    table = Table(title="Per document", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  collapse_padding=True)
    table.add_column("Document", no_wrap=True)
    for column in ("Org P", "Org R", "Pty P", "Pty R", "Agr", "Date", "Lang", "Ppl R", "Inv"):
        table.add_column(column, no_wrap=True)
    table.caption = ("P precision, R recall; Org organizations, Pty parties, Ppl people, Agr agreement yes/no, "
                     "Inv inventions (verbatim values not in the source; ! not flagged)")
    misses = Table(title="Missed and extra organizations", title_justify="left", box=box.SIMPLE_HEAD,
                   show_edge=False)
    for column in ("Document", "Missed", "Extra"):
        misses.add_column(column, overflow="fold")
    for s in sorted(scores, key=lambda s: (s.stem, s.output)):
        table.add_row(*(safe(v) for v in (
            s.stem, _fmt(s.organizations.precision), _fmt(s.organizations.recall), _fmt(s.parties.precision),
            _fmt(s.parties.recall), _mark(s.agreement), _mark(s.date), _mark(s.language), _fmt(s.people.recall),
            str(s.trust.inventions) + ("!" if s.trust.inventions and not s.trust.flagged else ""))))
        if s.missed or s.extra:
            misses.add_row(safe(s.stem), safe(s.missed or None), safe(s.extra or None))
    summary = Table(title=f"Overall ({len(scores)} document(s))", title_justify="left", box=box.SIMPLE_HEAD,
                    show_edge=False)
    for column in ("Metric", "Score", "Over"):
        summary.add_column(column)
    for name, value, n in overall(scores):
        summary.add_row(safe(name), safe(_fmt(value)), safe(n))
    trust = Table(title="Trust", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("Metric", "Count", "Of", "Share"):
        trust.add_column(column)
    for name, count, total in trust_totals(s.trust for s in scores).rows():
        trust.add_row(safe(name), safe(count), safe(total), safe(_fmt(count / total if total else None)))
    unknown = sum(1 for s in scores if s.trust.status is None)
    if unknown:
        err.print(safe(f"{unknown} scored document(s) have no run status (no run-*.jsonl manifest among the outputs "
                       "names them): status matches checks leaves them out"), style="yellow")
    out = make_console(sys.stdout)
    out.print(table)
    if misses.rows:
        out.print(misses)
    out.print(summary)
    out.print(trust)
    return bool(problems)
