"""Documents longer than one request: split on paragraph and sentence boundaries, extract, merge."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .artifacts import PromptSpec, SchemaSpec
from .backends.base import Backend, Usage
from .errors import InvalidAnswer
from .pipeline import Check, Extraction, describe_validation_error, extract

_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+")


@dataclass(frozen=True)
class DocumentExtraction(Extraction):
    """An Extraction plus the number of chunks the document was read in."""

    chunks: int = 1


def split_text(text: str, limit: int) -> list[str]:
    """Chunks of at most `limit` characters, cut at paragraphs, then sentences, then spaces."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    for paragraph in text.split("\n\n"):
        if len(paragraph) <= limit:
            pieces.append(paragraph)
            continue
        for sentence in _SENTENCE.split(paragraph):
            while len(sentence) > limit:  # one enormous "sentence" (a one-line page): cut at a space
                cut = sentence.rfind(" ", 0, limit)
                cut = cut if cut > limit // 2 else limit
                pieces.append(sentence[:cut])
                sentence = sentence[cut:].lstrip()
            pieces.append(sentence)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        joined = f"{current}\n\n{piece}" if current else piece
        if len(joined) <= limit:
            current = joined
        else:
            chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return [c for c in chunks if c.strip()]


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
) -> DocumentExtraction:
    """Extract a whole document: directly when it fits, else chunk by chunk and merged."""
    options = {"max_reasks": max_reasks, "max_tokens": max_tokens, "temperature": temperature}
    chunks = split_text(text, max_chunk_chars)
    if len(chunks) == 1:
        one = await extract(text, schema, prompt, backend, check=check, **options)
        return DocumentExtraction(one.result, one.raw, one.attempts, one.usage, one.mode, 1)
    parts = [await extract(chunk, schema, prompt, backend, **options) for chunk in chunks]
    # One summary over the chunk summaries, written by the model from the chunks' own summaries.
    digest = "\n\n".join(
        f"Part {i} of {len(parts)}: {getattr(p.result, 'title', '')}. {getattr(p.result, 'summary', '')}"
        for i, p in enumerate(parts, 1)
    )
    overall = await extract(digest, schema, prompt, backend, **options)
    usage = sum((p.usage for p in parts), overall.usage)
    attempts = sum(p.attempts for p in parts) + overall.attempts
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


def merge_results(schema: SchemaSpec, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Lists concatenated and de-duplicated (by name), bounded by the schema; scalars: first set."""
    properties = schema.json_schema.get("properties", {})
    merged: dict[str, Any] = {}
    for name, prop in properties.items():
        values = [r.get(name) for r in results]
        if prop.get("type") == "array":
            merged[name] = _merge_list([v for v in values if v], prop.get("maxItems"))
        elif name == "source_language":
            present = [v for v in values if v]
            merged[name] = max(set(present), key=present.count) if present else None
        else:
            merged[name] = next((v for v in values if v not in (None, "", [])), values[0] if values else None)
    return merged


def _merge_list(lists: list[list[Any]], limit: int | None) -> list[Any]:
    seen: set[str] = set()
    out: list[Any] = []
    for items in lists:
        for item in items:
            key = item.get("name", repr(sorted(item.items()))) if isinstance(item, dict) else item
            key = " ".join(str(key).casefold().split())
            if key in seen:
                continue
            seen.add(key)
            out.append(item)
    return out[:limit] if limit else out
