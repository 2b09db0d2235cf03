"""Documents longer than one request: split on paragraph and sentence boundaries, extract, merge."""

from __future__ import annotations

import asyncio
import json
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
from .errors import AwaitingBatch, InvalidAnswer
from .pipeline import Check, Extraction, describe_validation_error, extract
from .traits import SchemaTraits, item_path, iter_values, set_value, strings_at

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
    offer_spans: bool = False,
) -> DocumentExtraction:
    """Extract a whole document: directly when it fits, else chunk by chunk and merged."""
    options = {"max_reasks": max_reasks, "max_tokens": max_tokens, "temperature": temperature, "hints": hints,
               "offer_spans": offer_spans}
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
    written = overall.result.model_dump(mode="json")
    for path in (schema.traits.title, schema.traits.summary):  # the overall ones, not the first chunk's
        for where, value in iter_values(written, path) if path else ():
            set_value(merged, where, value)
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


def _digest(parts: Sequence[Extraction], first: int, total: int, traits: SchemaTraits) -> str:
    return "\n\n".join(f"Part {i} of {total}: {_gist(p, traits)}" for i, p in enumerate(parts, first))


def _gist(part: Extraction, traits: SchemaTraits) -> str:
    """A part's title and summary, as the schema's traits name them."""
    data = part.result.model_dump(mode="json")
    texts = [" ".join(v for _, v in strings_at(data, path)) if path else "" for path in (traits.title, traits.summary)]
    return ". ".join(texts)


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
        digest = _digest(parts, 1, len(parts), schema.traits)
        if len(digest) <= limit or len(parts) == 1:
            return await extract(digest, schema, prompt, backend, **options), intermediate
        groups: list[list[tuple[int, Extraction]]] = [[]]
        size = 0
        for i, part in enumerate(parts, 1):
            length = len(_digest([part], i, len(parts), schema.traits)) + 2
            if groups[-1] and size + length > limit:
                groups.append([])
                size = 0
            groups[-1].append((i, part))
            size += length
        if len(groups) == len(parts):  # every summary alone fills half a request: grouping cannot help
            return await extract(digest, schema, prompt, backend, **options), intermediate
        parts = await _bounded(
            [partial(extract, _digest([p for _, p in g], g[0][0], len(parts), schema.traits), schema, prompt, backend,
                     **options)
             for g in groups],
            CHUNK_CONCURRENCY,
        )
        intermediate.extend(parts)


