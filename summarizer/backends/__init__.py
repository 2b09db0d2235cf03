"""Model backends: the one seam between summarizer and a model (see base.Backend).

A new backend is a class with `capabilities`, `model`, `base_url`, `complete()`, `probe()` and
`aclose()`, registered below under the name `--backend` selects it by.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ratelimit import RateLimiter
    from ..settings import Settings
    from .base import Backend, Capabilities

# --backend NAME -> "module:Class" (imported only when chosen: the local one pulls in llama_cpp).
REGISTRY = {
    "openai": "summarizer.backends.openai_compat:OpenAIBackend",
    "local": "summarizer.backends.local:LocalBackend",
}


def backend_class(settings: Settings) -> Any:
    """The class of the backend the settings choose (--backend, or auto)."""
    module_name, _, attr = REGISTRY[settings.resolved_backend].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def capabilities_of(settings: Settings) -> Capabilities:
    """What the chosen backend can do, known before any backend is built (workers fork first)."""
    caps: Capabilities = backend_class(settings).capabilities
    return caps


def model_name(settings: Settings) -> str:
    """The model the chosen backend will run, as its `model` will say (prices, dry runs, ledgers)."""
    from pathlib import Path

    capabilities = capabilities_of(settings)
    if capabilities.model_file:
        return Path(settings.model_path).name if settings.model_path is not None else capabilities.default_model
    return settings.model or capabilities.default_model


def max_tokens(settings: Settings) -> int:
    """--max-tokens, else the chosen backend's default output budget."""
    return settings.max_tokens if settings.max_tokens is not None else capabilities_of(settings).default_max_tokens


def make_backend(settings: Settings, limiter: RateLimiter | None = None, fallback_memory: Any = None) -> Backend:
    """The backend the settings ask for, built from them.

    `fallback_memory` (an int `.value`, shared by a run's worker processes) spreads auto mode's
    switch to json_object across all of them.
    """
    cls = backend_class(settings)
    backend: Backend = cls.from_settings(settings, limiter=limiter, fallback_memory=fallback_memory)
    return backend
