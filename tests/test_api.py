"""The Python API: one call for a text or a file, many as they finish, typed results, the error tree."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel

import summarizer
from summarizer.errors import AuthError, EmptyDocument
from summarizer.loopback import LoopbackServer, Reply

from .helpers import ROOT, SEED_FILES

SEED = ROOT / "seeds" / "002_58b7a0a3b69e6006.txt"


def test_one_text_is_one_call_with_a_typed_result_and_the_cache(server, tmp_path):
    result = summarizer.summarize(SEED.read_text(), base_url=server.url, cache_dir=tmp_path / "cache")
    assert result.ok and result.status == "ok"
    assert type(result.data).__name__ == "Article" and result.data.title == result.envelope["result"]["title"]
    assert result.checks["passed"] is True and result.output_path is None  # returned, not written
    again = summarizer.summarize(SEED.read_text(), base_url=server.url, cache_dir=tmp_path / "cache")
    assert again.envelope["cached"] is True and len(server.requests) == 1


def test_a_file_and_a_user_model_class(server, tmp_path):
    class Note(BaseModel):
        title: Annotated[str, summarizer.Title()]
        summary: Annotated[str, summarizer.Summary()]

    server.script(Reply.json({"title": "A note", "summary": "It says little. It says it twice."}))
    result = summarizer.summarize(SEED, schema=Note, base_url=server.url, use_cache=False)
    assert isinstance(result.data, Note) and result.data.title == "A note"
    assert result.envelope["document"]["path"] == str(SEED)
    assert result.checks.get("passed") is not False


def test_many_documents_come_back_as_they_finish_and_failures_do_not_stop_the_rest(server, tmp_path):
    sources = [*SEED_FILES, "   "]  # the last one is empty
    results = list(summarizer.summarize_many(sources, base_url=server.url, use_cache=False, concurrency=4))
    assert len(results) == len(sources)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], EmptyDocument)
    assert all(r.status in ("ok", "flagged") for r in results if not isinstance(r, Exception))


def test_a_validator_that_crashes_on_one_document_fails_only_that_one(server):
    from pydantic import field_validator

    class Note(BaseModel):
        title: Annotated[str, summarizer.Title()]
        summary: Annotated[str, summarizer.Summary()]

        @field_validator("title")
        @classmethod
        def crash_on_cursed(cls, value: str) -> str:
            if "cursed" in value:
                raise RuntimeError("a bug in the user's validator")
            return value

    server.responder = lambda body: Reply.json({"title": "cursed" if "cursed" in str(body) else "fine",
                                                "summary": "It says little. It says it twice."})
    results = list(summarizer.summarize_many(["a cursed text", "a plain text"], schema=Note, base_url=server.url,
                                             use_cache=False, concurrency=1))
    assert len(results) == 2
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(failed) == 1 and isinstance(failed[0], summarizer.SummarizerError)
    assert "RuntimeError" in str(failed[0]) and isinstance(failed[0].__cause__, RuntimeError)


def test_the_async_form_runs_inside_an_event_loop(server):
    async def go():
        return await summarizer.asummarize(SEED.read_text(), base_url=server.url, use_cache=False)

    assert asyncio.run(go()).ok


def test_errors_are_the_documented_exceptions(tmp_path):
    with pytest.raises(EmptyDocument):
        summarizer.summarize("  \n ", base_url="http://127.0.0.1:9/v1", use_cache=False)
    with LoopbackServer(lambda request: Reply.error(401, "bad key")) as server:
        with pytest.raises(AuthError, match="refused the API key"):
            summarizer.summarize(SEED.read_text(), base_url=server.url, use_cache=False)
    with pytest.raises(summarizer.ConfigError, match="unknown setting"):
        summarizer.summarize("text", base_url="http://127.0.0.1:9/v1", colour="blue")


def test_the_readme_example_runs_as_shown(server, monkeypatch, tmp_path):
    readme = (ROOT / "README.md").read_text("utf-8")
    block = re.search(r"## Python API\n.*?```python\n(.*?)```", readme, re.S)
    assert block, "README has no Python API example"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 6
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - our own README, the point of the test
    assert len(server.requests) >= 1


def test_a_config_file_is_read_like_the_cli_reads_it(server, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'base_url = "{server.url}"\nuse_cache = false\n')
    result = summarizer.summarize(SEED.read_text(), config=config)
    assert result.ok and len(server.requests) == 1


def test_many_reads_its_sources_lazily_and_a_missing_file_is_one_failure(server):
    taken = []

    def sources():
        for i in range(40):
            taken.append(i)
            yield Path("/nonexistent/doc.txt") if i == 3 else f"Document {i}. " + SEED.read_text()[:300]

    stream = summarizer.summarize_many(sources(), base_url=server.url, use_cache=False, concurrency=4)
    first = next(stream)
    assert len(taken) < 40  # not all read up front
    rest = list(stream)
    errors = [r for r in [first, *rest] if isinstance(r, Exception)]
    assert len(rest) + 1 == 40 and len(errors) == 1 and "no such file" in str(errors[0])


def test_stopping_early_stops_the_work(server):
    server.latency = 0.05
    sources = (f"Document {i}. CATL signed an agreement." for i in range(200))
    for taken, _ in enumerate(summarizer.summarize_many(sources, base_url=server.url, use_cache=False,
                                                        concurrency=4), 1):
        if taken == 2:
            break
    sent = len(server.requests)
    time.sleep(1.0)  # the 200 documents would take 2.5 s at this latency
    assert len(server.requests) == sent  # nothing more goes out once the caller has stopped
    assert sent < 2 + 16 + 4 + 4  # taken, waiting for the caller, in flight: not the 200
