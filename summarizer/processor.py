"""One document from bytes to its output file: load, cache, extract, check, envelope, write.

Every engine (in-process, worker processes) runs this same code per document; every failure of
one document, whatever raised it, becomes that document's status.
"""

from __future__ import annotations

import asyncio
import copy
import errno
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .artifacts import PromptSpec, SchemaSpec
from .backends.base import Backend, Capabilities, Completion, CompletionRequest
from .cache import Cache, cache_key
from .chunking import extract_document
from .documents import Document, load_document
from .documents.sniff import container
from .errors import (
    InputError,
    NotStarted,
    OutputUnwritable,
    RateLimited,
    RunStopper,
    SummarizerError,
    TooLarge,
)
from .inputs import STDIN, InputItem, display_path
from .outcome import Outcome, Status
from .settings import Settings
from .traits import iter_values, set_value
from .shared_store import ResultStore
from .store import write_json
from .usage import Usage

# Envelope keys that say when and how this run produced a result, not what the result is.
RUN_STAMPS = frozenset({"created_at", "cached", "usage"})
# Bytes read of one text file at most per allowed character (UTF-32 takes 4, markup more); a
# container (PDF, DOCX...) may be up to CONTAINER_CAP bytes, since its extraction caps the text.
BYTES_PER_CHAR = 8
CONTAINER_CAP = 512 * 1024 * 1024
OFF_LOOP_BYTES = 256 * 1024  # inputs larger than this are extracted in a thread, off the event loop
# Outputs carry the decoded text up to this size, so the evidence can be shown without the file.
TEXT_IN_OUTPUT_LIMIT = 200_000
# The detector's share of the text in its top language above which the language is a known fact.
CONFIDENT_LANGUAGE = 0.9

Checker = Callable[[BaseModel, Document], dict[str, Any]]


@dataclass(frozen=True)
class RunSpec:
    """The fixed parts of a run: settings, schema, prompt, what the backend can do, key parts."""

    settings: Settings
    schema: SchemaSpec
    prompt: PromptSpec
    backend_name: str
    capabilities: Capabilities
    max_tokens: int

    def key_parts(self, backend: Backend) -> dict[str, Any]:
        s = self.settings
        return {
            "schema": [self.schema.id, self.schema.version, self.schema.sha256],
            "prompt": [self.prompt.id, self.prompt.version, self.prompt.sha256],
            "model": backend.model,
            "base_url": backend.base_url,
            "backend": self.backend_name,
            "params": {"temperature": s.temperature, "max_tokens": self.max_tokens, "mode": s.mode,
                       "max_chunk_chars": s.max_chunk_chars, "strict": s.strict},
        }

    @property
    def request_slots(self) -> int:
        """Requests in flight at once: --concurrency, or one for a backend that does one at a time."""
        return self.settings.concurrency if self.capabilities.parallel_requests else 1


def document_slots(request_slots: int) -> int:
    """Documents in progress for this many requests in flight: a few more, so that reading,
    checking and writing documents never leaves a request slot idle."""
    if request_slots <= 1:
        return 1
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


