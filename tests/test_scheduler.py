"""The scheduler: what an observer's failure means for the run."""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePath

from summarizer.errors import OutputUnwritable
from summarizer.inputs import InputItem
from summarizer.outcome import Outcome, Status
from summarizer.scheduler import Scheduler


class Engine:
    slots = 1

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.stopped = False

    async def process(self, item: InputItem, final: bool, path: Path | None) -> Outcome:
        if self.stopped:
            return Outcome(item, Status.NOT_STARTED)
        self.seen.append(item.index)
        return Outcome(item, Status.OK)

    def stop(self) -> None:
        self.stopped = True

    async def aclose(self) -> None:
        pass


class Observer:
    def __init__(self, fail: BaseException) -> None:
        self.fail, self.warnings = fail, []

    def on_start(self, total: int) -> None:
        pass

    def on_outcome(self, outcome: Outcome) -> None:
        raise self.fail

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def run(observer: Observer, tmp_path: Path) -> tuple[Engine, Scheduler]:
    engine = Engine()
    scheduler = Scheduler(engine, tmp_path, manifest=None, observer=observer)
    items = [InputItem(i, f"d{i}.txt", PurePath(f"d{i}.txt"), data=b"x") for i in range(5)]
    asyncio.run(scheduler.run(items, 5))
    return engine, scheduler


def test_an_observer_that_cannot_record_stops_the_run_like_the_manifest(tmp_path):
    engine, scheduler = run(Observer(OutputUnwritable("cannot write the ledger: disk full")), tmp_path)
    assert scheduler.report.stop is OutputUnwritable and "ledger" in (scheduler.report.stopped or "")
    assert engine.seen == [0]  # nothing new started after it


def test_an_observer_that_cannot_display_is_a_warning_and_the_run_goes_on(tmp_path):
    observer = Observer(UnicodeEncodeError("ascii", "é", 0, 1, "no"))
    engine, scheduler = run(observer, tmp_path)
    assert scheduler.report.stopped is None and engine.seen == [0, 1, 2, 3, 4]
    assert len(observer.warnings) == 5 and "could not display" in observer.warnings[0]
