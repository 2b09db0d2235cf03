"""API faults through the loopback server: each test is one row of the fault table."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from summarizer.cache import Cache
from summarizer.loopback import LoopbackServer, Reply

from .fakes import article
from .helpers import doc_number, fast_config, make_docs


def run(cli, server, tmp_path, docs, *extra):
    return cli("summarize", docs, "--base-url", server.url, "--out", tmp_path / "out",
               "--config", fast_config(tmp_path), *extra)


def manifest(tmp_path) -> list[dict]:
    path = max((tmp_path / "out").glob("run-*.jsonl"), key=lambda p: p.stat().st_mtime)
    return [json.loads(line) for line in path.read_text().splitlines()]


def cache_rows(tmp_path) -> int:
    cache = Cache(Path(os.environ["SUMMARIZER_CACHE_DIR"]))
    try:
        return cache.count()
    finally:
        cache.close()


@pytest.mark.parametrize("header,value,least", [("retry-after", "2", 2.0), ("retry-after-ms", "1500", 1.5)])
def test_01_429_with_retry_after_waits_then_succeeds(cli, server, tmp_path, header, value, least):
    server.script(Reply.error(429, "slow down", headers={header: value}))
    start = time.monotonic()
    result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 1))
    assert result.code == 0
    assert server.requests[1].at - server.requests[0].at >= least
    assert time.monotonic() - start >= least
    assert len(list((tmp_path / "out").glob("doc*.json"))) == 1


def test_02_429_longer_than_the_run_will_wait_defers_the_document_to_the_end(cli, server, tmp_path):
    server.script(Reply.error(429, "slow down", headers={"retry-after": "1"}))
    result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 3), "--max-retry-wait", "0.5",
                 "--concurrency", "1")
    assert result.code == 0, result.stderr
    assert [doc_number(r) for r in server.requests] == [0, 1, 2, 0]
    # The whole run paused, not just one request, but only for --max-retry-wait, not the server's 1 s.
    assert 0.5 <= server.requests[1].at - server.requests[0].at < 1.0
    assert {e["status"] for e in manifest(tmp_path)} == {"ok"}


def test_03_503_503_200_succeeds_with_exactly_three_requests(cli, server, tmp_path):
    server.script(Reply.error(503, "overloaded"), Reply.error(503, "overloaded"))
    assert run(cli, server, tmp_path, make_docs(tmp_path / "docs", 1)).code == 0
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [400, 404])
def test_04_400_and_404_fail_the_document_after_one_request(cli, server, tmp_path, status):
    server.script(Reply.error(status, "no such model"))
    result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 1))
    assert result.code == 1
    assert len(server.requests) == 1
    [entry] = manifest(tmp_path)
    assert entry["status"] == "failed" and entry["error_class"] == "RequestRejected"
    assert f"HTTP {status}" in entry["error"] and "no such model" in entry["error"]


@pytest.mark.parametrize("status", [401, 403])
def test_04_401_and_403_stop_the_run_with_exit_2(cli, server, tmp_path, status):
    server.responder = lambda body: Reply.error(status, "denied")
    result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 3), "--concurrency", "1")
    assert result.code == 2 and "API key" in result.stderr
    assert len(server.requests) == 1


def _open_client_connections(port: int) -> int:
    """ESTABLISHED TCP connections whose remote end is the server's port (the client side)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[3] == "01":
            count += 1
    return count


def test_05_read_timeout_on_every_attempt_fails_within_timeout_times_attempts(cli, tmp_path):
    with LoopbackServer(latency=2.0) as server:
        port = int(server.url.split(":")[2].split("/")[0])
        start = time.monotonic()
        result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 1), "--timeout", "0.3", "--retries", "2")
        elapsed = time.monotonic() - start
        assert result.code == 1 and "did not answer in time" in result.stderr
        assert len(server.requests) == 3
        assert elapsed < 0.3 * 3 + 1.0  # plus tiny backoffs and start-up
        assert _open_client_connections(port) == 0  # the client closed every connection it opened


def test_06_connection_reset_mid_response_is_retried_once_output_one_cache_row(cli, server, tmp_path):
    server.script(Reply.json(article(), fault="cut"))
    result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 1))
    assert result.code == 0, result.stderr
    assert len(server.requests) == 2
    assert len(list((tmp_path / "out").glob("doc*.json"))) == 1
    assert cache_rows(tmp_path) == 1


