"""The summarize command end to end against the loopback server: outputs, cache, exit codes."""

from __future__ import annotations

import json

import pytest

from summarizer.artifacts import load_schema
from summarizer.loopback import SAMPLE_ARTICLE, LoopbackServer, Reply

from .helpers import SEEDS
from .fakes import article

SEED = SEEDS / "002_58b7a0a3b69e6006.txt"


def summarize(cli, server, tmp_path, *extra, path=SEED):
    return cli("summarize", path, "--base-url", server.url, "--out", tmp_path / "out", *extra)


def test_seed_end_to_end_writes_the_envelope_and_prints_tables(cli, server, tmp_path):
    result = summarize(cli, server, tmp_path, "--tables", "always")
    assert result.code == 0, result.stderr
    output = json.loads((tmp_path / "out" / "002_58b7a0a3b69e6006.json").read_text())
    assert set(output) >= {"document", "schema", "prompt", "model", "usage", "attempts", "cached", "checks", "result"}
    assert output["document"]["path"] == str(SEED)
    assert output["document"]["chars"] == len(SEED.read_text().strip())
    assert output["document"]["encoding"] == "utf-8"
    assert len(output["document"]["sha256"]) == 64
    assert output["schema"] == {"id": "article", "version": load_schema("article").version, "ref": "article",
                                "traits": load_schema("article").traits.as_dict()}
    assert output["prompt"]["id"] == "article" and len(output["prompt"]["sha256"]) == 64
    assert output["model"]["base_url"] == server.url
    assert output["usage"]["total_tokens"] == 150
    assert output["attempts"] == 1 and output["cached"] is False
    assert output["result"]["agreement"]["parties"] == ["CATL", "Zhaoqing Municipal Government"]
    assert "Organizations" in result.stdout and "Zhaoqing" in result.stdout
    # The request carried the schema as strict structured output.
    fmt = server.requests[0].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["properties"]["summary"]


def test_second_run_is_served_from_cache_without_a_request(cli, server, tmp_path):
    assert summarize(cli, server, tmp_path).code == 0
    second = summarize(cli, server, tmp_path, "--json")
    assert second.code == 0
    assert len(server.requests) == 1
    assert second.json()["cached"] is True
    assert "served from cache" in second.stderr


def test_no_cache_sends_again(cli, server, tmp_path):
    summarize(cli, server, tmp_path)
    summarize(cli, server, tmp_path, "--no-cache")
    assert len(server.requests) == 2


@pytest.mark.parametrize("change", [
    ["--schema", "generic"],
    ["--model", "another-model"],
    ["--temperature", "0.5"],
    ["--max-tokens", "999"],
    ["--mode", "json_object"],
])
def test_each_key_component_misses_the_cache(cli, server, tmp_path, change):
    generic = {"title": "T", "summary": "CATL signed a deal with Zhaoqing.", "source_language": "en",
               "key_points": ["A deal"], "entities": []}

    def by_schema(body):
        fmt = body.get("response_format", {})
        name = fmt.get("json_schema", {}).get("name", "article")
        return Reply.json(generic if name == "generic" else article())

    server.responder = by_schema
    summarize(cli, server, tmp_path)
    summarize(cli, server, tmp_path, *change)
    summarize(cli, server, tmp_path, *change)
    assert len(server.requests) == 2


