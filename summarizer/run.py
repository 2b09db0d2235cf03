"""The `summarize` command: gather inputs, wire settings to an engine and the scheduler, display.

Returns the RunReport; the CLI turns it into an exit code.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from .artifacts import load_schema, prompt_for
from .errors import ConfigError
from .inputs import STDIN, InputItem, iter_inputs, read_list
from .observer import CliObserver
from .outcome import OK_STATUSES, RETRY_STATUSES, RunReport
from .pricing import Budget, batch_price, cost, price_of
from .render import make_console, run_summary_renderable, safe
from .settings import Settings
from .store import latest_manifest, read_manifest

TABLES_AUTO_LIMIT = 20  # per-document tables by default only for small runs
EXPECTED_OUTPUT_TOKENS = 700  # a typical article answer, for --dry-run estimates
PROBE_ABOVE = 3  # runs of more documents first check the server, model and key with one request


def _paths(paths: list[str], settings: Settings) -> list[str]:
    return [*paths, *(read_list(Path(settings.from_list)) if settings.from_list else [])]


def _retry_items(settings: Settings) -> list[InputItem]:
    manifest = latest_manifest(settings.out_dir)
    if manifest is None:
        raise ConfigError(f"--retry-failed: no run manifest in {settings.out_dir}; run without it first")
    entries = [e for e in read_manifest(manifest) if e.get("status") in RETRY_STATUSES
               and isinstance(e.get("path"), str) and isinstance(e.get("relative"), str)]
    return [InputItem(i, e["path"], PurePath(e["relative"])) for i, e in enumerate(entries)]


def _check_paths(paths: list[str]) -> None:
    # A path typed on the command line that does not exist is a usage error, not a failed document.
    missing = [p for p in paths if p != STDIN and not Path(p).exists() and not Path(p).is_symlink()]
    if missing:
        shown = ", ".join(repr(p) for p in missing[:5])
        raise ConfigError(f"no such file or folder: {shown}; check the path(s)")


def summarize(settings: Settings, paths: list[str], *, batch: bool = False) -> RunReport | None:
    """Run the summarize command; None for --dry-run (nothing was sent; batch: at the Batch API price)."""
    from .backends import capabilities_of, max_tokens, model_name

    schema = load_schema(settings.schema)
    prompt = prompt_for(schema, settings.prompt_dir)
    retry_items = _retry_items(settings) if settings.retry_failed else None
    paths = [] if retry_items is not None else _paths(paths, settings)
    if retry_items is None:
        if not paths:
            raise ConfigError("no documents given: pass files or folders, '-' for stdin, or --from-list FILE")
        _check_paths(paths)

    def items() -> Iterator[InputItem]:
        if retry_items is not None:
            return iter(retry_items)
        return iter_inputs(paths, settings.globs, exclude=settings.own_folders)

    total = sum(1 for _ in items())
    capabilities = capabilities_of(settings)
    model = model_name(settings)
    price = price_of(model, capabilities.paid)
    if batch:
        price = batch_price(price)
        model += " through the Batch API"
    if settings.dry_run:
        _dry_run(items(), total, settings, prompt, price, model)
        return None
    if settings.max_cost is not None and price is None:
        raise ConfigError(f"--max-cost needs a known price, and {model!r} has none: use --max-tokens-total instead")
    stdin_bytes = sys.stdin.buffer.read() if STDIN in paths else None

    from .backends import make_backend
    from .cache import Cache
    from .checks import run_checks
    from .engines.base import RunControl
    from .engines.inprocess import InProcessEngine
    from .engines.workers import WorkerEngine, auto_workers, shared_flag
    from .processor import DocumentProcessor, ProcessorFactory, RequestGate, RunSpec
    from .ratelimit import RateLimiter
    from .scheduler import Scheduler
    from .shared_store import open_store
    from .store import Manifest

    observer = CliObserver(settings, tables=_want_tables(settings.tables, total), single=total == 1)
    if capabilities.quality_note and not settings.quiet:
        make_console(sys.stderr).print(capabilities.quality_note, style="yellow", soft_wrap=True)
    parallel = capabilities.parallel_requests
    from .engines import CLUSTER_ENGINES, cluster_engine

    on_ray = settings.engine in CLUSTER_ENGINES and stdin_bytes is None
    if settings.engine in CLUSTER_ENGINES and not on_ray:
        observer.warn(f"--engine {settings.engine} is ignored when reading stdin: the document is processed here")
    workers = 1 if not parallel or stdin_bytes is not None or on_ray else (
        settings.workers or auto_workers(settings.concurrency, parallel, total))
    if not parallel and (settings.workers or 1) > 1:
        observer.warn("--workers is ignored with this backend: it answers one request at a time in this process")
    manifest = Manifest(settings.out_dir)  # fails early, with a message, when --out cannot be written
    # Opened here even with workers: a corrupt cache is moved aside once, before they start.
    cache = Cache(settings.cache_dir, warn=observer.warn) if settings.use_cache and settings.cache_dir else None
    spec = RunSpec(settings, schema, prompt, settings.resolved_backend, capabilities, max_tokens(settings))
    budget = Budget(settings.max_tokens_total, settings.max_cost, price)
    limiter = RateLimiter(settings.rpm, settings.tpm, shared=workers > 1)
    fallback_memory = shared_flag() if workers > 1 else None  # auto mode's choice, run-wide
    backend = make_backend(settings, limiter)  # imports the model client before any fork

    store = open_store(settings.store, settings.store_endpoint) if settings.store else None
    # Absolute: a Ray actor's working directory is not the driver's.
    node_cache = settings.cache_dir.absolute() if cache is not None and settings.cache_dir else None
    make_processor = ProcessorFactory(spec, node_cache, store, limiter, fallback_memory)

    engine: Any
    if on_ray:
        if cache is not None:
            cache.close()  # each actor opens its node's own
        engine = cluster_engine(settings.engine)(make_processor, spec.request_slots, budget=budget,  # type: ignore[misc]
                                                 address=settings.ray_address, actors=settings.workers)
        engine.warn = observer.warn
    elif workers > 1:
        if cache is not None:
            cache.close()  # each worker opens its own connection; none crosses the fork
        engine = WorkerEngine(workers, settings.concurrency, make_processor, budget,
                              envelopes=settings.json_output or observer.tables)
        engine.warn = observer.warn
    else:
        control = RunControl(budget)
        gate = RequestGate(backend, spec.request_slots, control.may_send, control.spend)
        processor = DocumentProcessor(spec, backend, gate, cache=cache, checker=run_checks, stdin_bytes=stdin_bytes,
                                      store=store)
        engine = InProcessEngine(processor, control, spec.request_slots)
    scheduler = Scheduler(engine, settings.out_dir, manifest=manifest, observer=observer, budget=budget)

    async def go() -> RunReport:
        try:
            if capabilities.remote and total > PROBE_ABOVE:
                await backend.probe()  # a dead server, unknown model or bad key stops here, not per document
            return await scheduler.run(items(), total)
        finally:
            if on_ray or workers > 1:  # the engine's processors have their own backends; this one probed
                await backend.aclose()
            if workers == 1:  # worker processes are closed below, once the loop is gone
                await engine.aclose()

    finished = False
    try:
        report = asyncio.run(go())
        finished = True
    finally:
        if workers > 1:
            engine.close(wait=finished)
        observer.close()
        manifest.close()
    if settings.jsonl:
        _write_jsonl(Path(settings.jsonl), items(), report.statuses)
    if not settings.quiet and (total > 1 or report.failed or report.stopped):
        make_console(sys.stderr).print(run_summary_renderable(report, price=price))
    elif report.stopped:  # --quiet hides progress, never the reason a run stopped
        make_console(sys.stderr).print(safe(f"error: run stopped: {report.stopped}"), style="red", soft_wrap=True)
    return report


def _want_tables(choice: str, total: int) -> bool:
    return choice == "always" or (choice == "auto" and total <= TABLES_AUTO_LIMIT)


def _write_jsonl(path: Path, items: Iterator[InputItem], statuses: dict[int, tuple[str, str | None]]) -> None:
    """One line per input, in input order, whatever order the documents finished in."""
    from .inputs import display_path
    from .store import atomic_writer

    with atomic_writer(path) as handle:  # streamed: memory stays flat in the number of documents
        for item in items:
            status, output = statuses.get(item.index, ("not_started", None))
            line: dict[str, Any] = {"path": display_path(item.path), "status": status}
            if output is not None and (status in OK_STATUSES or status == "flagged"):
                line["output"] = json.loads(Path(output).read_text("utf-8"))
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def _dry_run(items: Iterator[InputItem], total: int, settings: Settings, prompt: Any,
             price: tuple[float, float] | None, model: str) -> None:
    """Estimate requests and tokens without calling any model."""
    from .chunking import split_text
    from .processor import document_from_bytes, file_cap, read_capped

    requests = tokens_in = readable = 0
    overhead = len(prompt.system) + len(prompt.user)
    for item in items:
        try:
            if item.problem or item.path == STDIN or item.stream:
                continue
            limit = settings.max_doc_chars
            document = document_from_bytes(item.path, read_capped(item.path, file_cap(limit)), limit)
        except Exception:  # InputError, OSError, or anything else the run would fail this document for
            continue
        readable += 1
        chunks = split_text(document.text, settings.max_chunk_chars)
        calls = len(chunks) + (1 if len(chunks) > 1 else 0)
        requests += calls
        tokens_in += (document.chars + overhead * calls) // 3
    tokens_out = requests * EXPECTED_OUTPUT_TOKENS
    out = make_console(sys.stdout)
    line = (f"dry run: {readable}/{total} readable documents, about {requests} request(s), "
            f"~{tokens_in} input + ~{tokens_out} output tokens")
    if price is not None:
        from .usage import Usage

        line += f", ~${cost(Usage(tokens_in, tokens_out), price):.4f} with {model}"
    else:
        line += f" (no known price for {model})"
    out.print(safe(line))