def test_06_connection_reset_before_any_answer_is_retried(cli, server, tmp_path):
    server.script(Reply(fault="reset"))
    assert run(cli, server, tmp_path, make_docs(tmp_path / "docs", 1)).code == 0
    assert len(server.requests) == 2


def test_07_finish_reason_length_gets_a_bigger_budget_then_truncated_never_cached(cli, server, tmp_path):
    cut = Reply(content='{"title": "CAT', finish_reason="length")
    server.script(cut, cut)
    result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 1), "--max-tokens", "500")
    assert result.code == 1
    assert [r.body["max_tokens"] for r in server.requests] == [500, 1000]
    assert manifest(tmp_path)[0]["status"] == "truncated"
    assert cache_rows(tmp_path) == 0


@pytest.mark.parametrize("reply,status", [
    (Reply(content=None, refusal="I can't help with that."), "refused"),
    (Reply(content="", finish_reason="content_filter"), "refused"),
])
def test_08_refusal_or_content_filter_is_recorded_not_cached_and_the_run_continues(cli, server, tmp_path, reply, status):
    server.script(reply)
    result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 2), "--concurrency", "1")
    assert result.code == 1
    statuses = {Path(e["path"]).name: e["status"] for e in manifest(tmp_path)}
    assert statuses == {"doc000.txt": status, "doc001.txt": "ok"}
    assert cache_rows(tmp_path) == 1


@pytest.mark.parametrize("bad", [
    "this is not JSON at all",
    "```json\n{\"title\": \"fenced but broken\"\n```",
    json.dumps(article(source_language="portuguese")),
])
def test_09_bad_bodies_are_reasked_boundedly_raw_kept_nothing_cached(cli, server, tmp_path, bad):
    server.responder = lambda body: Reply(content=bad)
    result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 1), "--max-reasks", "2")
    assert result.code == 1
    assert len(server.requests) == 3
    [entry] = manifest(tmp_path)
    assert entry["status"] == "invalid" and bad in entry["raw"]
    assert cache_rows(tmp_path) == 0
    # Each re-ask extends a copy: the first request still has exactly system + user.
    assert [len(r.body["messages"]) for r in server.requests] == [2, 4, 6]


def test_09_fenced_valid_json_is_accepted_without_a_reask(cli, server, tmp_path):
    server.script(Reply(content="```json\n" + json.dumps(article()) + "\n```"))
    assert run(cli, server, tmp_path, make_docs(tmp_path / "docs", 1)).code == 0
    assert len(server.requests) == 1


def test_10_thousand_documents_with_5_percent_random_faults_lose_nothing(cli, tmp_path):
    docs = make_docs(tmp_path / "docs", 1000)
    with LoopbackServer(fault_rate=0.05, seed=11) as server:
        result = run(cli, server, tmp_path, docs, "--concurrency", "16", "--tables", "never", "--quiet")
    entries = manifest(tmp_path)
    paths = [e["path"] for e in entries]
    assert len(paths) == 1000 and len(set(paths)) == 1000  # every document once
    ok = sum(e["status"] == "ok" for e in entries)
    failed = [e for e in entries if e["status"] != "ok"]
    assert all(e["status"] == "failed" and e["error"] and e["error_class"] for e in failed)  # each says why
    assert ok >= 990  # retries absorb nearly all of the 5 %
    outputs = list((tmp_path / "out").glob("doc*.json"))
    assert len(outputs) == ok
    for output in outputs:
        json.loads(output.read_text())  # no half-written file
    assert not list((tmp_path / "out").glob(".*.tmp"))
    assert result.code == (0 if ok == 1000 else 1)


def test_18_the_api_key_never_leaks(cli, tmp_path, monkeypatch):
    marker = "sk-MARKER-7f3a9c0d5e"
    monkeypatch.setenv("OPENAI_API_KEY", marker)
    echo = lambda body: Reply.error(401, f"Incorrect API key provided: {marker}")  # noqa: E731
    with LoopbackServer() as server:
        ok = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 2), "--verbose", "--concurrency", "1")
        assert server.requests[0].headers.get("authorization") == f"Bearer {marker}"  # it was used...
        server.responder = echo
        denied = run(cli, server, tmp_path, make_docs(tmp_path / "more", 1), "--verbose", "--no-cache")
    assert ok.code == 0 and denied.code == 2
    for text in (ok.stdout, ok.stderr, denied.stdout, denied.stderr):
        assert marker not in text
    for path in [*(tmp_path / "out").rglob("*"), *Path(os.environ["SUMMARIZER_CACHE_DIR"]).rglob("*")]:
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), f"key leaked into {path}"


