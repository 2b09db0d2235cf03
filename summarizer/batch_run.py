"""The `batch` commands: summarize through the OpenAI Batch API at half price, resumably.

One operation, `advance`, does everything: collect finished batches into the ledger, run every
unfinished document through the same DocumentProcessor as `summarize` (with the BatchBackend:
answered requests are validated, checked, cached and written; the rest become request lines),
and submit the new lines as batches. `batch run` repeats it until no document waits; `batch
submit` and `batch collect` do it once; every step can be killed and repeated.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .artifacts import PromptSpec, SchemaSpec, load_schema, prompt_for
from .batch_ledger import TERMINAL_BATCH, Ledger
from .errors import ConfigError, SummarizerError
from .inputs import STDIN, InputItem, display_path, iter_inputs
from .outcome import OK_STATUSES, Outcome, RunReport, Status
from .pricing import batch_price, price_of
from .render import make_console, run_summary_renderable, safe
from .settings import Settings, build_settings

# Settings that make no sense through the Batch API, and what to do instead.
_UNSUPPORTED = {
    "retry_failed": "--retry-failed (failed lines are sent again by themselves)",
    "max_cost": "--max-cost", "max_tokens_total": "--max-tokens-total",
    "jsonl": "--jsonl (use `summarizer report OUT --format jsonl`)",
}


# Options that change neither requests nor outputs: a job resumed with other values is the same job.
_DISPLAY_ONLY = frozenset({"quiet", "verbose", "tables", "json_output", "allow_flagged", "batch_poll", "batch_wait",
                           "timeout", "retries"})


@dataclass
class Job:
    """A batch job as stored in its ledger: the inputs and the settings it was started with."""

    paths: list[str]
    flags: dict[str, Any]
    config: str | None
    cwd: str

    def as_dict(self) -> dict[str, Any]:
        return {"paths": self.paths, "flags": self.flags, "config": self.config, "cwd": self.cwd}


def start(flags: dict[str, Any], paths: list[str], config: Path | None, env: dict[str, str] | None = None) -> tuple[Settings, Ledger]:
    """Open (or resume) the job these paths and flags describe; refuse to mix two jobs in one folder."""
    env = dict(os.environ if env is None else env)
    settings = _checked(build_settings(flags, env, config), paths)
    job = Job(paths, _jsonable(flags), str(config) if config else None, os.getcwd())
    ledger = Ledger(settings.out_dir)
    known = ledger.meta("job")
    if known is not None and not ledger.meta("finished"):
        if known["paths"] != job.paths or _shaping(known["flags"]) != _shaping(job.flags):
            ledger.close()
            raise ConfigError(f"a batch job with other inputs or options is still open in {settings.out_dir}: "
                              f"continue it with `summarizer batch collect --out {settings.out_dir}`, stop it with "
                              f"`summarizer batch cancel --out {settings.out_dir}`, or use another --out")
    else:
        ledger.start_job(job.as_dict())
    return settings, ledger


def reopen(out_dir: Path | None, config: Path | None, *, overrides: dict[str, Any] | None = None,
           env: dict[str, str] | None = None) -> tuple[Settings, Ledger]:
    """The settings and ledger of the job in an output folder (for collect, status, cancel)."""
    env = dict(os.environ if env is None else env)
    out = out_dir or build_settings({}, env, config).out_dir
    if not (out / ".batch" / "ledger.sqlite3").exists():
        raise ConfigError(f"no batch job in {out}: start one with `summarizer batch run PATH... --out {out}`")
    ledger = Ledger(out)
    job = ledger.meta("job")
    if job is None:
        ledger.close()
        raise ConfigError(f"no batch job in {out}: start one with `summarizer batch run PATH... --out {out}`")
    if os.path.realpath(job["cwd"]) != os.path.realpath(os.getcwd()):
        ledger.close()
        raise ConfigError(f"this batch job was started in {job['cwd']} (its paths are relative to it): "
                          "run the command from there")
    stored = Path(job["config"]) if job.get("config") else config
    flags = {**job["flags"], **(overrides or {})}  # waiting and display may change between commands
    return _checked(build_settings(flags, env, stored), job["paths"]), ledger


def _shaping(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags that shape requests and outputs (waiting and display may change between commands)."""
    return {k: v for k, v in flags.items() if k not in _DISPLAY_ONLY}


