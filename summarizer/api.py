"""The Python API: the CLI's pipeline (settings, backend, cache, checks, processor) as function calls.

    import summarizer
    result = summarizer.summarize("Daimler and CATL signed ...", base_url="http://localhost:11434/v1")
    print(result.status, result.data.title)

Settings are keyword arguments with the CLI's names (`model=`, `base_url=`, `concurrency=`...) or a
`Settings` object; the environment and the config file fill the rest, as for the CLI. Failures
raise the documented exceptions (summarizer.errors); a result whose facts the source does not
support is returned with `status == "flagged"` (check `result.ok`).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel

from .artifacts import SchemaSpec, load_schema, prompt_for, schema_from_model
from .errors import InputError, SummarizerError
from .inputs import InputItem
from .outcome import OK_STATUSES, Outcome, Status
from .settings import Settings, build_settings

Source = str | Path | bytes
AHEAD = 16  # results summarize_many's loop may finish before the caller takes them


@dataclass(frozen=True)
class Result:
    """One document's result: the validated model, its checks and the whole output document."""

    status: str
    data: BaseModel
    envelope: dict[str, Any]
    output_path: Path | None = None

    @property
    def ok(self) -> bool:
        """True when valid and supported by the source (not flagged)."""
        return self.status in OK_STATUSES

    @property
    def checks(self) -> dict[str, Any]:
        return dict(self.envelope.get("checks") or {})


def summarize(source: Source, *, schema: str | type[BaseModel] = "article", settings: Settings | None = None,
              **options: Any) -> Result:
    """Summarize one text (str), file (Path) or raw document (bytes); blocks until done."""
    return asyncio.run(asummarize(source, schema=schema, settings=settings, **options))


async def asummarize(source: Source, *, schema: str | type[BaseModel] = "article",
                     settings: Settings | None = None, **options: Any) -> Result:
    """Summarize one text, file or raw document (async)."""
    async with _Session(schema, settings, options) as session:
        return session.result(await session.process(0, source))


async def asummarize_many(sources: Iterable[Source], *, schema: str | type[BaseModel] = "article",
                          settings: Settings | None = None, **options: Any) -> AsyncIterator[Result | SummarizerError]:
    """Summarize many documents concurrently (`concurrency=`); yields each result as it finishes.

    A document that fails yields its exception (an instance from summarizer.errors) instead of
    raising it, so one bad document never stops the rest.
    """
    async with _Session(schema, settings, options) as session:

        async def one(index: int, source: Source) -> Result | SummarizerError:
            try:
                return session.result(await session.process(index, source))
            except SummarizerError as exc:
                return exc

        # At most `concurrency` documents in progress: sources are read lazily, so a generator of
        # millions of them never becomes millions of tasks.
        pending: set[asyncio.Future[Result | SummarizerError]] = set()
        try:
            for index, source in enumerate(sources):
                pending.add(asyncio.ensure_future(one(index, source)))
                if len(pending) >= session.concurrency:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for finished in done:
                        yield finished.result()
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    yield finished.result()
        finally:  # the caller stopped early: documents in progress are abandoned before the session closes
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def summarize_many(sources: Iterable[Source], *, schema: str | type[BaseModel] = "article",
                   settings: Settings | None = None, **options: Any) -> Iterator[Result | SummarizerError]:
    """Blocking form of asummarize_many: yields results as they finish (a loop runs in a thread)."""
    # Bounded: the loop runs at most a few results ahead of the caller, and stops when the caller does.
    results: queue.Queue[Any] = queue.Queue(maxsize=AHEAD)
    done, stop = object(), threading.Event()

    async def produce() -> None:
        try:
            async for result in asummarize_many(sources, schema=schema, settings=settings, **options):
                await asyncio.to_thread(results.put, result)  # waits for the caller, not on the loop
                if stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            results.put(exc)
        finally:
            results.put(done)

    thread = threading.Thread(target=asyncio.run, args=(produce(),), daemon=True)
    thread.start()
    try:
        while (item := results.get()) is not done:
            if isinstance(item, BaseException) and not isinstance(item, SummarizerError):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let a waiting put through; the loop then closes the session
            try:
                results.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


class _Session:
    """Settings, backend, cache and processor for one API call, closed when it ends."""

    def __init__(self, schema: str | type[BaseModel], settings: Settings | None, options: dict[str, Any]) -> None:
        if settings is None:
            config = options.pop("config", None)  # the config file itself, not a setting
            ref = schema if isinstance(schema, str) else f"{schema.__module__}:{schema.__qualname__}"
            settings = build_settings({**options, "schema": ref}, os.environ, config)
        self.settings = settings
        self.schema: SchemaSpec = load_schema(schema) if isinstance(schema, str) else schema_from_model(schema)

    async def __aenter__(self) -> _Session:
        from .backends import capabilities_of, max_tokens
        from .engines.base import RunControl
        from .processor import ProcessorFactory, RunSpec
        from .ratelimit import RateLimiter
        from .shared_store import open_store

        s = self.settings
        spec = RunSpec(s, self.schema, prompt_for(self.schema, s.prompt_dir), s.resolved_backend,
                       capabilities_of(s), max_tokens(s))
        self.concurrency = spec.request_slots
        store = open_store(s.store, s.store_endpoint) if s.store else None
        # The same factory the engines use: processor, backend, per-node cache and shared store.
        build = ProcessorFactory(spec, s.cache_dir if s.use_cache else None, store, RateLimiter(s.rpm, s.tpm))
        control = RunControl()
        self.processor = build(lambda message: None, control.may_send, control.spend, spec.request_slots)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.processor.aclose()

    async def process(self, index: int, source: Source) -> Outcome:
        if isinstance(source, Path):
            item = InputItem(index, str(source), PurePath(source.name or "document"))
            if not source.is_file():
                raise InputError(f"{source}: no such file")
        else:
            data = source.encode("utf-8") if isinstance(source, str) else bytes(source)
            item = InputItem(index, f"<text {index}>", PurePath(f"text-{index}"), data=data)
        return await self.processor.process(item, True, None)

    def result(self, outcome: Outcome) -> Result:
        """The Result of a finished document, or its exception raised."""
        if outcome.status in (*OK_STATUSES, Status.FLAGGED) and outcome.envelope is not None:
            data = self.schema.model.model_validate(outcome.envelope["result"])
            return Result(str(outcome.status), data, outcome.envelope, outcome.output_path)
        if isinstance(outcome.exception, SummarizerError):
            raise outcome.exception
        # Anything else (a bug, a user validator's RuntimeError) is still this document's failure.
        raise SummarizerError(outcome.error or f"the document ended as {outcome.status}") from outcome.exception
