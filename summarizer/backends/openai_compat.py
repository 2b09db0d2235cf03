"""Backend for OpenAI and every OpenAI-compatible server, through the `openai` package."""

from __future__ import annotations

import email.utils
import json
import re
import time
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from ..errors import (
    AuthError,
    ConfigError,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    TransientError,
)
from ..ratelimit import RateLimiter
from .base import Capabilities, Completion, CompletionRequest, Usage

_TRANSIENT_STATUS = {408, 409, 429}
_MODE_REJECTED_STATUS = {400, 422, 500}
_FORMAT_REJECTED = re.compile(r"response_format|json_schema", re.I)
_FORMAT_WORDS = re.compile(r"response_format|json_schema|schema|structured|grammar", re.I)


def schema_instruction(request: CompletionRequest) -> str:
    """The sentence that carries the JSON Schema when the server cannot enforce it."""
    return (
        "\n\nAnswer with exactly one JSON object, no prose and no code fence. "
        f"It must conform to this JSON Schema:\n{request.schema.json_schema_text}"
    )


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from retry-after-ms or Retry-After (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def estimate_tokens(request: CompletionRequest) -> int:
    """A cheap upper-ish guess of a request's tokens, for --tpm before the server counts."""
    chars = sum(len(str(m.get("content") or "")) for m in request.messages)
    return chars // 3 + request.max_tokens


_FORMATS: dict[tuple[str, str], dict[str, Any]] = {}  # (schema id:sha256, mode) -> body part


def format_body(schema: Any, mode: str) -> dict[str, Any]:
    """The request-body part that carries the schema, built once per schema and mode."""
    key = (schema.id + ":" + schema.sha256, mode)
    body = _FORMATS.get(key)
    if body is None:
        if mode == "json_schema":
            body = {"response_format": {"type": "json_schema", "json_schema": {
                "name": schema.id, "schema": schema.json_schema, "strict": schema.strict}}}
        elif mode == "json_object":
            body = {"response_format": {"type": "json_object"}}
        elif mode == "tools":
            body = {
                "tools": [{"type": "function", "function": {
                    "name": schema.id, "description": f"Record the extracted {schema.id}.",
                    "parameters": schema.json_schema, "strict": schema.strict}}],
                "tool_choice": {"type": "function", "function": {"name": schema.id}},
            }
        else:
            raise ValueError(f"unknown mode {mode!r}")
        _FORMATS[key] = body
    return body


def request_body(request: CompletionRequest, model: str, mode: str) -> dict[str, Any]:
    """The chat-completions body for a request in a mode (shared by the live and the batch backend)."""
    messages = [dict(m) for m in request.messages]  # never mutate the caller's list
    if mode == "json_object":
        messages[0]["content"] = str(messages[0]["content"]) + schema_instruction(request)
    return {
        "model": model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        **format_body(request.schema, mode),
    }


def unpack_response(response: Any, mode: str, where: str) -> Completion:
    """A Completion from a chat completion's JSON; any other shape is a TransientError."""
    try:
        choice = response["choices"][0]
        message = choice.get("message") or {}
        content = message.get("content")
        tool_calls = message.get("tool_calls")
        if mode == "tools" and tool_calls:
            content = tool_calls[0]["function"]["arguments"]
        finish_reason = choice.get("finish_reason")
        refusal = message.get("refusal")
        reported = response.get("usage")
    except (TypeError, KeyError, IndexError, AttributeError):
        raise TransientError(f"the model server sent an answer that is not a chat completion ({where})") from None
    if content is not None and not isinstance(content, str):
        raise TransientError(f"the model server sent non-text content ({where})")
    usage = Usage(requests=1)
    if isinstance(reported, dict):
        usage = Usage(int(reported.get("prompt_tokens") or 0), int(reported.get("completion_tokens") or 0), 1)
    return Completion(content=content, finish_reason=finish_reason, refusal=refusal, usage=usage, mode=mode)


class OpenAIBackend:
    """Chat completions with structured output, one retry layer (tenacity), modes with fallback."""

    capabilities = Capabilities(default_model="gpt-4o-mini")

    @classmethod
    def from_settings(cls, settings: Any, *, limiter: RateLimiter | None = None,
                      fallback_memory: Any = None) -> OpenAIBackend:
        """The backend the run's settings describe."""
        return cls(
            model=settings.model or cls.capabilities.default_model,
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

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str,
        mode: str = "auto",
        timeout: float = 60.0,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
        backoff: float = 1.0,
        limiter: RateLimiter | None = None,
        fallback_memory: Any = None,
    ) -> None:
        from openai import AsyncOpenAI  # heavy import, paid only when a request is made

        self.model = model
        self.base_url = base_url
        self._secret = api_key
        self._auto = mode == "auto"
        self.mode = "json_schema" if self._auto else mode
        self._max_attempts = max_attempts
        self._max_retry_wait = max_retry_wait
        self._backoff = backoff
        self._limiter = limiter or RateLimiter()
        # max_retries=0: tenacity below is the only retry layer, so attempts never multiply.
        self._client = AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
        # Anything with an int `.value` (shared memory when a run has worker processes): set to 1
        # once any backend of the run fell back, so that every other one skips json_schema too.
        self._fallback_memory = fallback_memory

    async def aclose(self) -> None:
        await self._client.close()

    async def list_models(self, limit: int = 10_000) -> list[str]:
        """The model ids the server offers (GET /models), sorted."""
        import openai

        names: list[str] = []
        try:
            async for model in self._client.models.list():
                names.append(str(getattr(model, "id", "")))
                if len(names) >= limit:
                    break
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise ConfigError(f"cannot reach the model server at {self._where()}: {self._clean(exc)}") from exc
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        return sorted(n for n in names if n)

    async def complete(self, request: CompletionRequest) -> Completion:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            retry=retry_if_exception(self._worth_retrying),
            wait=self._wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_with_fallback(request)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _worth_retrying(self, exc: BaseException) -> bool:
        if isinstance(exc, RateLimited) and (exc.retry_after or 0) > self._max_retry_wait:
            return False  # the caller defers the document instead of blocking a worker
        return isinstance(exc, TransientError)

    def _wait(self, state: Any) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return exc.retry_after  # the limiter already paused the whole run for as long
        return wait_random_exponential(multiplier=self._backoff, max=30)(state)

    async def _send_with_fallback(self, request: CompletionRequest) -> Completion:
        if self._auto and self._fallback_memory is not None and self._fallback_memory.value:
            self.mode = "json_object"
        mode = self.mode
        try:
            return await self._send(request, mode)
        except RequestRejected as exc:
            # Only a rejection of the structured-output request itself switches modes: a 400 for
            # an unknown model or a bad parameter must fail after one request, not two.
            about_format = _FORMAT_WORDS.search(str(exc)) is not None
            if not (self._auto and mode == "json_schema" and exc.status_code in _MODE_REJECTED_STATUS
                    and about_format):
                raise
        # The server rejected json_schema: remember json_object for the rest of the run.
        self.mode = "json_object"
        if self._fallback_memory is not None:
            self._fallback_memory.value = 1
        return await self._send(request, self.mode)

    async def _send(self, request: CompletionRequest, mode: str) -> Completion:
        import openai

        estimated = estimate_tokens(request)
        await self._limiter.acquire(estimated)
        body = request_body(request, self.model, mode)
        try:
            # client.post (the SDK's documented route for raw bodies) rather than
            # chat.completions.create: create() re-walks every message against a union of
            # TypedDicts on each call (~1.4 ms of CPU per request here), and building a
            # ChatCompletion model from the answer costs ~0.3 ms more; the body goes as bytes and
            # the answer comes back as plain JSON. Auth, timeouts and error mapping are the SDK's.
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            response = await self._client.post("/chat/completions", content=content, cast_to=object)
        except openai.APITimeoutError as exc:
            raise TransientError(f"the model server did not answer in time ({self._where()})") from exc
        except openai.APIConnectionError as exc:
            raise TransientError(f"cannot reach the model server at {self._where()}: {self._clean(exc)}") from exc
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        return self._unpack(response, mode, estimated)

    def _unpack(self, response: Any, mode: str, estimated: int) -> Completion:
        """A Completion from the answer's JSON; any shape other than a chat completion is transient."""
        completion = unpack_response(response, mode, self._where())
        if isinstance(response.get("usage"), dict):
            self._limiter.reconcile(estimated, completion.usage.total_tokens)
        return completion

    def _status_error(self, exc: Any) -> Exception:
        status = exc.status_code
        detail = self._clean(exc)
        if status in (401, 403):
            return AuthError(
                f"the model server refused the API key (HTTP {status}): check OPENAI_API_KEY "
                f"and that it may use model {self.model!r}"
            )
        if status == 429:
            if "insufficient_quota" in detail or "quota" in _error_code(exc):
                return QuotaExhausted(
                    "the API quota is exhausted (HTTP 429 insufficient_quota): add credit or use another key; "
                    "finished documents are kept, re-run the same command to continue"
                )
            retry_after = parse_retry_after(exc.response.headers)
            if retry_after is not None:
                self._limiter.pause(retry_after)
            return RateLimited(f"rate limited by the model server (HTTP 429): {detail}", retry_after)
        if status >= 500 and _FORMAT_REJECTED.search(detail):
            # llama.cpp's Python server answers an unknown response_format with a 500: retrying
            # the same request cannot help, but another mode can (auto falls back on this).
            return RequestRejected(f"the model server rejected the request (HTTP {status}): {detail}", status)
        if status in _TRANSIENT_STATUS or status >= 500:
            return TransientError(f"the model server failed (HTTP {status}): {detail}")
        return RequestRejected(f"the model server rejected the request (HTTP {status}): {detail}", status)

    def _clean(self, exc: Exception) -> str:
        # Error bodies sometimes quote the key back; it must never reach a log or a manifest.
        text = str(exc)
        if self._secret and len(self._secret) >= 4:
            text = text.replace(self._secret, "[redacted]")
        return text[:500]

    def _where(self) -> str:
        return self.base_url or "the OpenAI API"


def _error_code(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return json.dumps([err.get("code"), err.get("type")])
    return ""
