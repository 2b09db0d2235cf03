"""Source alignment for constrained decoders: verbatim values become source text, or go."""

from __future__ import annotations

from summarizer.artifacts import load_schema
from summarizer.repair import align_to_source

from .fakes import article

SOURCE = ("Contemporary Amperex Technology Co. Limited (CATL) signed an agreement with the municipal "
          "government of Zhaoqing city on 25 February 2023.")


def _org(name, original):
    return {"name": name, "name_original": original, "type": "company", "role": "party", "country": None}


def test_values_are_copied_from_the_source_and_inventions_removed_with_their_links():
    schema = load_schema("article")
    answer = article(
        organizations=[_org("CATL", "contemporary amperex technology co. limited"), _org("Tesla", "Tesla, Inc.")],
        people=[], key_figures=[],
        agreement={"kind": "cooperation agreement", "parties": ["CATL", "Tesla"], "place": None, "term_years": None,
                   "areas": [], "signed_on": {"year": 2023, "month": 2, "day": 25, "as_written": "25 February 2023"}})
    result, changes = align_to_source(schema.model.model_validate(answer), schema, SOURCE)
    data = result.model_dump(mode="json")
    assert [o["name_original"] for o in data["organizations"]] == ["Contemporary Amperex Technology Co. Limited"]
    assert data["agreement"]["parties"] == ["CATL"]  # the link to the removed organization went with it
    assert {(c["path"], c["action"]) for c in changes} == {
        ("organizations[0].name_original", "aligned"), ("organizations[1].name_original", "removed")}


def test_a_removal_that_empties_a_required_list_empties_its_optional_parent():
    schema = load_schema("article")
    answer = article(organizations=[_org("Tesla", "Tesla, Inc.")], people=[], key_figures=[],
                     agreement={"kind": "deal", "parties": ["Tesla"], "place": None, "term_years": None,
                                "areas": [], "signed_on": None})
    result, changes = align_to_source(schema.model.model_validate(answer), schema, SOURCE)
    assert result.organizations == [] and result.agreement is None  # parties needs one item: the agreement goes
    assert [c["action"] for c in changes] == ["removed"]


def test_a_result_whose_values_stand_in_the_source_is_left_alone():
    schema = load_schema("article")
    answer = article(organizations=[_org("CATL", "CATL")], people=[], key_figures=[], agreement=None)
    result, changes = align_to_source(schema.model.model_validate(answer), schema, SOURCE)
    assert changes == [] and result.model_dump(mode="json")["organizations"][0]["name_original"] == "CATL"


def test_a_link_naming_its_target_as_the_source_spells_it_is_kept_as_the_checks_accept_it():
    schema = load_schema("article")
    answer = article(
        organizations=[_org("CATL", "contemporary amperex technology co. limited"),
                       _org("Zhaoqing government", "municipal government of Zhaoqing city")],
        people=[], key_figures=[],
        agreement={"kind": "cooperation agreement", "parties": ["CATL", "municipal government of Zhaoqing city"],
                   "place": None, "term_years": None, "areas": [], "signed_on": None})
    result, changes = align_to_source(schema.model.model_validate(answer), schema, SOURCE)
    assert result.agreement.parties == ["CATL", "municipal government of Zhaoqing city"]
    assert [c["action"] for c in changes] == ["aligned"]


def test_a_field_that_is_a_whole_verbatim_list_is_checked_and_aligned_item_by_item():
    from typing import Annotated

    from pydantic import BaseModel

    from summarizer.artifacts import schema_from_model
    from summarizer.checks import run_checks
    from summarizer.documents import Document
    from summarizer.traits import Verbatim

    class Names(BaseModel):
        names: Annotated[list[str], Verbatim()]

    spec = schema_from_model(Names)
    invented = Names(names=["CATL", "Zorro the Invented"])
    checks = run_checks(invented, Document(path="d.txt", text=SOURCE, sha256="0" * 64, encoding="utf-8"))
    assert checks["passed"] is False and [u["field"] for u in checks["unsupported"]] == ["names[1]"]
    result, changes = align_to_source(invented, spec, SOURCE)
    assert result.names == ["CATL"] and [(c["path"], c["action"]) for c in changes] == [("names[1]", "removed")]
