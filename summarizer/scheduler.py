"""The run scheduler: streams inputs to an engine and keeps what must be in one place.

Input order, output names (clashes settled here, in one process), deferral of long Retry-After,
the stop (auth, quota, disk, budget), the manifest and the observer. The per-document work is
the engine's.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath
from typing import Protocol

from .engines.base import Engine
from .errors import BudgetReached, SummarizerError
from .inputs import InputItem, display_path
from .outcome import Outcome, RunReport, Status
from .pricing import Budget
from .store import Manifest, OutputPaths


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


class Scheduler:
    """Feeds documents to an engine through a bounded queue, so memory stays flat."""

    def __init__(self, engine: Engine, out_dir: Path, *, manifest: Manifest | None,
                 observer: Observer | None = None, budget: Budget | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.engine, self.manifest, self.budget, self._clock = engine, manifest, budget, clock
        self.observer = observer or SilentObserver()
        self._outputs = OutputPaths(out_dir)
        self._taken: dict[str, int] = {}  # output path -> the input that has it
        self.report = RunReport(manifest=manifest.path if manifest else None)

    async def run(self, items: Iterable[InputItem], total: int) -> RunReport:
        """Process every item; documents deferred by a long Retry-After get one more try at the end."""
        start = self._clock()
        self.observer.on_start(total)
        slots = self.engine.slots
        queue: asyncio.Queue[InputItem | None] = asyncio.Queue(maxsize=slots * 2)
        deferred: list[InputItem] = []

        async def produce() -> None:
            for item in items:
                if self.report.stopped:
                    break
                await queue.put(item)
            for _ in range(slots):
                await queue.put(None)

        async def work() -> None:
            while (item := await queue.get()) is not None:
                if self.report.stopped:
                    continue  # drain: nothing new starts after a stop
                outcome = await self._dispatch(item)
                if outcome.status == Status.NOT_STARTED:
                    continue
                if outcome.status == Status.PENDING:  # batch mode: finished in a later round
                    self.report.pending += 1
                    continue
                if outcome.status == Status.DEFERRED:
                    deferred.append(item)
                    continue
                self._finish(outcome)

        await asyncio.gather(produce(), *(work() for _ in range(slots)))
        for item in deferred:
            if self.report.stopped:
                break
            outcome = await self._dispatch(item, final=True)
            if outcome.status != Status.NOT_STARTED:
                self._finish(outcome)
        self.report.seconds = self._clock() - start
        return self.report

    async def _dispatch(self, item: InputItem, final: bool = False) -> Outcome:
        path = None if item.problem else self._output_path(item)
        outcome = await self.engine.process(item, final, path)
        if outcome.stop is not None and not self.report.stopped:
            self._stop(outcome.error or "stopped", outcome.stop)
        return outcome

    def _stop(self, reason: str, stop: type[BaseException]) -> None:
        self.report.stopped, self.report.stop = reason, stop
        self.engine.stop()  # documents waiting in the engine are not started

    def _finish(self, outcome: Outcome) -> None:
        self.report.add(outcome)
        if self.manifest is not None:
            try:
                self.manifest.record(outcome.manifest_entry())
            except SummarizerError as exc:  # the manifest cannot be written (disk full): stop cleanly
                if not self.report.stopped:
                    self._stop(str(exc), type(exc))
        try:
            self.observer.on_outcome(outcome)
        except SummarizerError as exc:  # an observer that records (batch mode's ledger) cannot: as the manifest
            if not self.report.stopped:
                self._stop(str(exc), type(exc))
        except Exception as exc:  # a display problem must not abort the run or lose documents
            self.observer.warn(f"could not display {display_path(outcome.item.path)}: {type(exc).__name__}: {exc}")
        if self.budget is not None and not self.report.stopped:
            reason = self.budget.reached(self.report.usage)
            if reason:
                self._stop(f"{reason}; finished documents are kept, re-run to continue", BudgetReached)

    def _output_path(self, item: InputItem) -> Path:
        path = self._outputs.for_input(item.relative)
        owner = self._taken.setdefault(str(path), item.index)
        if owner != item.index:  # two inputs with one name (a/x.txt, b/x.txt given as files)
            digest = hashlib.sha256(item.path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
            path = self._outputs.for_input(PurePath(item.relative.with_name(
                f"{item.relative.stem}-{digest}{item.relative.suffix}")))
        return path
