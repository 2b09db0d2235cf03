"""The engine protocol, and the run's shared stop flag and spending (RunControl)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..inputs import InputItem
from ..outcome import Outcome
from ..pricing import Budget
from ..usage import Usage


class Engine(Protocol):
    """Runs the per-document processing; the scheduler keeps order, names, manifest and stops."""

    slots: int  # documents the scheduler keeps in progress at once

    async def process(self, item: InputItem, final: bool, path: Path | None) -> Outcome:
        """Process one document into `path`; never raises for a document's own failure."""
        ...

    def stop(self) -> None:
        """Start nothing new (documents in flight finish)."""
        ...

    async def aclose(self) -> None:
        """Release processes, connections and models."""
        ...


class RunControl:
    """One run's stop flag and spending, shared by the scheduler and the request gate."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget
        self.stopped = False
        self.spent = Usage()  # per answer, including documents not finished yet

    def may_send(self) -> bool:
        return not self.stopped and not (self.budget is not None and self.budget.reached(self.spent))

    def spend(self, usage: Usage) -> None:
        self.spent += usage

    def stop(self) -> None:
        self.stopped = True