def test_19_two_processes_on_overlapping_folders_share_cache_and_outputs(tmp_path):
    docs = make_docs(tmp_path / "docs", 40)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    with LoopbackServer(latency=0.01) as server:
        cmd = [sys.executable, "-m", "summarizer", "summarize", str(docs), "--base-url", server.url,
               "--out", str(tmp_path / "out"), "--concurrency", "4", "--quiet", "--tables", "never"]
        procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    outputs = list((tmp_path / "out").glob("doc*.json"))
    assert len(outputs) == 40
    for output in outputs:
        assert json.loads(output.read_text())["result"]["title"]
    cache = Cache(Path(env["SUMMARIZER_CACHE_DIR"]))
    assert cache.count() == 40 and cache.integrity_ok()
    cache.close()


def test_20_a_corrupted_cache_file_is_moved_aside_with_a_warning_and_rebuilt(cli, server, tmp_path):
    cache_dir = Path(os.environ["SUMMARIZER_CACHE_DIR"])
    cache_dir.mkdir(parents=True)
    (cache_dir / "cache.sqlite3").write_bytes(b"this is not a database" * 100)
    result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 1))
    assert result.code == 0
    assert "cache" in result.stderr and "corrupt" in result.stderr
    assert list(cache_dir.glob("cache.sqlite3.corrupt-*"))
    assert cache_rows(tmp_path) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_21_kill_9_then_rerun_leaves_no_partial_files_and_a_sound_cache(tmp_path, workers):
    from .helpers import interrupt_then_rerun

    # Asserts inside: only unfinished documents are sent again, nothing lost or doubled.
    result = interrupt_then_rerun(tmp_path, workers, 30, lambda proc: proc.send_signal(signal.SIGKILL),
                                  latency=0.1, concurrency="2", wait_for=8)
    assert result.code == -signal.SIGKILL
    cache = Cache(Path(os.environ["SUMMARIZER_CACHE_DIR"]))
    assert cache.integrity_ok() and cache.count() == 30
    cache.close()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_auto_mode_falls_back_once_when_the_server_rejects_json_schema(cli, tmp_path):
    with LoopbackServer(reject_json_schema=True) as server:
        result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 3), "--concurrency", "1")
        formats = [(r.body.get("response_format") or {}).get("type") for r in server.requests]
    assert result.code == 0, result.stderr
    assert formats == ["json_schema", "json_object", "json_object", "json_object"]  # remembered for the run
    assert "JSON Schema" in server.requests[1].body["messages"][0]["content"]  # the schema moved into the prompt
    assert json.loads((tmp_path / "out" / "doc000.json").read_text())["model"]["mode"] == "json_object"


def test_auto_mode_fallback_is_shared_by_the_backends_of_one_run():
    from types import SimpleNamespace

    from summarizer.artifacts import load_prompt, load_schema
    from summarizer.backends.base import CompletionRequest
    from summarizer.backends.openai_compat import OpenAIBackend
    from summarizer.pipeline import build_messages

    schema, prompt = load_schema("article"), load_prompt("article")
    request = CompletionRequest(tuple(build_messages(prompt, "CATL signed an agreement.")), schema, 256, 0.0)
    memory = SimpleNamespace(value=0)  # what a run with worker processes keeps in shared memory

    async def both(url: str) -> list[str]:
        backends = [OpenAIBackend(model="m", base_url=url, api_key="k", fallback_memory=memory) for _ in range(2)]
        modes = [(await backend.complete(request)).mode for backend in backends]
        for backend in backends:
            await backend.aclose()
        return modes

    with LoopbackServer(reject_json_schema=True) as server:
        modes = asyncio.run(both(server.url))
        formats = [(r.body.get("response_format") or {}).get("type") for r in server.requests]
    assert modes == ["json_object", "json_object"]
    assert formats == ["json_schema", "json_object", "json_object"]  # the second backend never tried json_schema


def test_tools_mode_sends_the_schema_as_a_forced_function(cli, server, tmp_path):
    result = run(cli, server, tmp_path, make_docs(tmp_path / "docs", 1), "--mode", "tools")
    assert result.code == 0, result.stderr
    body = server.requests[0].body
    assert body["tools"][0]["function"]["parameters"]["title"] == "Article"
    assert body["tool_choice"]["function"]["name"] == "article"
