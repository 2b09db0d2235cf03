"""Documents longer than one request: split, extract chunk by chunk, merge (case 15)."""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from summarizer.artifacts import load_prompt, load_schema
from summarizer.backends.openai_compat import OpenAIBackend
from summarizer.chunking import extract_document, merge_results, split_text
from summarizer.documents import load_document
from summarizer.loopback import SAMPLE_ARTICLE, LoopbackServer, Reply, canned_responder
from summarizer.settings import Settings
from summarizer.store import latest_manifest, read_manifest
from .helpers import SEEDS

_DOCUMENT = re.compile(r"<<<(?:ARTICLE|DOCUMENT) ([0-9a-f]+)>>>\n(.*)\n<<<END \1>>>\s*$", re.S)


def _covered(text: str, chunks: list[str], limit: int) -> None:
    """Chunks are verbatim, in order, within the limit, and only whitespace lies between them."""
    assert chunks and all(0 < len(c) <= limit for c in chunks)
    position = 0
    for chunk in chunks:
        found = text.find(chunk, position)
        assert found >= 0, "a chunk is not a verbatim slice of the text"
        assert text[position:found].strip() == "", f"characters dropped before a chunk: {text[position:found]!r}"
        position = found + len(chunk)
    assert text[position:].strip() == "", "the end of the text was dropped"
    assert "".join(text.split()) == "".join("".join(chunks).split())


def test_15_split_keeps_short_text_whole() -> None:
    """Text within the limit is one chunk, unchanged."""
    assert split_text("One paragraph.\n\nTwo.", 100) == ["One paragraph.\n\nTwo."]


def test_15_split_on_paragraph_boundaries() -> None:
    """Whole paragraphs are packed into chunks; no paragraph is cut when each fits."""
    paragraphs = [f"Paragraph {i}. " + "word " * random.Random(i).randint(10, 60) + "end." for i in range(60)]
    text = "\n\n".join(paragraphs)
    chunks = split_text(text, 1000)
    _covered(text, chunks, 1000)
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.split("\n\n") == [p for p in paragraphs if p in chunk.split("\n\n")]
        assert chunk.endswith("end.")


def test_15_split_on_sentence_boundaries() -> None:
    """One long paragraph is cut after a sentence end, quotes and brackets included."""
    sentences = [f"Sentence {i} says \"something {'long ' * (i % 7)}here.\"" if i % 3 == 0
                 else f"Sentence {i} ({'x' * (i % 5)}) is plain!" for i in range(400)]
    text = " ".join(sentences)
    chunks = split_text(text, 700)
    _covered(text, chunks, 700)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.endswith(('."', "!")), chunk[-20:]
        assert chunk.startswith("Sentence ")


def test_15_split_chinese_after_full_stops() -> None:
    """CJK text has no spaces: cuts fall right after 。！？."""
    text = "".join(f"宁德时代第{i}次签署协议。" if i % 4 else "真的吗！" for i in range(800))
    chunks = split_text(text, 500)
    _covered(text, chunks, 500)
    assert all(chunk.endswith(("。", "！")) for chunk in chunks)


def test_15_split_one_line_without_sentences_cuts_at_spaces() -> None:
    """A one-line page with no punctuation is cut between words, never inside one."""
    words = [f"w{i:05d}" for i in range(30_000)]
    text = " ".join(words)
    chunks = split_text(text, 5000)
    _covered(text, chunks, 5000)
    assert [w for c in chunks for w in c.split(" ")] == words


def test_15_split_one_enormous_word_is_cut_not_dropped() -> None:
    """With no boundary at all the text is cut at the limit, still losing nothing."""
    text = "x" * 10_001
    chunks = split_text(text, 1000)
    assert [len(c) for c in chunks] == [1000] * 10 + [1]
    assert "".join(chunks) == text


def test_15_split_random_texts_lose_nothing() -> None:
    """Random mixes of paragraphs, lines, sentences and spaces: full coverage at every limit."""
    rng = random.Random(15)
    pieces = ["word", "Word.", "end!", "why?", "\n", "\n\n", "  ", "\t", "。", "长句子", "x" * 50]
    for _ in range(50):
        text = "".join(rng.choice(pieces) + rng.choice(["", " "]) for _ in range(rng.randint(50, 800))).strip()
        for limit in (7, 40, 333):
            if text:
                _covered(text, split_text(text, limit), limit)


