"""Schemas and prompts are versioned artifacts: exports and hashes are checked in and must not drift."""

from __future__ import annotations

import json

import pytest

from summarizer.artifacts import builtin_schema_export, load_prompt, load_schema, recorded_prompt_hashes
from summarizer.errors import ConfigError
from summarizer.schemas import BUILTIN


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_checked_in_json_schema_export_matches_the_model(name):
    spec = load_schema(name)
    assert builtin_schema_export(name) == spec.json_schema_text, (
        f"schemas/{name}.schema.json drifted from the model: bump SCHEMA_VERSION and regenerate it with "
        f"`summarizer schema {name} > schemas/{name}.schema.json`"
    )


@pytest.mark.parametrize("name", sorted(recorded_prompt_hashes()))
def test_prompt_hash_matches_its_recorded_version(name):
    recorded = recorded_prompt_hashes()[name]
    prompt = load_prompt(name)
    assert prompt.version == recorded["version"]
    assert prompt.sha256 == recorded["sha256"], (
        f"prompts/{name} changed: bump its version in prompts/versions.toml and record the new sha256 {prompt.sha256}"
    )


def test_article_schema_names_every_field_reports_read():
    schema = load_schema("article").json_schema
    assert set(schema["properties"]) >= {"title", "summary", "source_language", "organizations", "people",
                                         "agreement", "key_figures", "topics"}
    defs = schema["$defs"]
    assert set(defs["Organization"]["properties"]) == {"name", "name_original", "type", "role", "country"}
    assert set(defs["Person"]["properties"]) == {"name", "name_original", "title", "organization"}
    assert set(defs["Agreement"]["properties"]) == {"kind", "parties", "signed_on", "place", "term_years", "areas"}
    assert set(defs["SignedOn"]["properties"]) == {"year", "month", "day", "as_written"}
    assert set(defs["KeyFigure"]["properties"]) == {"value", "meaning"}


def test_builtin_schemas_are_strict_compatible():
    assert load_schema("article").strict and load_schema("generic").strict


def test_user_schema_from_a_file(tmp_path):
    (tmp_path / "mine.py").write_text(
        "from pydantic import BaseModel\n\nclass Deal(BaseModel):\n    buyer: str\n    price: float | None = None\n"
    )
    spec = load_schema(f"{tmp_path / 'mine.py'}:Deal")
    assert spec.id == "deal"
    assert spec.version.startswith("sha-")
    assert not spec.strict  # price has a default, so strict mode cannot be used
    assert spec.model.model_validate({"buyer": "CATL"}).buyer == "CATL"


@pytest.mark.parametrize("ref,message", [
    ("nope", "unknown schema"),
    ("missing.py:Model", "does not exist"),
])
def test_bad_schema_references_explain_the_fix(ref, message):
    with pytest.raises(ConfigError, match=message):
        load_schema(ref)


def test_user_schema_must_name_a_pydantic_model(tmp_path):
    (tmp_path / "x.py").write_text("Deal = 3\n")
    with pytest.raises(ConfigError, match="no Pydantic model named 'Deal'"):
        load_schema(f"{tmp_path / 'x.py'}:Deal")


def test_schema_command_prints_the_export(cli):
    result = cli("schema", "article")
    assert result.code == 0
    assert json.loads(result.stdout) == load_schema("article").json_schema
