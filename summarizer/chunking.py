"""Documents longer than one request: split on paragraph and sentence boundaries, extract, merge."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from summarizer.schemas._common import fold

from .artifacts import PromptSpec, SchemaSpec
from .backends.base import Backend
from .errors import InvalidAnswer
from .pipeline import Check, Extraction, describe_validation_error, extract

T = TypeVar("T")

# Chunks of one document in flight at once: long documents finish sooner, while the run's
# rate limiter still paces every request.
CHUNK_CONCURRENCY = 4

# Boundaries, best first. Separators are cut before (the whitespace falls between chunks);
# sentence ends are cut after the punctuation and any closing quote or bracket.
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_LINE = re.compile(r"\n")
_SENTENCE = re.compile(r"[.!?…][\"'”’»)\]]*(?=\s)|[。！？；][」』）】”’]*")
_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class DocumentExtraction(Extraction):
    """An Extraction plus the number of chunks the document was read in."""

    chunks: int = 1


def split_text(text: str, limit: int) -> list[str]:
    """Chunks of at most `limit` characters, cut at paragraphs, then lines, sentences, spaces.

    Every chunk is a verbatim slice of `text`, and together they hold all of it except the
    whitespace at the cuts: nothing is ever dropped. Each cut is the best kind of boundary found
    in the second half of the allowed length, so every chunk but the last holds at least half
    of `limit`.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1 character")
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    start, end = 0, len(text)
    while True:
        while start < end and text[start].isspace():
            start += 1
        if start >= end:
            break
        if end - start <= limit:
            chunks.append(text[start:].rstrip())
            break
        cut = _cut(text, start, limit)
        chunks.append(text[start:cut].rstrip())
        start = cut
    return chunks


