"""Bulk runs: folders, order, resume after kill -9, one retry layer, clean stops, budgets."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path


import pytest

from summarizer.loopback import LoopbackServer, Reply, canned_responder

from .helpers import BODY, doc_number, fast_config, interrupt_then_rerun, make_docs


def test_folder_run_is_recursive_skips_hidden_files_and_honours_globs(cli, server, tmp_path):
    docs = make_docs(tmp_path / "docs", 3)
    make_docs(docs / "sub", 2)
    (docs / ".hidden.txt").write_text("secret")
    (docs / "notes.md").write_text("Document 99.\n" + BODY)
    result = cli("summarize", docs, "--glob", "*.txt", "--base-url", server.url, "--out", tmp_path / "out")
    assert result.code == 0, result.stderr
    outputs = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.json"))
    assert outputs == ["doc000.json", "doc001.json", "doc002.json", "sub/doc000.json", "sub/doc001.json"]
    assert len(server.requests) == 5


def test_from_list_reads_paths(cli, server, tmp_path):
    docs = make_docs(tmp_path / "docs", 3)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two of them\n{docs / 'doc002.txt'}\n\n{docs / 'doc000.txt'}\n")
    result = cli("summarize", "--from-list", listing, "--base-url", server.url, "--out", tmp_path / "out")
    assert result.code == 0
    assert sorted(doc_number(r) for r in server.requests) == [0, 2]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_jsonl_is_in_input_order_whatever_the_completion_order(cli, tmp_path, workers):
    docs = make_docs(tmp_path / "docs", 24)
    rng = random.Random(7)

    def jittery(body):
        time.sleep(rng.random() * 0.1)  # later documents often finish first
        return canned_responder(body)

    with LoopbackServer(jittery) as server:
        result = cli("summarize", docs, "--base-url", server.url, "--out", tmp_path / "out",
                     "--concurrency", "8", "--workers", workers, "--jsonl", tmp_path / "all.jsonl")
    assert result.code == 0
    manifest = next((tmp_path / "out").glob("run-*.jsonl"))
    finished = [json.loads(line)["index"] for line in manifest.read_text().splitlines()]
    assert finished != sorted(finished)  # the manifest is in completion order, which differs
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert [Path(line["path"]).name for line in lines] == [f"doc{i:03d}.txt" for i in range(24)]
    assert all(line["status"] == "ok" and line["output"]["result"]["title"] for line in lines)


def test_retries_stop_after_the_configured_attempts(cli, server, tmp_path):
    server.script(*[Reply.error(500, "boom")] * 10)
    result = cli("summarize", make_docs(tmp_path / "docs", 1), "--base-url", server.url, "--out", tmp_path / "out",
                 "--retries", "2", "--config", fast_config(tmp_path))
    assert result.code == 1 and "HTTP 500" in result.stderr
    assert len(server.requests) == 3


@pytest.mark.parametrize("workers,concurrency", [("1", "3"), ("2", "4")])
def test_concurrency_caps_the_requests_in_flight_and_is_reached(cli, tmp_path, workers, concurrency):
    lock = threading.Lock()
    seen = {"now": 0, "most": 0}

    def slow(body):
        with lock:
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])
        time.sleep(0.05)
        with lock:
            seen["now"] -= 1
        return canned_responder(body)

    with LoopbackServer(slow) as server:
        result = cli("summarize", make_docs(tmp_path / "docs", 30), "--base-url", server.url, "--out",
                     tmp_path / "out", "--concurrency", concurrency, "--workers", workers)
    assert result.code == 0, result.stderr
    assert seen["most"] == int(concurrency)  # never more requests at once, and the run used them all


@pytest.mark.parametrize("workers,concurrency", [("1", "1"), ("2", "2")])
def test_401_stops_the_run_cleanly_and_keeps_finished_work(cli, tmp_path, workers, concurrency):
    calls = {"n": 0}
    lock = threading.Lock()

    def first_three_then_401(body):
        with lock:
            calls["n"] += 1
            n = calls["n"]
        return canned_responder(body) if n <= 3 else Reply.error(401, "Incorrect API key provided")

    with LoopbackServer(first_three_then_401) as server:
        result = cli("summarize", make_docs(tmp_path / "docs", 10), "--base-url", server.url,
                     "--out", tmp_path / "out", "--concurrency", concurrency, "--workers", workers)
        requests = len(server.requests)
    assert result.code == 2
    assert "refused the API key" in result.stderr and "OPENAI_API_KEY" in result.stderr
    assert len(list((tmp_path / "out").glob("doc*.json"))) == 3
    # Nothing starts after the stop: the refused request, plus what was already in flight.
    assert 4 <= requests <= 3 + int(concurrency)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_exhausted_quota_stops_the_run_with_exit_2(cli, server, tmp_path, workers):
    server.responder = lambda body: Reply.error(429, "You exceeded your current quota", code="insufficient_quota")
    result = cli("summarize", make_docs(tmp_path / "docs", 5), "--base-url", server.url, "--out", tmp_path / "out",
                 "--concurrency", "1", "--workers", workers, "--config", fast_config(tmp_path))
    assert result.code == 2
    assert "quota is exhausted" in result.stderr
    assert len(server.requests) == 1  # not retried: waiting cannot bring quota back


def test_retry_failed_reruns_only_the_failures_of_the_last_run(cli, server, tmp_path):
    docs = make_docs(tmp_path / "docs", 4)
    server.responder = lambda body: (Reply.error(400, "bad request") if "Document 2." in body["messages"][1]["content"]
                                     else canned_responder(body))
    first = cli("summarize", docs, "--base-url", server.url, "--out", tmp_path / "out")
    assert first.code == 1
    server.responder = canned_responder
    before = len(server.requests)
    second = cli("summarize", "--retry-failed", "--base-url", server.url, "--out", tmp_path / "out")
    assert second.code == 0
    assert [doc_number(r) for r in server.requests[before:]] == [2]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_token_budget_stops_the_run_and_keeps_finished_work(cli, server, tmp_path, workers):
    result = cli("summarize", make_docs(tmp_path / "docs", 10), "--base-url", server.url, "--out", tmp_path / "out",
                 "--concurrency", "1", "--workers", workers, "--max-tokens-total", "300")
    assert result.code == 1
    assert "token budget of 300 reached" in result.stderr
    assert len(server.requests) == 2  # 150 tokens each
    assert len(list((tmp_path / "out").glob("doc*.json"))) == 2


def test_dry_run_sends_nothing_and_estimates(cli, server, tmp_path):
    result = cli("summarize", make_docs(tmp_path / "docs", 3), "--base-url", server.url, "--dry-run",
                 "--model", "gpt-4o-mini")
    assert result.code == 0
    assert "3/3 readable documents, about 3 request(s)" in result.stdout and "$" in result.stdout
    assert server.requests == []


def test_max_cost_needs_a_known_price(cli, server, tmp_path):
    result = cli("summarize", make_docs(tmp_path / "docs", 1), "--base-url", server.url, "--model", "mystery",
                 "--max-cost", "1")
    assert result.code == 2 and "--max-tokens-total" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_resume_after_kill_9_sends_only_unfinished_documents(tmp_path, workers):
    result = interrupt_then_rerun(tmp_path, workers, 30, lambda proc: proc.send_signal(signal.SIGKILL),
                                  latency=0.1, concurrency="2", wait_for=8)
    assert result.code == -signal.SIGKILL
    assert len(result.resent) == len(set(result.resent))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_quickly_keeps_finished_work_and_leaves_no_worker_behind(tmp_path, workers):
    # SIGINT to the whole process group, as a terminal's Ctrl-C sends it.
    result = interrupt_then_rerun(tmp_path, workers, 40, lambda proc: os.killpg(proc.pid, signal.SIGINT),
                                  latency=0.2, concurrency="4", wait_for=4)
    assert result.code == 130 and "interrupted" in result.stderr, result.stderr


def test_summarizing_the_current_folder_skips_its_own_outputs_and_cache(cli, server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_docs(tmp_path, 2)
    monkeypatch.setenv("SUMMARIZER_CACHE_DIR", str(tmp_path / "cache"))
    for _ in range(2):
        assert cli("summarize", ".", "--base-url", server.url).code == 0
    assert sorted(doc_number(r) for r in server.requests) == [0, 1]
    assert not (tmp_path / "outputs" / "outputs").exists()



def test_a_cached_rerun_leaves_unchanged_outputs_alone_and_mends_changed_ones(cli, server, tmp_path):
    docs = make_docs(tmp_path / "docs", 2)
    out = tmp_path / "out"
    assert cli("summarize", docs, "--base-url", server.url, "--out", out).code == 0
    first = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("doc*.json")}
    (out / "doc001.json").write_text('{"edited": true}\n')  # not what the run would write
    again = cli("summarize", docs, "--base-url", server.url, "--out", out)
    assert again.code == 0 and again.stderr.count("served from cache") == 2
    assert len(server.requests) == 2  # nothing sent again
    untouched = out / "doc000.json"
    assert (untouched.stat().st_mtime_ns, untouched.read_bytes()) == first["doc000.json"]
    mended = json.loads((out / "doc001.json").read_text())
    assert mended["cached"] is True and mended["result"]["title"]
