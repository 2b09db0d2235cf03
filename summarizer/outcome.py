"""What happened to each document (Status, Outcome) and to a whole run (RunReport)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .usage import Usage
from .inputs import InputItem, display_path


class Status(StrEnum):
    """A document's status, as written in the manifest, --jsonl and reports."""

    OK = "ok"  # valid, and its facts are supported by the source (or not checkable)
    CACHED = "cached"  # as ok, served from the cache
    FLAGGED = "flagged"  # valid, but the grounding checks found facts the source does not support
    INVALID = "invalid"
    REFUSED = "refused"
    TRUNCATED = "truncated"
    FAILED = "failed"
    DEFERRED = "deferred"
    EMPTY = "empty"
    NOT_TEXT = "not_text"
    TOO_LARGE = "too_large"
    NO_TEXT_LAYER = "no_text_layer"  # a scanned PDF: it needs OCR first
    ENCRYPTED = "encrypted"
    CONVERTER_MISSING = "converter_missing"
    NOT_STARTED = "not_started"  # the run stopped before this document started: not recorded
    PENDING = "pending"  # batch mode: waits for a batch answer; not recorded until it ends


OK_STATUSES = frozenset({Status.OK, Status.CACHED})
# Statuses --retry-failed picks up again.
RETRY_STATUSES = frozenset({Status.INVALID, Status.REFUSED, Status.TRUNCATED, Status.FAILED, Status.DEFERRED})
MANIFEST_RAW_LIMIT = 20_000


@dataclass
class Outcome:
    """What happened to one document."""

    item: InputItem
    status: str
    seconds: float = 0.0
    usage: Usage = field(default_factory=Usage)
    output_path: Path | None = None
    envelope: dict[str, Any] | None = None
    error: str | None = None
    error_class: str | None = None
    raw: str | None = None
    cached: bool = False
    stop: type[BaseException] | None = None  # set when nothing new may start (auth, quota, disk)
    # The error itself, for the Python API to raise; never sent between processes.
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def manifest_entry(self) -> dict[str, Any]:
        """The manifest line of this document (paths made printable: names may not be UTF-8)."""
        entry: dict[str, Any] = {
            "index": self.item.index,
            "path": display_path(self.item.path),
            "relative": display_path(self.item.relative.as_posix()),
            "status": str(self.status),
            "seconds": round(self.seconds, 3),
            "usage": self.usage.as_dict(),
        }
        if self.cached:
            entry["cached"] = True
        if self.output_path is not None:
            entry["output"] = display_path(str(self.output_path))
        if self.error:
            entry["error"] = self.error
            entry["error_class"] = self.error_class
        if self.raw is not None:
            entry["raw"] = self.raw[:MANIFEST_RAW_LIMIT]
        return entry


@dataclass
class RunReport:
    """Totals of a run, for the summary table and the exit code."""

    counts: dict[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # path, status, reason
    pending: int = 0  # batch mode: documents waiting for a batch answer (not in counts)
    stopped: str | None = None
    stop: type[BaseException] | None = None
    seconds: float = 0.0
    manifest: Path | None = None
    # index -> (status, output file) for --jsonl: plain strings, the smallest per-document record.
    statuses: dict[int, tuple[str, str | None]] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        status = str(outcome.status)
        self.counts[status] = self.counts.get(status, 0) + 1
        self.usage += outcome.usage
        output = str(outcome.output_path) if outcome.output_path is not None else None
        self.statuses[outcome.item.index] = (sys.intern(status), output)
        if outcome.seconds and not outcome.cached:
            path = display_path(outcome.item.path)
            self.slowest = sorted([*self.slowest, (outcome.seconds, path)], reverse=True)[:5]
        if status not in OK_STATUSES and len(self.failures) < 50:
            self.failures.append((display_path(outcome.item.path), status, outcome.error or ""))

    @property
    def failed(self) -> int:
        """Documents that are not ok (flagged ones included)."""
        return sum(n for status, n in self.counts.items() if status not in OK_STATUSES)

    @property
    def flagged(self) -> int:
        return self.counts.get(Status.FLAGGED, 0)
