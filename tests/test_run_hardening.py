"""A hostile world, run side: usage errors, odd file names, files that change, sizes, bugs, full disks."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path, PurePath

import pytest

from summarizer.inputs import InputItem
from summarizer.loopback import LoopbackServer

from .helpers import ROOT, make_docs, manifest_entries

STORY = (ROOT / "seeds" / "002_58b7a0a3b69e6006.txt").read_text()[:600]


@pytest.mark.parametrize("flags, words", [
    (["--max-cost", "0"], "--max-cost"),
    (["--max-cost", "-1"], "--max-cost"),
    (["--max-tokens-total", "0"], "--max-tokens-total"),
    (["--rpm", "0"], "--rpm"),
    (["--timeout", "0"], "--timeout"),
    (["--temperature", "nan"], "--temperature"),
    (["--concurrency", "100000000"], "--concurrency"),
    (["--workers", "0"], "--workers"),
])
def test_absurd_flag_values_are_usage_errors(cli, server, tmp_path, flags, words):
    make_docs(tmp_path / "docs", 2, STORY)
    result = cli("summarize", tmp_path / "docs", "--base-url", server.url, "--out", tmp_path / "out", *flags)
    assert result.code == 2, result.stderr
    assert words in result.stderr and "from" in result.stderr  # names the setting and where it came from
    assert server.requests == []


@pytest.mark.parametrize("line, words", [
    ("concurrency = 8.7", "whole number"),
    ("rpm = true", "not true/false"),
    ("concurrency = \"8\"\nmax_reasks = -1", "--max-reasks"),
    ("no_such_setting = 1", "unknown setting"),
])
def test_mistyped_config_values_are_refused_not_guessed(cli, server, tmp_path, line, words):
    config = tmp_path / "config.toml"
    config.write_text(line + "\n")
    make_docs(tmp_path / "docs", 1, STORY)
    result = cli("summarize", tmp_path / "docs", "--base-url", server.url, "--out", tmp_path / "out",
                 "--config", config)
    assert result.code == 2 and words in result.stderr, result.stderr
    assert str(config) in result.stderr or "unknown setting" in result.stderr


def test_a_config_file_that_is_not_utf8_is_a_usage_error(cli, server, tmp_path):
    config = tmp_path / "config.toml"
    config.write_bytes("model = \"modèle\"\n".encode("latin-1"))
    make_docs(tmp_path / "docs", 1, STORY)
    result = cli("summarize", tmp_path / "docs", "--base-url", server.url, "--config", config)
    assert result.code == 2 and "not UTF-8" in result.stderr and "internal error" not in result.stderr


def test_environment_values_are_typed_too(cli, server, tmp_path, monkeypatch):
    monkeypatch.setenv("SUMMARIZER_CONCURRENCY", "many")
    make_docs(tmp_path / "docs", 1, STORY)
    result = cli("summarize", tmp_path / "docs", "--base-url", server.url)
    assert result.code == 2 and "$SUMMARIZER_CONCURRENCY" in result.stderr


def test_run_options_come_from_the_environment_and_the_config_file(cli, server, tmp_path, monkeypatch):
    docs = make_docs(tmp_path / "docs", 3, STORY)
    (tmp_path / "config.toml").write_text(f'jsonl = "{tmp_path / "all.jsonl"}"\n')
    monkeypatch.setenv("SUMMARIZER_MAX_TOKENS_TOTAL", "1")  # spent after the first answer
    result = cli("summarize", docs, "--base-url", server.url, "--out", tmp_path / "out", "--concurrency", "1",
                 "--config", tmp_path / "config.toml")
    assert result.code == 1 and "token budget of 1 reached" in result.stderr
    lines = (tmp_path / "all.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["ok", "not_started", "not_started"]


def test_an_output_folder_that_is_a_file_is_a_usage_error(cli, server, tmp_path):
    (tmp_path / "out").write_text("not a folder")
    make_docs(tmp_path / "docs", 1, STORY)
    result = cli("summarize", tmp_path / "docs", "--base-url", server.url, "--out", tmp_path / "out")
    assert result.code == 2 and "cannot write to the output folder" in result.stderr
    assert "internal error" not in result.stderr and server.requests == []


def test_a_file_name_that_is_not_utf8_is_summarized_and_resumes(cli, server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    odd = os.fsdecode(b"caf\xe9-\xff.txt")  # Latin-1 bytes: lone surrogates in Python
    (docs / odd).write_text(STORY)
    (docs / "plain.txt").write_text(STORY + " Second.")
    out = tmp_path / "out"
    first = cli("summarize", docs, "--base-url", server.url, "--out", out)
    assert first.code == 0, first.stderr
    entries = manifest_entries(out)
    assert {e["status"] for e in entries} == {"ok"} and len(entries) == 2
    assert any("\\xe9" in e["path"] for e in entries)  # printable, and says which bytes
    outputs = sorted(p.name for p in out.glob("*.json"))
    assert len(outputs) == 2
    again = cli("summarize", docs, "--base-url", server.url, "--out", out)
    assert again.code == 0 and len(server.requests) == 2  # the second run is served from the cache


def _processor(tmp_path: Path, backend, **settings):
    from summarizer.artifacts import load_prompt, load_schema
    from summarizer.backends.base import Capabilities
    from summarizer.engines.base import RunControl
    from summarizer.processor import DocumentProcessor, RequestGate, RunSpec
    from summarizer.settings import Settings

    spec = RunSpec(Settings(out_dir=tmp_path / "out", **settings), load_schema("article"), load_prompt("article"),
                   "fake", Capabilities(), 2048)
    control = RunControl()
    return DocumentProcessor(spec, backend, RequestGate(backend, 1, control.may_send, control.spend),
                             cache=None, checker=None)


def test_a_file_replaced_by_a_fifo_after_listing_does_not_block(tmp_path):
    import asyncio

    from .fakes import ScriptedBackend, article

    fifo = tmp_path / "doc.txt"
    os.mkfifo(fifo)  # listed as a file, then replaced: nobody will ever write to this pipe
    processor = _processor(tmp_path, ScriptedBackend(article()))
    started = time.monotonic()
    outcome = asyncio.run(asyncio.wait_for(
        processor.process(InputItem(0, str(fifo), PurePath("doc.txt")), False, tmp_path / "out" / "doc.json"), 10))
    assert time.monotonic() - started < 5
    assert outcome.status == "failed" and "not a regular file any more" in outcome.error


def test_a_document_over_max_doc_chars_is_too_large_and_costs_nothing(cli, server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "big.txt").write_text("Word and word. " * 2000)  # 30,000 characters
    (docs / "small.txt").write_text(STORY)
    result = cli("summarize", docs, "--base-url", server.url, "--out", tmp_path / "out", "--max-doc-chars", "10000")
    assert result.code == 1
    entries = {e["relative"]: e for e in manifest_entries(tmp_path / "out")}
    assert entries["big.txt"]["status"] == "too_large" and "--max-doc-chars" in entries["big.txt"]["error"]
    assert entries["small.txt"]["status"] == "ok" and len(server.requests) == 1


SCHEMA_WITH_A_BUG = textwrap.dedent('''
    from typing import Annotated
    from pydantic import BaseModel, model_validator
    from summarizer.traits import Summary, Title

    class Note(BaseModel):
        title: Annotated[str, Title()]
        summary: Annotated[str, Summary()]

        @model_validator(mode="after")
        def _bug(self):
            if "BUG" in self.title:
                raise RuntimeError("a bug in the user's validator")  # not a ValueError: pydantic lets it through
            return self
''')


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unforeseen_exception_fails_one_document_and_the_run_goes_on(cli, tmp_path, workers):
    schema = tmp_path / "note.py"
    schema.write_text(SCHEMA_WITH_A_BUG)

    def responder(request):
        from summarizer.loopback import Reply

        text = request["messages"][1]["content"]
        title = "BUG here" if "Document 3." in text else "Fine"
        return Reply(content=json.dumps({"title": title, "summary": "Two sentences here. And another one."}))

    docs = make_docs(tmp_path / "docs", 40, STORY)
    with LoopbackServer(responder=responder) as server:
        result = cli("summarize", docs, "--base-url", server.url, "--out", tmp_path / "out", "--schema",
                     f"{schema}:Note", "--workers", workers, "--concurrency", "32")
    assert result.code == 1
    entries = manifest_entries(tmp_path / "out")
    assert len(entries) == 40
    failed = [e for e in entries if e["status"] != "ok"]
    assert [e["relative"] for e in failed] == ["doc003.txt"]
    assert "internal error" in failed[0]["error"] and "RuntimeError" in failed[0]["error"]
    assert len(list((tmp_path / "out").glob("doc*.json"))) == 39


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_full_disk_stops_the_run_cleanly_and_the_same_command_resumes(tmp_path):
    # RLIMIT_FSIZE makes the kernel refuse writes past a size, as a full disk refuses them.
    docs = make_docs(tmp_path / "docs", 30, STORY)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    with LoopbackServer() as server:
        cmd = [sys.executable, "-m", "summarizer", "summarize", str(docs), "--base-url", server.url, "--out",
               str(out), "--cache-dir", str(tmp_path / "cache"), "--workers", "1", "--concurrency", "1", "--quiet"]
        first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120,
                               preexec_fn=_limit_file_size(40_000))
        assert first.returncode == 2, first.stderr
        assert "cannot write" in first.stderr and "free space" in first.stderr, first.stderr
        assert "Traceback" not in first.stderr and "internal error" not in first.stderr
        manifest = next(out.glob("run-*.jsonl")).read_bytes()
        assert manifest == b"" or manifest.endswith(b"\n")  # no torn line
        finished = {p.name for p in out.glob("doc*.json")}
        assert 0 < len(finished) < 30
        sent_before = len(server.requests)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        # Only what was not finished (plus at most the one document the full disk interrupted) is sent again.
        assert len(server.requests) - sent_before <= 30 - len(finished) + 1
    assert len(list(out.glob("doc*.json"))) == 30


def test_an_output_path_that_cannot_be_written_fails_that_document_not_the_run(cli, server, tmp_path):
    docs = make_docs(tmp_path / "docs", 3, STORY)
    longest = "x" * 250 + ".txt"  # its output name fits; a temporary named after all of it would not
    (docs / longest).write_text(STORY)
    (tmp_path / "out" / "doc001.json").mkdir(parents=True)  # a folder where one output goes
    result = cli("summarize", docs, "--base-url", server.url, "--out", tmp_path / "out", "--workers", "1")
    assert result.code == 1, result.stderr  # one document failed; the run went on
    statuses = {e["relative"]: e["status"] for e in manifest_entries(tmp_path / "out")}
    assert statuses == {"doc000.txt": "ok", "doc001.txt": "failed", "doc002.txt": "ok", longest: "ok"}
    assert "cannot write" in result.stderr and "rename the input" in result.stderr
    assert (tmp_path / "out" / ("x" * 250 + ".json")).is_file()


def test_a_cache_folder_that_cannot_be_created_is_a_usage_error(cli, server, tmp_path):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    make_docs(tmp_path / "docs", 1, STORY)
    result = cli("summarize", tmp_path / "docs", "--base-url", server.url, "--cache-dir", tmp_path / "cache",
                 "--out", tmp_path / "out")
    assert result.code == 2 and "cache folder" in result.stderr and "--no-cache" in result.stderr
    assert "internal error" not in result.stderr and server.requests == []


def test_an_interrupted_long_document_keeps_its_finished_chunks(cli, tmp_path, monkeypatch):
    from summarizer.loopback import Reply, sample_answer

    long_text = "\n\n".join(f"Paragraph {i}. " + STORY for i in range(60))  # about 36,000 characters
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "long.txt").write_text(long_text)

    refuse_digest = [True]

    def answer(request):
        document = request["messages"][1]["content"]
        if refuse_digest[0] and "Part 1 of " in document:  # the summary over the chunks' summaries
            return Reply.error(400, "the digest request is refused this time")
        return Reply.json(sample_answer(request))

    monkeypatch.setenv("SUMMARIZER_MAX_CHUNK_CHARS", "12000")  # a run option from the environment
    with LoopbackServer(answer) as server:
        args = ("summarize", tmp_path / "docs", "--out", tmp_path / "out", "--base-url", server.url)
        first = cli(*args)
        chunks = sum("Part 1 of " not in r.body["messages"][1]["content"] for r in server.requests)
        assert first.code == 1 and chunks >= 3
        refuse_digest[0] = False
        before = len(server.requests)
        second = cli(*args)
        sent = [r.body["messages"][1]["content"] for r in server.requests[before:]]
    assert second.code == 0, second.stderr
    assert len(sent) == 1 and "Part 1 of " in sent[0]  # only the digest: every chunk came from the cache


def test_every_status_an_error_can_give_is_a_documented_status():
    import inspect

    from summarizer import errors
    from summarizer.outcome import Status

    statuses = {cls.status for _, cls in inspect.getmembers(errors, inspect.isclass)
                if issubclass(cls, errors.SummarizerError)}
    assert statuses <= {s.value for s in Status}, statuses - {s.value for s in Status}
