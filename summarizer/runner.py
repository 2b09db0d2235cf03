"""A run: documents in, one validated output file (or a clear status) out per document.

Streams its inputs through a bounded pool of workers, caches and writes each result the moment it
is done, records every status in the run manifest, and stops cleanly on auth, quota or budget.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from .artifacts import PromptSpec, SchemaSpec
from .backends.base import Backend, Completion, CompletionRequest, Usage
from .cache import Cache, cache_key
from .chunking import extract_document
from .documents import Document, load_document
from .errors import InputError, NotStarted, RateLimited, RunStopper, SummarizerError
from .inputs import STDIN, InputItem
from .settings import Settings
from .store import Manifest, OutputPaths, write_json

if TYPE_CHECKING:
    from .workers import WorkerPool

OK_STATUSES = frozenset({"ok", "cached"})
# A document a worker process skipped because the run had stopped: not recorded anywhere.
NOT_STARTED = "not_started"
# Envelope keys that say when and how this run produced a result, not what the result is.
_RUN_STAMPS = frozenset({"created_at", "cached", "usage"})
# Statuses --retry-failed picks up again.
RETRY_STATUSES = frozenset({"invalid", "refused", "truncated", "failed", "deferred"})

Checker = Callable[[BaseModel, Document], dict[str, Any]]


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
    stops_run: bool = False  # an auth or quota failure: nothing new may start

    def manifest_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "index": self.item.index,
            "path": self.item.path,
            "relative": self.item.relative.as_posix(),
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "usage": self.usage.as_dict(),
        }
        if self.output_path is not None:
            entry["output"] = str(self.output_path)
        if self.error:
            entry["error"] = self.error
            entry["error_class"] = self.error_class
        if self.raw is not None:
            entry["raw"] = self.raw[:20_000]
        return entry


class Observer(Protocol):
    """Where a run reports progress; the CLI implements it (progress bar, tables)."""

    def on_start(self, total: int) -> None: ...

    def on_outcome(self, outcome: Outcome) -> None: ...

    def warn(self, message: str) -> None: ...


class SilentObserver:
    """An observer that ignores everything (library use, tests)."""

    def on_start(self, total: int) -> None:
        pass

    def on_outcome(self, outcome: Outcome) -> None:
        pass

    def warn(self, message: str) -> None:
        pass


@dataclass
class RunReport:
    """Totals of a run, for the summary table and the exit code."""

    counts: dict[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # path, status, reason
    stopped: str | None = None
    stop_class: str | None = None
    seconds: float = 0.0
    manifest: Path | None = None
    # index -> (status, output file) for --jsonl: plain strings, the smallest per-document record.
    statuses: dict[int, tuple[str, str | None]] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        self.usage += outcome.usage
        output = str(outcome.output_path) if outcome.output_path is not None else None
        self.statuses[outcome.item.index] = (sys.intern(outcome.status), output)
        if outcome.seconds and outcome.status not in ("cached",):
            self.slowest = sorted([*self.slowest, (outcome.seconds, outcome.item.path)], reverse=True)[:5]
        if outcome.status not in OK_STATUSES:
            if len(self.failures) < 50:
                self.failures.append((outcome.item.path, outcome.status, outcome.error or ""))

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.counts.items() if status not in OK_STATUSES)


@dataclass(frozen=True)
class RunSpec:
    """The fixed parts of a run: settings, schema, prompt and the parts of every cache key."""

    settings: Settings
    schema: SchemaSpec
    prompt: PromptSpec
    backend_name: str

    def key_parts(self, backend: Backend) -> dict[str, Any]:
        s = self.settings
        return {
            "schema": [self.schema.id, self.schema.version, self.schema.sha256],
            "prompt": [self.prompt.id, self.prompt.version, self.prompt.sha256],
            "model": backend.model,
            "base_url": backend.base_url,
            "backend": self.backend_name,
            "params": {"temperature": s.temperature, "max_tokens": s.resolved_max_tokens, "mode": s.mode,
                       "max_chunk_chars": s.max_chunk_chars, "strict": s.strict},
        }


def document_slots(request_slots: int) -> int:
    """Documents in progress for this many requests in flight: a few more, so that reading,
    checking and writing documents never leaves a request slot idle."""
    return request_slots + max(2, request_slots // 4)


class RequestGate:
    """The run's one door to the model: at most `slots` requests in flight, none once the run stops.

    Documents are read, checked and written outside the gate, so a request slot goes to the next
    document the moment an answer arrives; usage is counted per answer, so a budget holds even
    for documents still being finished.
    """

    def __init__(self, backend: Backend, slots: int, may_send: Callable[[], bool],
                 spend: Callable[[Usage], None]) -> None:
        self._backend, self._slots, self._may_send, self._spend = backend, slots, may_send, spend
        self._semaphore: asyncio.Semaphore | None = None
        self._refused = False  # a RunStopper came back: the next request would meet it too
        self.model, self.base_url = backend.model, backend.base_url

    async def complete(self, request: CompletionRequest) -> Completion:
        if self._semaphore is None:  # made inside the running loop it belongs to
            self._semaphore = asyncio.Semaphore(self._slots)
        async with self._semaphore:
            if self._refused or not self._may_send():
                raise NotStarted("the run has stopped")
            try:
                completion = await self._backend.complete(request)
            except RunStopper:
                self._refused = True  # before the slot is free, so that no waiting document sends
                raise
            self._spend(completion.usage)
            return completion

    async def aclose(self) -> None:
        await self._backend.aclose()


class Runner:
    """Processes documents concurrently; each finished one is cached, written and recorded."""

    def __init__(
        self,
        spec: RunSpec,
        backend: Backend,
        *,
        cache: Cache | None,
        manifest: Manifest | None,
        observer: Observer | None = None,
        checker: Checker | None = None,
        stdin_bytes: bytes | None = None,
        budget: Callable[[Usage], str | None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        pool: WorkerPool | None = None,
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.cache = cache
        self.manifest = manifest
        self.observer = observer or SilentObserver()
        self.checker = checker
        self.stdin_bytes = stdin_bytes
        self.budget = budget
        self._clock = clock
        self.pool = pool  # when set, worker processes do the per-document work
        self._key_base = spec.key_parts(backend)
        self._taken: dict[str, int] = {}  # output path -> the input that has it
        self._outputs = OutputPaths(spec.settings.out_dir)
        self.report = RunReport(manifest=manifest.path if manifest else None)
        self._spent = Usage()  # per answer, including documents not finished yet
        self.gate = RequestGate(backend, self.request_slots, self._may_send, self._add_spent)

    @property
    def request_slots(self) -> int:
        """Requests in flight at once: --concurrency (the embedded model: one)."""
        return 1 if self.spec.backend_name == "local" else self.spec.settings.concurrency

    @property
    def document_slots(self) -> int:
        """Documents in progress at once (for a server, a few more than requests in flight)."""
        return 1 if self.spec.backend_name == "local" else document_slots(self.request_slots)

    def _may_send(self) -> bool:
        return not self.report.stopped and not (self.budget is not None and self.budget(self._spent))

    def _add_spent(self, usage: Usage) -> None:
        self._spent += usage

    async def run(self, items: Iterable[InputItem], total: int) -> RunReport:
        """Process every item (workers pull from a bounded queue, so memory stays flat)."""
        start = self._clock()
        self.observer.on_start(total)
        concurrency = self.document_slots
        if self.pool is not None:
            # Workers keep a backlog as deep as their share of the run, so that none waits for
            # this process between two documents; each still has at most its share in flight.
            concurrency = self.request_slots * 2 + concurrency
        queue: asyncio.Queue[InputItem | None] = asyncio.Queue(maxsize=concurrency * 2)
        deferred: list[InputItem] = []

        async def produce() -> None:
            for item in items:
                if self.report.stopped:
                    break
                await queue.put(item)
            for _ in range(concurrency):
                await queue.put(None)

        async def work() -> None:
            while (item := await queue.get()) is not None:
                if self.report.stopped:
                    continue  # drain: nothing new starts after a stop
                outcome = await self._dispatch(item)
                if outcome.status == NOT_STARTED:
                    continue
                if outcome.status == "deferred":
                    deferred.append(item)
                    continue
                self._finish(outcome)

        await asyncio.gather(produce(), *(work() for _ in range(concurrency)))
        # Documents deferred by a long Retry-After get one more try, after the run-wide pause.
        for item in deferred:
            if self.report.stopped:
                break
            outcome = await self._dispatch(item, final=True)
            if outcome.status != NOT_STARTED:
                self._finish(outcome)
        self.report.seconds = self._clock() - start
        return self.report

    async def _dispatch(self, item: InputItem, final: bool = False) -> Outcome:
        # Output names are settled here, in one process, so that clashing names stay apart.
        path = None if item.problem else self._output_path(item)
        if self.pool is not None:
            outcome = await self.pool.process(item, final, path)
        else:
            outcome = await self.process(item, final, path)
        if outcome.stops_run and not self.report.stopped:
            self._stop(outcome.error or "stopped", outcome.error_class)
        return outcome

    def _stop(self, reason: str, stop_class: str | None) -> None:
        self.report.stopped, self.report.stop_class = reason, stop_class
        if self.pool is not None:
            self.pool.stop()  # documents waiting in the workers' backlogs are not started

    def _finish(self, outcome: Outcome) -> None:
        self.report.add(outcome)
        if self.manifest is not None:
            self.manifest.record(outcome.manifest_entry())
        try:
            self.observer.on_outcome(outcome)
        except Exception as exc:  # a display problem must not abort the run or lose documents
            self.observer.warn(f"could not display {outcome.item.path}: {type(exc).__name__}: {exc}")
        if self.budget is not None and not self.report.stopped:
            reason = self.budget(self.report.usage)
            if reason:
                self._stop(f"{reason}; finished documents are kept, re-run to continue", "BudgetReached")

    async def process(self, item: InputItem, final: bool = False, path: Path | None = None) -> Outcome:
        """One document from bytes to the output file at `path`; every failure becomes a status."""
        started = self._clock()
        usage = Usage()
        try:
            document = self._load(item)
            key = cache_key({**self._key_base, "text": document.text_sha256})
            entry = self.cache.get(key) if self.cache is not None else None
            cached = entry is not None
            checks: dict[str, Any] | None = None
            if entry is None:
                entry, usage, result = await self._extract(document)
                checks = self._check(entry, document, result)
                if self.cache is not None:
                    self.cache.put(key, entry)
            if checks is None:  # cached: checks are redone when the checks or the day changed
                checks = self._check(entry, document)
            envelope = self._envelope(document, entry, cached, usage, checks)
            path = path or self._output_path(item)
            if cached:
                # Nothing waits on the loop meanwhile, so no thread; an output that already says
                # the same (an earlier run's, but for when and whether it came from the cache) stays.
                write_json(path, envelope, keep_if_same_but=_RUN_STAMPS)
            else:
                # Creating a file can block on the filesystem journal; other documents' requests
                # are in flight on this loop, so the write goes to a thread.
                await asyncio.to_thread(write_json, path, envelope)
            return Outcome(item, "cached" if cached else "ok", self._clock() - started, usage, path, envelope)
        except NotStarted:
            return Outcome(item, NOT_STARTED, self._clock() - started, usage)
        except RateLimited as exc:
            if not final and (exc.retry_after or 0) > self.spec.settings.max_retry_wait:
                return Outcome(item, "deferred", self._clock() - started, usage, error=str(exc))
            return self._failed(item, exc, started, usage)
        except RunStopper as exc:
            outcome = self._failed(item, exc, started, usage)
            outcome.stops_run = True
            return outcome
        except SummarizerError as exc:
            return self._failed(item, exc, started, usage)
        except OSError as exc:
            reason = f"{item.path}: cannot read ({exc.strerror or exc})"
            return Outcome(item, "failed", self._clock() - started, usage, error=reason, error_class="OSError")

    def _failed(self, item: InputItem, exc: SummarizerError, started: float, usage: Usage) -> Outcome:
        spent = getattr(exc, "usage", None)  # what the failed attempts cost still counts for budgets
        return Outcome(
            item, exc.status, self._clock() - started, spent if isinstance(spent, Usage) else usage,
            error=str(exc), error_class=type(exc).__name__, raw=getattr(exc, "raw", None),
        )

    def _load(self, item: InputItem) -> Document:
        if item.problem:
            raise InputError(f"{item.path}: {item.problem}")
        if item.path == STDIN:
            data = self.stdin_bytes if self.stdin_bytes is not None else sys.stdin.buffer.read()
        else:
            data = Path(item.path).read_bytes()
        return load_document(item.path, data)

    async def _extract(self, document: Document) -> tuple[dict[str, Any], Usage, BaseModel]:
        s = self.spec.settings
        checker = self.checker
        strict_check = None
        if s.strict and checker is not None:
            from .checks import failures

            strict_check = lambda result: failures(checker(result, document))  # noqa: E731
        extraction = await extract_document(
            document.text, self.spec.schema, self.spec.prompt, self.gate,
            max_reasks=s.max_reasks, max_tokens=s.resolved_max_tokens, temperature=s.temperature,
            max_chunk_chars=s.max_chunk_chars, check=strict_check,
        )
        entry = {
            "result": extraction.result.model_dump(mode="json"),
            "usage": extraction.usage.as_dict(),
            "attempts": extraction.attempts,
            "mode": extraction.mode,
            "chunks": extraction.chunks,
        }
        return entry, extraction.usage, extraction.result

    def _check(self, entry: dict[str, Any], document: Document, result: BaseModel | None = None) -> dict[str, Any]:
        """Checks of a result; a cached entry's are reused only if made today by these checks."""
        if self.checker is None:
            return {}
        from .checks import CHECKS_VERSION

        stamp = {"version": CHECKS_VERSION, "on": date.today().isoformat()}
        stored = entry.get("checks")
        if isinstance(stored, dict) and stored.get("stamp") == stamp:
            return stored["result"]
        if result is None:  # a cached entry: validated when it was stored, validated again to check it
            result = self.spec.schema.model.model_validate(entry["result"])
        checked = self.checker(result, document)
        entry["checks"] = {"stamp": stamp, "result": checked}
        return checked

    def _envelope(self, document: Document, entry: dict[str, Any], cached: bool, usage: Usage,
                  checks: dict[str, Any]) -> dict[str, Any]:
        spec = self.spec
        return {
            "document": {
                "path": document.path, "sha256": document.sha256, "chars": document.chars,
                "encoding": document.encoding, "format": document.format, "chunks": entry.get("chunks", 1),
            },
            "schema": {"id": spec.schema.id, "version": spec.schema.version, "ref": spec.settings.schema,
                       "traits": spec.schema.traits.as_dict()},
            "prompt": {"id": spec.prompt.id, "version": spec.prompt.version, "sha256": spec.prompt.sha256},
            "model": {"name": self.backend.model, "base_url": self.backend.base_url,
                      "backend": spec.backend_name, "mode": entry.get("mode")},
            "usage": entry["usage"] if not cached else {**entry["usage"], "this_run": usage.as_dict()},
            "attempts": entry["attempts"],
            "cached": cached,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "checks": checks,
            "result": entry["result"],
        }

    def _output_path(self, item: InputItem) -> Path:
        path = self._outputs.for_input(item.relative)
        owner = self._taken.setdefault(str(path), item.index)
        if owner != item.index:  # two inputs with one name (a/x.txt, b/x.txt given as files)
            digest = hashlib.sha256(item.path.encode()).hexdigest()[:8]
            path = self._outputs.for_input(PurePath(item.relative.with_name(
                f"{item.relative.stem}-{digest}{item.relative.suffix}")))
        return path
