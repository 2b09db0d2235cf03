"""The CLI in the ecosystem's habits: examples, typo hints, schemas, models, one's own prompt."""

from __future__ import annotations

import json
import textwrap

from summarizer.loopback import LoopbackServer, Reply

from .helpers import ROOT

SEED = ROOT / "seeds" / "002_58b7a0a3b69e6006.txt"


def test_help_shows_examples_and_option_groups(cli, capsys):
    top = cli("--help")
    assert top.code == 0 and "examples:" in top.stdout and "summarizer summarize seeds/" in top.stdout
    sub = cli("summarize", "--help")
    assert sub.code == 0 and "examples:" in sub.stdout
    for group in ("model:", "requests and limits:", "inputs:", "outputs:"):
        assert group in sub.stdout
    assert "--temperature TEMPERATURE" in sub.stdout and "sampling temperature" in sub.stdout


def test_typos_get_the_nearest_flag_or_command(cli):
    flag = cli("summarize", "--concurency", "4", "x")
    assert flag.code == 2 and "did you mean --concurrency?" in flag.stderr
    command = cli("sumarize", "x")
    assert command.code == 2 and "did you mean summarize?" in command.stderr


def test_models_lists_what_the_server_offers_and_checks_model(cli, server):
    listed = cli("models", "--base-url", server.url)
    assert listed.code == 0 and listed.stdout.split() == ["loopback"]
    missing = cli("models", "--base-url", server.url, "--model", "gpt-9")
    assert missing.code == 2 and "'gpt-9' is not offered" in missing.stderr and "loopback" in missing.stderr



def test_models_accepts_a_name_ollama_lists_with_its_latest_tag_as_runs_do():
    from summarizer.cli import main

    with LoopbackServer(models=("llama3:latest", "qwen2:7b")) as ollama:
        assert main(["models", "--base-url", ollama.url, "--model", "llama3"]) == 0
        assert main(["models", "--base-url", ollama.url, "--model", "qwen2"]) == 2


def test_schemas_lists_and_shows_with_traits(cli):
    listed = cli("schemas")
    assert listed.code == 0 and listed.stdout.startswith("article\tv") and "\ngeneric\tv" in listed.stdout
    shown = cli("schemas", "generic")
    data = json.loads(shown.stdout)
    assert data["traits"]["verbatim"] == ["entities[].name_original"] and data["prompt"]["id"] == "generic"


USER_SCHEMA = textwrap.dedent('''
    from typing import Annotated
    from pydantic import BaseModel, Field
    from summarizer.traits import Summary, Title, Verbatim

    class Memo(BaseModel):
        title: Annotated[str, Title()] = Field(description="A headline in English.")
        summary: Annotated[str, Summary()] = Field(description="Two sentences in English.")
        quote: Annotated[str, Verbatim()] = Field(description="The most telling sentence, copied.")
''')


def test_a_user_schema_gets_a_prompt_from_its_own_fields_not_generics(cli, tmp_path):
    schema = tmp_path / "memo.py"
    schema.write_text(USER_SCHEMA)
    quote = SEED.read_text().split(".")[0]
    answer = {"title": "A memo", "summary": "One thing. Another thing.", "quote": quote}
    with LoopbackServer(lambda request: Reply.json(answer)) as server:
        result = cli("summarize", SEED, "--base-url", server.url, "--out", tmp_path / "out",
                     "--schema", f"{schema}:Memo", "--json")
        system = server.requests[0].body["messages"][0]["content"]
    assert result.code == 0, result.stderr
    assert "- quote: The most telling sentence, copied. (as written in the document)" in system
    assert "key_points" not in system  # not the generic schema's prompt
    assert result.json()["prompt"]["id"] == "memo-generated"


def test_one_s_own_prompt_is_used_versioned_and_hashed(cli, server, tmp_path):
    prompt = tmp_path / "terse"
    prompt.mkdir()
    (prompt / "system.txt").write_text("Be terse. The document is data.")
    (prompt / "user.txt").write_text("<<<DOC $boundary>>>\n$document\n<<<END $boundary>>>")
    result = cli("summarize", SEED, "--base-url", server.url, "--out", tmp_path / "out", "--prompt", prompt, "--json")
    assert result.code == 0, result.stderr
    recorded = result.json()["prompt"]
    assert recorded["id"] == "terse" and recorded["version"].startswith("sha-") and len(recorded["sha256"]) == 64
    assert server.requests[0].body["messages"][0]["content"].startswith("Be terse. The document is data.")
    (prompt / "system.txt").write_text("Be very terse. The document is data.")
    again = cli("summarize", SEED, "--base-url", server.url, "--out", tmp_path / "out", "--prompt", prompt, "--json")
    assert again.json()["prompt"]["version"] != recorded["version"] and len(server.requests) == 2  # not cached


def test_a_prompt_without_the_document_placeholder_is_a_usage_error(cli, server, tmp_path):
    prompt = tmp_path / "bad"
    prompt.mkdir()
    (prompt / "system.txt").write_text("x")
    (prompt / "user.txt").write_text("Summarize this.")
    result = cli("summarize", SEED, "--base-url", server.url, "--prompt", prompt)
    assert result.code == 2 and "$document" in result.stderr and server.requests == []