def _cut(text: str, start: int, limit: int) -> int:
    """Where the chunk starting at `start` ends: the best boundary in its second half."""
    window = text[start:start + limit + 1]  # +1: a separator right after the limit still counts
    floor = max(1, limit // 2)
    for pattern, after in ((_PARAGRAPH, False), (_LINE, False), (_SENTENCE, True), (_SPACE, False)):
        best = None
        for match in pattern.finditer(window, floor):
            position = match.end() if after else match.start()
            if position > limit:
                break
            best = position
        if best is not None:
            return start + best
    position = start + limit  # one enormous word: cut inside it, but not inside a character
    while position > start + 1 and unicodedata.combining(text[position]):
        position -= 1
    return position


async def extract_document(
    text: str,
    schema: SchemaSpec,
    prompt: PromptSpec,
    backend: Backend,
    *,
    max_chunk_chars: int,
    max_reasks: int = 2,
    max_tokens: int = 2048,
    temperature: float = 0.0,
    check: Check | None = None,
    hints: Mapping[str, str] | None = None,
) -> DocumentExtraction:
    """Extract a whole document: directly when it fits, else chunk by chunk and merged."""
    options = {"max_reasks": max_reasks, "max_tokens": max_tokens, "temperature": temperature, "hints": hints}
    chunks = split_text(text, max_chunk_chars) or [text]
    if len(chunks) == 1:
        one = await extract(text, schema, prompt, backend, check=check, **options)
        return DocumentExtraction(one.result, one.raw, one.attempts, one.usage, one.mode, 1)
    parts: list[Extraction] = await _bounded(
        [partial(extract, chunk, schema, prompt, backend, **options) for chunk in chunks], CHUNK_CONCURRENCY
    )
    # One summary over the chunk summaries, written by the model from the chunks' own summaries.
    overall, extra = await _summarize_parts(parts, schema, prompt, backend, max_chunk_chars, options)
    usage = sum((p.usage for p in [*parts, *extra]), overall.usage)
    attempts = sum(p.attempts for p in [*parts, *extra]) + overall.attempts
    merged = merge_results(schema, [p.result.model_dump(mode="json") for p in parts])
    for name in ("title", "summary"):
        if name in merged:
            merged[name] = getattr(overall.result, name)
    try:
        result = schema.model.model_validate(merged)
    except ValidationError as exc:
        raise InvalidAnswer(
            f"the {len(chunks)} chunk results could not be merged into one valid result:\n"
            f"{describe_validation_error(exc)}",
            raw="\n---\n".join(p.raw for p in parts),
        ) from exc
    if check is not None and (problems := check(result)):
        raise InvalidAnswer("the merged result failed checks:\n" + "\n".join(problems))
    return DocumentExtraction(result, overall.raw, attempts, usage, overall.mode, len(chunks))


def _digest(parts: Sequence[Extraction], first: int, total: int) -> str:
    return "\n\n".join(
        f"Part {i} of {total}: {getattr(p.result, 'title', '')}. {getattr(p.result, 'summary', '')}"
        for i, p in enumerate(parts, first)
    )


async def _summarize_parts(
    parts: list[Extraction], schema: SchemaSpec, prompt: PromptSpec, backend: Backend, limit: int,
    options: dict[str, Any],
) -> tuple[Extraction, list[Extraction]]:
    """The extraction over all parts' summaries, and any intermediate ones it took.

    When the summaries of a very long document do not fit one request either, groups of them
    are summarized first, level by level, so no part is left out of the overall summary.
    """
    intermediate: list[Extraction] = []
    while True:
        digest = _digest(parts, 1, len(parts))
        if len(digest) <= limit or len(parts) == 1:
            return await extract(digest, schema, prompt, backend, **options), intermediate
        groups: list[list[tuple[int, Extraction]]] = [[]]
        size = 0
        for i, part in enumerate(parts, 1):
            length = len(_digest([part], i, len(parts))) + 2
            if groups[-1] and size + length > limit:
                groups.append([])
                size = 0
            groups[-1].append((i, part))
            size += length
        if len(groups) == len(parts):  # every summary alone fills half a request: grouping cannot help
            return await extract(digest, schema, prompt, backend, **options), intermediate
        parts = await _bounded(
            [partial(extract, _digest([p for _, p in g], g[0][0], len(parts)), schema, prompt, backend, **options)
             for g in groups],
            CHUNK_CONCURRENCY,
        )
        intermediate.extend(parts)


async def _bounded(calls: list[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run all calls, at most `limit` at a time; results in order; the first failure cancels the rest."""
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await call()  # created only once admitted: a cancelled wait leaves nothing un-awaited

    tasks = [asyncio.ensure_future(run(call)) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def merge_results(schema: SchemaSpec, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Lists concatenated and de-duplicated (by name), bounded by the schema; scalars: first set."""
    properties = schema.json_schema.get("properties", {})
    merged: dict[str, Any] = {}
    for name, prop in properties.items():
        values = [r.get(name) for r in results]
        if _is_array(prop):
            merged[name] = _merge_list([v for v in values if v], _max_items(prop))
        elif name == "source_language":
            present = [v for v in values if v]
            # most_common keeps first-seen order on ties, so the result does not depend on hashing.
            merged[name] = Counter(present).most_common(1)[0][0] if present else None
        else:
            merged[name] = next((v for v in values if v not in (None, "", [])), values[0] if values else None)
    return merged


def _is_array(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "array" or any(o.get("type") == "array" for o in prop.get("anyOf", []))


def _max_items(prop: dict[str, Any]) -> int | None:
    if "maxItems" in prop:
        return prop["maxItems"]
    return next((o["maxItems"] for o in prop.get("anyOf", []) if "maxItems" in o), None)


def _fold(value: Any) -> str:
    # The schemas' own duplicate check key, so merging and validation agree on "the same name".
    return fold(str(value))


def _merge_list(lists: list[list[Any]], limit: int | None) -> list[Any]:
    """One list, each entity once: later mentions fill fields the first one left empty."""
    kept: dict[str, Any] = {}
    for items in lists:
        for item in items:
            if isinstance(item, dict):
                key = _fold(item["name"]) if item.get("name") else _fold(repr(sorted(item.items())))
            else:
                key = _fold(item)
            if key not in kept:
                kept[key] = dict(item) if isinstance(item, dict) else item
                continue
            first = kept[key]
            if isinstance(first, dict) and isinstance(item, dict):
                for field, value in item.items():
                    if first.get(field) in (None, "", []) and value not in (None, "", []):
                        first[field] = value
                if item.get("role") == "party":  # a party in any chunk is a party of the document
                    first["role"] = "party"
    out = list(kept.values())
    return out[:limit] if limit else out
