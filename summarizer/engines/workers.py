"""Worker processes for big runs: each runs its own event loop, model client and cache connection.

One event loop spends about 2 ms of CPU per document (the HTTP client, validation, checks, the
output file), which caps a run near 400 documents/s however fast the server is. The parent
keeps everything that must be one (input order, output names, manifest, progress, budget, the
stop on auth or quota errors); the workers, forked once the heavy modules are imported, do the
per-document work and share one rate limiter through shared memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import WorkerFailed
from ..outcome import Outcome, Status
from ..pricing import Budget
from ..processor import document_slots
from ..usage import Usage

if TYPE_CHECKING:
    from ..inputs import InputItem
    from ..processor import DocumentProcessor

# Builds a worker's DocumentProcessor (in the worker, after the fork) from: a function that passes
# warnings to the parent, and the run-wide `may_send` / `spend` its request gate must use.
MakeProcessor = Callable[[Callable[[str], None], Callable[[], bool], Callable[[Usage], None], int],
                         "DocumentProcessor"]

# A worker's share of the run's concurrency below which another process is not worth its memory.
DOCUMENTS_PER_WORKER = 16


def auto_workers(concurrency: int, parallel_requests: bool, total: int, cpus: int | None = None) -> int:
    """How many worker processes a run gets when --workers is not given (1: none, all in-process)."""
    if not parallel_requests:
        return 1  # one model instance, documents one after another
    if cpus is None:  # the CPUs this process may run on, which a container can limit
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus, concurrency // DOCUMENTS_PER_WORKER, total // DOCUMENTS_PER_WORKER))


def shared_flag() -> Any:
    """A 0/1 flag in shared memory that worker processes forked afterwards all see (`.value`)."""
    return multiprocessing.get_context("fork").RawValue("b", 0)


class WorkerEngine:
    """Forked worker processes that run DocumentProcessor.process for the parent's documents."""

    def __init__(self, count: int, concurrency: int, make_processor: MakeProcessor,
                 budget: Budget | None = None, envelopes: bool = True) -> None:
        # Fork before any event loop or thread exists in this process, so children start clean
        # and with every module already imported (no second start-up).
        context = multiprocessing.get_context("fork")
        count = max(1, min(count, concurrency))
        # Set by any process once the run stops (auth, quota, budget): backlogs are then skipped.
        self._stopped = context.RawValue("b", 0)
        # The run's usage so far (prompt tokens, completion tokens, requests), for the budget:
        # a worker checks it before each document, as the parent would between two.
        shared = _Shared(self._stopped, context.RawArray("d", 3), context.Lock(), budget, envelopes)
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        for index in range(count):
            slots = concurrency // count + (1 if index < concurrency % count else 0)  # shares sum to --concurrency
            parent_end, child_end = context.Pipe()
            # The child closes every parent end it inherits (its own and its elder siblings'): the
            # parent's ends must be the only ones, so that the parent's death is an EOF for each child.
            inherited = [parent_end, *self._conns]
            proc = context.Process(target=_worker_main, daemon=True,
                                   args=(child_end, inherited, make_processor, slots, shared))
            proc.start()
            child_end.close()
            self._conns.append(parent_end)
            self._procs.append(proc)
        self._ids = itertools.count()
        self._pending: dict[int, tuple[asyncio.Future[Outcome], int]] = {}
        self._load = [0] * count
        self._reading = False
        self.warn: Callable[[str], None] = lambda message: None
        # Workers keep a backlog as deep as their share of the run, so that none waits for the
        # parent between two documents; each still has at most its share in flight.
        self.slots = concurrency * 2 + document_slots(concurrency)

    async def process(self, item: InputItem, final: bool, path: Path | None) -> Outcome:
        """Have the least busy worker process one document; its Outcome comes back here."""
        loop = asyncio.get_running_loop()
        if not self._reading:
            for index, conn in enumerate(self._conns):
                loop.add_reader(conn.fileno(), self._receive, index)
            self._reading = True
        index = min(range(len(self._conns)), key=self._load.__getitem__)
        request_id = next(self._ids)
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending[request_id] = (future, index)
        self._load[index] += 1
        try:
            self._conns[index].send((request_id, item, final, path))
        except OSError as exc:
            self._fail_worker(index, f"cannot reach worker process {index} ({exc})")
        try:
            return await future
        finally:
            self._pending.pop(request_id, None)
            self._load[index] -= 1

    def stop(self) -> None:
        """Start nothing new: workers skip what is waiting (in-flight documents finish)."""
        self._stopped.value = 1

    def _receive(self, index: int) -> None:
        conn = self._conns[index]
        try:
            while conn.poll():
                kind, request_id, payload = conn.recv()
                if kind == "warn":
                    self.warn(payload)
                    continue
                future, _ = self._pending.get(request_id, (None, index))
                if future is None or future.done():
                    continue
                if kind == "outcome":
                    future.set_result(payload)
                else:  # "error": a bug in the worker, with its traceback
                    future.set_exception(WorkerFailed(
                        f"a worker process hit a bug in summarizer (please report it with this traceback):\n{payload}"))
        except (EOFError, OSError):
            self._fail_worker(index, f"worker process {index} exited unexpectedly "
                                     f"(exit code {self._procs[index].exitcode}); re-run to continue")
        except Exception as exc:  # a message that cannot be read: never leave a document waiting forever
            self._fail_worker(index, f"cannot read from worker process {index} ({type(exc).__name__}: {exc})")

    def _fail_worker(self, index: int, message: str) -> None:
        with _suppress():
            asyncio.get_running_loop().remove_reader(self._conns[index].fileno())
        for future, owner in list(self._pending.values()):
            if owner == index and not future.done():
                future.set_exception(WorkerFailed(message))
        self._load[index] = 10**9  # never chosen again

    async def aclose(self) -> None:
        """Let the workers finish what they hold, and reap them."""
        self.close(wait=True)

    def close(self, wait: bool = True) -> None:
        """Let the workers finish what they hold (or, with wait=False, stop them now) and reap them."""
        for conn in self._conns:
            with _suppress():
                conn.send(None)
        for proc in self._procs:
            if not wait:
                proc.terminate()
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()


