"""The backend protocol: one async `complete` call per request, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..artifacts import SchemaSpec
from ..choices import MODES
from ..usage import Usage

__all__ = ["MODES", "Backend", "Capabilities", "Completion", "CompletionRequest", "Usage"]


@dataclass(frozen=True)
class CompletionRequest:
    """What the pipeline asks a backend for: messages plus the schema to answer in."""

    messages: tuple[dict[str, Any], ...]
    schema: SchemaSpec
    max_tokens: int
    temperature: float = 0.0
    # Values the tool knows for certain, by trait path (e.g. the detected source language): a
    # backend that constrains decoding may force them; the others got them as hints in the prompt.
    fixed: tuple[tuple[str, Any], ...] = ()
    # Exact substrings of the document that verbatim fields may take (summarizer/spans.py): a
    # backend that constrains decoding offers only these, so it cannot invent a verbatim value.
    spans: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    """A backend's answer, already unpacked from the SDK's response object."""

    content: str | None
    finish_reason: str | None
    refusal: str | None = None
    usage: Usage = field(default_factory=Usage)
    mode: str = "json_schema"


@dataclass(frozen=True)
class Capabilities:
    """What a kind of backend can do; the rest of the tool asks this, never the backend's name."""

    parallel_requests: bool = True  # False: one request at a time (one model instance in-process)
    constrained_decoding: bool = False  # answers are forced into the schema by a grammar
    default_model: str = ""
    default_max_tokens: int = 2048
    paid: bool = True  # requests cost money (list prices apply); False: runs on this machine
    remote: bool = True  # talks to a server (worth a probe before a big run)
    quality_note: str | None = None  # said once per run on stderr (e.g. a tiny model's limits)
    batch_api: bool = False  # the server may offer /v1/files and /v1/batches (summarizer batch)
    model_file: bool = False  # runs the --model-path file (its name is the model); --model does not apply


class Backend(Protocol):
    """Anything that can answer a CompletionRequest; tests plug in fakes."""

    model: str
    base_url: str | None  # as written into outputs: never with a secret in it
    capabilities: Capabilities

    async def complete(self, request: CompletionRequest) -> Completion:
        """Send one request (retrying transient failures) and return the answer."""
        ...

    async def probe(self) -> None:
        """Before a run: raise a RunStopper if no request could succeed (server down, key refused,
        model not served); return quietly when in doubt."""
        ...

    async def aclose(self) -> None:
        """Release connections or model memory."""
        ...


def serves(model: str, ids: list[str]) -> bool:
    """Whether a server's model list names this model (Ollama lists `name:latest` for `name`)."""
    return model in ids or (":" not in model and f"{model}:latest" in ids)
