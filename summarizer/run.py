"""The `summarize` command: gather inputs, wire settings to a Runner, print tables and summaries."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from .artifacts import load_prompt, load_schema
from .errors import ConfigError
from .inputs import STDIN, InputItem, iter_inputs, read_list
from .pricing import cost, price_of
from .render import document_renderable, make_console, run_summary_renderable, safe
from .runner import RETRY_STATUSES, Outcome, Runner, RunSpec
from .settings import Settings
from .store import latest_manifest, read_manifest

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LOCAL_QUALITY_NOTE = (
    "note: using the embedded SmolLM2-135M model (offline). It is tiny and weak at translation: "
    "for real quality set OPENAI_API_KEY, or pass --base-url of a bigger model's server, "
    "or --model-path to a bigger GGUF."
)
TABLES_AUTO_LIMIT = 20  # per-document tables by default only for small runs
EXPECTED_OUTPUT_TOKENS = 700  # a typical article answer, for --dry-run estimates


class CliObserver:
    """Progress bar and notes on stderr; tables or JSON on stdout."""

    def __init__(self, settings: Settings, tables: bool, single: bool) -> None:
        self.settings = settings
        self.out = make_console(sys.stdout)
        self.err = make_console(sys.stderr)
        self.tables = tables and not settings.json_output
        self.single = single
        self.counts = {"done": 0, "cached": 0, "failed": 0}
        self.tokens = 0
        self.started = time.perf_counter()
        self.progress: Progress | None = None
        self.task: Any = None

    def on_start(self, total: int) -> None:
        if self.settings.quiet or not self.err.is_terminal or self.single:
            return
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(), console=self.err, transient=False,
        )
        self.task = self.progress.add_task("summarizing", total=total, stats="")
        self.progress.start()

    def on_outcome(self, outcome: Outcome) -> None:
        key = "done" if outcome.status == "ok" else "cached" if outcome.status == "cached" else "failed"
        self.counts[key] += 1
        self.tokens += outcome.usage.total_tokens
        if outcome.envelope is not None:
            if self.settings.json_output:
                indent = 2 if self.single else None
                sys.stdout.write(json.dumps(outcome.envelope, ensure_ascii=False, indent=indent) + "\n")
                sys.stdout.flush()
            elif self.tables:
                self.out.print(document_renderable(outcome.envelope))
        if self.progress is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            rate = sum(self.counts.values()) / elapsed
            stats = (f"ok {self.counts['done']} · cached {self.counts['cached']} · failed {self.counts['failed']} · "
                     f"{rate:.1f} doc/s · {self.tokens} tok")
            self.progress.update(self.task, advance=1, stats=stats)
        elif not self.settings.quiet:
            self._note(outcome)

    def _note(self, outcome: Outcome) -> None:
        if outcome.status == "cached":
            self.err.print(safe(f"{outcome.item.path}: served from cache -> {outcome.output_path}"), style="green", soft_wrap=True)
        elif outcome.status == "ok":
            if self.settings.verbose or self.single:
                self.err.print(safe(f"{outcome.item.path}: ok -> {outcome.output_path}"), soft_wrap=True)
        else:
            self.err.print(safe(f"{outcome.item.path}: {outcome.status}: {outcome.error}"), style="red", soft_wrap=True)

    def warn(self, message: str) -> None:
        self.err.print(safe(f"warning: {message}"), style="yellow", soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _paths(args: argparse.Namespace) -> list[str]:
    paths = list(args.paths)
    if args.from_list:
        try:
            paths += read_list(Path(args.from_list))
        except OSError as exc:
            raise ConfigError(f"cannot read --from-list {args.from_list}: {exc.strerror}") from exc
    return paths


def _items(args: argparse.Namespace, settings: Settings) -> tuple[list[InputItem] | None, list[str]]:
    """Retry-failed items (already a list) or the paths to walk."""
    if not args.retry_failed:
        return None, _paths(args)
    manifest = latest_manifest(settings.out_dir)
    if manifest is None:
        raise ConfigError(f"--retry-failed: no run manifest in {settings.out_dir}; run without it first")
    entries = [e for e in read_manifest(manifest) if e.get("status") in RETRY_STATUSES]
    return [InputItem(i, e["path"], PurePath(e["relative"])) for i, e in enumerate(entries)], []


def summarize(settings: Settings, args: argparse.Namespace) -> int:
    """Run the summarize command; returns the exit code."""
    schema = load_schema(settings.schema)
    prompt = load_prompt(schema.id)
    retry_items, paths = _items(args, settings)
    if retry_items is None and not paths:
        raise ConfigError("no documents given: pass files or folders, '-' for stdin, or --from-list FILE")
    globs = tuple(args.globs or ["*"])

    def items() -> Iterator[InputItem]:
        return iter(retry_items) if retry_items is not None else iter_inputs(paths, globs, exclude=_own_folders(settings))

    total = sum(1 for _ in items())
    backend_name = settings.resolved_backend
    price = price_of(settings.resolved_model, backend_name)
    err = make_console(sys.stderr)
    if args.dry_run:
        return _dry_run(items(), total, settings, prompt, price)
    if args.max_cost is not None and price is None:
        raise ConfigError(f"--max-cost needs a known price, and {settings.resolved_model!r} has none: "
                          "use --max-tokens-total instead")
    stdin_bytes = sys.stdin.buffer.read() if STDIN in paths else None

    from .backends import make_backend
    from .cache import Cache
    from .checks import run_checks
    from .ratelimit import RateLimiter
    from .store import Manifest
    from .workers import WorkerPool, auto_workers, shared_flag

    observer = CliObserver(settings, tables=_want_tables(args.tables, total), single=total == 1)
    if backend_name == "local" and not settings.quiet:
        err.print(LOCAL_QUALITY_NOTE, style="yellow", soft_wrap=True)
    workers = 1 if backend_name == "local" or stdin_bytes is not None else (
        settings.workers or auto_workers(settings.concurrency, backend_name, total))
    if backend_name == "local" and (settings.workers or 1) > 1:
        observer.warn("--workers is ignored with the embedded model: one model instance, one document at a time")
    # Opened here even with workers: a corrupt cache is moved aside once, before they start.
    cache = Cache(settings.cache_dir, warn=observer.warn) if settings.use_cache and settings.cache_dir else None
    manifest = Manifest(settings.out_dir)
    spec = RunSpec(settings, schema, prompt, backend_name)
    limiter = RateLimiter(settings.rpm, settings.tpm, shared=workers > 1)
    fallback_memory = shared_flag() if workers > 1 else None  # auto mode's choice, run-wide
    backend = make_backend(settings, limiter)  # imports the model client before any fork

    def budget(usage: Any) -> str | None:
        if args.max_tokens_total is not None and usage.total_tokens >= args.max_tokens_total:
            return f"token budget of {args.max_tokens_total} reached"
        if args.max_cost is not None and price is not None and cost(usage, price) >= args.max_cost:
            return f"cost budget of ${args.max_cost} reached"
        return None

    def make_worker_runner(warn: Any) -> tuple[Runner, Any]:
        worker_cache = Cache(settings.cache_dir, warn=warn) if cache is not None and settings.cache_dir else None
        worker_backend = make_backend(settings, limiter, fallback_memory)
        return Runner(spec, worker_backend, cache=worker_cache, manifest=None, checker=run_checks), worker_backend

    pool = None
    if workers > 1:
        if cache is not None:
            cache.close()  # each worker opens its own connection; none crosses the fork
        pool = WorkerPool(workers, settings.concurrency, make_worker_runner, budget,
                          envelopes=settings.json_output or observer.tables)
        pool.warn = observer.warn
    runner = Runner(spec, backend, cache=None if pool else cache, manifest=manifest, observer=observer,
                    checker=run_checks, stdin_bytes=stdin_bytes, budget=budget, pool=pool)

    async def go() -> Any:
        try:
            return await runner.run(items(), total)
        finally:
            await backend.aclose()

    finished = False
    try:
        report = asyncio.run(go())
        finished = True
    finally:
        if pool is not None:
            pool.close(wait=finished)
        observer.close()
        manifest.close()
        if cache is not None and pool is None:
            cache.close()
    if args.jsonl:
        _write_jsonl(Path(args.jsonl), items(), report.statuses)
    if not settings.quiet and (total > 1 or report.failed or report.stopped):
        err.print(run_summary_renderable(report, price=price))
    if report.stop_class in ("AuthError", "QuotaExhausted"):
        return EXIT_USAGE
    return EXIT_FAILED if report.failed or report.stopped else EXIT_OK


def _own_folders(settings: Settings) -> tuple[Path, ...]:
    # `summarizer summarize .` must not summarize its own outputs, manifests or cache.
    return tuple(p for p in (settings.out_dir, settings.cache_dir) if p is not None)


def _want_tables(choice: str, total: int) -> bool:
    return choice == "always" or (choice == "auto" and total <= TABLES_AUTO_LIMIT)


def _write_jsonl(path: Path, items: Iterator[InputItem], statuses: dict[int, tuple[str, str | None]]) -> None:
    """One line per input, in input order, whatever order the documents finished in."""
    from .store import atomic_writer

    with atomic_writer(path) as handle:  # streamed: memory stays flat in the number of documents
        for item in items:
            status, output = statuses.get(item.index, ("not_started", None))
            line: dict[str, Any] = {"path": item.path, "status": status}
            if output is not None and status in ("ok", "cached"):
                line["output"] = json.loads(Path(output).read_text("utf-8"))
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def _dry_run(items: Iterator[InputItem], total: int, settings: Settings, prompt: Any,
             price: tuple[float, float] | None) -> int:
    """Estimate requests and tokens without calling any model."""
    from .chunking import split_text
    from .documents import load_document
    from .errors import InputError

    requests = tokens_in = readable = 0
    overhead = len(prompt.system) + len(prompt.user)
    for item in items:
        try:
            if item.problem or item.path == STDIN:
                continue
            document = load_document(item.path, Path(item.path).read_bytes())
        except (InputError, OSError):
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
        from .backends.base import Usage

        line += f", ~${cost(Usage(tokens_in, tokens_out), price):.4f} with {settings.resolved_model}"
    else:
        line += f" (no known price for {settings.resolved_model})"
    out.print(safe(line))
    return EXIT_OK