def test_15_split_rejects_a_zero_limit() -> None:
    """A limit below one character is a programming error, not an endless loop."""
    with pytest.raises(ValueError):
        split_text("text", 0)


def _org(name: str, original: str, role: str = "mentioned", country: str | None = None) -> dict[str, Any]:
    return {"name": name, "name_original": original, "type": "company", "role": role, "country": country}


def test_15_merge_deduplicates_and_fills_gaps() -> None:
    """Organizations and people appear once; later mentions fill nulls and upgrade 'mentioned' to 'party'."""
    schema = load_schema("article")
    agreement = {**SAMPLE_ARTICLE["agreement"], "parties": ["CATL", "CECEP"]}
    first = {**SAMPLE_ARTICLE, "source_language": "ru", "organizations": [_org("CATL", "CATL")],
             "people": [{"name": "Zeng Yuqun", "name_original": "Цзэн Юйцюнь", "title": None, "organization": None}],
             "topics": ["batteries", "Energy storage"], "agreement": None}
    second = {**SAMPLE_ARTICLE, "source_language": "ru",
              "organizations": [_org("catl ", "CATL", role="party", country="China"), _org("CECEP", "CECEP")],
              "people": [{"name": "ZENG  Yuqun", "name_original": "Цзэн Юйцюнь", "title": "Chairman",
                          "organization": "CATL"}],
              "topics": ["energy storage", "grids"], "agreement": agreement}
    merged = merge_results(schema, [first, second, {**second, "source_language": "en"}])
    assert merged["organizations"] == [_org("CATL", "CATL", role="party", country="China"), _org("CECEP", "CECEP")]
    assert merged["people"] == [{"name": "Zeng Yuqun", "name_original": "Цзэн Юйцюнь", "title": "Chairman",
                                 "organization": "CATL"}]
    assert merged["topics"] == ["batteries", "Energy storage", "grids"]
    assert merged["source_language"] == "ru"
    assert merged["agreement"] == agreement  # from the first chunk that reports one
    schema.model.model_validate({**merged, "summary": SAMPLE_ARTICLE["summary"]})


def test_15_merge_respects_schema_limits_and_breaks_ties_by_order() -> None:
    """Merged lists stop at the schema's maxItems; a language tie goes to the first chunk's."""
    schema = load_schema("article")
    limit = schema.json_schema["properties"]["topics"]["maxItems"]
    results = [{**SAMPLE_ARTICLE, "source_language": lang, "topics": [f"topic {lang} {i}" for i in range(limit)]}
               for lang in ("pt", "es", "es", "pt")]
    merged = merge_results(schema, results)
    assert len(merged["topics"]) == limit
    assert merged["source_language"] == "pt"


def _long_document(size: int) -> str:
    """Paragraphs from the seed articles, repeated, each numbered so every chunk is distinct."""
    seeds = [p for path in sorted(SEEDS.glob("*.txt")) for p in path.read_text("utf-8").split("\n") if p.strip()]
    paragraphs, total, i = [], 0, 0
    while total < size:
        paragraph = f"§{i} {seeds[i % len(seeds)]}"
        paragraphs.append(paragraph)
        total += len(paragraph) + 2
        i += 1
    return "\n\n".join(paragraphs)[:size].rstrip()


def _chunk_responder(request: dict[str, Any]) -> Reply:
    """Every chunk names CATL (in varying case) plus one organization of its own; digests get the final title."""
    document = _DOCUMENT.search(request["messages"][-1]["content"]).group(2)
    if document.startswith("Part 1 of "):
        return Reply.json({**SAMPLE_ARTICLE, "title": "Merged title",
                           "summary": "This is the overall summary. It covers every part."})
    first = int(re.match(r"§(\d+)", document).group(1))
    own = f"Partner {first % 3}"
    return Reply.json({**SAMPLE_ARTICLE, "title": f"Chunk from {first}",
                       "organizations": [_org("CATL" if first % 2 else "catl", "CATL", role="party"),
                                         _org(own, f"§{first}")],  # copied from the chunk: grounded
                       "agreement": {**SAMPLE_ARTICLE["agreement"], "parties": ["CATL"]}})


