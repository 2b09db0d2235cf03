"""The terminal observer of a run: progress bar and notes on stderr, tables or JSON on stdout."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from .inputs import display_path
from .outcome import Outcome, Status
from .render import document_renderable, make_console, safe
from .settings import Settings


class CliObserver:
    """Progress bar and notes on stderr; tables or JSON on stdout."""

    def __init__(self, settings: Settings, tables: bool, single: bool) -> None:
        self.settings = settings
        self.out = make_console(sys.stdout)
        self.err = make_console(sys.stderr)
        self.tables = tables and not settings.json_output
        self.single = single
        self.counts = {"ok": 0, "cached": 0, "flagged": 0, "failed": 0}
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
        status = outcome.status
        key = str(status) if status in (Status.OK, Status.CACHED, Status.FLAGGED) else "failed"
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
            c = self.counts
            stats = (f"ok {c['ok']} · cached {c['cached']} · flagged {c['flagged']} · failed {c['failed']} · "
                     f"{rate:.1f} doc/s · {self.tokens} tok")
            self.progress.update(self.task, advance=1, stats=stats)
        elif not self.settings.quiet:
            self._note(outcome)

    def _note(self, outcome: Outcome) -> None:
        path, output = display_path(outcome.item.path), display_path(str(outcome.output_path))
        if outcome.status == Status.CACHED:
            self.err.print(safe(f"{path}: served from cache -> {output}"), style="green", soft_wrap=True)
        elif outcome.status == Status.OK:
            if self.settings.verbose or self.single:
                self.err.print(safe(f"{path}: ok -> {output}"), soft_wrap=True)
        elif outcome.status == Status.FLAGGED:
            cached = " (served from cache)" if outcome.cached else ""
            self.err.print(safe(f"{path}: flagged{cached}: facts not supported by the source: {outcome.error} "
                                f"-> {output}"), style="yellow", soft_wrap=True)
        else:
            self.err.print(safe(f"{path}: {outcome.status}: {outcome.error}"), style="red", soft_wrap=True)

    def warn(self, message: str) -> None:
        self.err.print(safe(f"warning: {message}"), style="yellow", soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