class DocumentProcessor:
    """Turns one input item into an Outcome (and, when it succeeds, a cached, written output)."""

    def __init__(self, spec: RunSpec, backend: Backend, gate: RequestGate, *, cache: Cache | None,
                 checker: Checker | None, stdin_bytes: bytes | None = None,
                 clock: Callable[[], float] = time.perf_counter, store: ResultStore | None = None) -> None:
        self.spec, self.backend, self.gate, self.cache = spec, backend, gate, cache
        self.store = store  # the shared result store, behind the per-node cache
        self.checker, self.stdin_bytes, self._clock = checker, stdin_bytes, clock
        self._key_base = spec.key_parts(backend)
        self._traits = spec.schema.traits.as_dict()

    async def aclose(self) -> None:
        """Close the backend's client (or model) and the cache."""
        await self.backend.aclose()
        if self.cache is not None:
            self.cache.close()

    async def process(self, item: InputItem, final: bool, path: Path | None) -> Outcome:
        """One document from bytes to the output file at `path`; every failure becomes a status."""
        started = self._clock()
        try:
            return await self._process(item, path, started)
        except NotStarted:
            return Outcome(item, Status.NOT_STARTED, self._clock() - started)
        except RateLimited as exc:
            if not final and (exc.retry_after or 0) > self.spec.settings.max_retry_wait:
                return Outcome(item, Status.DEFERRED, self._clock() - started, error=str(exc))
            return self._failed(item, exc, started)
        except RunStopper as exc:
            outcome = self._failed(item, exc, started)
            outcome.stop = type(exc)
            return outcome
        except SummarizerError as exc:
            return self._failed(item, exc, started)
        except Exception as exc:  # a bug or an unforeseen answer: this document fails, the run goes on
            if os.environ.get("SUMMARIZER_DEBUG") == "1":
                import traceback

                traceback.print_exc(file=sys.stderr)
            reason = (f"internal error while processing {display_path(item.path)}: {type(exc).__name__}: "
                      f"{str(exc)[:500]} (please report it; SUMMARIZER_DEBUG=1 shows a traceback)")
            return Outcome(item, Status.FAILED, self._clock() - started, error=reason,
                           error_class=type(exc).__name__, exception=exc)

    async def _process(self, item: InputItem, path: Path | None, started: float) -> Outcome:
        document = await self._load(item)
        key = cache_key({**self._key_base, "text": document.text_sha256})
        entry = self._cache_get(key)
        if entry is None and self.store is not None:
            # Network or shared-disk I/O: in a thread, so that other documents' requests go on.
            entry = await asyncio.to_thread(self.store.get, key)
            if entry is not None:
                self._cache_put(key, entry)  # this node answers the next time without the store
        cached = entry is not None
        usage = Usage()
        checks: dict[str, Any] | None = None
        if entry is None:
            entry, usage, result = await self._extract(document, key)
            checks = self._check(entry, document, result)
            self._cache_put(key, entry)
            if self.store is not None:
                await asyncio.to_thread(self.store.put, key, entry)  # another writer's equal result may win
        if checks is None:  # cached: checks are redone when the checks or the day changed
            checks = self._check(entry, document)
        envelope = self._envelope(document, entry, cached, usage, checks)
        if path is None:
            pass  # the Python API: the result is returned, not written
        elif cached:
            write_output(path, envelope, cached)  # nothing waits on the loop meanwhile, so no thread
        else:
            # Creating a file can block on the filesystem journal; other documents' requests
            # are in flight on this loop, so the write goes to a thread.
            await asyncio.to_thread(write_output, path, envelope, cached)
        status = Status.FLAGGED if checks.get("passed") is False else Status.CACHED if cached else Status.OK
        error = "; ".join(str(f) for f in checks.get("failures", [])[:5]) if status == Status.FLAGGED else None
        return Outcome(item, status, self._clock() - started, usage, path, envelope, error=error,
                       error_class="Unsupported" if error else None, cached=cached)

    def _failed(self, item: InputItem, exc: SummarizerError, started: float) -> Outcome:
        spent = getattr(exc, "usage", None)  # what the failed attempts cost still counts for budgets
        return Outcome(item, exc.status, self._clock() - started, spent if isinstance(spent, Usage) else Usage(),
                       error=str(exc), error_class=type(exc).__name__, raw=getattr(exc, "raw", None), exception=exc)

    async def _load(self, item: InputItem) -> Document:
        if item.problem:
            raise InputError(f"{display_path(item.path)}: {item.problem}")
        limit = self.spec.settings.max_doc_chars
        if item.data is not None:
            data = item.data
        elif item.path == STDIN:
            data = self.stdin_bytes if self.stdin_bytes is not None else sys.stdin.buffer.read()
        else:
            try:
                if item.stream:
                    data = await asyncio.to_thread(read_capped, item.path, file_cap(limit), True)
                else:
                    data = read_capped(item.path, file_cap(limit))
            except OSError as exc:
                raise InputError(f"{display_path(item.path)}: cannot read ({exc.strerror or exc})") from exc
        if len(data) > OFF_LOOP_BYTES:  # a 1,000-page PDF takes seconds: other documents' requests go on
            return await asyncio.to_thread(document_from_bytes, item.path, data, limit)
        return document_from_bytes(item.path, data, limit)  # most documents: a thread would cost more

    def _cache_get(self, key: str) -> dict[str, Any] | None:
        return self.cache.get(key) if self.cache is not None else None

    def _cache_put(self, key: str, entry: dict[str, Any]) -> None:
        if self.cache is not None:
            self.cache.put(key, entry)

    async def _extract(self, document: Document, key: str) -> tuple[dict[str, Any], Usage, BaseModel]:
        s = self.spec.settings
        checker = self.checker
        strict_check = None
        if s.strict and checker is not None:
            from .checks import failures

            strict_check = lambda result: failures(checker(result, document))  # noqa: E731
        language = detected_language(document.text)
        hints = {"language": language[0]} if language[0] and language[1] >= CONFIDENT_LANGUAGE else None
        # A long document's requests are cached one by one, so an interrupt keeps its finished chunks.
        backend: Backend = self.gate
        if self.cache is not None and document.chars > s.max_chunk_chars:
            backend = RequestCache(self.gate, self.cache, key)
        extraction = await extract_document(
            document.text, self.spec.schema, self.spec.prompt, backend,
            max_reasks=s.max_reasks, max_tokens=self.spec.max_tokens, temperature=s.temperature,
            max_chunk_chars=s.max_chunk_chars, check=strict_check, hints=hints,
            offer_spans=self.spec.capabilities.constrained_decoding,
        )
        result = extraction.result
        aligned: list[dict[str, Any]] = []
        if self.spec.capabilities.constrained_decoding:
            # A decoder held to the schema still writes what it likes inside a string: verbatim
            # values are aligned to the source, or removed when the source does not have them.
            from .repair import align_to_source

            result, aligned = align_to_source(result, self.spec.schema, document.text)
        data = result.model_dump(mode="json")
        where, model_value = _language_field(data, self.spec.schema.traits.language)
        if hints and where is not None and model_value != hints["language"]:
            # The detector is confident: a fact the tool knows is not left to the model.
            fixed = copy.deepcopy(data)
            set_value(fixed, where, hints["language"])
            try:
                result = self.spec.schema.model.model_validate(fixed)
                data = result.model_dump(mode="json")
            except ValidationError:
                pass
        entry = {
            "result": data,
            "usage": extraction.usage.as_dict(),
            "attempts": extraction.attempts,
            "mode": extraction.mode,
            "chunks": extraction.chunks,
            "language": {"detected": language[0], "confidence": round(language[1], 3), "model": model_value,
                         "used": _language_field(data, self.spec.schema.traits.language)[1]},
        }
        if aligned:
            entry["aligned"] = aligned
        return entry, extraction.usage, result

    def _check(self, entry: dict[str, Any], document: Document, result: BaseModel | None = None) -> dict[str, Any]:
        """Checks of a result; a cached entry's are reused only if made today by these checks."""
        if self.checker is None:
            return {}
        from .checks import CHECKS_VERSION

        stamp = {"version": CHECKS_VERSION, "on": date.today().isoformat()}
        stored = entry.get("checks")
        if isinstance(stored, dict) and stored.get("stamp") == stamp:
            return dict(stored["result"])
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
                "path": display_path(document.path), "sha256": document.sha256, "chars": document.chars,
                "encoding": document.encoding, "format": document.format, "chunks": entry.get("chunks", 1),
                "language": entry.get("language"),
                # The decoded text the evidence offsets point into (reports show it highlighted).
                **({"text": document.text} if document.chars <= TEXT_IN_OUTPUT_LIMIT else {}),
            },
            "schema": {"id": spec.schema.id, "version": spec.schema.version, "ref": spec.settings.schema,
                       "traits": self._traits},
            "prompt": {"id": spec.prompt.id, "version": spec.prompt.version, "sha256": spec.prompt.sha256},
            "model": {"name": self.backend.model, "base_url": self.backend.base_url,
                      "backend": spec.backend_name, "mode": entry.get("mode")},
            "usage": entry["usage"] if not cached else {**entry["usage"], "this_run": usage.as_dict()},
            "attempts": entry["attempts"],
            "aligned": entry.get("aligned", []),
            "cached": cached,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "checks": checks,
            "result": entry["result"],
        }


