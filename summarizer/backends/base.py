"""The backend protocol: one async `complete` call per request, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..artifacts import SchemaSpec

MODES = ("auto", "json_schema", "json_object", "tools")


@dataclass(frozen=True)
class Usage:
    """Token counts of one or more requests."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.requests + other.requests,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "requests": self.requests,
        }


@dataclass(frozen=True)
class CompletionRequest:
    """What the pipeline asks a backend for: messages plus the schema to answer in."""

    messages: tuple[dict[str, Any], ...]
    schema: SchemaSpec
    max_tokens: int
    temperature: float = 0.0


@dataclass(frozen=True)
class Completion:
    """A backend's answer, already unpacked from the SDK's response object."""

    content: str | None
    finish_reason: str | None
    refusal: str | None = None
    usage: Usage = field(default_factory=Usage)
    mode: str = "json_schema"


class Backend(Protocol):
    """Anything that can answer a CompletionRequest; tests plug in fakes."""

    model: str
    base_url: str | None

    async def complete(self, request: CompletionRequest) -> Completion:
        """Send one request (retrying transient failures) and return the answer."""
        ...

    async def aclose(self) -> None:
        """Release connections or model memory."""
        ...
