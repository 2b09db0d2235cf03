"""Worker processes: documents are shared out and come back whole; failures surface; one rate limit."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from pathlib import Path, PurePath

import pytest

from summarizer.inputs import InputItem
from summarizer.ratelimit import RateLimiter
from summarizer.engines.workers import WorkerEngine, auto_workers
from summarizer.errors import WorkerFailed
from summarizer.outcome import Outcome


class FakeBackend:
    model, base_url = "fake", None

    async def aclose(self) -> None:
        pass


class PidProcessor:
    """Answers each document with the worker's pid; a document named 'bug' raises, 'die' kills it."""

    cache = None
    backend = FakeBackend()

    async def process(self, item: InputItem, final: bool, path: Path | None) -> Outcome:
        if item.path == "bug":
            raise RuntimeError("a bug in the worker")
        if item.path == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        await asyncio.sleep(0.01)
        return Outcome(item, "ok", error=f"{os.getpid()} {final} {path}")


def make_pid_processor(warn, may_send, spend, slots):
    warn("worker up")
    return PidProcessor()


def item(index: int, path: str | None = None) -> InputItem:
    return InputItem(index, path or f"doc{index}.txt", PurePath(f"doc{index}.txt"))


def test_documents_are_shared_between_worker_processes_and_come_back_whole():
    pool = WorkerEngine(2, 8, make_pid_processor)
    warnings: list[str] = []
    pool.warn = warnings.append

    async def run() -> list[Outcome]:
        return await asyncio.gather(*(pool.process(item(i), i == 3, Path(f"/out/{i}.json")) for i in range(20)))

    try:
        outcomes = asyncio.run(run())
    finally:
        pool.close()
    assert [o.item.index for o in outcomes] == list(range(20))
    pids = {o.error.split()[0] for o in outcomes}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    assert outcomes[3].error.endswith("True /out/3.json") and outcomes[4].error.endswith("False /out/4.json")
    assert warnings == ["worker up", "worker up"]  # a worker's warnings reach the parent's observer


def test_a_bug_in_a_worker_fails_the_run_with_its_traceback():
    pool = WorkerEngine(1, 8, make_pid_processor)
    try:
        with pytest.raises(WorkerFailed, match="a bug in the worker"):
            asyncio.run(pool.process(item(0, "bug"), False, None))
    finally:
        pool.close()


def test_a_worker_that_dies_fails_its_documents_instead_of_hanging():
    pool = WorkerEngine(1, 8, make_pid_processor)
    try:
        with pytest.raises(WorkerFailed, match="exited unexpectedly"):
            asyncio.run(asyncio.wait_for(pool.process(item(0, "die"), False, None), timeout=10))
    finally:
        pool.close()


def test_auto_workers_only_for_big_concurrent_runs_on_a_server():
    assert auto_workers(8, True, 1000, cpus=8) == 1  # the default concurrency: one process
    assert auto_workers(32, True, 1000, cpus=8) == 2
    assert auto_workers(256, True, 10_000, cpus=4) == 4  # never more than the CPUs
    assert auto_workers(32, True, 20, cpus=8) == 1  # a small run is not worth a fork
    assert auto_workers(64, False, 1000, cpus=8) == 1  # one embedded model, in-process


def _acquire_times(limiter: RateLimiter, count: int, times, offset: int, pause: float) -> None:
    async def go() -> None:
        for i in range(count):
            await limiter.acquire()
            times[offset + i] = time.monotonic()
            if pause and i == 0:
                limiter.pause(pause)

    asyncio.run(go())


def test_one_rate_limit_is_shared_by_forked_processes():
    context = multiprocessing.get_context("fork")
    limiter = RateLimiter(rpm=600, shared=True)  # one request per 0.1 s for the whole run
    times = context.RawArray("d", 10)
    procs = [context.Process(target=_acquire_times, args=(limiter, 5, times, 5 * n, 0.0)) for n in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=20)
    gaps = [b - a for a, b in zip(sorted(times), sorted(times)[1:])]
    assert all(gap >= 0.09 for gap in gaps), gaps  # never two requests in one slot, across processes


def test_a_429_pause_in_one_process_holds_the_others():
    context = multiprocessing.get_context("fork")
    limiter = RateLimiter(shared=True)  # no pacing: only the pause holds requests
    times = context.RawArray("d", 2)
    first = context.Process(target=_acquire_times, args=(limiter, 1, times, 0, 0.5))
    first.start()
    first.join(timeout=20)
    second = context.Process(target=_acquire_times, args=(limiter, 1, times, 1, 0.0))
    second.start()
    second.join(timeout=20)
    assert times[1] - times[0] >= 0.45