def test_15_long_document_chunked_extracted_and_merged_through_cli(tmp_path: Path, cli) -> None:
    """300,000 characters: chunks + 1 requests, nothing left out, organizations once each, one summary."""
    raw = _long_document(300_000)
    (tmp_path / "long.txt").write_text(raw, "utf-8")
    text = load_document("long.txt", raw.encode("utf-8")).text  # what is chunked: the cleaned text
    assert len(text) >= 299_000
    out = tmp_path / "out"
    with LoopbackServer(_chunk_responder) as server:
        result = cli("summarize", tmp_path / "long.txt", "--base-url", server.url, "--out", out,
                     "--tables", "never")
        requests = [r.body for r in server.requests]
    assert result.code == 0, result.stderr
    envelope = json.loads((out / "long.json").read_text("utf-8"))
    chunks = envelope["document"]["chunks"]
    expected = split_text(text, Settings().max_chunk_chars)
    assert chunks == len(expected) > 10
    assert len(requests) == chunks + 1
    sent = [_DOCUMENT.search(r["messages"][-1]["content"]).group(2) for r in requests]
    chunk_texts = sorted((s for s in sent if not s.startswith("Part 1 of ")), key=lambda s: int(s[1:s.index(" ")]))
    assert chunk_texts == expected  # every chunk sent exactly once, verbatim
    _covered(text, chunk_texts, Settings().max_chunk_chars)
    digest = next(s for s in sent if s.startswith("Part 1 of "))
    assert all(f"Part {i} of {chunks}: Chunk from " in digest for i in range(1, chunks + 1))
    merged = envelope["result"]
    names = [o["name"] for o in merged["organizations"]]
    assert sorted(n.casefold() for n in names) == ["catl", "partner 0", "partner 1", "partner 2"]
    assert next(o for o in merged["organizations"] if o["name"].casefold() == "catl")["role"] == "party"
    assert merged["title"] == "Merged title"
    assert merged["summary"] == "This is the overall summary. It covers every part."
    assert envelope["usage"]["requests"] == chunks + 1


def test_15_a_failing_chunk_fails_the_document_and_the_run_goes_on(tmp_path: Path, cli) -> None:
    """One chunk that never validates makes its document 'invalid' with no output; other documents succeed."""
    text = _long_document(60_000)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "long.txt").write_text(text, "utf-8")
    (tmp_path / "docs" / "short.txt").write_text("CATL signed a deal with Zhaoqing. It covers batteries.", "utf-8")

    def responder(request: dict[str, Any]) -> Reply:
        document = _DOCUMENT.search(request["messages"][1]["content"]).group(2)
        return Reply(content="not json") if document.startswith("§0 ") else canned_responder(request)

    out = tmp_path / "out"
    with LoopbackServer(responder) as server:
        result = cli("summarize", tmp_path / "docs", "--base-url", server.url, "--out", out, "--tables", "never",
                     "--max-reasks", "1")
    assert result.code == 1
    entries = {e["relative"]: e for e in read_manifest(latest_manifest(out))}
    assert entries["long.txt"]["status"] == "invalid"
    assert entries["short.txt"]["status"] == "ok"
    assert not (out / "long.json").exists()


def test_15_summaries_too_long_for_one_request_are_reduced_in_levels() -> None:
    """When the chunk summaries do not fit one request, groups are summarized first; none is dropped."""
    text = load_document("long.txt", _long_document(40_000).encode("utf-8")).text
    limit = 2_000
    chunks = split_text(text, limit)
    schema, prompt = load_schema("article"), load_prompt("article")

    summary = " ".join(f"Sentence {i} of a long summary that takes up a good share of the room." for i in range(4))

    def responder(request: dict[str, Any]) -> Reply:
        document = _DOCUMENT.search(request["messages"][1]["content"]).group(2)
        if document.startswith("Part "):
            parts = re.findall(r"^Part (\d+) of \d+:", document, re.M)
            return Reply.json({**SAMPLE_ARTICLE, "title": f"Parts {parts[0]}-{parts[-1]}", "summary": summary})
        return Reply.json({**SAMPLE_ARTICLE, "summary": summary})

    async def run(url: str) -> Any:
        backend = OpenAIBackend(model="loopback", base_url=url, api_key="test", max_attempts=1)
        try:
            return await extract_document(text, schema, prompt, backend, max_chunk_chars=limit)
        finally:
            await backend.aclose()

    with LoopbackServer(responder) as server:
        extraction = asyncio.run(run(server.url))
        digests = [_DOCUMENT.search(r.body["messages"][1]["content"]).group(2) for r in server.requests]
    digests = [d for d in digests if d.startswith("Part ")]
    assert extraction.chunks == len(chunks) > 10
    assert len(digests) > 2  # at least two groups and the final summary
    first_level = [d for d in digests if f"of {len(chunks)}:" in d]
    seen = [int(n) for d in first_level for n in re.findall(r"^Part (\d+) of", d, re.M)]
    assert sorted(seen) == list(range(1, len(chunks) + 1))  # every chunk's summary was read
    assert extraction.usage.requests == len(server.requests)