async def _bounded(calls: list[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run all calls, at most `limit` at a time; results in order; the first failure cancels the rest."""
    semaphore = asyncio.Semaphore(limit)
    waiting: list[AwaitingBatch] = []

    async def run(call: Callable[[], Awaitable[T]]) -> T | None:
        async with semaphore:
            try:
                return await call()  # created only once admitted: a cancelled wait leaves nothing un-awaited
            except AwaitingBatch as exc:
                # Batch mode: every other chunk must still queue its request for the same batch,
                # or a document of n chunks would take n batch rounds.
                waiting.append(exc)
                return None

    tasks = [asyncio.ensure_future(run(call)) for call in calls]
    try:
        results = list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if waiting:
        raise waiting[0]
    return results  # type: ignore[return-value]  # no None left once nothing waits


def merge_results(schema: SchemaSpec, results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from the chunks' results, read through the schema's traits.

    Lists hold each item once: entities by their Key field, other items by their whole value,
    both folded (the schemas' own duplicate key). A later mention fills the fields the first one
    left empty, and where two mentions pick different options of a choice, the option the schema
    lists first wins ("party" before "mentioned": list specific options first, "other" last).
    The source language is the chunks' most common one; any other field is the first chunk's
    value that is set. Link values are then spelled as their targets, and a list cut to the
    schema's maxItems keeps the items that links name.
    """
    traits = schema.traits
    root = schema.json_schema
    properties = root.get("properties", {})
    merged: dict[str, Any] = {}
    for name, prop in properties.items():
        values = [r.get(name) for r in results]
        if _is_array(prop):
            lists = [v for v in values if isinstance(v, list)]
            merged[name] = _merge_list(lists, traits.entities.get(name), _choices(root, prop))
        elif name == traits.language:
            present = [v for v in values if v]
            # most_common keeps first-seen order on ties, so the result does not depend on hashing.
            merged[name] = Counter(present).most_common(1)[0][0] if present else None
        else:
            merged[name] = next((v for v in values if v not in (None, "", [])), values[0] if values else None)
    _respell_links(merged, traits)
    for name, prop in properties.items():
        limit = _max_items(prop) if _is_array(prop) else None
        if limit is not None and isinstance(merged[name], list) and len(merged[name]) > limit:
            merged[name] = _cap(merged[name], limit, _linked(merged, traits, name))
    return merged


def _is_array(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "array" or any(o.get("type") == "array" for o in prop.get("anyOf", []))


def _max_items(prop: dict[str, Any]) -> int | None:
    if "maxItems" in prop:
        return prop["maxItems"]
    return next((o["maxItems"] for o in prop.get("anyOf", []) if "maxItems" in o), None)


def _resolve(root: dict[str, Any], node: Any) -> Any:
    # Through a nullable anyOf and a $ref to the node that says what the value is.
    if isinstance(node, dict) and "anyOf" in node:
        node = next((o for o in node["anyOf"] if isinstance(o, dict) and o.get("type") != "null"), node)
    if isinstance(node, dict) and isinstance(node.get("$ref"), str):
        node = root.get("$defs", {}).get(node["$ref"].rsplit("/", 1)[-1], node)
    return node


def _choices(root: dict[str, Any], prop: dict[str, Any]) -> dict[str, list[Any]]:
    """For a list of objects: each field with a fixed set of options, and the options in schema order."""
    items = _resolve(root, _resolve(root, prop).get("items"))
    fields = items.get("properties", {}) if isinstance(items, dict) else {}
    found = {}
    for field, node in fields.items():
        node = _resolve(root, node)
        if isinstance(node, dict) and isinstance(node.get("enum"), list):
            found[field] = node["enum"]
    return found


def _key(item: Any, key: str | None) -> str:
    # The schemas' own duplicate check key, so merging and validation agree on "the same name".
    if isinstance(item, dict):
        if key is not None and isinstance(item.get(key), str) and item[key].strip():
            return fold(item[key])
        return fold(json.dumps(item, sort_keys=True, ensure_ascii=False))
    return fold(str(item))


def _merge_list(lists: list[list[Any]], key: str | None, choices: dict[str, list[Any]]) -> list[Any]:
    """One list, each item once: later mentions fill empty fields and may pick an earlier option."""
    kept: dict[str, Any] = {}
    for items in lists:
        for item in items:
            k = _key(item, key)
            if k not in kept:
                kept[k] = dict(item) if isinstance(item, dict) else item
                continue
            first = kept[k]
            if not (isinstance(first, dict) and isinstance(item, dict)):
                continue
            for field, value in item.items():
                current = first.get(field)
                if current in (None, "", []) and value not in (None, "", []):
                    first[field] = value
                elif _earlier(choices.get(field), value, current):
                    first[field] = value  # e.g. a party in any chunk is a party of the document
    return list(kept.values())


def _earlier(options: list[Any] | None, value: Any, current: Any) -> bool:
    return bool(options) and value in options and current in options and options.index(value) < options.index(current)


def _targets(merged: dict[str, Any], traits: SchemaTraits, target: str) -> dict[str, str]:
    """Folded name -> the target's spelling, for every value a link to `target` may use."""
    holder, key = item_path(target)
    verbatim = [item_path(v)[1] for v in traits.verbatim if item_path(v)[0] == holder]
    spelled: dict[str, str] = {}
    for _, item in iter_values(merged, holder):
        if isinstance(item, dict) and isinstance(item.get(key), str):
            spelled[fold(item[key])] = item[key]
            for field in verbatim:
                if isinstance(item.get(field), str):
                    spelled.setdefault(fold(item[field]), item[key])
    return spelled


def _respell_links(merged: dict[str, Any], traits: SchemaTraits) -> None:
    """Each link value spelled exactly as the target it names, and named once."""
    for path, target in traits.links.items():
        spelled = _targets(merged, traits, target)
        for where, value in list(strings_at(merged, path)):
            if spelled.get(fold(value), value) != value:
                set_value(merged, where, spelled[fold(value)])
        if path.endswith("[]"):
            for _, values in iter_values(merged, path[:-2]):
                if isinstance(values, list):
                    seen: set[str] = set()
                    values[:] = [v for v in values if not (_key(v, None) in seen or seen.add(_key(v, None)))]


def _linked(merged: dict[str, Any], traits: SchemaTraits, name: str) -> dict[str, set[str]]:
    """Field -> the folded values that links name in the top-level list `name`."""
    named: dict[str, set[str]] = {}
    for path, target in traits.links.items():
        holder, key = item_path(target)
        if holder == f"{name}[]":
            named.setdefault(key, set()).update(fold(v) for _, v in strings_at(merged, path))
    return named


def _cap(items: list[Any], limit: int, named: dict[str, set[str]]) -> list[Any]:
    """The first `limit` items, except that items a link names are kept before any other."""
    keep = {i for i, item in enumerate(items) if isinstance(item, dict)
            and any(fold(str(item.get(key) or "")) in values for key, values in named.items())}
    keep = set(sorted(keep)[:limit])
    for i in range(len(items)):
        if len(keep) >= limit:
            break
        keep.add(i)
    return [item for i, item in enumerate(items) if i in keep]
