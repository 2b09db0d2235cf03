"""What comes off the wire from a model server, bounded: body size, inflation, JSON depth, secrets."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigError, MalformedResponse, ResponseTooLarge

try:  # the HTTP client the `openai` package is built on (httpx2 in newer releases, httpx before)
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed openai release
    import httpx  # type: ignore[no-redef]

MAX_BODY_BYTES = 16 * 1024 * 1024
# Content codings inflated here, each through a capped decompressor; others are not asked for.
ACCEPT_ENCODING = "gzip, deflate"
_CHUNK = 64 * 1024  # the most one decompress call may produce, so a bomb never inflates at once
_SECRET_QUERY = re.compile(r"key|token|secret|sig|pass|auth", re.I)
REDACTED = "[redacted]"


def mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


class CappedClient(httpx.AsyncClient):
    """An HTTP client whose response bodies stop at `max_body` bytes, on the wire and inflated."""

    def __init__(self, *, max_body: int = MAX_BODY_BYTES, **kwargs: Any) -> None:
        # Redirects are never followed: the key must not travel to wherever a server points.
        kwargs["follow_redirects"] = False
        super().__init__(**kwargs)
        self.max_body = max_body

    async def send(self, request: Any, *, stream: bool = False, **kwargs: Any) -> Any:
        request.headers["accept-encoding"] = ACCEPT_ENCODING
        response = await super().send(request, stream=True, **kwargs)
        try:
            _cap(response, self.max_body)
            if not stream:
                await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response


def _cap(response: Any, cap: int) -> None:
    """Swap the response's byte stream for one that counts, inflates and stops at the cap."""
    declared = response.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > cap:
        raise ResponseTooLarge(f"the model server sent a {declared}-byte answer, more than the "
                               f"{mib(cap)} cap on answers")
    codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    unknown = [c for c in codings if c not in ("gzip", "x-gzip", "deflate")]
    if unknown:
        raise MalformedResponse(f"the model server sent an answer in content-encoding {unknown[0]!r}, "
                                f"which was not asked for (only {ACCEPT_ENCODING})")
    if "content-encoding" in response.headers:
        del response.headers["content-encoding"]  # inflated below; httpx must not inflate it again
    response.stream = _CappedStream(response.stream, codings, cap)


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, raw: Any, codings: list[str], cap: int) -> None:
        self._raw, self._cap = raw, cap
        # Codings are listed in the order they were applied: undo the last one first.
        self._inflaters = [_Inflater(c, cap) for c in reversed(codings)]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        wire = 0
        async for chunk in self._raw:
            wire += len(chunk)
            if wire > self._cap:
                raise ResponseTooLarge(f"the model server's answer passed the {mib(self._cap)} cap on answers "
                                       "(counted on the wire)")
            for piece in self._inflate(chunk, 0):
                yield piece

    def _inflate(self, data: bytes, stage: int) -> Iterator[bytes]:
        if stage == len(self._inflaters):
            if data:
                yield data
            return
        for piece in self._inflaters[stage].feed(data):
            yield from self._inflate(piece, stage + 1)

    async def aclose(self) -> None:
        await self._raw.aclose()


class _Inflater:
    """One content coding undone in pieces of at most _CHUNK bytes, stopping at the cap."""

    def __init__(self, coding: str, cap: int) -> None:
        self._coding, self._cap, self._total = coding, cap, 0
        self._deflate = coding == "deflate"
        self._fresh = True  # "deflate" is zlib-wrapped or, from some servers, raw: decided on the first bytes
        self._obj = zlib.decompressobj(zlib.MAX_WBITS if self._deflate else zlib.MAX_WBITS | 16)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self._obj.eof:
            try:
                out = self._obj.decompress(data, _CHUNK)
            except zlib.error as exc:
                if self._deflate and self._fresh:
                    self._obj, self._fresh = zlib.decompressobj(-zlib.MAX_WBITS), False
                    continue
                raise MalformedResponse(f"the model server's {self._coding} answer is corrupt ({exc})") from None
            self._fresh = False
            self._total += len(out)
            if self._total > self._cap:
                raise ResponseTooLarge(f"the model server's {self._coding} answer inflates past the "
                                       f"{mib(self._cap)} cap on answers")
            if out:
                yield out
            data = self._obj.unconsumed_tail
            if not data and not out:
                return
        # After the end of the compressed data nothing more is inflated (a second gzip member neither).


