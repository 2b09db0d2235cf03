"""The `report` command: load output documents, validate them, and aggregate them across documents.

Loading: files as given, folders walked recursively for *.json (hidden files and run-*.jsonl
manifests skipped). Each envelope's result is validated against the schema named by its
"schema.id"; a file that fails is reported on stderr and left out, and the command exits 1 at the
end. The writers for each format live in report_formats.py.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .artifacts import SchemaSpec, load_schema
from .checks import normalize, unsupported_sentence
from .errors import ConfigError

EXIT_OK, EXIT_FAILED = 0, 1


@dataclass(frozen=True)
class OutputDocument:
    """One valid output file: its envelope, and the result as its schema validated it."""

    path: Path
    envelope: dict[str, Any]
    result: dict[str, Any]

    @property
    def label(self) -> str:
        """How the report names the document: its source path, else the output file."""
        source = _dict(self.envelope.get("document")).get("path")
        return str(source) if source else str(self.path)

    @property
    def checks(self) -> dict[str, Any]:
        return _dict(self.envelope.get("checks"))


@dataclass
class OrganizationGroup:
    """One organization across documents, under every spelling it was given."""

    name: str
    spellings: list[str]
    mentions: list[tuple[str, str, str, str]]  # document, role, type, country

    @property
    def documents(self) -> list[str]:
        return list(dict.fromkeys(m[0] for m in self.mentions))


@dataclass
class Report:
    """Everything a report shows, computed once, written by any format."""

    documents: list[OutputDocument]
    overview: list[dict[str, Any]] = field(default_factory=list)
    organizations: list[OrganizationGroup] = field(default_factory=list)
    areas: list[tuple[str, int]] = field(default_factory=list)
    topics: list[tuple[str, int]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    unsupported: list[tuple[str, str, str]] = field(default_factory=list)  # document, field, value
    failed_checks: list[tuple[str, str]] = field(default_factory=list)  # document, failure (besides unsupported)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def find_output_files(outputs: Iterable[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Output files to read, in a stable order, and paths that could not be used (with why)."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for raw in outputs:
        path = Path(raw)
        if path.is_dir():
            # os.walk without followlinks: a symlinked folder cannot loop the walk.
            for folder, dirs, names in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files += [Path(folder) / n for n in sorted(names) if n.endswith(".json") and not n.startswith(".")]
        elif path.name.startswith("run-") and path.name.endswith(".jsonl"):
            continue  # a run manifest, not an output document
        elif path.exists():
            files.append(path)
        else:
            problems.append((path, "no such file or folder"))
    return list(dict.fromkeys(files)), problems


def load_output(path: Path, schemas: dict[str, SchemaSpec]) -> OutputDocument:
    """Read and validate one output file; raises ValueError with a readable reason."""
    try:
        envelope = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError("not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    schema_id = _dict(_dict(envelope).get("schema")).get("id")
    if not isinstance(schema_id, str) or not isinstance(_dict(envelope).get("result"), dict):
        raise ValueError("not a summarizer output document (needs 'schema.id' and a 'result' object)")
    # "ref" is what --schema named (a built-in name or path/to/file.py:Model); older files lack it.
    ref = _dict(envelope.get("schema")).get("ref")
    ref = ref if isinstance(ref, str) else schema_id
    if ref not in schemas:
        try:
            schemas[ref] = load_schema(ref)
        except ConfigError as exc:
            raise ValueError(f"schema {ref!r} cannot be loaded: {exc}") from exc
    spec = schemas[ref]
    try:
        result = spec.model.model_validate(envelope["result"])
    except ValidationError as exc:
        from .pipeline import describe_validation_error

        written = _dict(envelope.get("schema")).get("version")
        note = f" (written with schema version {written}, this is {spec.version})" if written != spec.version else ""
        raise ValueError(f"result does not match schema {schema_id!r}{note}:\n"
                         f"{describe_validation_error(exc)}") from exc
    return OutputDocument(path, envelope, result.model_dump(mode="json"))


def load_outputs(outputs: Iterable[str]) -> tuple[list[OutputDocument], list[tuple[Path, str]]]:
    """Every valid output document, and (path, reason) for every file that is not one."""
    files, problems = find_output_files(outputs)
    schemas: dict[str, SchemaSpec] = {}  # per call: each schema is loaded once
    documents: list[OutputDocument] = []
    for path in files:
        try:
            documents.append(load_output(path, schemas))
        except ValueError as exc:
            problems.append((path, str(exc)))
    return documents, problems


def format_date(signed: Any) -> str:
    """2022-06-22, 2022-06, 2022, ????-02-25, or '' when nothing is known."""
    signed = _dict(signed)
    year, month, day = (signed.get(k) if isinstance(signed.get(k), int) else None for k in ("year", "month", "day"))
    if year is None and month is None:
        return ""
    parts = [f"{year:04d}" if year is not None else "????"]
    if month is not None:
        parts.append(f"{month:02d}")
        if day is not None:
            parts.append(f"{day:02d}")
    return "-".join(parts)


def _date_key(signed: Any) -> tuple[bool, int, bool, int, bool, int]:
    # Unknown parts sort after known ones: unknown years last, no date at all at the very end.
    signed = _dict(signed)
    year, month, day = (signed.get(k) if isinstance(signed.get(k), int) else None for k in ("year", "month", "day"))
    return (year is None, year or 0, month is None, month or 0, day is None, day or 0)


def _names(items: Any, key: str = "name") -> list[str]:
    return [str(i.get(key)) for i in _list(items) if isinstance(i, dict) and i.get(key)]


def overview_row(doc: OutputDocument) -> dict[str, Any]:
    """The flat facts of one document (lists stay lists; the CSV writer joins them)."""
    result, checks = doc.result, doc.checks
    agreement = _dict(result.get("agreement"))
    signed = _dict(agreement.get("signed_on"))
    passed = checks.get("passed")
    return {
        "document": doc.label,
        "output": str(doc.path),
        "schema": str(_dict(doc.envelope.get("schema")).get("id", "")),
        "title": result.get("title") or "",
        "date": format_date(signed),
        "date_as_written": signed.get("as_written") or "",
        "agreement": agreement.get("kind") or "",
        "parties": [str(p) for p in _list(agreement.get("parties"))],
        "place": agreement.get("place") or "",
        "organizations": _names(result.get("organizations")),
        "people": _names(result.get("people")),
        "areas": [str(a) for a in _list(agreement.get("areas"))],
        "topics": [str(t) for t in _list(result.get("topics"))],
        "language": result.get("source_language") or "",
        "checks": "passed" if passed is True else "failed" if passed is False else "not run",
        "failures": len(_list(checks.get("failures"))),
        "unsupported": len(_list(checks.get("unsupported"))),
        "model": str(_dict(doc.envelope.get("model")).get("name") or ""),
        "created_at": str(doc.envelope.get("created_at") or ""),
    }


def alias_key(text: str) -> str:
    """Comparison key of a name: no case, punctuation, spaces or leading "the"."""
    # So "The University of Hong Kong" = "University of Hong Kong", "Co., Limited" = "Co. Limited".
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded).split()
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    return "".join(words)


def merge_organizations(documents: list[OutputDocument]) -> list[OrganizationGroup]:
    """Organizations across documents; mentions sharing any name or name_original are one."""
    mentions: list[tuple[str, dict[str, Any]]] = [
        (doc.label, org) for doc in documents for org in _list(doc.result.get("organizations")) if isinstance(org, dict)
    ]
    parent = list(range(len(mentions)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with_key: dict[str, int] = {}
    for i, (_, org) in enumerate(mentions):
        for spelling in (org.get("name"), org.get("name_original")):
            key = alias_key(str(spelling or ""))
            if not key:
                continue
            if key in first_with_key:
                parent[root(i)] = root(first_with_key[key])
            else:
                first_with_key[key] = i
    members: dict[int, list[int]] = {}
    for i in range(len(mentions)):
        members.setdefault(root(i), []).append(i)
    groups = []
    for indexes in members.values():
        orgs = [mentions[i][1] for i in indexes]
        # The most common English name (case and punctuation aside), as first spelled.
        names = Counter(alias_key(str(o.get("name"))) for o in orgs if o.get("name"))
        spellings = [str(s) for o in orgs for s in (o.get("name"), o.get("name_original")) if s]
        top = names.most_common(1)[0][0] if names else alias_key(spellings[0])
        groups.append(OrganizationGroup(
            name=next(s for s in spellings if alias_key(s) == top),
            spellings=list(dict.fromkeys(spellings)),
            mentions=[(mentions[i][0], str(o.get("role") or ""), str(o.get("type") or ""), str(o.get("country") or ""))
                      for i, o in zip(indexes, orgs)],
        ))
    return sorted(groups, key=lambda g: (-len(g.documents), g.name.casefold()))


def count_terms(documents: list[OutputDocument], terms: Callable[[dict[str, Any]], list[Any]]) -> list[tuple[str, int]]:
    """Documents per term (spellings folded together), most frequent first."""
    counts: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = {}
    for doc in documents:
        seen = {normalize(str(t)): str(t) for t in terms(doc.result) if str(t).strip()}
        for key, spelling in seen.items():
            counts[key] += 1
            spellings.setdefault(key, Counter())[spelling] += 1
    rows = [(spellings[key].most_common(1)[0][0], n) for key, n in counts.items()]
    return sorted(rows, key=lambda row: (-row[1], row[0].casefold()))


def build_timeline(documents: list[OutputDocument]) -> list[dict[str, Any]]:
    """Agreements by signing date; unknown years last."""
    entries = []
    for doc in documents:
        agreement = _dict(doc.result.get("agreement"))
        if not agreement:
            continue
        signed = agreement.get("signed_on")
        entries.append({
            "sort": _date_key(signed), "date": format_date(signed) or "unknown",
            "as_written": _dict(signed).get("as_written") or "", "kind": agreement.get("kind") or "",
            "parties": [str(p) for p in _list(agreement.get("parties"))], "place": agreement.get("place") or "",
            "document": doc.label,
        })
    entries.sort(key=lambda e: (e["sort"], e["document"]))
    return entries


def build_report(documents: list[OutputDocument]) -> Report:
    """Aggregate valid output documents into everything a report shows."""
    report = Report(documents=documents)
    report.overview = [overview_row(doc) for doc in documents]
    report.organizations = merge_organizations(documents)
    report.areas = count_terms(documents, lambda r: _list(_dict(r.get("agreement")).get("areas")))
    report.topics = count_terms(documents, lambda r: _list(r.get("topics")))
    report.timeline = build_timeline(documents)
    for doc in documents:
        listed = set()
        for item in _list(doc.checks.get("unsupported")):
            if isinstance(item, dict):
                report.unsupported.append((doc.label, str(item.get("field", "")), str(item.get("value", ""))))
                listed.add(unsupported_sentence(str(item.get("field", "")), str(item.get("value", ""))))
        report.failed_checks += [(doc.label, str(f)) for f in _list(doc.checks.get("failures")) if f not in listed]
    return report


def run_report(outputs: list[str], fmt: str | None, output: Path | None) -> int:
    """The `report` command: load, validate, aggregate, write; exit 1 if any file failed."""
    from .render import make_console, safe
    from .report_formats import render, terminal_renderable

    documents, problems = load_outputs(outputs)
    err = make_console(sys.stderr)
    for path, reason in problems:
        err.print(safe(f"{path}: {reason}"), style="red", soft_wrap=True)  # one line per file, greppable
    if not documents and not problems:
        raise ConfigError(f"no output documents (*.json) in {', '.join(outputs)}: run `summarizer summarize` first")
    report = build_report(documents)
    if output is None and fmt is None:
        make_console(sys.stdout).print(terminal_renderable(report))  # the terminal's own width
    elif output is None:
        sys.stdout.write(render(report, fmt))
    else:
        from .store import atomic_write_text

        try:
            atomic_write_text(output, render(report, fmt))
        except OSError as exc:
            raise ConfigError(f"cannot write the report to {output}: {exc.strerror or exc}") from exc
        err.print(safe(f"report of {len(documents)} document(s) written to {output}"))
    if problems:
        err.print(safe(f"{len(problems)} file(s) could not be read; the report leaves them out"), style="red")
    return EXIT_FAILED if problems else EXIT_OK
