"""Grounding checks: values must occur in the source, texts must be English, facts must agree."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from summarizer import checks
from summarizer.artifacts import load_schema
from summarizer.checks import failures
from summarizer.documents import Document
from summarizer.loopback import Reply
from summarizer.schemas.article import Article
from .helpers import SEEDS

TODAY = date(2025, 1, 1)
ENGLISH_SUMMARY = ("CATL signed a strategic cooperation agreement with the city government. "
                   "The partners will work together on batteries, energy storage and electric transport.")


def run_checks(result: Any, document: Document, today: date | None = None) -> dict[str, Any]:
    """The checks of an article result (a stand-in: the schema is named, not taken from its class)."""
    return checks.run_checks(result, document, today, schema=Article)


class Result:
    """A plain stand-in for a validated model: run_checks only needs model_dump()."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        return copy.deepcopy(self.data)


def result(**fields: Any) -> Result:
    data: dict[str, Any] = {
        "title": "CATL signs strategic cooperation agreement with city government",
        "summary": ENGLISH_SUMMARY,
        "source_language": "en",
        "organizations": [],
        "people": [],
        "agreement": None,
        "key_figures": [],
        "topics": [],
    }
    data.update(fields)
    return Result(data)


def org(name: str, original: str, role: str = "party") -> dict[str, Any]:
    return {"name": name, "name_original": original, "type": "company", "role": role, "country": None}


def doc(text: str) -> Document:
    return Document(path="source.txt", text=text, sha256="0" * 64, encoding="utf-8")


def agreement(parties: list[str], signed_on: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "agreement", "parties": parties, "signed_on": signed_on, "place": None, "term_years": None,
            "areas": []}


def unsupported_values(found: dict[str, Any]) -> list[str]:
    return [item["value"] for item in found["unsupported"]]


ENGLISH_SOURCE = ("CATL and the municipal government signed an agreement on batteries and energy storage. "
                  "The partners will build a research centre and cooperate on electric buses for the city.")


# --- verbatim values ---------------------------------------------------------------------------

def test_cyrillic_name_original_not_in_source_is_unsupported() -> None:
    source = doc("Китайская группа по энергосбережению и охране окружающей среды и CATL подписали соглашение.")
    found = run_checks(result(source_language="ru", organizations=[
        org("CECEP", "Китайская группа по энергосбережению и охране окружающей среды"),
        org("Rosatom", "Государственная корпорация Росатом"),
    ]), source, TODAY)
    assert unsupported_values(found) == ["Государственная корпорация Росатом"]
    assert found["unsupported"][0]["field"] == "organizations[1].name_original"
    assert found["passed"] is False
    assert any("Росатом" in f and "does not occur in the source" in f for f in failures(found))


def test_cjk_name_original_matches_without_word_boundaries_and_ignores_added_spaces() -> None:
    source = doc("宁德时代与肇庆市人民政府签署全面合作协议，双方将在新能源应用领域开展合作。")
    found = run_checks(result(source_language="zh", organizations=[
        org("CATL", "宁德时代"),
        org("Zhaoqing Municipal Government", "肇庆市 人民政府"),  # the model added a space: still the same text
        org("Guangzhou Municipal Government", "广州市人民政府"),
    ]), source, TODAY)
    assert unsupported_values(found) == ["广州市人民政府"]


def test_lao_name_original_matches_inside_unspaced_text() -> None:
    source = doc("ບໍລິສັດ CATL ໄດ້ລົງນາມສັນຍາຮ່ວມມືກັບລັດຖະບານລາວ ເພື່ອພັດທະນາພະລັງງານໃໝ່")
    found = run_checks(result(source_language="lo", organizations=[
        org("Government of Laos", "ລັດຖະບານລາວ"),
        org("Government of Thailand", "ລັດຖະບານໄທ"),
    ]), source, TODAY)
    assert unsupported_values(found) == ["ລັດຖະບານໄທ"]


