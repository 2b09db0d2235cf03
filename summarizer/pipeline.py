"""The extraction core: text + schema + prompt + backend in, a validated result out. No I/O."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from .artifacts import PromptSpec, SchemaSpec
from .backends.base import Backend, Completion, CompletionRequest, Usage
from .errors import InvalidAnswer, Refused, Truncated
from .spans import candidate_spans

# A check returns the problems it found in a validated result; empty means fine.
Check = Callable[[BaseModel], list[str]]

# Only the opening fence is matched by a pattern, anchored and linear: a lazy pattern over the
# whole answer backtracks for minutes on a fence followed by a few thousand spaces.
_OPENING_FENCE = re.compile(r"```[A-Za-z0-9_-]*")
# A bad answer is quoted back to the model at most this long, and so is the list of its problems.
REASK_EXCERPT_CHARS = 4_000


@dataclass(frozen=True)
class Extraction:
    """A validated result and what it took to get it."""

    result: BaseModel
    raw: str
    attempts: int
    usage: Usage
    mode: str


def build_messages(prompt: PromptSpec, text: str, boundary: str | None = None,
                   hints: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """System + user messages; the document sits between boundary markers it does not contain.

    `hints` are facts the tool measured (the source's language): stated in the system message.
    """
    # Derived from the text itself: a document cannot contain a hash of itself, and the same
    # document always gets the same prompt, so local greedy decoding is reproducible.
    boundary = boundary or hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
    while boundary in text:  # only if the caller chose a boundary the text contains
        boundary = secrets.token_hex(12)
    system = prompt.system
    if hints and hints.get("language"):
        system += (f"\n\nMeasured by the tool, not a guess: the document is written in the language with ISO "
                   f"639-1 code {hints['language']!r}. Use it for the source language.")
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": prompt.render_user(text, boundary)},
    ]


def strip_fences(content: str) -> str:
    """Remove a Markdown code fence around a JSON answer, if there is one."""
    text = content.strip()
    if len(text) < 6 or not (text.startswith("```") and text.endswith("```")):
        return text
    opening = _OPENING_FENCE.match(text)
    end = opening.end() if opening else 3
    return text[end:-3].strip() if end <= len(text) - 3 else ""


def excerpt(text: str, limit: int = REASK_EXCERPT_CHARS) -> str:
    """The text, or its first `limit` characters and a note of how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit} more characters cut]"


def describe_validation_error(error: ValidationError) -> str:
    """A compact, model-readable list of what failed and where."""
    lines = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        lines.append(f"- {where}: {item['msg']}")
    return "\n".join(lines)


async def extract(
    text: str,
    schema: SchemaSpec,
    prompt: PromptSpec,
    backend: Backend,
    *,
    max_reasks: int = 2,
    max_tokens: int = 2048,
    temperature: float = 0.0,
    check: Check | None = None,
    hints: Mapping[str, str] | None = None,
    offer_spans: bool = False,
) -> Extraction:
    """Ask the backend, validate, and re-ask with the errors until valid or out of re-asks."""
    messages = build_messages(prompt, text, hints=hints)
    # Only a backend that constrains decoding can use them; computing them costs ~1.5 ms a document.
    spans = candidate_spans(text) if offer_spans and schema.traits.verbatim else ()
    language_path = schema.traits.language
    fixed = ((language_path, hints["language"]),) if hints and hints.get("language") and language_path else ()
    usage = Usage()
    attempts = 0
    reasks = 0
    budget_raised = False
    raws: list[str] = []
    while True:
        request = CompletionRequest(tuple(messages), schema, max_tokens, temperature, fixed, spans)
        completion: Completion = await backend.complete(request)
        attempts += 1
        usage += completion.usage
        raw = completion.content or ""
        if completion.refusal or completion.finish_reason == "content_filter":
            reason = completion.refusal or "the content filter stopped the answer"
            raise Refused(f"the model refused: {reason}", raw=raw or completion.refusal, usage=usage)
        if completion.finish_reason == "length":
            if budget_raised:
                raise Truncated(
                    f"the answer was cut off at {max_tokens // 2} and again at {max_tokens} tokens: "
                    "raise --max-tokens",
                    raw=raw,
                    usage=usage,
                )
            budget_raised = True
            max_tokens *= 2
            continue
        raws.append(raw)
        problem = _problems(raw, schema, check)
        if isinstance(problem, BaseModel):
            return Extraction(problem, raw, attempts, usage, completion.mode)
        problem = excerpt(problem)
        if reasks >= max_reasks:
            raise InvalidAnswer(
                f"the answer was still invalid after {reasks} re-ask(s):\n{problem}", raw="\n---\n".join(raws),
                usage=usage,
            )
        reasks += 1
        messages = [
            *messages,
            {"role": "assistant", "content": excerpt(raw)},  # a huge bad answer is not sent back whole
            {
                "role": "user",
                "content": "Your answer was not valid:\n"
                f"{problem}\n"
                "Answer again with one corrected JSON object that fits the schema, and nothing else.",
            },
        ]


def _problems(raw: str, schema: SchemaSpec, check: Check | None) -> BaseModel | str:
    # Returns the validated model, or the text that explains what is wrong with the answer.
    if not raw.strip():
        return "- (root): the answer was empty; reply with a JSON object"
    try:
        result = schema.model.model_validate_json(strip_fences(raw))
    except ValidationError as exc:
        return describe_validation_error(exc)
    if check is not None:
        failures = check(result)
        if failures:
            return "\n".join(f"- {failure}" for failure in failures)
    return result