def parse_json(data: bytes) -> Any:
    """The JSON value of a body: strict UTF-8, any depth error or syntax error a MalformedResponse."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedResponse(f"the model server's answer is not valid UTF-8 (byte {exc.start} of "
                                f"{len(data)})") from None
    try:
        return json.loads(text.removeprefix("\ufeff"))
    except RecursionError:
        raise MalformedResponse("the model server's answer is JSON nested too deeply to read") from None
    except ValueError as exc:
        excerpt = text[:120].strip()
        why = f"{exc.msg} at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else str(exc)[:120]
        raise MalformedResponse(f"the model server's answer is not JSON ({why}); it begins {excerpt!r}") from None


def display_url(url: str | None) -> str | None:
    """The base URL as it may be shown and stored: secret-looking query values redacted."""
    if not url:
        return url
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = parse_qsl(parts.query, keep_blank_values=True)
    shown = [(k, REDACTED if _SECRET_QUERY.search(k) else v) for k, v in query]
    if shown == query:
        return url
    return urlunsplit(parts._replace(query=urlencode(shown, safe="[]")))


def check_base_url(url: str | None) -> None:
    """Refuse a base URL with credentials in it: they would go out as Basic auth and into logs."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        has_credentials = parts.username is not None or parts.password is not None
        host, port = parts.hostname or "host", f":{parts.port}" if parts.port else ""
    except ValueError as exc:
        raise ConfigError(f"--base-url is not a valid URL ({exc})") from None
    if has_credentials:
        raise ConfigError(
            f"--base-url has a user name or password in it ({parts.scheme}://***@{host}{port}{parts.path}): "
            "summarizer does not send URL credentials (they would travel as Basic auth and be written "
            "into outputs and logs); remove them from the URL and put the API key in OPENAI_API_KEY")


def secret_values(api_key: str | None, base_url: str | None) -> list[str]:
    """What must never be written: the key, and secret-looking query values of the base URL."""
    values = [api_key or ""]
    if base_url:
        values += [v for k, v in parse_qsl(urlsplit(base_url).query) if _SECRET_QUERY.search(k)]
    return [v for v in values if len(v) >= 4]


class Redactor:
    """Replaces each secret, as is, URL-encoded or JSON-escaped in any mix, by [redacted]."""

    def __init__(self, secrets: Iterable[str]) -> None:
        secrets = list(secrets)
        self._pattern = secret_pattern(secrets)
        self._heads = {s[:3].lower() for s in secrets}

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        # A cheap test first (most answers hold no escape and no secret's start): the full pattern
        # costs about 0.15 ms per answer, the test a few microseconds.
        lowered = text.lower()
        if not ("%" in text or "\\" in text or "+" in text or any(h in lowered for h in self._heads)):
            return text
        return self._pattern.sub(REDACTED, text)


def secret_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern for each secret as is, URL-encoded or JSON-escaped, in any mix (case-insensitive)."""
    alternatives = []
    for secret in sorted(set(secrets), key=len, reverse=True):
        alternatives.append("".join(_char_forms(ch) for ch in secret))
    return re.compile("|".join(alternatives), re.I) if alternatives else None


def _char_forms(ch: str) -> str:
    forms = [re.escape(ch), "".join(f"%{b:02x}" for b in ch.encode("utf-8"))]
    if ord(ch) <= 0xFFFF:
        forms.append(rf"\\u{ord(ch):04x}")
    if ch == "/":
        forms.append(r"\\/")
    if ch == " ":
        forms.append(r"\+")
    return "(?:" + "|".join(forms) + ")"