def test_values_match_after_nfkc_case_and_whitespace_normalization() -> None:
    source = doc("ＣＡＴＬ (Contemporary\nAmperex  Technology\u00a0Co., Limited) has ７００ suppliers in China’s east.")
    found = run_checks(result(
        organizations=[org("CATL", "catl"), org("CATL Group", "Contemporary Amperex Technology Co., Limited")],
        key_figures=[{"value": "700", "meaning": "suppliers"}, {"value": "China's", "meaning": "apostrophe retyped"}],
    ), source, TODAY)
    assert found["unsupported"] == []


def test_signed_on_as_written_and_key_figures_are_checked() -> None:
    source = doc("Am 22. Juni unterzeichnete CATL ein Abkommen über 5 Milliarden Yuan.")
    found = run_checks(result(
        source_language="de",
        organizations=[org("CATL", "CATL")],
        agreement=agreement(["CATL"], {"year": None, "month": 6, "day": 23, "as_written": "23. Juni"}),
        key_figures=[{"value": "5 Milliarden Yuan", "meaning": "investment"},
                     {"value": "7 Milliarden Yuan", "meaning": "invented"}],
    ), source, TODAY)
    assert [u["field"] for u in found["unsupported"]] == ["agreement.signed_on.as_written", "key_figures[1].value"]


# --- languages ---------------------------------------------------------------------------------

def test_english_summary_and_title_pass() -> None:
    found = run_checks(result(), doc(ENGLISH_SOURCE), TODAY)
    assert found["failures"] == []
    assert found["passed"] is True
    assert found["detected_languages"] == {"summary": "en", "title": "en", "source": "en"}


def test_portuguese_summary_is_flagged_as_not_english() -> None:
    summary = ("A CATL assinou um acordo de cooperação estratégica com o Governo Municipal de Lanzhou. "
               "As duas partes vão desenvolver baterias e transporte elétrico na região.")
    found = run_checks(result(summary=summary), doc(ENGLISH_SOURCE), TODAY)
    assert found["passed"] is False
    assert any(f.startswith("summary is not in English (detected 'pt')") for f in found["failures"])
    assert found["detected_languages"]["summary"] == "pt"


def test_long_german_title_is_flagged_but_short_ambiguous_english_title_is_not() -> None:
    german = "CATL unterzeichnet Rahmenabkommen über strategische Zusammenarbeit mit der Provinzregierung"
    flagged = run_checks(result(title=german), doc(ENGLISH_SOURCE), TODAY)
    assert any(f.startswith("title is not in English (detected 'de')") for f in flagged["failures"])
    # An n-gram detector calls this Italian with certainty; too few words to judge, so no verdict.
    short = run_checks(result(title="CATL-HKU zero carbon alliance"), doc(ENGLISH_SOURCE), TODAY)
    assert not any(f.startswith("title") for f in short["failures"])


def test_title_in_another_script_is_flagged_however_short() -> None:
    found = run_checks(result(title="宁德时代签约"), doc(ENGLISH_SOURCE), TODAY)
    assert any(f.startswith("title is not in English (written in Cjk script") for f in found["failures"])


def test_source_language_mismatch_is_detected() -> None:
    german = doc((SEEDS / "001_1a11767ed79f635d.txt").read_text("utf-8"))
    wrong = run_checks(result(source_language="pt"), german, TODAY)
    assert any(f.startswith("source_language 'pt' does not match the source text, which reads as 'de'")
               for f in wrong["failures"])
    right = run_checks(result(source_language="de"), german, TODAY)
    assert not any(f.startswith("source_language") for f in right["failures"])


