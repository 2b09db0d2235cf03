"""The default engine: documents processed concurrently on this process's event loop."""

from __future__ import annotations

from pathlib import Path

from ..inputs import InputItem
from ..outcome import Outcome
from ..processor import DocumentProcessor, document_slots
from .base import RunControl


class InProcessEngine:
    """Runs DocumentProcessor here; `slots` documents in progress, the gate caps requests."""

    def __init__(self, processor: DocumentProcessor, control: RunControl, request_slots: int) -> None:
        self.processor, self.control = processor, control
        self.slots = document_slots(request_slots)

    async def process(self, item: InputItem, final: bool, path: Path | None) -> Outcome:
        return await self.processor.process(item, final, path)

    def stop(self) -> None:
        self.control.stop()

    async def aclose(self) -> None:
        await self.processor.aclose()
