"""A scriptable OpenAI-compatible chat server on 127.0.0.1, for tests and benchmarks.

Scripted replies are served first, in order; after that a responder (by default a canned valid
answer) decides. Faults: HTTP status codes with headers, delays, dropped connections, truncated
bodies, non-JSON bodies, a run-wide requests-per-minute limit, and rejecting json_schema; and the
hostile answers of HOSTILE (deep JSON, bad UTF-8, absurd usage, odd Retry-After, trickling,
oversized and gzip-bomb bodies, redirects, model_not_found, the key echoed back), by name or for a
seeded random share of requests (`hostile_rate`). GET /models lists `models`.
Run standalone with `python -m summarizer.loopback --port 8765 --latency 0.1`.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import random
import socket
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

SAMPLE_ARTICLE: dict[str, Any] = {
    "title": "CATL and Zhaoqing sign comprehensive cooperation agreement",
    "summary": "The city government of Zhaoqing signed a comprehensive cooperation agreement with CATL. "
    "The partnership covers new energy applications, green power development and manufacturing.",
    "source_language": "en",
    "organizations": [
        {"name": "CATL", "name_original": "Contemporary Amperex Technology Co. Limited", "type": "company",
         "role": "party", "country": "China"},
        {"name": "Zhaoqing Municipal Government", "name_original": "municipal government of Zhaoqing city",
         "type": "government", "role": "party", "country": "China"},
    ],
    "people": [],
    "agreement": {
        "kind": "comprehensive cooperation agreement",
        "parties": ["CATL", "Zhaoqing Municipal Government"],
        "signed_on": None,
        "place": None,
        "term_years": None,
        "areas": ["new energy applications", "green power development"],
    },
    "key_figures": [],
    "topics": ["batteries", "new energy"],
}


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) resets connections when 32 clients connect at once.
    request_queue_size = 1024
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (Ctrl-C, kill -9, a timeout) is what the tests do on purpose.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Reply:
    """One scripted answer: a chat completion, an HTTP error, or a network fault."""

    content: str | None = None
    status: int = 200
    finish_reason: str = "stop"
    refusal: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # raw body, sent as is (for malformed answers and error bodies)
    delay: float = 0.0
    # "reset": close without answering; "cut": close mid-body; "trickle": one byte every
    # `trickle` seconds; "stream": `size` bytes of filler with no content-length, then close.
    fault: str | None = None
    usage: Any = (100, 50)  # (prompt, completion), or any JSON value sent as "usage" as it is
    trickle: float = 0.0
    size: int = 0
    echo: bool = False  # replace {api_key}, {api_key_url}, {api_key_json} with the caller's key
    hostile: str | None = None  # the HOSTILE name this reply was made from, for the record

    @classmethod
    def json(cls, data: Any, **kwargs: Any) -> Reply:
        return cls(content=json.dumps(data, ensure_ascii=False), **kwargs)

    @classmethod
    def error(cls, status: int, message: str = "error", code: str | None = None, **kwargs: Any) -> Reply:
        body = json.dumps({"error": {"message": message, "type": code or "error", "code": code}}).encode()
        return cls(status=status, body=body, **kwargs)


Responder = Callable[[dict[str, Any]], Reply]


def canned_responder(request: dict[str, Any]) -> Reply:
    """Answer with `sample_answer` for the document sent."""
    return Reply.json(sample_answer(request))


def sample_answer(request: dict[str, Any]) -> dict[str, Any]:
    """The sample article when the document supports its facts, else an article that claims none.

    A fake server that invented facts would make every test document `flagged`; this one answers
    like a careful model: the facts it copies stand in the document it was sent.
    """
    text = _document_text(request)
    originals = [o["name_original"] for o in SAMPLE_ARTICLE["organizations"]]
    if all(name in text for name in originals):
        return SAMPLE_ARTICLE
    return {
        **SAMPLE_ARTICLE, "organizations": [], "people": [], "agreement": None, "key_figures": [],
        "title": "A document summarized by the loopback test server",
        "summary": "The loopback test server read this document. It names no facts the document does not state.",
        "source_language": _language(text),
    }


def _document_text(request: dict[str, Any]) -> str:
    """The document inside the first user message (between its <<<... boundary lines), or all of it."""
    messages = request.get("messages") or []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    content = str(users[0].get("content") or "") if users else ""
    match = re.search(r"^<<<[A-Z]+ (\w+)>>>\n(.*)\n<<<END \1>>>", content, re.S | re.M)
    return match.group(2) if match else content


def _language(text: str) -> str:
    """The document's language as the tool's own checks detect it, English if unsure."""
    from .checks import source_language

    probabilities = source_language(text)
    code = max(probabilities, key=probabilities.__getitem__, default="en")
    return code if len(code) == 2 else "en"


@dataclass
class Recorded:
    """A request as the server received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    hostile: str | None = None  # which hostile answer it got, if any


