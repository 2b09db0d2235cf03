"""Backend for OpenAI and every OpenAI-compatible server, through the `openai` package."""

from __future__ import annotations

import asyncio
import email.utils
import json
from dataclasses import replace
import math
import re
import time
from datetime import timezone
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from ..errors import (
    AuthError,
    BackendError,
    ConfigError,
    MalformedResponse,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    RunStopper,
    ServerUnreachable,
    SummarizerError,
    TransientError,
    UnknownModel,
)
from ..ratelimit import RateLimiter
from .base import Capabilities, Completion, CompletionRequest, Usage, serves
from .wire import (
    MAX_BODY_BYTES,
    CappedClient,
    Redactor,
    check_base_url,
    display_url,
    httpx,
    parse_json,
    secret_values,
)

_TRANSIENT_STATUS = {408, 409, 429}
_MODE_REJECTED_STATUS = {400, 422, 500}
_FORMAT_REJECTED = re.compile(r"response_format|json_schema", re.I)
_FORMAT_WORDS = re.compile(r"response_format|json_schema|schema|structured|grammar", re.I)
# vLLM and Ollama say so in words where OpenAI sends the code model_not_found.
_MODEL_MISSING = re.compile(r"model\b.{0,200}?\b(does not exist|not found)", re.I | re.S)
# Server-reported token counts beyond this are not believed (no model has such a context).
MAX_REPORTED_TOKENS = 100_000_000
# A Retry-After is kept up to a day: enough to tell "longer than --max-retry-wait", never infinite.
MAX_RETRY_AFTER = 86_400.0


class _ConnectFailed(TransientError):
    """No connection could be made (refused, no route, unknown host): worth a retry, then a stop."""


class _TimedOut(TransientError):
    """No complete answer within --timeout."""


def schema_instruction(request: CompletionRequest) -> str:
    """The sentence that carries the JSON Schema when the server cannot enforce it."""
    return (
        "\n\nAnswer with exactly one JSON object, no prose and no code fence. "
        f"It must conform to this JSON Schema:\n{request.schema.json_schema_text}"
    )


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from retry-after-ms or Retry-After (seconds or an HTTP date), at most a day;
    None when absent or unreadable (not a number, negative, NaN)."""
    if headers is None:
        return None
    seconds = _seconds(headers.get("retry-after-ms"), 1000.0)
    if seconds is not None:
        return seconds
    value = headers.get("retry-after")
    seconds = _seconds(value, 1.0)
    if seconds is not None or not value:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # an HTTP date is always GMT
        parsed = parsed.replace(tzinfo=timezone.utc)
    return min(MAX_RETRY_AFTER, max(0.0, parsed.timestamp() - time.time()))


def _seconds(value: Any, per_second: float) -> float | None:
    if not value:
        return None
    try:
        number = float(value) / per_second
    except (TypeError, ValueError, OverflowError):
        return None
    if math.isnan(number) or number < 0:
        return None
    return min(number, MAX_RETRY_AFTER)


def reported_usage(reported: Any) -> Usage | None:
    """The server's token counts if believable (whole numbers from 0 to MAX_REPORTED_TOKENS), else None."""
    if not isinstance(reported, dict):
        return None
    counts = []
    for name in ("prompt_tokens", "completion_tokens"):
        value = reported.get(name)
        value = 0 if value is None else value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if isinstance(value, float) and not value.is_integer():  # NaN and infinities included
            return None
        if not 0 <= value <= MAX_REPORTED_TOKENS:
            return None
        counts.append(int(value))
    return Usage(counts[0], counts[1], 1)


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
    """A Completion from a chat completion's JSON; any other shape is a MalformedResponse.

    Reported usage is checked before it can touch budgets or pacing: an absurd figure (negative,
    huge, NaN, text) is ignored, as if the server had reported none.
    """
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
        raise MalformedResponse(f"the model server sent an answer that is not a chat completion ({where})") from None
    if content is not None and not isinstance(content, str):
        raise MalformedResponse(f"the model server sent non-text content ({where})")
    if refusal is not None and not isinstance(refusal, str):
        refusal = json.dumps(refusal)[:1000]
    usage = reported_usage(reported) or Usage(requests=1)
    return Completion(content=content, finish_reason=finish_reason if isinstance(finish_reason, str) else None,
                      refusal=refusal, usage=usage, mode=mode)