def _language_field(data: dict[str, Any], path: str | None) -> tuple[str | None, Any]:
    """(concrete path, value) of the schema's source-language field in a result, or (None, None)."""
    return next(iter_values(data, path), (None, None)) if path else (None, None)


# Errors of one output's name or of what stands at that path, not of the disk or folder: that
# document fails and the run goes on.
NAME_ERRORS = frozenset({errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.EILSEQ})


def write_output(path: Path, envelope: dict[str, Any], cached: bool) -> None:
    """Write one document's output; OutputUnwritable when the disk or folder fails (every later one would)."""
    try:
        # A cached result's output that already says the same (an earlier run's, but for when and
        # whether it came from the cache) stays as it is.
        write_json(path, envelope, keep_if_same_but=RUN_STAMPS if cached else ())
    except OSError as exc:
        where = display_path(str(path))
        if exc.errno in NAME_ERRORS:
            raise SummarizerError(f"cannot write {where}: {exc.strerror or exc} (rename the input, or move what "
                                  "stands at that path)") from exc
        raise OutputUnwritable(f"cannot write {where}: {exc.strerror or exc} (free space or fix the permissions "
                               f"of {display_path(str(path.parent))}, then re-run the same command to continue)") from exc


def document_from_bytes(path: str, data: bytes, limit: int) -> Document:
    """The document in `data` (read with `read_capped`), or TooLarge past the byte cap or `limit` characters."""
    if len(data) > (CONTAINER_CAP if container(path, data[:1024]) else file_cap(limit)):
        raise TooLarge(f"{display_path(path)}: more than {len(data) - 1:,} bytes, over --max-doc-chars "
                       f"{limit:,}: split it, or raise --max-doc-chars")
    return load_document(path, data, max_chars=limit)  # raises TooLarge past `limit` characters