class _Shared:
    """What the workers of one run share: the stop flag, the usage so far and the budget."""

    def __init__(self, stopped: Any, usage: Any, lock: Any, budget: Budget | None, envelopes: bool) -> None:
        self.stopped, self.usage, self.lock, self.budget = stopped, usage, lock, budget
        self.envelopes = envelopes  # whether the parent shows them (tables, --json); else not sent

    def may_start(self) -> bool:
        if not self.stopped.value and self.budget is not None:
            with self.lock:
                spent = Usage(int(self.usage[0]), int(self.usage[1]), int(self.usage[2]))
            if self.budget.reached(spent):
                self.stopped.value = 1
        return not self.stopped.value

    def spend(self, usage: Usage) -> None:
        with self.lock:
            self.usage[0] += usage.prompt_tokens
            self.usage[1] += usage.completion_tokens
            self.usage[2] += usage.requests


def _worker_main(conn: Connection, inherited: list[Connection], make_processor: MakeProcessor, slots: int,
                 shared: _Shared) -> None:
    # Ctrl-C is the parent's to handle: it stops the workers itself, or dies and closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for other in inherited:
        other.close()
    asyncio.run(_serve(conn, make_processor, slots, shared))


async def _serve(conn: Connection, make_processor: MakeProcessor, slots: int, shared: _Shared) -> None:
    # This worker's share of the run's requests in flight, under the run's shared stop and budget.
    processor = make_processor(lambda message: _send(conn, ("warn", -1, message)), shared.may_start,
                               shared.spend, slots)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    orphaned = False
    in_progress = asyncio.Semaphore(document_slots(slots))
    tasks: set[asyncio.Task[None]] = set()

    async def handle(request_id: int, item: InputItem, final: bool, path: Path | None) -> None:
        try:
            async with in_progress:
                if not shared.may_start():
                    outcome = Outcome(item, Status.NOT_STARTED)
                else:
                    outcome = await processor.process(item, final, path)
                    outcome.exception = None  # exceptions do not always survive pickling; the message does
                    if not shared.envelopes:
                        outcome.envelope = None
                    if outcome.stop is not None:
                        shared.stopped.value = 1  # at once, before the parent hears of it
            _send(conn, ("outcome", request_id, outcome))
        except Exception:  # a bug, not a document's failure: the parent stops the run with it
            _send(conn, ("error", request_id, traceback.format_exc()))

    def receive() -> None:
        nonlocal orphaned
        try:
            while conn.poll():
                message = conn.recv()
                if message is None:
                    done.set()
                    return
                task = loop.create_task(handle(*message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (EOFError, OSError):
            # The parent is gone (kill -9, a crash): stop at once, as the parent itself did;
            # a re-run finishes what was in flight.
            orphaned = True
            done.set()

    loop.add_reader(conn.fileno(), receive)
    try:
        await done.wait()
        for task in tasks if orphaned else ():
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        loop.remove_reader(conn.fileno())
        await processor.aclose()


def _send(conn: Connection, message: Any) -> None:
    with _suppress():
        conn.send(message)


def _suppress() -> contextlib.suppress:
    # OSError: the other end is gone; ValueError: this end is already closed.
    return contextlib.suppress(OSError, ValueError)