def _checked(settings: Settings, paths: list[str]) -> Settings:
    from .backends import capabilities_of

    if not capabilities_of(settings).batch_api:
        raise ConfigError("batch mode needs the OpenAI Batch API: set OPENAI_API_KEY (or --base-url for a "
                          "server that has /v1/batches)")
    for name, flag in _UNSUPPORTED.items():
        if getattr(settings, name):
            raise ConfigError(f"{flag} is not available in batch mode")
    if STDIN in paths:
        raise ConfigError("batch mode reads files, not standard input: save it to a file first")
    if not paths and not settings.from_list:
        raise ConfigError("no documents given: pass files or folders, or --from-list FILE")
    return settings


def _jsonable(flags: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None:
            continue
        if isinstance(value, Path):
            value = str(value.expanduser().resolve()) if key == "out_dir" else str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


class BatchJob:
    """One advance at a time over a job's ledger: collect, process, submit; and waiting between."""

    def __init__(self, settings: Settings, ledger: Ledger, *, clock: Callable[[], float] = time.monotonic) -> None:
        from .backends import max_tokens, model_name
        from .backends.batch_api import BatchClient, Limits
        from .backends.openai_compat import OpenAIBackend

        self.settings, self.ledger, self._clock = settings, ledger, clock
        self.err = make_console(sys.stderr)
        self.model = model_name(settings)
        self.capabilities = OpenAIBackend.capabilities
        self.max_tokens = max_tokens(settings)
        job = ledger.meta("job")
        self.paths: list[str] = list(job["paths"])
        self._check_target()
        limits = Limits(settings.batch_max_requests, settings.batch_max_bytes, settings.batch_max_tokens,
                        settings.batch_line_retries)
        self.client = BatchClient(ledger, api_key=settings.api_key or "no-key-needed", base_url=settings.base_url,
                                  timeout=settings.timeout, retries=settings.retries, limits=limits, warn=self.warn)
        self.report = RunReport()
        self.pending = 0
        self._started = clock()

    # Loaded only for a round that processes documents: `batch status` and `cancel` never run a
    # schema file named in the ledger.
    @cached_property
    def schema(self) -> SchemaSpec:
        return load_schema(self.settings.schema)

    @cached_property
    def prompt(self) -> PromptSpec:
        return prompt_for(self.schema, self.settings.prompt_dir)  # as `summarize` does

    def _check_target(self) -> None:
        # Answers in the ledger belong to one model and server; mixing would re-send everything.
        target = {"model": self.model, "base_url": self.settings.base_url}
        known = self.ledger.meta("target")
        if known is None:
            self.ledger.set_meta("target", target)
        elif known != target:
            raise ConfigError(f"this batch job was submitted to {known['model']} at {known['base_url'] or 'OpenAI'}, "
                              f"not {target['model']} at {target['base_url'] or 'OpenAI'}: set the same model and "
                              "server again (OPENAI_BASE_URL, SUMMARIZER_MODEL), or use another --out")

    def warn(self, message: str) -> None:
        if not self.settings.quiet:
            self.err.print(safe(f"warning: {message}"), style="yellow", soft_wrap=True)

    def close(self) -> None:
        self.client.close()
        self.ledger.close()

    # -- one advance -----------------------------------------------------------------------------

    def advance(self) -> int:
        """Collect, process every unfinished document, submit; the documents still waiting."""
        self.client.recover()
        self.client.collect()
        self.pending = self._round()
        self.client.submit()
        if self.pending == 0:
            self.ledger.set_meta("finished", True)
        return self.pending

    def run(self, wait: bool) -> int:
        """Advance, then (with wait) wait for batches and advance again until nothing waits."""
        started = self._started = self._clock()
        pending = self.advance()
        while wait and pending:
            if self._clock() - started > self.settings.batch_wait:
                self.warn(f"gave up waiting after {self.settings.batch_wait:.0f} s with {pending} document(s) still "
                          f"waiting; `summarizer batch collect --out {self.settings.out_dir}` continues later")
                break
            if not self.ledger.parts("uploading", "uploaded", "created") and not any(True for _ in self.ledger.queued()):
                raise AssertionError("documents wait, but no request is queued or in a batch")
            self._wait_for_a_batch(started)
            pending = self.advance()
        return pending

    def _wait_for_a_batch(self, started: float) -> None:
        """Poll until some batch has ended (or the wait is over), showing progress on stderr."""
        shown = ""
        polls = 0
        while self._clock() - started <= self.settings.batch_wait:
            parts = self.client.refresh()
            if any(p.status in TERMINAL_BATCH for p in parts) or not parts:
                return
            line = self._progress_line(parts)
            if line != shown and not self.settings.quiet:
                self.err.print(safe(line), soft_wrap=True, highlight=False)
                shown = line
            polls += 1
            time.sleep(min(self.settings.batch_poll, 0.05 * 2 ** min(polls, 10)))

    def _progress_line(self, parts: list[Any]) -> str:
        done = sum(int(p.counts.get("completed", 0)) + int(p.counts.get("failed", 0)) for p in parts)
        total = sum(int(p.counts.get("total", 0)) or p.requests for p in parts)
        states: dict[str, int] = {}
        for p in parts:
            states[str(p.status)] = states.get(str(p.status), 0) + 1
        shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        return f"batches: {shown}; {done}/{total} requests answered; {self.pending} document(s) waiting"

    def _round(self) -> int:
        """Every unfinished document through the processor once; the number left waiting."""
        from .backends.batch import BatchBackend
        from .backends.wire import display_url
        from .cache import Cache
        from .checks import run_checks
        from .engines.base import RunControl
        from .engines.inprocess import InProcessEngine
        from .processor import DocumentProcessor, RequestGate, RunSpec
        from .scheduler import Scheduler
        from .store import Manifest

        s = self.settings
        # As the live backend records it (outputs, cache keys): secret-looking query values redacted.
        backend = BatchBackend(self.ledger, model=self.model, base_url=display_url(s.base_url), mode=s.mode)
        spec = RunSpec(s, self.schema, self.prompt, s.resolved_backend, self.capabilities, self.max_tokens)
        cache = Cache(s.cache_dir, warn=self.warn) if s.use_cache and s.cache_dir else None
        control = RunControl()
        gate = RequestGate(backend, spec.request_slots, control.may_send, control.spend)
        processor = DocumentProcessor(spec, backend, gate, cache=cache, checker=run_checks)
        engine = _SkipFinished(InProcessEngine(processor, control, spec.request_slots), self.ledger)
        manifest = Manifest(s.out_dir, run_id=str(self.ledger.meta("run_id")))
        observer = _Recorder(self.ledger, self)
        scheduler = Scheduler(engine, s.out_dir, manifest=manifest, observer=observer)
        self.ledger.begin()
        self.ledger.unwant_queued()
        try:
            report = asyncio.run(scheduler.run(self._items(), 0))
        finally:
            self.ledger.commit()
            manifest.close()
            if cache is not None:
                cache.close()
        _merge(self.report, report)
        if report.stopped:  # the disk or the cache cannot be written: the same error, with its exit code
            stop = report.stop if report.stop is not None and issubclass(report.stop, SummarizerError) else ConfigError
            raise stop(report.stopped)
        return report.pending

    def _items(self) -> Iterator[InputItem]:
        from .inputs import read_list

        s = self.settings
        paths = [*self.paths, *(read_list(Path(s.from_list)) if s.from_list else [])]
        return iter_inputs(paths, s.globs, exclude=s.own_folders)

    # -- the end ---------------------------------------------------------------------------------

    def summary(self) -> RunReport:
        """The whole job so far (every round, every process): counts and usage from the ledger."""
        report = RunReport(failures=self.report.failures, seconds=self._clock() - self._started)
        report.counts = self.ledger.doc_counts()
        report.usage = self.ledger.doc_usage()
        report.pending = self.pending
        run_id = self.ledger.meta("run_id")
        report.manifest = self.settings.out_dir / f"run-{run_id}.jsonl"
        return report

    def print_summary(self, report: RunReport) -> None:
        if self.settings.quiet:
            return
        price = batch_price(price_of(self.model))
        self.err.print(run_summary_renderable(report, price=price))
        if price is not None:
            self.err.print(safe(f"cost at the Batch API price ({self.model}, half the list price)"), style="dim")
        if report.pending:
            self.err.print(safe(f"{report.pending} document(s) still wait for batch answers: "
                                f"`summarizer batch collect --out {self.settings.out_dir}` (add --wait to wait)"),
                           style="yellow", soft_wrap=True)


class _SkipFinished:
    """The engine of a round: documents finished in an earlier round are not processed again.

    They still pass through the scheduler, so output names (and clash suffixes) stay the same
    in every round.
    """

    def __init__(self, engine: Any, ledger: Ledger) -> None:
        self.engine, self.ledger, self.slots = engine, ledger, engine.slots

    async def process(self, item: InputItem, final: bool, path: Path | None) -> Outcome:
        if self.ledger.doc_status(doc_key(item)) is not None:
            return Outcome(item, Status.NOT_STARTED)
        return await self.engine.process(item, final, path)

    def stop(self) -> None:
        self.engine.stop()

    async def aclose(self) -> None:
        pass


class _Recorder:
    """The observer of a round: finished documents go into the ledger (after the manifest line)."""

    def __init__(self, ledger: Ledger, job: BatchJob) -> None:
        self.ledger, self.job = ledger, job

    def on_start(self, total: int) -> None:
        pass

    def on_outcome(self, outcome: Outcome) -> None:
        self.ledger.doc_done(doc_key(outcome.item), str(outcome.status), outcome.usage)
        if outcome.status not in OK_STATUSES and not self.job.settings.quiet:
            self.job.err.print(safe(f"{display_path(outcome.item.path)}: {outcome.status}: {outcome.error}"),
                               style="red" if outcome.status != Status.FLAGGED else "yellow", soft_wrap=True)

    def warn(self, message: str) -> None:
        self.job.warn(message)


def doc_key(item: InputItem) -> bytes:
    """A document's key in the ledger: its path's bytes (names need not be UTF-8)."""
    return item.path.encode("utf-8", "surrogateescape")


def _merge(total: RunReport, report: RunReport) -> None:
    for status, count in report.counts.items():
        total.counts[status] = total.counts.get(status, 0) + count
    total.usage += report.usage
    total.failures = (total.failures + report.failures)[:50]
    total.seconds += report.seconds


# -- the commands -------------------------------------------------------------------------------


def run_command(settings: Settings, ledger: Ledger, *, wait: bool) -> RunReport:
    """`batch run` (wait) and `batch submit` / `batch collect` (once)."""
    job = BatchJob(settings, ledger)
    try:
        job.run(wait)
        report = job.summary()
    finally:
        job.close()
    job.print_summary(report)
    return report


def cancel_command(settings: Settings, ledger: Ledger) -> None:
    """Cancel the job's batches on the server, keep what they finished, and close the job."""
    job = BatchJob(settings, ledger)
    try:
        job.client.recover()
        job.client.cancel_all()
        job.client.collect()
        ledger.set_meta("finished", True)
        job.err.print(safe("cancelled: finished answers are kept in the ledger and cache; batches still "
                           "cancelling are collected by the next `batch collect`"), soft_wrap=True)
    finally:
        job.close()


def status_command(settings: Settings, ledger: Ledger, as_json: bool) -> dict[str, Any]:
    """The job's true state: the ledger, brought up to date with the server (nothing is submitted)."""
    job = BatchJob(settings, ledger)
    try:
        job.client.recover(create=False)  # a batch a crash left unrecorded is adopted: the true state
        job.client.refresh()
        state = {
            "output": str(settings.out_dir),
            "job": ledger.meta("job"),
            "finished": bool(ledger.meta("finished")),
            "documents": ledger.doc_counts(),
            "requests": ledger.request_counts(),
            "batches": [{"part": p.part, "state": p.state, "batch_id": p.batch_id, "status": p.status,
                         "requests": p.requests, "counts": p.counts, "detail": p.detail}
                        for p in ledger.parts()],
        }
        usage = ledger.doc_usage()
        price = batch_price(price_of(job.model))
        state["usage"] = usage.as_dict()
        if price is not None:
            from .pricing import cost

            state["cost_usd"] = round(cost(usage, price), 6)
    finally:
        job.close()
    if as_json:
        sys.stdout.write(json.dumps(state, ensure_ascii=False) + "\n")
    else:
        _print_status(state)
    return state


def _print_status(state: dict[str, Any]) -> None:
    from rich.table import Table

    out = make_console(sys.stdout)
    done = ", ".join(f"{n} {s}" for s, n in sorted(state["documents"].items())) or "none yet"
    requests = ", ".join(f"{n} {s}" for s, n in sorted(state["requests"].items())) or "none"
    out.print(safe(f"batch job in {state['output']}: {'finished' if state['finished'] else 'open'}"), highlight=False)
    out.print(safe(f"documents finished: {done}"), highlight=False)
    out.print(safe(f"requests: {requests}"), highlight=False)
    if "cost_usd" in state:
        out.print(safe(f"cost so far (Batch API price): ${state['cost_usd']:.4f}"), highlight=False)
    table = Table(title="Batches")
    for column in ("Part", "Ledger", "Batch", "Server status", "Done/total", "Detail"):
        table.add_column(column)
    for b in state["batches"]:
        counts = b["counts"] or {}
        table.add_row(str(b["part"]), b["state"], safe(b["batch_id"] or "-"), safe(b["status"] or "-"),
                      f"{counts.get('completed', 0) + counts.get('failed', 0)}/{counts.get('total') or b['requests']}",
                      safe((b["detail"] or "")[:120]))
    out.print(table)