def test_the_checks_judge_the_source_language_on_the_sample_the_hint_came_from() -> None:
    from summarizer.processor import detected_language

    german = (SEEDS / "001_1a11767ed79f635d.txt").read_text("utf-8")
    english = (SEEDS / "002_58b7a0a3b69e6006.txt").read_text("utf-8")
    head = (german + "\n") * (checks.SOURCE_SAMPLE // len(german) + 1)
    long_text = head[:checks.SOURCE_SAMPLE] + (english + "\n") * (10 * checks.SOURCE_SAMPLE // len(english))
    hint, _ = detected_language(long_text)  # what the prompt was told, and the grammar pinned
    assert hint == "de"
    found = run_checks(result(source_language=hint), doc(long_text), TODAY)
    assert not any(f.startswith("source_language") for f in found["failures"])  # not contradicted by the tail


def test_source_language_lao_is_confirmed_and_english_for_lao_is_contradicted() -> None:
    lao = doc("ບໍລິສັດ CATL ໄດ້ລົງນາມສັນຍາຮ່ວມມືກັບລັດຖະບານລາວ ເພື່ອພັດທະນາພະລັງງານໃໝ່ ແລະ ແບັດເຕີຣີ")
    right = run_checks(result(source_language="lo"), lao, TODAY)
    assert not any(f.startswith("source_language") for f in right["failures"])
    wrong = run_checks(result(source_language="en"), lao, TODAY)
    assert any(f.startswith("source_language 'en' does not match") and "'lo'" in f for f in wrong["failures"])


def test_source_language_the_detector_cannot_know_is_not_contradicted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "detector_languages", lambda: frozenset({"en", "pt"}))
    found = run_checks(result(source_language="lo"), doc(ENGLISH_SOURCE), TODAY)
    assert not any(f.startswith("source_language") for f in found["failures"])


def test_language_detection_is_deterministic_and_loads_the_detector_once() -> None:
    text = "CATL e Lanzhou assinam acordo sobre baterias e transporte elétrico"
    first = checks.detect_language(text)
    assert all(checks.detect_language(text) == first for _ in range(5))
    checks.detect_language("another text entirely, in English this time")
    assert checks._detector.cache_info().currsize == 1
    assert checks._detector.cache_info().misses <= 1


def test_without_the_detector_language_checks_are_skipped_and_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "_detector", lambda: None)
    found = run_checks(result(summary="Isto não é inglês. Mas ninguém pode verificar."), doc(ENGLISH_SOURCE), TODAY)
    assert found["failures"] == []
    assert found["skipped"] == ["language checks: the pycld2 package is not installed"]


# --- dates and parties -------------------------------------------------------------------------

@pytest.mark.parametrize(("signed", "future"), [
    ({"year": 2025, "month": 3, "day": 1}, True),
    ({"year": 2024, "month": 12, "day": 31}, False),
    ({"year": 2026, "month": None, "day": None}, True),
    ({"year": 2025, "month": None, "day": None}, False),  # some day of 2025 is not after 1 January
    ({"year": None, "month": 12, "day": 31}, False),  # no year: cannot be placed in time
])
def test_signing_date_in_the_future_of_the_run_fails(signed: dict[str, Any], future: bool) -> None:
    source = doc(ENGLISH_SOURCE + " It was signed on 31 December.")
    found = run_checks(result(organizations=[org("CATL", "CATL")], agreement=agreement(
        ["CATL"], {**signed, "as_written": "31 December"})), source, TODAY)
    assert any("is in the future of this run (2025-01-01)" in f for f in found["failures"]) is future


def test_impossible_calendar_date_fails() -> None:
    found = run_checks(result(organizations=[org("CATL", "CATL")], agreement=agreement(
        ["CATL"], {"year": 2024, "month": 2, "day": 30, "as_written": "CATL"})), doc(ENGLISH_SOURCE), TODAY)
    assert "agreement.signed_on 2024-2-30 is not a real calendar date" in found["failures"]


def test_agreement_party_not_among_organizations_fails() -> None:
    found = run_checks(result(organizations=[org("CATL", "CATL")], agreement=agreement(["CATL", "Tesla"])),
                       doc(ENGLISH_SOURCE), TODAY)
    assert found["failures"] == ["agreement.parties[1] 'Tesla' is not among the values of organizations[].name: "
                                 "use one of them exactly, or add it there"]


