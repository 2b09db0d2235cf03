"""Batch mode against the loopback Batch API: splitting, expiry, missing lines, re-asks, resume after kill -9."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from summarizer.artifacts import load_schema
from summarizer.backends.batch_api import Limits, plan_parts
from summarizer.loopback import LoopbackServer, Reply, canned_responder
from summarizer.loopback_batch import BatchService, enable_batches

from .helpers import ROOT, make_docs

FAST = ("--batch-poll", "0.02", "--batch-wait", "60", "--tables", "never")


@pytest.fixture
def batch_server():
    with LoopbackServer() as server:
        enable_batches(server, phase=0.01)
        yield server


def batch(cli, server, tmp_path: Path, action: str, *args: Any):
    """`summarizer batch ACTION ...` in-process against the loopback server, output in tmp_path/out."""
    if action in ("run", "submit"):
        return cli("batch", action, *args, "--base-url", server.url, "--out", tmp_path / "out", *FAST)
    return cli("batch", action, "--out", tmp_path / "out", *args)


def manifest(out: Path) -> list[dict[str, Any]]:
    files = sorted(out.glob("run-*.jsonl"))
    assert len(files) == 1, files  # one job, one manifest, whatever the number of rounds
    return [json.loads(line) for line in files[0].read_text("utf-8").splitlines()]


def test_thousand_documents_despite_an_expired_batch_missing_lines_and_reasks(cli, batch_server, tmp_path):
    docs = make_docs(tmp_path / "docs", 1000)
    service: BatchService = batch_server.batch
    service.faults[1] = {"expire_half": True}  # 300 lines: 150 answered, 150 back in the queue
    service.faults[2] = {"drop": 7}  # 7 lines in neither the output nor the error file

    def first_answer_invalid_for_every_hundredth(body: dict[str, Any]) -> Reply:
        if number_in(body) % 100 == 42 and len(body["messages"]) == 2:
            return Reply(content='{"title": 5}')
        return canned_responder(body)

    batch_server.responder = first_answer_invalid_for_every_hundredth
    result = batch(cli, batch_server, tmp_path, "run", docs, "--batch-max-requests", "300", "--quiet")
    assert result.code == 0, result.stderr

    out = tmp_path / "out"
    model = load_schema("article").model
    outputs = sorted(out.glob("doc*.json"))
    assert len(outputs) == 1000
    for path in outputs:
        model.model_validate(json.loads(path.read_text("utf-8"))["result"])
    entries = manifest(out)
    assert Counter(e["status"] for e in entries) == {"ok": 1000}
    assert len({e["path"] for e in entries}) == 1000  # each document exactly once
    reasked = [e for e in entries if doc_number_of(e["path"]) % 100 == 42]
    assert all(e["usage"]["requests"] == 2 for e in reasked) and len(reasked) == 10
    # Billing: every line answered once; 1,000 first answers plus the 10 re-asks.
    assert max(service.billed.values()) == 1
    assert sum(service.billed.values()) == 1010
    statuses = [b.status for b in service.batches.values()]
    assert statuses.count("expired") == 1 and len(statuses) >= 5  # 4 parts of <= 300, then the resubmissions
    assert all(b.counts["total"] <= 300 for b in service.batches.values())


def number_in(body: dict[str, Any]) -> int:
    """Which document a request body is about."""
    return int(re.search(r"Document (\d+)\.", body["messages"][1]["content"]).group(1))


def doc_number_of(path: str) -> int:
    return int(Path(path).stem.removeprefix("doc"))


def test_batch_request_body_is_the_one_the_live_backend_sends(cli, batch_server, tmp_path):
    docs = make_docs(tmp_path / "docs", 1)
    live = cli("summarize", docs, "--base-url", batch_server.url, "--out", tmp_path / "live", "--no-cache")
    assert live.code == 0, live.stderr
    result = batch(cli, batch_server, tmp_path, "run", docs, "--no-cache")
    assert result.code == 0, result.stderr
    (line,) = batch_server.batch.lines
    assert line["body"] == batch_server.requests[0].body  # what the live backend sent, to the byte
    assert line["url"] == "/v1/chat/completions" and line["method"] == "POST"


NOTE = """
from typing import Annotated
from pydantic import BaseModel, Field
from summarizer.traits import Summary, Title

class Note(BaseModel):
    title: Annotated[str, Title()] = Field(description="A short title.")
    gist: Annotated[str, Summary()] = Field(description="One sentence.")
