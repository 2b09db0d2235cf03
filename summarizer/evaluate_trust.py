"""Trust metrics of `eval`: inventions, how many of them were flagged, and whether statuses match checks.

- An invention is a verbatim value the source does not have: an entry of the output's
  `checks.evidence` whose `anchor` is null (outputs written before evidence: `checks.unsupported`).
- An invention is flagged when its document's `checks.passed` is false (the run's status `flagged`).
- A document's status matches its checks when it is `flagged` exactly when `checks.passed` is
  false. The status comes from the run manifests (`run-*.jsonl`) in the folders given to `eval`
  (the latest run that names the output wins); documents no manifest names are left out of this one.

Everything is read as data: manifests line by line, within a size limit, anything malformed skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .report_load import MAX_OUTPUT_BYTES, OutputDocument

MANIFEST = "run-*.jsonl"


@dataclass(frozen=True)
class DocumentTrust:
    """What one output says about its own support, and the status its run gave it (None: unknown)."""

    verbatim: int  # verbatim values the checks compared with the source
    inventions: int  # of them, not found in the source
    passed: bool | None  # checks.passed
    status: str | None

    @property
    def flagged(self) -> bool:
        return self.passed is False

    @property
    def status_matches(self) -> bool | None:
        """True when the status is `flagged` exactly when the checks failed; None without a status."""
        return None if self.status is None else (self.status == "flagged") == self.flagged


def document_trust(doc: OutputDocument, status: str | None) -> DocumentTrust:
    """Count one output's verbatim values and inventions from its checks."""
    checks = doc.checks
    evidence = checks.get("evidence")
    if isinstance(evidence, list):
        items = [e for e in evidence if isinstance(e, dict)]
        verbatim, inventions = len(items), sum(1 for e in items if e.get("anchor") is None)
    else:  # written before outputs carried evidence: only the unsupported values are known
        unsupported = checks.get("unsupported")
        verbatim = inventions = len(unsupported) if isinstance(unsupported, list) else 0
    passed = checks.get("passed")
    return DocumentTrust(verbatim, inventions, passed if isinstance(passed, bool) else None, status)


def find_manifests(outputs: Iterable[str]) -> list[Path]:
    """Run manifests among the given paths (folders searched recursively), oldest first."""
    found: list[Path] = []
    for raw in outputs:
        path = Path(raw)
        if path.is_dir():
            for folder, dirs, names in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [Path(folder) / n for n in names if Path(n).match(MANIFEST)]
        elif path.match(MANIFEST) and path.is_file():
            found.append(path)

    def age(p: Path) -> tuple[float, str]:
        try:
            return p.stat().st_mtime, p.name
        except OSError:
            return 0.0, p.name

    return sorted(dict.fromkeys(found), key=age)


def _entries(path: Path) -> list[dict[str, Any]]:
    try:
        if not path.is_file() or path.stat().st_size > MAX_OUTPUT_BYTES:
            return []
        lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue  # a torn last line (kill -9) or not JSON: skipped
        if isinstance(entry, dict) and isinstance(entry.get("status"), str):
            entries.append(entry)
    return entries


class RunStatuses:
    """The latest status each run manifest gave an output: by its output file, else by its input path."""

    def __init__(self, manifests: Iterable[Path]) -> None:
        self.by_output: dict[Path, str] = {}
        self.by_input: dict[str, str] = {}
        for manifest in manifests:
            for entry in _entries(manifest):
                status = entry["status"]
                if isinstance(entry.get("output"), str):
                    output = Path(entry["output"])
                    # Written relative to where that run ran, which eval does not know: the manifest
                    # lies in the run's --out folder, so try each tail of the path below it too.
                    tails = [manifest.parent.joinpath(*output.parts[i:]) for i in range(1, len(output.parts))]
                    for candidate in (output, *tails):
                        self.by_output[_resolved(candidate)] = status
                if isinstance(entry.get("path"), str):
                    self.by_input[entry["path"]] = status

    def status_of(self, doc: OutputDocument) -> str | None:
        """The document's status in the latest run that names it, or None."""
        return self.by_output.get(_resolved(doc.path)) or self.by_input.get(doc.label)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


@dataclass(frozen=True)
class TrustTotals:
    """The trust metrics over a set of documents."""

    verbatim: int
    inventions: int
    flagged_inventions: int
    with_status: int
    status_matches: int

    def rows(self) -> list[tuple[str, int, int]]:
        """(metric, count, out of how many) for the table `eval` prints."""
        return [("inventions (verbatim values not in the source)", self.inventions, self.verbatim),
                ("inventions flagged (their document is flagged)", self.flagged_inventions, self.inventions),
                ("status matches checks (flagged iff checks failed)", self.status_matches, self.with_status)]


def trust_totals(documents: Iterable[DocumentTrust]) -> TrustTotals:
    """Sum the trust of each document."""
    docs = list(documents)
    return TrustTotals(
        verbatim=sum(d.verbatim for d in docs), inventions=sum(d.inventions for d in docs),
        flagged_inventions=sum(d.inventions for d in docs if d.flagged),
        with_status=sum(1 for d in docs if d.status_matches is not None),
        status_matches=sum(1 for d in docs if d.status_matches))