def test_party_named_by_its_original_spelling_is_among_organizations() -> None:
    found = run_checks(result(organizations=[org("CATL", "CATL"), org("City Government", "municipal government")],
                              agreement=agreement(["catl", "Municipal  Government"])), doc(ENGLISH_SOURCE), TODAY)
    assert found["failures"] == []


# --- through the CLI: the loopback server answers badly ------------------------------------------

RUSSIAN_SEED = SEEDS / "000_f5657d2c5e6c31f2.txt"
GOOD_RUSSIAN: dict[str, Any] = {
    "title": "CECEP and CATL sign strategic cooperation agreement on energy storage",
    "summary": "China Energy Conservation and Environmental Protection Group and CATL signed a strategic cooperation "
               "agreement in Ningde on 25 February. They will cooperate on new energy materials, energy storage "
               "technology, equipment procurement and project development.",
    "source_language": "ru",
    "organizations": [
        {"name": "CECEP", "name_original": "Китайская группа по энергосбережению и охране окружающей среды",
         "type": "company", "role": "party", "country": "China"},
        {"name": "CATL", "name_original": "CATL", "type": "company", "role": "party", "country": "China"},
    ],
    "people": [],
    "agreement": {"kind": "strategic cooperation agreement", "parties": ["CECEP", "CATL"],
                  "signed_on": {"year": None, "month": 2, "day": 25, "as_written": "25 февраля"},
                  "place": "Ningde", "term_years": None, "areas": ["energy storage"]},
    "key_figures": [{"value": "700", "meaning": "subsidiaries of CECEP"}],
    "topics": ["energy storage"],
}


def bad_russian() -> dict[str, Any]:
    """A party the source never names, a Portuguese summary and a signing date in 2099."""
    bad = copy.deepcopy(GOOD_RUSSIAN)
    bad["organizations"].append({"name": "Tesla", "name_original": "Tesla, Inc.", "type": "company",
                                 "role": "party", "country": "United States"})
    bad["agreement"]["parties"].append("Tesla")
    bad["summary"] = ("A CECEP e a CATL assinaram um acordo de cooperação estratégica em Ningde. "
                      "As duas empresas vão cooperar em armazenamento de energia e novos materiais.")
    bad["agreement"]["signed_on"]["year"] = 2099
    return bad


def test_bad_answer_is_caught_and_shown_in_the_output_checks(cli: Any, server: Any, tmp_path: Path) -> None:
    server.script(Reply.json(bad_russian()))
    run = cli("summarize", RUSSIAN_SEED, "--base-url", server.url, "--out", tmp_path / "out", "--json")
    assert run.code == 1 and "flagged" in run.stderr, run.stderr  # valid but unsupported: not ok
    written = json.loads((tmp_path / "out" / "000_f5657d2c5e6c31f2.json").read_text("utf-8"))
    found = written["checks"]
    assert found["passed"] is False
    assert {"field": "organizations[2].name_original", "value": "Tesla, Inc."} in found["unsupported"]
    assert any(f.startswith("summary is not in English (detected 'pt')") for f in found["failures"])
    assert any(f.startswith("agreement.signed_on 2099-02-25 is in the future") for f in found["failures"])
    assert len(server.requests) == 1  # without --strict the answer is kept, with its failed checks


def test_good_answer_passes_every_check(cli: Any, server: Any, tmp_path: Path) -> None:
    server.script(Reply.json(GOOD_RUSSIAN))
    run = cli("summarize", RUSSIAN_SEED, "--base-url", server.url, "--out", tmp_path / "out", "--json")
    assert run.code == 0, run.stderr
    assert run.json()["checks"]["failures"] == []
    assert run.json()["checks"]["passed"] is True


