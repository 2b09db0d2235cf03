"""Model backends: the one seam between summarizer and a model (see base.Backend)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ratelimit import RateLimiter
    from ..settings import Settings
    from .base import Backend


def make_backend(settings: Settings, limiter: RateLimiter | None = None, fallback_memory: Any = None) -> Backend:
    """The backend the settings ask for: OpenAI-compatible or the embedded local model.

    `fallback_memory` (an int `.value`, shared by a run's worker processes) spreads auto mode's
    switch to json_object across all of them.
    """
    if settings.resolved_backend == "local":
        from .local import LocalBackend

        return LocalBackend(model_path=settings.model_path, n_ctx=settings.n_ctx, verbose=settings.verbose)
    from .openai_compat import OpenAIBackend

    return OpenAIBackend(
        model=settings.resolved_model,
        base_url=settings.base_url,
        # Local OpenAI-compatible servers need no key, but the SDK insists on one.
        api_key=settings.api_key or "no-key-needed",
        mode=settings.mode,
        timeout=settings.timeout,
        max_attempts=settings.retries + 1,
        max_retry_wait=settings.max_retry_wait,
        backoff=settings.backoff,
        limiter=limiter,
        fallback_memory=fallback_memory,
    )