def test_changed_text_misses_the_cache(cli, server, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text(SEED.read_text())
    summarize(cli, server, tmp_path, path=doc)
    doc.write_text(SEED.read_text() + "\nOne more sentence.")
    summarize(cli, server, tmp_path, path=doc)
    assert len(server.requests) == 2


def test_other_base_url_misses_the_cache(cli, server, tmp_path):
    summarize(cli, server, tmp_path)
    with LoopbackServer() as other:
        summarize(cli, other, tmp_path)
        assert len(other.requests) == 1


def test_changed_prompt_misses_the_cache(cli, server, tmp_path, monkeypatch):
    import summarizer.run as run_module
    from summarizer.artifacts import PromptSpec, load_prompt

    summarize(cli, server, tmp_path)
    original = load_prompt("article")
    changed = PromptSpec(original.id, "2", original.system + "\nBe brief.", original.user)
    monkeypatch.setattr(run_module, "prompt_for", lambda schema, prompt_dir=None: changed)
    summarize(cli, server, tmp_path)
    assert len(server.requests) == 2
    assert "\nBe brief." in server.requests[1].body["messages"][0]["content"]


def test_invalid_answer_is_reasked_and_then_succeeds(cli, server, tmp_path):
    server.script(Reply.json(article(source_language="english")), Reply.json(article()))
    result = summarize(cli, server, tmp_path, "--json")
    assert result.code == 0
    assert result.json()["attempts"] == 2
    assert len(server.requests) == 2
    assert "source_language" in server.requests[1].body["messages"][-1]["content"]


def test_still_invalid_after_reasks_fails_with_exit_1_and_caches_nothing(cli, server, tmp_path):
    bad = Reply.json(article(source_language="english"))
    server.script(bad, bad, bad)
    result = summarize(cli, server, tmp_path, "--max-reasks", "2")
    assert result.code == 1
    assert "invalid" in result.stderr
    assert not (tmp_path / "out" / "002_58b7a0a3b69e6006.json").exists()
    manifest = next((tmp_path / "out").glob("run-*.jsonl"))
    entry = json.loads(manifest.read_text().splitlines()[0])
    assert entry["status"] == "invalid" and "english" in entry["raw"]
    assert summarize(cli, server, tmp_path).code == 0  # nothing was cached: it asks again
    assert len(server.requests) == 4


def test_refusal_is_a_status_not_a_crash(cli, server, tmp_path):
    server.script(Reply(content=None, refusal="I cannot summarize this."))
    result = summarize(cli, server, tmp_path)
    assert result.code == 1
    assert "refused" in result.stderr and "I cannot summarize this." in result.stderr


def test_truncation_is_retried_with_a_bigger_budget_then_reported(cli, server, tmp_path):
    cut = Reply(content='{"title": "CATL', finish_reason="length")
    server.script(cut, cut)
    result = summarize(cli, server, tmp_path, "--max-tokens", "300")
    assert result.code == 1 and "truncated" in result.stderr
    assert [r.body["max_tokens"] for r in server.requests] == [300, 600]


def test_missing_key_is_a_usage_error_with_the_fix(cli, tmp_path):
    result = cli("summarize", SEED, "--backend", "openai", "--out", tmp_path)
    assert result.code == 2
    assert "OPENAI_API_KEY is not set: export it, or pass --base-url" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_paths_is_a_usage_error(cli):
    result = cli("summarize")
    assert result.code == 2 and "no documents given" in result.stderr


def test_bad_flag_is_a_usage_error(cli):
    result = cli("summarize", "--concurrency", "many")
    assert result.code == 2 and "invalid int value" in result.stderr


def test_stdin_is_summarized_into_stdin_json(cli, server, tmp_path):
    result = cli("summarize", "-", "--base-url", server.url, "--out", tmp_path / "out", "--json",
                 stdin=SEED.read_bytes())
    assert result.code == 0
    assert (tmp_path / "out" / "stdin.json").exists()
    assert result.json()["document"]["path"] == "-"


def test_json_output_is_clean_data_on_stdout(cli, server, tmp_path):
    result = summarize(cli, server, tmp_path, "--json")
    assert json.loads(result.stdout)["result"]["title"]  # nothing but JSON on stdout
    assert "Organizations" not in result.stdout


def test_internal_error_shows_no_traceback_unless_debug(cli, server, tmp_path, monkeypatch):
    import summarizer.run as run_module

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(run_module, "load_schema", boom)
    result = summarize(cli, server, tmp_path)
    assert result.code == 1 and "kaboom" in result.stderr and "Traceback" not in result.stderr
    monkeypatch.setenv("SUMMARIZER_DEBUG", "1")
    with pytest.raises(RuntimeError):
        summarize(cli, server, tmp_path)


def test_module_runs_as_python_dash_m(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "summarizer", "schema", "generic"], capture_output=True, text=True)
    assert done.returncode == 0 and '"key_points"' in done.stdout