def test_strict_reasks_with_the_failed_checks_and_keeps_the_corrected_answer(
        cli: Any, server: Any, tmp_path: Path) -> None:
    server.script(Reply.json(bad_russian()), Reply.json(GOOD_RUSSIAN))
    run = cli("summarize", RUSSIAN_SEED, "--base-url", server.url, "--out", tmp_path / "out", "--json", "--strict")
    assert run.code == 0, run.stderr
    assert len(server.requests) == 2
    reask = server.requests[1].body["messages"][-1]["content"]
    assert "'Tesla, Inc.' does not occur in the source text" in reask
    assert "summary is not in English" in reask
    assert "2099-02-25 is in the future" in reask
    assert run.json()["attempts"] == 2
    assert run.json()["checks"]["passed"] is True


def test_strict_gives_up_as_invalid_when_the_checks_keep_failing(cli: Any, server: Any, tmp_path: Path) -> None:
    server.script(*(Reply.json(bad_russian()) for _ in range(3)))
    run = cli("summarize", RUSSIAN_SEED, "--base-url", server.url, "--out", tmp_path / "out", "--strict",
              "--max-reasks", "2")
    assert run.code == 1
    assert len(server.requests) == 3
    assert "invalid" in run.stderr
    assert not (tmp_path / "out" / "000_f5657d2c5e6c31f2.json").exists()


def test_impossible_date_is_rejected_by_the_schema_and_reasked(cli: Any, server: Any, tmp_path: Path) -> None:
    impossible = copy.deepcopy(GOOD_RUSSIAN)
    impossible["agreement"]["signed_on"] = {"year": 2024, "month": 2, "day": 30, "as_written": "25 февраля"}
    server.script(Reply.json(impossible), Reply.json(GOOD_RUSSIAN))
    run = cli("summarize", RUSSIAN_SEED, "--base-url", server.url, "--out", tmp_path / "out", "--json")
    assert run.code == 0, run.stderr
    assert len(server.requests) == 2
    assert "is not a real date" in server.requests[1].body["messages"][-1]["content"]


# --- any schema: the checks follow the traits the schema declares --------------------------------

DEAL_SCHEMA = '''
from typing import Annotated
from pydantic import BaseModel
from summarizer.traits import English, Key, LinksTo, SourceLanguage, Summary, Verbatim

class Buyer(BaseModel):
    label: Annotated[str, English(), Key()]
    spelled: Annotated[str, Verbatim()]

class Deal(BaseModel):
    gist: Annotated[str, Summary()]
    lang: Annotated[str, SourceLanguage()]
    buyers: list[Buyer]
    price: Annotated[str | None, Verbatim()] = None
    winner: Annotated[str | None, LinksTo("buyers[].label")] = None
'''

BARE_SCHEMA = '''
from pydantic import BaseModel

class Note(BaseModel):
    headline: str
    words: list[str]
'''

RUSSIAN_SOURCE = ("Компания CATL и правительство провинции Гуандун подписали соглашение о сотрудничестве "
                  "стоимостью 5 миллиардов юаней в области аккумуляторов и хранения энергии.")


def user_schema(tmp_path: Path, text: str, model: str) -> Any:
    (tmp_path / "mine.py").write_text(text, "utf-8")
    return load_schema(f"{tmp_path / 'mine.py'}:{model}")


def test_user_schema_invented_verbatim_value_is_flagged(tmp_path: Path) -> None:
    spec = user_schema(tmp_path, DEAL_SCHEMA, "Deal")
    deal = spec.model.model_validate({
        "gist": "CATL and Guangdong signed a cooperation deal worth five billion yuan on batteries.",
        "lang": "ru", "price": "7 миллиардов юаней", "winner": "CATL",
        "buyers": [{"label": "CATL", "spelled": "CATL"}, {"label": "Guangdong", "spelled": "провинции Гуандун"},
                   {"label": "Hubei", "spelled": "провинции Хубэй"}],
    })
    found = checks.run_checks(deal, doc(RUSSIAN_SOURCE), TODAY)
    assert found["grounding"] == "checked"
    assert found["unsupported"] == [{"field": "buyers[2].spelled", "value": "провинции Хубэй"},
                                    {"field": "price", "value": "7 миллиардов юаней"}]
    assert found["passed"] is False
    assert any("'провинции Хубэй' does not occur in the source text" in f for f in found["failures"])
    assert found["detected_languages"]["source"] == "ru" and found["detected_languages"]["summary"] == "en"