class LoopbackServer:
    """Start with `with LoopbackServer() as server:`; point clients at `server.url`."""

    def __init__(
        self,
        responder: Responder = canned_responder,
        *,
        latency: float = 0.0,
        rpm: float | None = None,
        reject_json_schema: bool = False,
        fault_rate: float = 0.0,
        hostile_rate: float = 0.0,
        hostile_kinds: tuple[str, ...] | None = None,
        models: tuple[str, ...] = ("loopback",),
        models_status: int = 200,
        seed: int = 0,
        port: int = 0,
    ) -> None:
        self.responder = responder
        self.latency = latency
        self.reject_json_schema = reject_json_schema
        self.fault_rate = fault_rate
        self.hostile_rate = hostile_rate
        self.hostile_kinds = tuple(hostile_kinds or HOSTILE)
        self.models = models
        self.models_status = models_status
        self._random = random.Random(seed)
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.rejected_429 = 0
        self._rpm = rpm
        self._bucket = min(rpm / 60, 10.0) if rpm else 0.0
        self._bucket_at = time.monotonic()
        self.batch: Any = None  # loopback_batch.enable_batches(): serves /v1/files and /v1/batches
        self._httpd = _Server(("127.0.0.1", port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies to serve, in order, before the responder takes over."""
        with self._lock:
            self._script.extend(replies)

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _admit(self) -> bool:
        # Token bucket: rpm/60 per second, a burst of at most 10 requests.
        if not self._rpm:
            return True
        with self._lock:
            now = time.monotonic()
            capacity = min(self._rpm / 60, 10.0)
            self._bucket = min(capacity, self._bucket + (now - self._bucket_at) * self._rpm / 60)
            self._bucket_at = now
            if self._bucket >= 1:
                self._bucket -= 1
                return True
            self.rejected_429 += 1
            return False

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._script:
                return self._script.popleft()
            roll = self._random.random() if self.fault_rate else 1.0
            if self.hostile_rate and self._random.random() < self.hostile_rate:
                return hostile(self._random.choice(self.hostile_kinds), self.url)
        if roll < self.fault_rate:
            return self._random_fault()
        fmt = (body.get("response_format") or {}).get("type")
        if self.reject_json_schema and fmt == "json_schema":
            return Reply.error(400, "response_format json_schema is not supported")
        return self.responder(body)

    def _random_fault(self) -> Reply:
        return self._random.choice([
            Reply.error(503, "overloaded"),
            Reply.error(500, "boom"),
            Reply.error(429, "slow down", headers={"retry-after-ms": "50"}),
            Reply(fault="reset"),
            Reply(body=b"<html>bad gateway</html>", headers={"content-type": "text/html"}, status=502),
            Reply(content="this is not json"),
        ])

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; without NODELAY, Nagle's algorithm and the
                # client's delayed ACK add ~40 ms to every keep-alive answer.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _batch(self, method: str) -> bool:
                if server.batch is None or not server.batch.owns(self.path):
                    return False
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                self._send(*server.batch.handle(method, self.path, self.headers.get("content-type", ""), raw))
                return True

            def do_DELETE(self) -> None:
                if not self._batch("DELETE"):
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_GET(self) -> None:
                if self._batch("GET"):
                    return
                if self.path.rstrip("/").endswith("/stats"):  # for benchmarks in another process
                    with server._lock:
                        stats = {"requests": len(server.requests), "rejected_429": server.rejected_429,
                                 "times": [r.at for r in server.requests], "now": time.monotonic()}
                    self._send(200, json.dumps(stats).encode())
                elif self.path.rstrip("/").endswith("/models"):
                    listing = {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]}
                    if server.models_status == 200:
                        self._send(200, json.dumps(listing).encode())
                    else:
                        self._send(server.models_status, b'{"error": {"message": "models: no"}}')
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:
                if self._batch("POST"):
                    return
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {}
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorded = Recorded(self.path, headers, body, time.monotonic())
                with server._lock:
                    server.requests.append(recorded)
                if not server._admit():
                    self._send(429, b'{"error": {"message": "rate limit", "type": "requests"}}', {"retry-after": "1"})
                    return
                reply = server._next_reply(body)
                recorded.hostile = reply.hostile
                if reply.echo:
                    reply = _echo_key(reply, headers.get("authorization", "").removeprefix("Bearer "))
                delay = server.latency + reply.delay
                if delay:
                    time.sleep(delay)
                if reply.fault == "reset":
                    self._reset()
                    return
                if reply.fault == "stream":
                    self._stream(reply)
                    return
                payload = reply.body if reply.body is not None else _completion_body(body, reply)
                if reply.fault == "trickle":
                    self._trickle(reply, payload)
                    return
                if reply.fault == "cut":
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self._reset()
                    return
                self._send(reply.status, payload, reply.headers)

            def _trickle(self, reply: Reply, payload: bytes) -> None:
                # A complete, valid answer, one byte at a time: only a whole-request deadline stops it.
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.flush()
                for i in range(len(payload)):
                    self.wfile.write(payload[i:i + 1])
                    self.wfile.flush()
                    time.sleep(reply.trickle)

            def _stream(self, reply: Reply) -> None:
                # No content-length: the client learns the size only by counting what arrives.
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                chunk = b" " * (1 << 20)
                self.wfile.write(b'{"padding": "')
                for start in range(0, reply.size, len(chunk)):
                    self.wfile.write(chunk[: reply.size - start])
                self.wfile.flush()

            def _reset(self) -> None:
                # SO_LINGER 0 makes close() send RST: the client sees a connection reset.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.close_connection = True
                self.connection.close()

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                headers = {"content-type": "application/json", **(headers or {})}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


@functools.cache
def gzip_bomb(inflated_mib: int = 1024) -> bytes:
    """About 1 MB of gzip that inflates to `inflated_mib` MiB of zeros (its trailer is not checked:
    a client must stop long before)."""
    block = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    head = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    # After a full flush every further identical block compresses to the same bytes.
    piece = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    return head + piece * (inflated_mib - 1) + deflate.flush()


def _deep_json(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _json_escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def _echo_key(reply: Reply, key: str) -> Reply:
    forms = {"{api_key}": key, "{api_key_url}": quote(key, safe=""), "{api_key_json}": _json_escaped(key)}

    def fill(text: str) -> str:
        for placeholder, value in forms.items():
            text = text.replace(placeholder, value)
        return text

    return replace(reply, echo=False, content=fill(reply.content) if reply.content is not None else None,
                   body=fill(reply.body.decode()).encode() if reply.body is not None else None)


def _echo_content() -> str:
    summary = SAMPLE_ARTICLE["summary"] + " It quoted {api_key_url} and {api_key_json}."
    article = dict(SAMPLE_ARTICLE, title="Echo {api_key}", summary=summary)
    return json.dumps(article)


# Hostile answers by name; each is a fresh Reply (`url` is where redirects point).
HOSTILE: dict[str, Callable[[str], Reply]] = {
    "not_json": lambda url: Reply(body=b"<html><body>502 Bad Gateway</body></html>",
                                  headers={"content-type": "text/html"}),
    "not_completion": lambda url: Reply(body=b'{"object": "list", "data": []}'),
    "deep_json": lambda url: Reply(body=_deep_json(100_000)),
    "bad_utf8": lambda url: Reply(body=b'{"choices": [{"message": {"content": "\xff\xfe\xc3("}}]}'),
    "usage_negative": lambda url: Reply.json(SAMPLE_ARTICLE, usage={"prompt_tokens": -5, "completion_tokens": -1}),
    "usage_huge": lambda url: Reply.json(SAMPLE_ARTICLE, usage={"prompt_tokens": 10**15, "completion_tokens": 1e300}),
    "usage_nan": lambda url: Reply.json(SAMPLE_ARTICLE, usage={"prompt_tokens": float("nan"),
                                                               "completion_tokens": float("inf")}),
    "usage_strings": lambda url: Reply.json(SAMPLE_ARTICLE, usage={"prompt_tokens": "100", "completion_tokens": [50]}),
    "usage_list": lambda url: Reply.json(SAMPLE_ARTICLE, usage=[100, 50]),
    "retry_after_text": lambda url: Reply.error(429, "slow down", headers={"retry-after": "soon, maybe"}),
    "retry_after_huge": lambda url: Reply.error(429, "come back in an hour", headers={"retry-after": "3600"}),
    "retry_after_inf": lambda url: Reply.error(429, "come back never", headers={"retry-after": "1e400"}),
    "trickle": lambda url: Reply.json(SAMPLE_ARTICLE, fault="trickle", trickle=0.05),
    "oversize": lambda url: Reply(body=b" " * (17 << 20)),
    "oversize_undeclared": lambda url: Reply(fault="stream", size=17 << 20),
    "gzip_bomb": lambda url: Reply(body=gzip_bomb(), headers={"content-encoding": "gzip"}),
    "redirect": lambda url: Reply(status=307, headers={"location": url.replace("/v1", "/elsewhere/v1")},
                                  body=b'{"error": {"message": "moved"}}'),
    "model_not_found": lambda url: Reply.error(404, "The model `gpt-x` does not exist", code="model_not_found"),
    "echo_key_content": lambda url: Reply(content=_echo_content(), echo=True),
    "echo_key_error": lambda url: Reply.error(
        400, "Invalid key {api_key} (sent as {api_key_url}, JSON {api_key_json})", echo=True),
}
# What each does to a document when it is the document's last answer (with --retries 0).
HOSTILE_FAILS = frozenset({"not_json", "not_completion", "deep_json", "bad_utf8", "retry_after_text", "trickle",
                           "oversize", "oversize_undeclared", "gzip_bomb", "redirect", "echo_key_error"})


def hostile(name: str, url: str = "http://127.0.0.1:9/v1") -> Reply:
    """The hostile answer of this name (see HOSTILE), marked with its name."""
    return replace(HOSTILE[name](url), hostile=name)


def _completion_body(request: dict[str, Any], reply: Reply) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": reply.refusal}
    if request.get("tools") and reply.content is not None:
        name = request["tools"][0]["function"]["name"]
        message["content"] = None
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": name, "arguments": reply.content}}]
    usage = reply.usage
    if isinstance(usage, tuple):
        prompt, completion = usage
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return json.dumps({
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "loopback"),
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}],
        "usage": usage,
    }, ensure_ascii=False).encode()


def main() -> None:
    """Serve canned answers until interrupted (for benchmarks and manual runs)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--rpm", type=float, default=None, help="answer 429 beyond this many requests per minute")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that get a random fault")
    parser.add_argument("--hostile-rate", type=float, default=0.0,
                        help="share of requests that get a random HOSTILE answer (seeded)")
    args = parser.parse_args()
    server = LoopbackServer(latency=args.latency, rpm=args.rpm, fault_rate=args.fault_rate,
                            hostile_rate=args.hostile_rate, port=args.port)
    print(server.url, flush=True)
    try:
        server._httpd.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        print(json.dumps({"requests": len(server.requests), "rejected_429": server.rejected_429}), flush=True)


if __name__ == "__main__":
    main()