def file_cap(max_doc_chars: int) -> int:
    """The most bytes read of a text file for this --max-doc-chars (containers: CONTAINER_CAP)."""
    return max_doc_chars * BYTES_PER_CHAR


def detected_language(text: str) -> tuple[str | None, float]:
    """The source's language by the detector (CLD2), and how sure it is (0..1)."""
    from .checks import source_language

    probabilities = source_language(text)
    if not probabilities:
        return None, 0.0
    code = max(probabilities, key=probabilities.__getitem__)
    return code, probabilities[code]


class RequestCache:
    """A gate in front of the gate: answers to one long document's requests, cached one by one.

    An interrupted long document keeps its finished chunks: the same command asks only for the
    rest. Only complete answers are kept; a cached answer costs nothing (zero usage).
    """

    def __init__(self, gate: RequestGate, cache: Cache, document_key: str) -> None:
        self._gate, self._cache, self._document_key = gate, cache, document_key
        self.model, self.base_url = gate.model, gate.base_url

    async def complete(self, request: CompletionRequest) -> Completion:
        from .artifacts import canonical_json, sha256_text

        key = "request:" + sha256_text(canonical_json({
            "document": self._document_key, "messages": list(request.messages), "max_tokens": request.max_tokens,
            "fixed": [list(pair) for pair in request.fixed]}))
        stored = self._cache.get(key)
        if stored is not None and isinstance(stored.get("content"), str):
            return Completion(content=stored["content"], finish_reason="stop", usage=Usage(),
                              mode=str(stored.get("mode") or "json_schema"))
        completion = await self._gate.complete(request)
        if completion.finish_reason == "stop" and completion.content and not completion.refusal:
            self._cache.put(key, {"content": completion.content, "mode": completion.mode})
        return completion


def read_capped(path: str, limit: int, stream: bool = False) -> bytes:
    """At most limit+1 bytes of a regular file (or of a pipe the user named), never blocking on
    a file that turned into a pipe or device after the folder was listed."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | (0 if stream else getattr(os, "O_NONBLOCK", 0))
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stream and not stat.S_ISREG(mode):
            raise InputError(f"{display_path(path)}: not a regular file any more (it was replaced after the "
                             "folder was listed); it was skipped")
        if not stream and hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)  # a regular file: plain reads
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            want = min(1 << 20, limit + 1 - size)
            if not size:  # the first read takes enough to recognise a container, whose limit is higher
                want = max(want, 1024)
            try:
                chunk = os.read(fd, want)
            except OSError as exc:
                if exc.errno == errno.EISDIR:
                    raise InputError(f"{display_path(path)}: is a folder") from exc
                raise
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if len(chunks) == 1 and limit < CONTAINER_CAP and container(path, chunk[:1024]):
                limit = CONTAINER_CAP
        return b"".join(chunks)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ProcessorFactory:
    """Builds a run's DocumentProcessor where it runs (a worker process, a Ray actor), the same way.

    Picklable (settings, spec, paths, store): an engine ships it to other processes or nodes and
    swaps in its own run-wide `limiter` and `fallback_memory` (shared memory, a cluster actor).
    """

    spec: RunSpec
    cache_dir: Path | None  # None: no per-node cache
    store: ResultStore | None = None
    limiter: Any = None
    fallback_memory: Any = None

    def __call__(self, warn: Callable[[str], None], may_send: Callable[[], bool],
                 spend: Callable[[Usage], None], slots: int) -> DocumentProcessor:
        from .backends import make_backend
        from .checks import run_checks

        cache = Cache(self.cache_dir, warn=warn) if self.cache_dir is not None else None
        backend = make_backend(self.spec.settings, self.limiter, self.fallback_memory)
        gate = RequestGate(backend, slots, may_send, spend)
        return DocumentProcessor(self.spec, backend, gate, cache=cache, checker=run_checks, store=self.store)