def test_user_schema_language_and_link_traits_are_checked(tmp_path: Path) -> None:
    spec = user_schema(tmp_path, DEAL_SCHEMA, "Deal")
    deal = spec.model.model_validate({
        "gist": "Компания CATL и провинция Гуандун подписали соглашение о сотрудничестве в области аккумуляторов.",
        "lang": "en", "winner": "Tesla",
        "buyers": [{"label": "Гуандун", "spelled": "провинции Гуандун"}],
    })
    found = checks.run_checks(deal, doc(RUSSIAN_SOURCE), TODAY)
    assert found["unsupported"] == []
    assert sorted(f.split(" ")[0] for f in found["failures"]) == ["buyers[0].label", "gist", "lang", "winner"]
    assert "winner 'Tesla' is not among the values of buyers[].label: use one of them exactly, or add it there" \
        in found["failures"]
    # The items' verbatim spelling names them too.
    named = spec.model.model_validate({**deal.model_dump(), "winner": "провинции  Гуандун"})
    assert not any(f.startswith("winner") for f in checks.run_checks(named, doc(RUSSIAN_SOURCE), TODAY)["failures"])


def test_user_schema_without_verbatim_fields_is_not_checked_and_does_not_pass(tmp_path: Path) -> None:
    spec = user_schema(tmp_path, BARE_SCHEMA, "Note")
    note = spec.model.model_validate({"headline": "Invented headline", "words": ["nothing", "from", "the source"]})
    found = checks.run_checks(note, doc(RUSSIAN_SOURCE), TODAY)
    assert found["grounding"] == "not_checked"
    assert found["passed"] is None  # nothing was checked, so nothing passed
    assert found["unsupported"] == [] and found["failures"] == []
    assert any(s.startswith("grounding: the schema marks no field Verbatim()") for s in found["skipped"])
    assert any(s.startswith("nothing was checked") for s in found["skipped"])


def test_schema_with_english_fields_only_is_language_checked_but_not_grounded(tmp_path: Path) -> None:
    text = BARE_SCHEMA.replace("headline: str", "headline: Annotated[str, Title()]").replace(
        "from pydantic", "from typing import Annotated\nfrom summarizer.traits import Title\nfrom pydantic")
    spec = user_schema(tmp_path, text, "Note")
    found = checks.run_checks(spec.model.model_validate({"headline": "Гуандун", "words": []}), doc(RUSSIAN_SOURCE))
    assert found["grounding"] == "not_checked"
    assert found["passed"] is False
    assert found["failures"][0].startswith("headline is not in English (written in Cyrillic script")


def test_generic_outputs_get_grounding_checks() -> None:
    generic = load_schema("generic").model.model_validate({
        "title": "CATL and Guangdong sign a battery cooperation agreement",
        "summary": "CATL and the Guangdong provincial government signed a cooperation agreement. "
                   "It covers batteries and energy storage.",
        "source_language": "ru",
        "key_points": ["The deal is worth five billion yuan."],
        "entities": [{"name": "CATL", "name_original": "CATL", "type": "organization"},
                     {"name": "Guangdong", "name_original": "провинции Гуандун", "type": "place"},
                     {"name": "Tesla", "name_original": "Тесла", "type": "organization"}],
    })
    found = checks.run_checks(generic, doc(RUSSIAN_SOURCE), TODAY)
    assert found["grounding"] == "checked"
    assert found["unsupported"] == [{"field": "entities[2].name_original", "value": "Тесла"}]
    assert found["passed"] is False


def test_english_entity_fields_in_another_script_are_flagged() -> None:
    found = run_checks(result(source_language="ru", organizations=[org("Росатом", "Росатом")]),
                       doc("Росатом подписал соглашение."), TODAY)
    assert found["unsupported"] == []
    assert [f.split(" (")[0] for f in found["failures"]] == ["organizations[0].name is not in English"]