class OpenAIBackend:
    """Chat completions with structured output, one retry layer (tenacity), modes with fallback.

    Every answer is bounded: one deadline per request (--timeout, connect to last byte), a body
    cap (on the wire and inflated), strict JSON, believable usage; the key never leaves unredacted.
    """

    capabilities = Capabilities(default_model="gpt-4o-mini", batch_api=True)

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
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        from openai import AsyncOpenAI  # heavy import, paid only when a request is made

        check_base_url(base_url)
        self.model = model
        # What runs write into outputs and cache keys: the base URL with secret query values redacted.
        self.display_url = display_url(base_url)
        self.base_url = self.display_url
        self._redactor = Redactor(secret_values(api_key, base_url))
        self._auto = mode == "auto"
        self.mode = "json_schema" if self._auto else mode
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_retry_wait = max_retry_wait
        self._backoff = backoff
        self._limiter = limiter or RateLimiter()
        http_client = CappedClient(max_body=max_body, timeout=timeout,
                                   limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100))
        # max_retries=0: tenacity below is the only retry layer, so attempts never multiply.
        self._client = AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0,
                                   http_client=http_client)
        # Anything with an int `.value` (shared memory when a run has worker processes): set to 1
        # once any backend of the run fell back, so that every other one skips json_schema too.
        self._fallback_memory = fallback_memory

    async def aclose(self) -> None:
        await self._client.close()

    def redact(self, text: str) -> str:
        """The text with the key (as is, URL-encoded or JSON-escaped) replaced by [redacted]."""
        return self._redactor(text)

    async def probe(self) -> None:
        """Stop before a run if the server is down, refuses the key or does not serve the model.

        A server without GET /models (404/405/501), or with an odd listing, is fine.
        """
        try:
            ids = await self._model_ids()
        except (_ConnectFailed, _TimedOut) as exc:
            raise ServerUnreachable(f"{exc}: start the server or fix --base-url, then re-run") from exc
        except UnknownModel:
            return  # a 404 for GET /models whose words mention a model: no listing, not a verdict
        except RunStopper:
            raise
        except BackendError:
            return  # no model list here (404/405/501, an odd listing): the documents decide the rest
        # A one-model server (llama.cpp, a single vLLM model) often answers to any name: if it does
        # not, its first 404 model_not_found stops the run after one request.
        if len(ids) >= 2 and not serves(self.model, ids):
            shown = ", ".join(repr(i[:80]) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise UnknownModel(self.redact(
                f"the model server at {self._where()} does not serve model {self.model!r} (it lists {shown}): "
                "pass --model with one of them"))

    async def list_models(self, limit: int = 10_000) -> list[str]:
        """The model ids the server offers (GET /models), sorted."""
        try:
            ids = await self._model_ids()
        except (_ConnectFailed, _TimedOut) as exc:
            raise ConfigError(f"{exc}: check --base-url and that the server is running") from exc
        return sorted(set(ids))[:limit]

    async def _model_ids(self) -> list[str]:
        data = await self._request("get", "/models")
        try:
            listing = parse_json(data)
        except MalformedResponse as exc:
            raise type(exc)(self.redact(str(exc))) from None
        entries = listing.get("data") if isinstance(listing, dict) else None
        ids = [e.get("id") for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
        return [self.redact(i) for i in ids if isinstance(i, str) and i]

    async def complete(self, request: CompletionRequest) -> Completion:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            retry=retry_if_exception(self._worth_retrying),
            wait=self._wait,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send_with_fallback(request)
        except _ConnectFailed as exc:
            # Refused on every attempt: every other document would be too.
            raise ServerUnreachable(f"{exc}, after {self._max_attempts} attempt(s): start the server or fix "
                                    "--base-url, then re-run (finished documents are kept)") from exc
        except _TimedOut as exc:
            raise TransientError(str(exc)) from exc  # a slow answer: this document's failure, by its public name
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
        estimated = estimate_tokens(request)
        await self._limiter.acquire(estimated)
        body = request_body(request, self.model, mode)
        # client.post (the SDK's documented route for raw bodies) rather than
        # chat.completions.create: create() re-walks every message against a union of
        # TypedDicts on each call (~1.4 ms of CPU per request here), and building a
        # ChatCompletion model from the answer costs ~0.3 ms more; the body goes as bytes and
        # the answer comes back as bytes, read here. Auth, timeouts and error mapping are the SDK's.
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        data = await self._request("post", "/chat/completions", content)
        try:
            response = parse_json(data)
        except MalformedResponse as exc:
            raise type(exc)(self.redact(str(exc))) from None
        return self._unpack(response, mode, estimated)

    async def _request(self, method: str, path: str, content: bytes | None = None) -> bytes:
        """One HTTP request through the SDK, within one deadline; every failure a SummarizerError."""
        import openai

        try:
            # The SDK's timeout bounds each read; this bounds the whole exchange, so a server that
            # trickles a byte every few seconds still fails at --timeout.
            async with asyncio.timeout(self._timeout):
                if method == "post":
                    return await self._client.post(path, content=content, cast_to=bytes)
                return await self._client.get(path, cast_to=bytes)
        except (TimeoutError, openai.APITimeoutError):
            raise _TimedOut(f"the model server did not answer in time: no complete answer within "
                            f"--timeout {self._timeout:g} s ({self._where()})") from None
        except openai.APIConnectionError as exc:
            reason = self._clean(exc.__cause__ or exc)
            if isinstance(exc.__cause__, httpx.ConnectError):
                raise _ConnectFailed(f"cannot connect to the model server at {self._where()} ({reason})") from exc
            raise TransientError(f"cannot reach the model server at {self._where()}: {reason}") from exc
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except MalformedResponse as exc:  # from the capped client: size, coding
            raise type(exc)(self.redact(str(exc))) from None
        except SummarizerError:
            raise
        except Exception as exc:  # one odd answer must fail its document, never the run
            raise MalformedResponse(f"the model server's answer could not be handled "
                                    f"({type(exc).__name__}: {self._clean(exc)[:300]})") from exc

    def _unpack(self, response: Any, mode: str, estimated: int) -> Completion:
        """A Completion from the answer's JSON; any shape other than a chat completion is transient."""
        completion = unpack_response(response, mode, self._where())
        if completion.usage.total_tokens:
            self._limiter.reconcile(estimated, completion.usage.total_tokens)
        return replace(completion,
                       content=self.redact(completion.content) if completion.content else completion.content,
                       refusal=self.redact(completion.refusal) if completion.refusal else completion.refusal)

    def _status_error(self, exc: Any) -> Exception:
        status = exc.status_code
        detail = self._clean(exc)
        if 300 <= status < 400:
            location = self.redact(str(exc.response.headers.get("location", "(none)")))[:200]
            return RequestRejected(
                f"the model server answered with a redirect (HTTP {status} to {location}): redirects are not "
                "followed, so the key is never sent to another address; pass the final URL as --base-url", status)
        if status in (401, 403):
            return AuthError(
                f"the model server refused the API key (HTTP {status}): check OPENAI_API_KEY "
                f"and that it may use model {self.model!r}"
            )
        if status == 404 and ("model_not_found" in _error_code(exc) or _MODEL_MISSING.search(detail)):
            return UnknownModel(f"the model server does not serve model {self.model!r} (HTTP 404: {detail}): "
                                "pass --model with a model it serves")
        if status == 429:
            if "insufficient_quota" in detail or "quota" in _error_code(exc):
                return QuotaExhausted(
                    "the API quota is exhausted (HTTP 429 insufficient_quota): add credit or use another key; "
                    "finished documents are kept, re-run the same command to continue"
                )
            retry_after = parse_retry_after(exc.response.headers)
            if retry_after is None:
                return RateLimited(f"rate limited by the model server (HTTP 429): {detail}", None)
            # The whole run pauses, but never longer than --max-retry-wait: a longer Retry-After
            # defers this document instead (its last try fails with the server's words).
            self._limiter.pause(min(retry_after, self._max_retry_wait))
            if retry_after > self._max_retry_wait:
                return RateLimited(f"rate limited by the model server (HTTP 429, Retry-After {retry_after:g} s, "
                                   f"longer than --max-retry-wait {self._max_retry_wait:g} s): {detail}", retry_after)
            return RateLimited(f"rate limited by the model server (HTTP 429): {detail}", retry_after)
        if status >= 500 and _FORMAT_REJECTED.search(detail):
            # llama.cpp's Python server answers an unknown response_format with a 500: retrying
            # the same request cannot help, but another mode can (auto falls back on this).
            return RequestRejected(f"the model server rejected the request (HTTP {status}): {detail}", status)
        if status in _TRANSIENT_STATUS or status >= 500:
            return TransientError(f"the model server failed (HTTP {status}): {detail}")
        return RequestRejected(f"the model server rejected the request (HTTP {status}): {detail}", status)

    def _clean(self, exc: BaseException) -> str:
        # Error bodies sometimes quote the key back; it must never reach a log or a manifest.
        return self.redact(str(exc)[:2000])[:500]

    def _where(self) -> str:
        return self.display_url or "the OpenAI API"


def _error_code(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return json.dumps([err.get("code"), err.get("type")])
    return ""