LEAGUE_SCHEMA = '''
from typing import Annotated, Literal
from pydantic import BaseModel, Field
from summarizer.traits import Key, LinksTo, SourceLanguage, Summary, Title, Verbatim

class Club(BaseModel):
    label: Annotated[str, Key()]
    spelled: Annotated[str, Verbatim()]
    standing: Literal["champion", "member", "other"]
    city: str | None = None

class League(BaseModel):
    heading: Annotated[str, Title()]
    gist: Annotated[str, Summary()]
    lang: Annotated[str, SourceLanguage()]
    clubs: list[Club] = Field(max_length=3)
    finalists: list[Annotated[str, LinksTo("clubs[].label")]]
    tags: list[str]
'''


def _club(label: str, standing: str = "member", city: str | None = None, spelled: str | None = None) -> dict:
    return {"label": label, "spelled": spelled or label, "standing": standing, "city": city}


def test_15_merge_follows_the_traits_of_a_user_schema(tmp_path: Path) -> None:
    """A user schema's entities merge by its own Key field; its links and language trait are honoured."""
    (tmp_path / "league.py").write_text(LEAGUE_SCHEMA, "utf-8")
    schema = load_schema(f"{tmp_path / 'league.py'}:League")
    first = {"heading": "One", "gist": "First.", "lang": "de", "tags": ["Derby", "cup "],
             "clubs": [_club("Hertha"), _club("Union", spelled="1. FC Union")], "finalists": ["union"]}
    second = {"heading": "Two", "gist": "Second.", "lang": "en", "tags": ["derby", "league"],
              "clubs": [_club("HERTHA ", "champion", "Berlin"), _club("Bayern"), _club("Dortmund")],
              "finalists": ["Hertha", "1. FC Union", "Dortmund"]}
    merged = merge_results(schema, [first, second, {**second, "lang": "de", "clubs": []}])
    # Three clubs fit; Bayern (named by no link) gives way to Dortmund, a finalist.
    assert merged["clubs"] == [_club("Hertha", "champion", "Berlin"), _club("Union", spelled="1. FC Union"),
                               _club("Dortmund")]
    # Merged like any list, then spelled as the clubs they name ("1. FC Union" is Union as written).
    assert merged["finalists"] == ["Union", "Hertha", "Dortmund"]
    assert merged["tags"] == ["Derby", "cup ", "league"]
    assert merged["lang"] == "de" and merged["heading"] == "One"
    schema.model.model_validate(merged)


def test_15_merge_generic_entities_by_their_key() -> None:
    """The generic schema's entities are merged by name, as the article's organizations are."""
    schema = load_schema("generic")
    base = {"title": "T", "summary": "A summary that is long enough.", "source_language": "en"}
    first = {**base, "key_points": ["Point one.", "Point two."],
             "entities": [{"name": "CATL", "name_original": "宁德时代", "type": "other"}]}
    second = {**base, "key_points": ["point  ONE.", "Point three."],
              "entities": [{"name": "catl", "name_original": "CATL", "type": "organization"},
                           {"name": "Ningde", "name_original": "宁德", "type": "place"}]}
    merged = merge_results(schema, [first, second])
    assert merged["key_points"] == ["Point one.", "Point two.", "Point three."]
    assert merged["entities"] == [{"name": "CATL", "name_original": "宁德时代", "type": "organization"},
                                  {"name": "Ningde", "name_original": "宁德", "type": "place"}]
    schema.model.model_validate(merged)


def test_15_merge_spells_nested_link_values_as_their_targets() -> None:
    """A party named by another spelling of an organization becomes that organization's name, once."""
    schema = load_schema("article")
    chunk = {**SAMPLE_ARTICLE, "organizations": [_org("CATL", "Contemporary Amperex", role="party")],
             "agreement": {**SAMPLE_ARTICLE["agreement"], "parties": ["contemporary  amperex", "CATL ", "Tesla"]}}
    merged = merge_results(schema, [chunk, {**SAMPLE_ARTICLE, "agreement": None}])
    assert merged["agreement"]["parties"] == ["CATL", "Tesla"]  # an unknown party is left for validation to name
    assert merged["organizations"][0] == _org("CATL", "Contemporary Amperex", role="party", country="China")