"""


def test_a_user_schema_and_a_list_of_files_alone_send_what_summarize_sends(cli, batch_server, tmp_path):
    (tmp_path / "note.py").write_text(NOTE)
    docs = make_docs(tmp_path / "docs", 1)
    (tmp_path / "list.txt").write_text(f"{docs / 'doc000.txt'}\n")
    batch_server.responder = lambda body: Reply.json({"title": "A note", "gist": "It says little."})
    same = ("--from-list", tmp_path / "list.txt", "--schema", f"{tmp_path / 'note.py'}:Note", "--no-cache")
    live = cli("summarize", *same, "--base-url", batch_server.url, "--out", tmp_path / "live")
    assert live.code == 0, live.stderr
    result = batch(cli, batch_server, tmp_path, "run", *same)  # no paths: the list is enough
    assert result.code == 0, result.stderr
    (line,) = batch_server.batch.lines
    assert line["body"] == batch_server.requests[0].body  # the user schema's own prompt, as summarize builds it


def test_batch_status_and_cancel_never_run_the_schema_file_the_ledger_names(cli, batch_server, tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "note.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n" + NOTE)
    docs = make_docs(tmp_path / "docs", 2)
    submitted = batch(cli, batch_server, tmp_path, "submit", docs, "--schema", f"{tmp_path / 'note.py'}:Note")
    assert submitted.code == 0, submitted.stderr
    marker.unlink()  # the submit loaded it, as the user asked
    assert batch(cli, batch_server, tmp_path, "status").code == 0
    assert batch(cli, batch_server, tmp_path, "cancel").code == 0
    assert not marker.exists()


def test_cached_documents_are_never_submitted(cli, batch_server, tmp_path):
    docs = make_docs(tmp_path / "docs", 5)
    first = make_docs(tmp_path / "first", 0)
    for i in range(3):
        (first / f"doc{i:03d}.txt").write_text((docs / f"doc{i:03d}.txt").read_text())
    warm = cli("summarize", first, "--base-url", batch_server.url, "--out", tmp_path / "warm")
    assert warm.code == 0, warm.stderr
    result = batch(cli, batch_server, tmp_path, "run", docs)
    assert result.code == 0, result.stderr
    assert sum(batch_server.batch.billed.values()) == 2  # only the two new documents
    statuses = Counter(e["status"] for e in manifest(tmp_path / "out"))
    assert statuses == {"cached": 3, "ok": 2}
    assert len(list((tmp_path / "out").glob("doc*.json"))) == 5


def test_identical_documents_share_one_request_line(cli, batch_server, tmp_path):
    docs = make_docs(tmp_path / "docs", 1)
    (docs / "copy.txt").write_text((docs / "doc000.txt").read_text())
    result = batch(cli, batch_server, tmp_path, "run", docs, "--no-cache")
    assert result.code == 0, result.stderr
    # Two lines with one custom_id would fail the whole batch (the server checks, as OpenAI does).
    assert sum(batch_server.batch.billed.values()) == 1
    assert [b.status for b in batch_server.batch.batches.values()] == ["completed"]
    assert Counter(e["status"] for e in manifest(tmp_path / "out")) == {"ok": 2}


def test_long_document_sends_all_chunks_in_one_batch_then_the_digest(cli, batch_server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    paragraph = ("CATL and the municipal government of Zhaoqing city signed an agreement. " * 14).strip()
    (docs / "long.txt").write_text("\n\n".join(f"Part {i}. {paragraph}" for i in range(4)))
    config = tmp_path / "chunks.toml"
    config.write_text("max_chunk_chars = 1000\n")
    result = batch(cli, batch_server, tmp_path, "run", docs, "--config", config)
    assert result.code == 0, result.stderr
    sizes = [b.counts["total"] for b in batch_server.batch.batches.values()]
    assert sizes[0] >= 4 and sizes[1:] == [1]  # every chunk in round one; the overall summary in round two
    output = json.loads((tmp_path / "out" / "long.json").read_text())
    assert output["document"]["chunks"] == sizes[0]


def test_a_line_the_server_keeps_failing_fails_its_document_with_the_servers_words(cli, batch_server, tmp_path):
    docs = make_docs(tmp_path / "docs", 3)

    def overloaded_for_doc_1(body: dict[str, Any]) -> Reply:
        if number_in(body) == 1:
            return Reply.error(500, "the model is overloaded (loopback)")
        return canned_responder(body)

    batch_server.responder = overloaded_for_doc_1
    result = batch(cli, batch_server, tmp_path, "run", docs, "--batch-line-retries", "1", "--quiet")
    assert result.code == 1
    entries = {doc_number_of(e["path"]): e for e in manifest(tmp_path / "out")}
    assert entries[0]["status"] == entries[2]["status"] == "ok"
    assert entries[1]["status"] == "failed" and entries[1]["error_class"] == "BatchLineFailed"
    assert "the model is overloaded (loopback)" in entries[1]["error"]
    assert len(batch_server.batch.batches) == 2  # the first try and one retry, then it stops


def test_token_limit_failure_is_resubmitted_without_counting_against_the_line(cli, batch_server, tmp_path):
    docs = make_docs(tmp_path / "docs", 2)
    batch_server.batch.faults[1] = {"token_limit": True}
    result = batch(cli, batch_server, tmp_path, "run", docs, "--batch-line-retries", "0")
    assert result.code == 0, result.stderr
    assert [b.status for b in batch_server.batch.batches.values()] == ["failed", "completed"]
    assert "enqueued-token limit" in result.stderr


def test_plan_parts_respects_requests_bytes_and_enqueued_tokens():
    lines = [(f"id{i}", 100, 10) for i in range(10)]
    assert [len(ids) for ids, _ in plan_parts(lines, Limits(max_requests=4), 0)] == [4, 4, 2]
    assert [len(ids) for ids, _ in plan_parts(lines, Limits(max_bytes=350), 0)] == [3, 3, 3, 1]
    # 45 tokens may still be enqueued: four lines go now, the rest wait for earlier batches.
    planned = plan_parts(lines, Limits(max_enqueued_tokens=65), in_flight=20)
    assert [(len(ids), tokens) for ids, tokens in planned] == [(4, 40)]
    # Nothing in flight: one line always goes, even above the limit, so a run cannot stall.
    assert [len(ids) for ids, _ in plan_parts([("big", 10, 500)], Limits(max_enqueued_tokens=100), 0)] == [1]
    assert plan_parts([("big", 10, 500)], Limits(max_enqueued_tokens=100), in_flight=1) == []


def test_status_after_kill_mid_submit_shows_the_true_state_and_rerun_does_not_duplicate(batch_server, tmp_path):
    docs = make_docs(tmp_path / "docs", 15)
    service: BatchService = batch_server.batch
    service.faults[2] = {"stall": 20}  # batch 2 is created, but its creator never hears back
    env = {**os.environ, "SUMMARIZER_CACHE_DIR": str(tmp_path / "cache"), "SUMMARIZER_CONFIG": str(tmp_path / "none"),
           "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "summarizer", "batch", "submit", str(docs), "--base-url", batch_server.url,
               "--out", str(tmp_path / "out"), "--batch-max-requests", "5", "--quiet"]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while service.created < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert service.created == 2, proc.stderr.read().decode() if proc.poll() is not None else "no second batch"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "summarizer", "batch", *args, "--out", str(tmp_path / "out")],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    status = run("status", "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    server_ids = {b.metadata["part"]: b.id for b in service.batches.values()}
    assert {str(b["part"]): b["batch_id"] for b in state["batches"]} == server_ids  # part 2 adopted, not recreated
    assert state["requests"] == {"submitted": 10, "queued": 5}
    assert not state["finished"] and state["documents"] == {}

    done = run("collect", "--wait", "--batch-poll", "0.02")
    assert done.returncode == 0, done.stderr
    assert service.created == 3  # parts 1 and 2 as before the kill, part 3 once
    assert sorted(b.metadata["part"] for b in service.batches.values()) == ["1", "2", "3"]
    assert sum(service.billed.values()) == 15 and max(service.billed.values()) == 1
    assert len(list((tmp_path / "out").glob("doc*.json"))) == 15
    assert Counter(e["status"] for e in manifest(tmp_path / "out")) == {"ok": 15}


def test_a_second_job_with_other_inputs_is_refused_while_one_is_open(cli, batch_server, tmp_path):
    docs = make_docs(tmp_path / "docs", 2)
    batch_server.batch.phase = 60  # the batch stays in validating
    submitted = batch(cli, batch_server, tmp_path, "submit", docs)
    assert submitted.code == 0, submitted.stderr
    other = batch(cli, batch_server, tmp_path, "submit", make_docs(tmp_path / "other", 1))
    assert other.code == 2 and "batch collect" in other.stderr
    status = batch(cli, batch_server, tmp_path, "status", "--json")
    assert json.loads(status.stdout)["requests"] == {"submitted": 2}
    cancelled = batch(cli, batch_server, tmp_path, "cancel")
    assert cancelled.code == 0, cancelled.stderr
    assert [b.status for b in batch_server.batch.batches.values()] == ["cancelled"]
    state = json.loads(batch(cli, batch_server, tmp_path, "status", "--json").stdout)
    assert state["finished"] and state["requests"] == {"answered": 1, "queued": 1}  # the finished half is kept
    # The job is closed: a new one may start, and pays only for what the cancelled one did not finish.
    again = batch(cli, batch_server, tmp_path, "run", make_docs(tmp_path / "other", 1), "--no-cache")
    assert again.code == 0, again.stderr
    # other/doc000 reads like docs/doc000, answered before the cancel; docs/doc001's line is not sent.
    assert batch_server.batch.created == 1 and sum(batch_server.batch.billed.values()) == 1
    assert json.loads(batch(cli, batch_server, tmp_path, "status", "--json").stdout)["requests"] == \
        {"answered": 1, "unneeded": 1}


def test_loopback_rejects_duplicate_custom_ids_at_validation(batch_server):
    from openai import OpenAI

    client = OpenAI(api_key="x", base_url=batch_server.url, max_retries=0)
    line = json.dumps({"custom_id": "same", "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": "m", "messages": [{"role": "user", "content": "Document 1."}]}})
    uploaded = client.files.create(file=("in.jsonl", (line + "\n" + line + "\n").encode()), purpose="batch")
    created = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                    completion_window="24h")
    deadline = time.monotonic() + 10
    while (batch := client.batches.retrieve(created.id)).status not in ("failed", "completed") \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data[0].code == "duplicate_custom_id"
    assert not batch_server.batch.billed
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(Exception):
        client.files.retrieve(uploaded.id)


def test_a_part_killed_during_its_upload_goes_back_to_the_queue(batch_server, tmp_path):
    from summarizer.backends.batch_api import BatchClient
    from summarizer.batch_ledger import Ledger

    ledger = Ledger(tmp_path / "out")
    for cid in ("a", "b"):
        ledger.queue(cid, json.dumps({"custom_id": cid}), 10, "json_schema")
    part = ledger.new_part(["a", "b"], 20)  # then killed: no file id recorded, so no batch can exist
    client = BatchClient(ledger, api_key="x", base_url=batch_server.url, timeout=5, retries=0, limits=Limits())
    try:
        client.recover(create=False)  # `batch status` only looks
        assert ledger.parts()[0].state == "uploading"
        client.recover()
        assert ledger.parts()[0].state == "abandoned"
        assert ledger.request_counts() == {"queued": 2}
        assert [cid for cid, _, _ in ledger.queued()] == ["a", "b"] and part == 1
        assert client.submit() == 1 and ledger.parts("created")[0].part == 2  # a new part, a new number
    finally:
        client.close()
        ledger.close()
    assert batch_server.batch.created == 1


def test_batch_mode_needs_the_api_and_refuses_options_it_cannot_honour(cli, tmp_path):
    docs = make_docs(tmp_path / "docs", 1)
    no_api = cli("batch", "run", docs, "--out", tmp_path / "out")
    assert no_api.code == 2 and "OPENAI_API_KEY" in no_api.stderr
    budget = cli("batch", "submit", docs, "--base-url", "http://127.0.0.1:9/v1", "--max-cost", "1", "--out", tmp_path / "o")
    assert budget.code == 2 and "--max-cost is not available in batch mode" in budget.stderr
    nothing = cli("batch", "collect", "--out", tmp_path / "empty")
    assert nothing.code == 2 and "no batch job" in nothing.stderr


def test_dry_run_estimates_at_the_batch_price_and_sends_nothing(cli, batch_server, tmp_path):
    docs = make_docs(tmp_path / "docs", 3)
    listed = cli("summarize", docs, "--base-url", batch_server.url, "--dry-run")
    halved = cli("batch", "run", docs, "--base-url", batch_server.url, "--dry-run", "--out", tmp_path / "out")
    assert listed.code == halved.code == 0, halved.stderr
    cost = lambda text: float(re.search(r"~\$([\d.]+)", text).group(1))  # noqa: E731
    assert cost(halved.stdout) == pytest.approx(cost(listed.stdout) / 2, abs=0.00011)
    assert "Batch API" in halved.stdout
    assert not batch_server.batch.files and not (tmp_path / "out").exists()


@pytest.mark.parametrize("response", ["oops", ["a", "list"], 7])
def test_a_result_line_whose_response_is_not_an_object_is_a_failed_line_not_a_crash(tmp_path, response):
    from summarizer.backends.batch_api import BatchClient, Limits
    from summarizer.batch_ledger import Ledger

    ledger = Ledger(tmp_path)
    ledger.queue("c1", '{"custom_id": "c1"}', 10, "json_schema")
    part = ledger.new_part(["c1"], 10)
    client = BatchClient(ledger, api_key="k", base_url="http://127.0.0.1:9/v1", timeout=1, retries=0,
                         limits=Limits(10, 10**6, None, 3))
    client._record(part, {"custom_id": "c1", "response": response}, 3)  # raised AttributeError before
    client.close()
    line = ledger.request("c1")
    assert (line.state, line.failures) == ("queued", 1) and "not a chat completion" in line.error  # sent again
