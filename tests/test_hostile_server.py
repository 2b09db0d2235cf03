"""A hostile model server (the loopback, with HOSTILE answers): every answer fails at most its
own document, every wait and size is bounded, the key never leaks, server-wide failures stop early."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from summarizer.artifacts import load_prompt, load_schema
from summarizer.backends.base import Completion, CompletionRequest, Usage
from summarizer.backends.openai_compat import OpenAIBackend, parse_retry_after
from summarizer.errors import (
    AuthError,
    ConfigError,
    MalformedResponse,
    RateLimited,
    RequestRejected,
    ResponseTooLarge,
    ServerUnreachable,
    SummarizerError,
    TransientError,
    UnknownModel,
)
from summarizer.loopback import HOSTILE, HOSTILE_FAILS, LoopbackServer, Reply, hostile
from summarizer.pipeline import build_messages
from summarizer.ratelimit import RateLimiter

from .helpers import doc_number, fast_config, make_docs

KEY = "sk-MARK/ER+7f3a 9c0d5e="  # with characters that URL-encoding and JSON escapes change
KEY_FORMS = (KEY, quote(KEY, safe=""), quote(KEY), "".join(f"\\u{ord(c):04x}" for c in KEY))


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail the test (instead of hanging CI) if the block takes longer than this."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"test exceeded {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def request() -> CompletionRequest:
    schema, prompt = load_schema("article"), load_prompt("article")
    return CompletionRequest(tuple(build_messages(prompt, "CATL signed an agreement.")), schema, 256, 0.0)


def backend(url: str, **options) -> OpenAIBackend:
    settings = {"model": "loopback", "base_url": url, "api_key": KEY, "mode": "json_schema", "timeout": 5.0,
                "max_attempts": 1, "backoff": 0.01, **options}
    return OpenAIBackend(**settings)


def complete(url: str, **options) -> Completion | BaseException:
    """One request through a fresh backend; its answer or the exception it raised."""
    async def go() -> Completion:
        client = backend(url, **options)
        try:
            return await asyncio.wait_for(client.complete(request()), 30)
        finally:
            await client.aclose()

    try:
        return asyncio.run(go())
    except BaseException as exc:  # noqa: BLE001 - the test inspects exactly what came out
        return exc


def probe(url: str, **options) -> BaseException | None:
    async def go() -> None:
        client = backend(url, **options)
        try:
            await asyncio.wait_for(client.probe(), 30)
        finally:
            await client.aclose()

    try:
        asyncio.run(go())
    except BaseException as exc:  # noqa: BLE001
        return exc
    return None


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more: connections are refused


def run(cli, url, tmp_path, docs, *extra):
    return cli("summarize", docs, "--base-url", url, "--out", tmp_path / "out", "--config", fast_config(tmp_path),
               "--tables", "never", *extra)


def manifest(tmp_path) -> list[dict]:
    path = max((tmp_path / "out").glob("run-*.jsonl"), key=lambda p: p.stat().st_mtime)
    return [json.loads(line) for line in path.read_text().splitlines()]


def written_files(tmp_path) -> list[Path]:
    roots = [tmp_path / "out", Path(os.environ["SUMMARIZER_CACHE_DIR"])]
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


# -- 1. one answer never aborts a run --------------------------------------------------------------

@pytest.mark.parametrize("kind,error,words", [
    ("not_json", MalformedResponse, "not JSON"),
    ("not_completion", MalformedResponse, "not a chat completion"),
    ("deep_json", MalformedResponse, "nested too deeply"),
    ("bad_utf8", MalformedResponse, "not valid UTF-8"),
    ("retry_after_text", RateLimited, "HTTP 429"),
    ("oversize", ResponseTooLarge, "16 MiB cap"),
    ("oversize_undeclared", ResponseTooLarge, "16 MiB cap on answers (counted on the wire)"),
    ("gzip_bomb", ResponseTooLarge, "inflates past the 16 MiB cap"),
    ("redirect", RequestRejected, "redirect"),
    ("echo_key_error", RequestRejected, "[redacted]"),
])
def test_each_hostile_answer_becomes_a_summarizer_error_with_a_clear_reason(server, kind, error, words):
    server.script(hostile(kind, server.url))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with deadline(30):
        outcome = complete(server.url)
    assert isinstance(outcome, error) and isinstance(outcome, SummarizerError), repr(outcome)
    assert words in str(outcome)
    assert not any(form in str(outcome) for form in KEY_FORMS)
    # A 1 MB gzip bomb inflating to 1 GiB stops at the cap: the process grows by MiBs, not GiBs.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300 * 1024


def test_a_retry_after_that_is_not_a_number_leaves_no_pause(server):
    server.script(hostile("retry_after_text"))
    limiter = RateLimiter()
    outcome = complete(server.url, limiter=limiter)
    assert isinstance(outcome, RateLimited) and outcome.retry_after is None
    assert limiter.pauses == 0


@pytest.mark.parametrize("value,seconds", [
    ("soon, maybe", None), ("nan", None), ("-5", None), ("", None), ("Wed, 32 Foo 2015 07:28:00", None),
    ("3600", 3600.0), ("inf", 86_400.0), ("1e400", 86_400.0), ("1e20", 86_400.0),
    ("Wed, 21 Oct 2015 07:28:00", 0.0),  # an HTTP date without a zone, in the past
])
def test_retry_after_values_are_read_or_ignored_never_raised(value, seconds):
    assert parse_retry_after({"retry-after": value}) == seconds


@pytest.mark.parametrize("kind", ["usage_negative", "usage_huge", "usage_nan", "usage_strings", "usage_list"])
def test_unbelievable_usage_is_ignored_before_it_reaches_budgets_or_pacing(server, kind):
    class Spy(RateLimiter):
        reconciled: list[tuple[int, int]] = []

        def reconcile(self, estimated_tokens: int, actual_tokens: int) -> None:
            self.reconciled.append((estimated_tokens, actual_tokens))
            super().reconcile(estimated_tokens, actual_tokens)

    limiter = Spy(tpm=60_000)
    server.script(hostile(kind), Reply.json(json.loads(hostile(kind).content), usage=(120, 30)))
    first, second = complete(server.url, limiter=limiter), complete(server.url, limiter=limiter)
    assert isinstance(first, Completion) and first.usage == Usage(0, 0, 1)  # the answer itself is fine
    assert isinstance(second, Completion) and second.usage == Usage(120, 30, 1)
    assert [actual for _, actual in limiter.reconciled] == [150]  # only the believable figure


def test_pacing_waits_are_bounded_whatever_usage_the_server_reports(server):
    # 50 million tokens is believable enough to use, and under --tpm 600 would book 83 hours.
    server.responder = lambda body: Reply.json(json.loads(hostile("usage_huge").content), usage=(50_000_000, 0))
    limiter = RateLimiter(tpm=600, max_booking=0.3)
    start = time.monotonic()
    with deadline(20):
        outcomes = [complete(server.url, limiter=limiter) for _ in range(3)]
    assert all(isinstance(o, Completion) for o in outcomes)
    assert time.monotonic() - start < 3.0  # each request booked at most 0.3 s


def test_the_limiter_states_its_bound_for_absurd_figures():
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(tpm=1000, clock=lambda: now[0], sleep=sleep)
    limiter.reconcile(10, 10**12)
    limiter.pause(float("inf"))
    limiter.pause(float("nan"))
    asyncio.run(limiter.acquire(10**12))
    asyncio.run(limiter.acquire(10))
    assert sum(slept) <= 2 * limiter.max_booking
    assert limiter.pauses == 0


# -- 2. every wait is bounded ----------------------------------------------------------------------

def test_a_trickling_server_fails_at_the_deadline_for_the_whole_request(server):
    server.script(hostile("trickle"))  # one byte every 0.05 s: no single read ever waits 0.5 s
    start = time.monotonic()
    with deadline(20):
        outcome = complete(server.url, timeout=0.5)
    assert isinstance(outcome, TransientError) and "did not answer in time" in str(outcome)
    assert 0.5 <= time.monotonic() - start < 2.0


@pytest.mark.parametrize("kind", ["retry_after_huge", "retry_after_inf"])
def test_a_huge_retry_after_pauses_the_run_only_for_max_retry_wait(cli, server, tmp_path, kind):
    server.script(hostile(kind))
    start = time.monotonic()
    with deadline(30):
        result = run(cli, server.url, tmp_path, make_docs(tmp_path / "docs", 3), "--max-retry-wait", "0.3",
                     "--concurrency", "1")
    assert result.code == 0, result.stderr
    assert [doc_number(r) for r in server.requests] == [0, 1, 2, 0]  # deferred to the end
    assert 0.3 <= server.requests[1].at - server.requests[0].at < 1.5
    assert time.monotonic() - start < 10
    assert {e["status"] for e in manifest(tmp_path)} == {"ok"}


def test_a_document_still_refused_on_its_final_try_fails_with_the_servers_words(cli, server, tmp_path):
    server.responder = lambda body: (hostile("retry_after_huge") if doc_number_of(body) == 0
                                     else Reply.json(json.loads(hostile("usage_list").content)))
    with deadline(30):
        result = run(cli, server.url, tmp_path, make_docs(tmp_path / "docs", 3), "--max-retry-wait", "0.2",
                     "--concurrency", "1")
    assert result.code == 1
    statuses = {Path(e["path"]).name: (e["status"], e.get("error", "")) for e in manifest(tmp_path)}
    assert statuses["doc001.txt"][0] == statuses["doc002.txt"][0] == "ok"
    status, error = statuses["doc000.txt"]
    assert status == "failed" and "come back in an hour" in error and "Retry-After 3600" in error


def doc_number_of(body: dict) -> int:
    return int(body["messages"][1]["content"].split("Document ", 1)[1].split(".", 1)[0])


# -- 3. sizes: re-asks quote a bounded excerpt -----------------------------------------------------

@pytest.mark.parametrize("bad", ["x" * 200_000, "[" * 100_000, "```\n" + " " * 50_000])
def test_a_huge_or_hostile_bad_answer_is_reasked_with_a_bounded_excerpt(cli, server, tmp_path, bad):
    server.responder = lambda body: Reply(content=bad)
    with deadline(30):
        result = run(cli, server.url, tmp_path, make_docs(tmp_path / "docs", 1), "--max-reasks", "1")
    assert result.code == 1
    [entry] = manifest(tmp_path)
    assert entry["status"] == "invalid"
    quoted = server.requests[1].body["messages"][2]["content"]
    assert len(quoted) < 4_100 and quoted.startswith(bad[:100])
    assert len(server.requests[1].body["messages"][3]["content"]) < 4_300


# -- 4. secrets ------------------------------------------------------------------------------------

def test_credentials_in_the_base_url_are_refused_and_never_printed(cli, server, tmp_path):
    url = server.url.replace("http://", "http://alice:hunter2secret@")
    result = run(cli, url, tmp_path, make_docs(tmp_path / "docs", 1))
    assert result.code == 2
    assert "OPENAI_API_KEY" in result.stderr and "user name or password" in result.stderr
    assert "hunter2secret" not in result.stdout + result.stderr
    assert server.requests == []  # nothing went out, so no Basic auth either
    with pytest.raises(ConfigError):
        backend(url)


def test_secret_query_values_are_redacted_in_the_url_that_is_shown_and_stored():
    client = backend("http://127.0.0.1:9/v1?api-key=qs-SECRET-123&api-version=2024-06-01")
    assert client.display_url == client.base_url
    assert "qs-SECRET-123" not in client.display_url and "api-version=2024-06-01" in client.display_url
    assert client.redact("echo qs-SECRET-123") == "echo [redacted]"
    asyncio.run(client.aclose())


def test_the_key_echoed_in_an_answer_or_an_error_body_is_redacted_everywhere(cli, server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.script(hostile("echo_key_content"), hostile("echo_key_error"))
    with deadline(30):
        result = run(cli, server.url, tmp_path, make_docs(tmp_path / "docs", 2), "--concurrency", "1",
                     "--retries", "0", "--verbose", "--json")
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # the key was used...
    assert result.code == 1
    statuses = {Path(e["path"]).name: e for e in manifest(tmp_path)}
    assert statuses["doc000.txt"]["status"] == "ok"
    output = json.loads((tmp_path / "out" / "doc000.json").read_text())
    assert output["result"]["title"] == "Echo [redacted]"  # ...echoed back, and redacted
    assert statuses["doc001.txt"]["status"] == "failed" and "[redacted]" in statuses["doc001.txt"]["error"]
    for form in KEY_FORMS:  # ...and in no form anywhere
        assert form not in result.stdout + result.stderr
        for path in written_files(tmp_path):
            assert form.encode() not in path.read_bytes(), f"key leaked into {path}"


# -- 5. server-wide failures stop early ------------------------------------------------------------

def test_probe_refused_connection_is_server_unreachable():
    with deadline(20):
        outcome = probe(closed_port_url())
    assert isinstance(outcome, ServerUnreachable) and "cannot connect" in str(outcome)


@pytest.mark.parametrize("models,model,error", [
    (("gpt-a", "gpt-b"), "loopback", UnknownModel),
    (("gpt-a", "loopback"), "loopback", None),
    (("qwen2.5:latest", "llama3:8b"), "qwen2.5", None),  # Ollama's implicit tag
    (("some/file.gguf",), "loopback", None),  # one-model servers often answer to any name
])
def test_probe_checks_the_model_against_the_servers_list(models, model, error):
    with LoopbackServer(models=models) as server, deadline(20):
        outcome = probe(server.url, model=model)
    assert (outcome is None) if error is None else isinstance(outcome, error), repr(outcome)
    if error is not None:
        assert "gpt-a" in str(outcome) and "--model" in str(outcome)


@pytest.mark.parametrize("status,error", [(404, None), (405, None), (501, None), (503, None),
                                          (401, AuthError), (403, AuthError)])
def test_probe_goes_on_without_a_model_list_and_stops_on_a_refused_key(status, error):
    with LoopbackServer(models_status=status) as server, deadline(20):
        outcome = probe(server.url)
    assert (outcome is None) if error is None else isinstance(outcome, error), repr(outcome)


def test_a_run_against_a_server_that_is_down_stops_before_any_document(cli, tmp_path):
    start = time.monotonic()
    with deadline(30):
        result = run(cli, closed_port_url(), tmp_path, make_docs(tmp_path / "docs", 5))
    assert result.code == 2 and "cannot connect" in result.stderr
    assert time.monotonic() - start < 10
    assert not list((tmp_path / "out").glob("doc*.json"))


def test_a_run_whose_model_is_not_listed_stops_before_any_request(cli, tmp_path):
    with LoopbackServer(models=("gpt-a", "gpt-b")) as server, deadline(30):
        result = run(cli, server.url, tmp_path, make_docs(tmp_path / "docs", 5), "--model", "gpt-c")
        assert result.code == 2 and "does not serve model 'gpt-c'" in result.stderr
        assert server.requests == []


def test_404_model_not_found_during_a_run_stops_it_after_one_request(cli, server, tmp_path):
    server.responder = lambda body: hostile("model_not_found")
    with deadline(30):
        result = run(cli, server.url, tmp_path, make_docs(tmp_path / "docs", 5), "--concurrency", "1")
    assert result.code == 2
    assert len(server.requests) == 1
    [entry] = manifest(tmp_path)
    assert entry["error_class"] == "UnknownModel" and "does not exist" in entry["error"]


def test_connection_refused_after_all_retries_stops_the_run(cli, tmp_path):
    start = time.monotonic()
    with deadline(30):  # two documents: no probe, so the first document meets the refusal
        result = run(cli, closed_port_url(), tmp_path, make_docs(tmp_path / "docs", 2), "--retries", "1",
                     "--concurrency", "1")
    assert result.code == 2 and "cannot connect" in result.stderr
    entries = manifest(tmp_path)
    assert [e["error_class"] for e in entries] == ["ServerUnreachable"]  # the other never started
    assert time.monotonic() - start < 10


# -- 6. redirects ----------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_fails_the_document_and_never_sends_the_key_elsewhere(cli, server, tmp_path, monkeypatch, status):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LoopbackServer() as elsewhere, deadline(30):
        server.script(Reply(status=status, headers={"location": elsewhere.url + "/chat/completions"}, body=b"{}"))
        result = run(cli, server.url, tmp_path, make_docs(tmp_path / "docs", 2), "--concurrency", "1")
        assert elsewhere.requests == []
    assert result.code == 1
    statuses = {Path(e["path"]).name: e for e in manifest(tmp_path)}
    assert statuses["doc000.txt"]["status"] == "failed"
    assert f"redirect (HTTP {status}" in statuses["doc000.txt"]["error"]
    assert statuses["doc001.txt"]["status"] == "ok"


# -- 7. a thousand documents, 5 % hostile ----------------------------------------------------------

@pytest.mark.parametrize("workers", ["1", "2"])
def test_thousand_documents_five_percent_hostile(cli, tmp_path, monkeypatch, workers):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    kinds = tuple(k for k in HOSTILE if k != "model_not_found")  # that one stops the run, on purpose
    docs = make_docs(tmp_path / "docs", 1000)
    start = time.monotonic()
    with LoopbackServer(hostile_rate=0.05, hostile_kinds=kinds, seed=5) as server, deadline(120):
        result = run(cli, server.url, tmp_path, docs, "--workers", workers, "--concurrency", "16", "--quiet",
                     "--retries", "0", "--timeout", "2", "--max-retry-wait", "0.2")
        requests = list(server.requests)
    elapsed = time.monotonic() - start
    last: dict[int, str | None] = {}
    tries: dict[int, int] = {}
    for recorded in requests:  # a document's fate is its last answer's
        number = doc_number(recorded)
        last[number] = recorded.hostile
        tries[number] = tries.get(number, 0) + 1
    hostile_docs = {n for n, kind in last.items() if kind}
    expected_failed = {n for n, kind in last.items()
                       if kind in HOSTILE_FAILS or (kind and kind.startswith("retry_after") and tries[n] > 1)}
    entries = manifest(tmp_path)
    assert len(entries) == 1000 and len({e["path"] for e in entries}) == 1000  # one line per document
    failed = {int(Path(e["path"]).stem[3:]) for e in entries if e["status"] != "ok"}
    assert 20 <= len(hostile_docs) <= 90  # about 5 % of the answers were hostile
    assert failed == expected_failed and len(failed) >= 10
    assert {e["error_class"] for e in entries if e["status"] != "ok"} <= {
        "MalformedResponse", "ResponseTooLarge", "RateLimited", "RequestRejected", "TransientError"}
    assert result.code == 1
    assert len(list((tmp_path / "out").glob("doc*.json"))) == 1000 - len(failed)
    for path in (tmp_path / "out").glob("run-*.jsonl"):
        assert not any(form in path.read_text() for form in KEY_FORMS)
    assert elapsed < 60

