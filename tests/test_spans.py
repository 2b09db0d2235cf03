"""Candidate source spans and the grammar that offers only them to a constrained decoder."""

from __future__ import annotations

import json

from summarizer.artifacts import load_schema
from summarizer.grammar import offer_spans, prepare
from summarizer.spans import candidate_spans

from .helpers import SEEDS


def test_every_candidate_is_an_exact_substring_of_the_text():
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text("utf-8")
        spans = candidate_spans(text)
        assert spans and all(span in text for span in spans), path.name
        assert len(spans) == len(set(spans))


def test_names_and_figures_of_any_cased_script_are_offered():
    text = ("Шанхай, 25 февраля. Китайская CECEP и Contemporary Amperex Technology Co. Limited (CATL) "
            "подписали соглашение с Governo Municipal de Lanzhou на 700 МВт·ч.")
    spans = candidate_spans(text)
    for expected in ("25 февраля", "CECEP", "Contemporary Amperex Technology Co. Limited", "CATL",
                     "Governo Municipal de Lanzhou", "700 МВт·ч"):
        assert expected in spans, expected
    assert "Limited (CATL" not in spans and "Municipal de" not in spans  # no half names across brackets or particles


def test_uncased_scripts_offer_their_runs():
    text = "宁德时代与肇庆市政府签署协议。签约日期：2023年3月1日"
    spans = candidate_spans(text)
    assert "宁德时代与肇庆市政府签署协议" in spans and "2023年3月1日" in spans


def test_the_grammar_offers_only_spans_for_verbatim_fields_and_leaves_the_rest():
    schema = load_schema("article")
    prepared = prepare(schema.json_schema, schema.traits, small=True)
    before = json.dumps(prepared, sort_keys=True)
    spans = ("CATL", "25 февраля")
    offered = offer_spans(prepared, schema.traits.verbatim, spans)
    assert json.dumps(prepared, sort_keys=True) == before  # a copy
    organization = offered["$defs"]["Organization"]["properties"]
    assert organization["name_original"] == {"type": "string", "enum": list(spans)}
    assert "enum" not in organization["name"]  # English text stays free (ASCII for the tiny model)
    as_written = offered["$defs"]["SignedOn"]["properties"]["as_written"]
    assert as_written["enum"] == list(spans)


def test_spans_are_offered_only_to_a_backend_that_constrains_decoding(tmp_path):
    import asyncio
    from pathlib import PurePath

    from summarizer.artifacts import load_prompt
    from summarizer.backends.base import Capabilities
    from summarizer.engines.base import RunControl
    from summarizer.inputs import InputItem
    from summarizer.processor import DocumentProcessor, RequestGate, RunSpec
    from summarizer.settings import Settings

    from .fakes import ScriptedBackend, article

    text = (SEEDS / "002_58b7a0a3b69e6006.txt").read_bytes()
    for constrained in (False, True):
        backend = ScriptedBackend(article())
        spec = RunSpec(Settings(out_dir=tmp_path), load_schema("article"), load_prompt("article"), "fake",
                       Capabilities(constrained_decoding=constrained), 2048)
        control = RunControl()
        processor = DocumentProcessor(spec, backend, RequestGate(backend, 1, control.may_send, control.spend),
                                      cache=None, checker=None)
        asyncio.run(processor.process(InputItem(0, "seed.txt", PurePath("seed.txt"), data=text), True, None))
        [request] = backend.requests
        assert bool(request.spans) is constrained
        assert all(span in text.decode("utf-8") for span in request.spans)