def test_tables_show_failed_checks_without_crashing(cli, server, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("CATL signed an agreement with Zhaoqing on Monday. Nothing else is known.")
    server.script(Reply.json(SAMPLE_ARTICLE))  # names as written nowhere in this document
    result = cli("summarize", doc, "--base-url", server.url, "--out", tmp_path / "out", "--tables", "always")
    # Valid, but not supported by the source: flagged, and not ok for the exit code.
    assert result.code == 1 and "flagged" in result.stderr, result.stderr
    assert "check(s) failed" in result.stdout
    assert "(not in source)" in result.stdout  # "Contemporary Amperex Technology Co. Limited" is not in it


def test_output_names_never_start_with_a_dash(cli, server, tmp_path):
    doc = tmp_path / "-rf.txt"
    doc.write_text(SEED.read_text())
    assert cli("summarize", doc, "--base-url", server.url, "--out", tmp_path / "out").code == 0
    assert [p.name for p in (tmp_path / "out").glob("*.json")] == ["rf.json"]


def test_quiet_keeps_stderr_empty_on_success(cli, server, tmp_path):
    result = summarize(cli, server, tmp_path, "--quiet", "--json")
    assert result.code == 0 and result.stderr == ""
    assert json.loads(result.stdout)["cached"] is False


def test_run_summary_goes_to_stderr_for_several_documents(cli, server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.txt", "b.txt"):
        (docs / name).write_text(SEED.read_text() + name)
    result = summarize(cli, server, tmp_path, "--tables", "never", path=docs)
    assert result.code == 0
    assert "Run summary" in result.stderr and "Run summary" not in result.stdout
    assert "200 in + 100 out in 2 request(s)" in " ".join(result.stderr.split())


def test_an_output_folder_linked_outside_the_output_folder_is_refused(cli, server, tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "x.txt").write_text("CATL signed an agreement with the city of Zhaoqing on batteries.")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    result = cli("summarize", docs, "--base-url", server.url, "--out", out)
    assert result.code == 2 and "outside" in result.stderr and "--out" in result.stderr
    assert not list(elsewhere.iterdir())  # nothing written through the link


def test_a_flagged_result_is_cached_and_stays_flagged(cli, server, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("CATL signed an agreement with Zhaoqing on Monday. Nothing else is known.")
    server.script(Reply.json(SAMPLE_ARTICLE))  # names as written nowhere in this document
    first = cli("summarize", doc, "--base-url", server.url, "--out", tmp_path / "out", "--jsonl", tmp_path / "a.jsonl")
    second = cli("summarize", doc, "--base-url", server.url, "--out", tmp_path / "out", "--jsonl", tmp_path / "b.jsonl")
    assert first.code == 1 and second.code == 1 and len(server.requests) == 1  # paid once
    assert "flagged (served from cache)" in second.stderr
    assert json.loads((tmp_path / "b.jsonl").read_text())["status"] == "flagged"
    relaxed = cli("summarize", doc, "--base-url", server.url, "--out", tmp_path / "out", "--allow-flagged")
    assert relaxed.code == 0 and len(server.requests) == 1


def test_a_confident_detector_overrules_the_models_source_language(cli, server, tmp_path):
    server.script(Reply.json({**SAMPLE_ARTICLE, "source_language": "de"}))  # seed 002 is English
    result = cli("summarize", SEED, "--base-url", server.url, "--out", tmp_path / "out", "--json")
    assert result.code == 0, result.stderr
    output = result.json()
    assert output["result"]["source_language"] == "en"
    assert output["document"]["language"]["model"] == "de" and output["document"]["language"]["detected"] == "en"
    assert "language with ISO 639-1 code 'en'" in server.requests[0].body["messages"][0]["content"]  # the hint
