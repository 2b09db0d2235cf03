"""Schema traits: declared once on the fields, read by checks, merging, grammar and rendering alike."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from summarizer.artifacts import SchemaSpec, load_schema
from summarizer.loopback import SAMPLE_ARTICLE
from summarizer.render import document_renderable, make_console
from summarizer.traits import SchemaTraits, item_path, iter_values, set_value, strings_at

ROOT = Path(__file__).resolve().parent.parent

RECIPE_SCHEMA = '''
from typing import Annotated, Literal
from pydantic import BaseModel
from summarizer.traits import English, Key, LinksTo, SourceLanguage, Summary, Title, Verbatim

class Ingredient(BaseModel):
    label: Annotated[str, English(), Key()]
    as_printed: Annotated[str, Verbatim()]
    kind: Literal["base", "spice", "other"]

class Step(BaseModel):
    uses: list[Annotated[str, LinksTo("ingredients[].label")]]
    text: Annotated[str, English()]

class Recipe(BaseModel):
    dish: Annotated[str, Title(), English()]
    gist: Annotated[str, Summary()]
    lang: Annotated[str, SourceLanguage()]
    ingredients: list[Ingredient]
    steps: list[Step]
    minutes: int | None
    notes: list[Annotated[str, Verbatim()]]
'''


@pytest.fixture
def recipe(tmp_path: Path) -> SchemaSpec:
    (tmp_path / "recipe.py").write_text(RECIPE_SCHEMA, "utf-8")
    return load_schema(f"{tmp_path / 'recipe.py'}:Recipe")


def test_traits_of_a_user_schema(recipe: SchemaSpec) -> None:
    traits = recipe.traits
    assert (traits.title, traits.summary, traits.language) == ("dish", "gist", "lang")
    assert traits.verbatim == ("ingredients[].as_printed", "notes[]")
    assert traits.english_paths == ("dish", "gist", "ingredients[].label", "steps[].text")
    assert traits.entities == {"ingredients": "label"}
    assert traits.links == {"steps[].uses[]": "ingredients[].label"}
    assert SchemaTraits.from_dict(traits.as_dict()) == traits


def test_path_helpers() -> None:
    data: dict[str, Any] = {"steps": [{"uses": ["salt", " ", 3]}, {"uses": None}], "dish": "Soup", "gist": ""}
    assert list(strings_at(data, "steps[].uses[]")) == [("steps[0].uses[0]", "salt")]  # blanks and non-text skipped
    assert list(strings_at(data, "steps[].uses")) == [("steps[0].uses[0]", "salt")]  # a list at the path: its items
    assert list(strings_at(data, "gist")) == [] and list(strings_at(data, "missing.path")) == []
    assert item_path("steps[].uses[]") == ("steps[]", "uses[]") and item_path("dish") == ("", "dish")
    assert set_value(data, "steps[0].uses[1]", "pepper") and data["steps"][0]["uses"] == ["salt", "pepper", 3]
    assert set_value(data, "dish", "Stew") and data["dish"] == "Stew"
    assert not set_value(data, "steps[5].uses[0]", "x") and not set_value(data, "nothing", "x")
    assert not set_value(data, "steps[1].uses[0]", "x")  # null where a list would be: nothing to set
    assert [where for where, _ in iter_values(data, "steps[].uses")] == ["steps[0].uses"]


def test_built_in_schemas_declare_their_traits_and_no_grammar_constants() -> None:
    article, generic = load_schema("article"), load_schema("generic")
    for spec in (article, generic):
        assert not [name for name in vars(spec.model) if name.startswith("GRAMMAR_")]
        assert (spec.traits.title, spec.traits.summary, spec.traits.language) == ("title", "summary",
                                                                                   "source_language")
    assert generic.traits.verbatim == ("entities[].name_original",)
    assert generic.traits.entities == {"entities": "name"}
    assert set(article.traits.verbatim) == {"organizations[].name_original", "people[].name_original",
                                            "agreement.signed_on.as_written", "key_figures[].value"}
    assert article.traits.links == {"agreement.parties[]": "organizations[].name"}


@pytest.mark.parametrize("module", ["checks.py", "chunking.py", "render.py", "grammar.py", "backends/local.py"])
def test_generic_modules_name_no_article_field(module: str) -> None:
    source = (ROOT / "summarizer" / module).read_text("utf-8")
    named = re.findall(r"\b(organizations|name_original|as_written|key_figures|parties|people|agreement|signed_on)\b",
                       source)
    assert named == [], f"summarizer/{module} names article fields {sorted(set(named))}: read the schema's traits"


# --- rendering ---------------------------------------------------------------------------------


def rendered(envelope: dict[str, Any]) -> str:
    out = io.StringIO()
    make_console(out, width=160).print(document_renderable(envelope))
    return out.getvalue()


def envelope(spec: SchemaSpec, result: dict[str, Any], unsupported: list[dict[str, str]] = (),
             grounding: str = "checked") -> dict[str, Any]:
    return {"document": {"path": "doc.txt"}, "schema": {"id": spec.id, "traits": spec.traits.as_dict()},
            "model": {"name": "m"}, "usage": {"total_tokens": 1}, "attempts": 1, "result": result,
            "checks": {"grounding": grounding, "unsupported": list(unsupported), "failures": []}}


RECIPE = {
    "dish": "Borscht [bold]hot[/bold]", "gist": "A beet soup. It is red.", "lang": "uk",
    "ingredients": [{"label": "Beet", "as_printed": "буряк", "kind": "base"},
                    {"label": "Salt", "as_printed": "сіль\x1b[31m", "kind": "spice"}],
    "steps": [{"uses": ["Beet", "Salt"], "text": "Boil the beets."}],
    "minutes": 90, "notes": ["смачно", "буряк"],
}


def test_user_schema_gets_a_table_from_its_traits(recipe: SchemaSpec) -> None:
    text = rendered(envelope(recipe, RECIPE, [{"field": "notes[1]", "value": "буряк"}]))
    lines = text.splitlines()
    assert "Borscht [bold]hot[/bold]" in lines[0] and "A beet soup. It is red." in text  # title and summary panel
    assert "doc.txt · uk" in text
    assert "Ingredients" in [line.strip() for line in lines] and re.search(r"Label\s+As printed\s+Kind", text)
    assert re.search(r"Salt\s+сіль\s+spice", text) and "\x1b" not in text
    assert re.search(r"Uses\s+Text", text) and "Beet, Salt" in text
    assert re.search(r"minutes\s+90", text)
    # Only the flagged value is marked, not the same words in another field.
    assert re.search(r"notes\s+смачно, буряк \(not in source\)", text)
    assert text.count("(not in source)") == 1


def test_a_flagged_value_deep_inside_a_list_item_marks_that_item(recipe: SchemaSpec) -> None:
    nested = {**RECIPE, "ingredients": [{"label": "Beet", "origin": {"as_printed": "Полтава"}, "kind": "base"},
                                        {"label": "Salt", "origin": {"as_printed": "Бахмут"}, "kind": "spice"}]}
    text = rendered(envelope(recipe, nested, [{"field": "ingredients[1].origin.as_printed", "value": "Бахмут"}]))
    assert re.search(r"Бахмут\S* \(not in source\)", text) and text.count("(not in source)") == 1


def test_article_table_marks_values_by_their_field() -> None:
    article = load_schema("article")
    result = {**SAMPLE_ARTICLE, "key_figures": [{"value": "CATL", "meaning": "a name, not a number"}]}
    text = rendered(envelope(article, result, [{"field": "key_figures[0].value", "value": "CATL"}]))
    assert "Organizations" in text and "Zhaoqing Municipal Government" in text
    assert re.search(r"CATL\s+Contemporary Amperex Technology Co\. Limited\s+company\s+party\s+China", text)
    assert re.search(r"CATL \(not in source\)\s+a name, not a number", text)
    assert text.count("(not in source)") == 1
    assert re.search(r"parties\s+CATL, Zhaoqing Municipal Government", text)


def test_schema_without_traits_still_renders_every_field(recipe: SchemaSpec) -> None:
    bare = {**envelope(recipe, RECIPE, grounding="not_checked"), "schema": {"id": "old"}}
    text = rendered(bare)
    assert "Borscht [bold]hot[/bold]" in text and re.search(r"gist\s+A beet soup", text)
    assert "not checked against the source" in text
