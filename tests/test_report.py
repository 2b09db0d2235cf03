"""`summarizer report`: output documents in, md / html / csv / jsonl / terminal tables out."""

from __future__ import annotations

import base64
import copy
import hashlib
import csv
import io
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from summarizer.artifacts import load_schema
from summarizer.checks import run_checks, unsupported_sentence
from summarizer.documents import load_document
from summarizer.report_load import OutputDocument
from summarizer.report_entities import merge_entities
from summarizer.report_evidence import document_evidence
from summarizer.report_formats import md_cell
from summarizer.schemas.article import Article
from .helpers import SEEDS
from .report_fixtures import SEED_RESULTS, org

MALICIOUS_TITLE = "<script>alert(1)</script> | pipe"




def envelope(result: dict[str, Any], source: str, checks: dict[str, Any] | None = None,
             text: str | None = None) -> dict[str, Any]:
    """An output document as the runner writes it (see Runner._envelope)."""
    return {
        "document": {"path": source, "sha256": "0" * 64, "chars": 1000, "encoding": "utf-8", "format": "text",
                     "chunks": 1, **({"text": text} if text is not None else {})},
        "schema": {"id": "article", "version": "1"},
        "prompt": {"id": "article", "version": "1", "sha256": "0" * 64},
        "model": {"name": "test-model", "base_url": None, "backend": "openai", "mode": "json_schema"},
        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150, "requests": 1},
        "attempts": 1,
        "cached": False,
        "created_at": "2025-01-01T00:00:00+00:00",
        "checks": checks if checks is not None else {"passed": True, "unsupported": [], "failures": []},
        "result": result,
    }


def write_seed_outputs(folder: Path) -> list[Path]:
    """One output per seed, with the checks the real checker gives it against the seed's text."""
    paths = []
    for stem, result in SEED_RESULTS.items():
        source = SEEDS / f"{stem}.txt"
        document = load_document(str(source), source.read_bytes())
        checks = run_checks(Article.model_validate(result), document)
        path = folder / f"{stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(envelope(result, f"seeds/{stem}.txt", checks, document.text), ensure_ascii=False),
                        "utf-8")
        paths.append(path)
    return paths


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    folder = tmp_path / "outputs"
    write_seed_outputs(folder)
    return folder


def test_the_hand_written_seed_results_pass_every_check(outputs: Path) -> None:
    for path in outputs.glob("*.json"):
        checks = json.loads(path.read_text("utf-8"))["checks"]
        assert checks["failures"] == [], path.name


def test_markdown_report_has_every_section_and_every_document(cli: Any, outputs: Path) -> None:
    run = cli("report", outputs, "--format", "md")
    assert run.code == 0, run.stderr
    md = run.stdout
    # Sections come from the article's traits: its entity lists, link field, term lists and dates.
    for heading in ("## Documents", "## Summaries", "## Organizations", "## People", "## Agreement areas",
                    "## Topics", "## Agreement timeline", "## Unsupported facts"):
        assert heading in md
    for result in SEED_RESULTS.values():
        assert result["title"] in md
        assert md_cell(result["summary"]) in md
    # CATL is one organization across the five documents, whatever its spelling in each.
    catl_rows = [line for line in md.splitlines() if line.startswith("| CATL |")]
    assert len(catl_rows) == 1
    assert all(md_cell(f"seeds/{stem}.txt: company, party, China (in agreement.parties)") in catl_rows[0]
               for stem in SEED_RESULTS)
    assert "Contemporary Amperex Technology Co., Limited" in catl_rows[0]
    assert "| batteries | 5 |" in md
    assert "| energy storage technology | 2 |" in md
    people = md.split("## People")[1].split("##")[0]
    assert "| Robin Zeng | — | " + md_cell("seeds/001_1a11767ed79f635d.txt: Chairman, CATL") + " |" in people


def test_timeline_is_sorted_by_date_with_unknown_years_last(cli: Any, outputs: Path) -> None:
    md = cli("report", outputs, "--format", "md").stdout
    timeline = md.split("## Agreement timeline")[1].split("##")[0]
    rows = [line for line in timeline.splitlines() if line.startswith("| ")][1:]
    dates = [row.split(" | ")[0].lstrip("| ") for row in rows]
    assert dates == ["2022-06-22 (22.06.2022)", "????-02-25 (25 февраля)", "????-05-29 (29 de maio)",
                     "unknown", "unknown"]
    assert "| Ningde, Fujian |" in rows[1]  # the agreement's other fields are its columns


def test_csv_has_the_documented_columns_and_one_row_per_document(cli: Any, outputs: Path) -> None:
    run = cli("report", outputs, "--format", "csv")
    rows = list(csv.reader(io.StringIO(run.stdout)))
    header = rows[0]
    assert header[:6] == ["document", "output", "schema", "title", "summary", "language"]  # as documented
    assert header[-5:] == ["checks", "failures", "unsupported", "model", "created_at"]
    assert header[6:10] == ["organizations", "people", "agreement.parties", "agreement.signed_on"]
    assert {"topics", "agreement.areas", "organizations.name_original", "agreement.signed_on.as_written"} <= set(header)
    assert len(rows) == 1 + len(SEED_RESULTS)
    by_document = {row[0]: dict(zip(header, row)) for row in rows[1:]}
    henan = by_document["seeds/001_1a11767ed79f635d.txt"]
    assert henan["agreement.signed_on"] == "2022-06-22"
    assert henan["agreement.signed_on.as_written"] == "22.06.2022"
    assert henan["agreement.parties"] == "CATL; Henan Provincial Government; Luoyang Municipal Government"
    assert henan["people"] == "Lou Yangsheng; Robin Zeng"
    assert henan["language"] == "de"
    assert henan["checks"] == "passed"
    assert henan["summary"] == SEED_RESULTS["001_1a11767ed79f635d"]["summary"]


def test_jsonl_has_one_line_per_document_with_overview_and_result(cli: Any, outputs: Path) -> None:
    lines = cli("report", outputs, "--format", "jsonl").stdout.splitlines()
    assert len(lines) == len(SEED_RESULTS)
    first = json.loads(lines[0])
    assert first["document"] == "seeds/000_f5657d2c5e6c31f2.txt"
    assert first["summary"] == SEED_RESULTS["000_f5657d2c5e6c31f2"]["summary"]
    assert first["fields"]["agreement.signed_on"] == ["????-02-25"]
    assert first["result"] == SEED_RESULTS["000_f5657d2c5e6c31f2"]


def test_html_is_one_self_contained_page(cli: Any, outputs: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    run = cli("report", outputs, "--format", "html", "-o", target)
    assert run.code == 0, run.stderr
    assert run.stdout == ""  # the report went to the file
    page = target.read_text("utf-8")
    assert page.startswith("<!doctype html>")
    assert "<style>" in page
    # One inline script, allowed by its hash; nothing else may run.
    assert page.count("<script") == 1
    script = page.split("<script>")[1].split("</script>")[0]
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    for result in SEED_RESULTS.values():
        assert result["title"] in page and result["summary"].replace("&", "&amp;") in page
    assert not list(tmp_path.glob(".report.html.*.tmp"))  # the atomic write left no temp file


def malicious_outputs(folder: Path) -> None:
    result = copy.deepcopy(SEED_RESULTS["002_58b7a0a3b69e6006"])
    result["title"] = MALICIOUS_TITLE
    result["organizations"][1]["name"] = "Evil | Corp *bold* [link](http://x)"
    result["agreement"]["parties"][1] = "Evil | Corp *bold* [link](http://x)"
    result["topics"] = ["=HYPERLINK(\"http://x\")", "\x1b[31mred\x1b[0m"]
    checks = {"passed": False, "unsupported": [{"field": "organizations[1].name_original",
                                                "value": "<img src=x onerror=alert(2)>"}],
              "failures": [unsupported_sentence("organizations[1].name_original", "<img src=x onerror=alert(2)>"),
                           "summary is <b>bad</b>"]}
    # The source text is hostile too, and an anchor points into its markup.
    text = "Intro </pre><script>alert(3)</script> <b onclick=x>CATL</b> \"quoted\" & more"
    start = text.index("<script>")
    checks["evidence"] = [{"path": "organizations[0].name_original", "value": "<script>alert(3)</script>",
                           "anchor": {"start": start, "end": start + 25, "match": "exact", "score": 1.0,
                                      "source": text[start:start + 25], "count": 1, "accents_ignored": False}}]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evil.json").write_text(json.dumps(envelope(result, "evil.txt", checks, text)), "utf-8")


def test_html_escapes_every_value(cli: Any, tmp_path: Path) -> None:
    malicious_outputs(tmp_path / "out")
    page = cli("report", tmp_path / "out", "--format", "html").stdout
    assert page.count("<script") == 1  # the report's own script; no value became an element
    assert "<script>alert" not in page and "<img" not in page and "<b>bad" not in page and "<b onclick" not in page
    assert "</pre><script>" not in page
    assert '>&lt;script&gt;alert(3)&lt;/script&gt;</mark>' in page  # highlighted, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | pipe" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page  # no script could run anyway
    # The only style allowed is the page's own style sheet, named by its hash.
    style = page.split("<style>")[1].split("</style>")[0]
    digest = base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in page and "unsafe-inline" not in page


def test_markdown_escapes_pipes_and_markup_in_cells(cli: Any, tmp_path: Path) -> None:
    malicious_outputs(tmp_path / "out")
    md = cli("report", tmp_path / "out", "--format", "md").stdout
    assert r"\<script\>alert(1)\</script\> \| pipe" in md
    assert r"Evil \| Corp \*bold\* \[link\](http://x)" in md
    assert "<script>" not in md and "\x1b" not in md
    for line in md.splitlines():  # every table row keeps its column count: no cell was split by a pipe
        if line.startswith("| Title |"):
            columns = line.count(" | ")
        if line.startswith(r"| \<script"):
            assert line.replace(r"\|", "").count(" | ") == columns


def test_csv_keeps_values_as_data_but_neutralizes_formulas(cli: Any, tmp_path: Path) -> None:
    malicious_outputs(tmp_path / "out")
    row = list(csv.DictReader(io.StringIO(cli("report", tmp_path / "out", "--format", "csv").stdout)))[0]
    assert row["title"] == MALICIOUS_TITLE
    assert row["topics"].startswith("'=HYPERLINK")
    assert row["checks"] == "failed" and row["unsupported"] == "1" and row["failures"] == "2"


def test_terminal_tables_strip_escape_codes_and_show_unsupported_facts(cli: Any, tmp_path: Path) -> None:
    malicious_outputs(tmp_path / "out")
    run = cli("report", tmp_path / "out")
    assert run.code == 0
    assert "\x1b" not in run.stdout
    assert "<img src=x onerror=alert(2)>" in run.stdout  # shown as text, which is safe in a terminal
    assert "Unsupported facts" in run.stdout and "summary is <b>bad</b>" in run.stdout


def test_unsupported_facts_are_listed_once_with_their_document(cli: Any, tmp_path: Path) -> None:
    malicious_outputs(tmp_path / "out")
    md = cli("report", tmp_path / "out", "--format", "md").stdout
    unsupported = md.split("## Unsupported facts")[1].split("##")[0]
    assert r"| evil.txt | organizations\[1\].name\_original | \<img src=x onerror=alert(2)\> |" in unsupported
    other = md.split("## Other failed checks")[1]
    assert r"summary is \<b\>bad\</b\>" in other
    assert "does not occur" not in other  # the unsupported fact is not repeated as a failed check


def test_broken_files_are_reported_and_the_report_goes_on(cli: Any, outputs: Path) -> None:
    (outputs / "broken.json").write_text("{not json", "utf-8")
    invalid = envelope({**SEED_RESULTS["002_58b7a0a3b69e6006"], "summary": "Too short."}, "seeds/x.txt")
    (outputs / "nested").mkdir()
    (outputs / "nested" / "invalid.json").write_text(json.dumps(invalid), "utf-8")
    unknown = {**invalid, "schema": {"id": "nope", "version": "1"}}
    unknown["result"] = {**unknown["result"], "title": "Of a schema nobody knows"}
    (outputs / "unknown.json").write_text(json.dumps(unknown), "utf-8")
    (outputs / "run-20250101T000000-abcdef.jsonl").write_text('{"status": "ok"}\n', "utf-8")
    run = cli("report", outputs, "--format", "md")
    assert run.code == 1
    assert f"{outputs / 'broken.json'}: not JSON" in run.stderr
    assert f"{outputs / 'nested' / 'invalid.json'}: result does not match schema 'article'" in run.stderr
    assert "summary" in run.stderr
    # A schema that is not built in: the document is read as plain JSON, and a note says so.
    assert "unknown.json" not in run.stderr and "'nope' read as plain JSON" in run.stderr
    assert "Of a schema nobody knows" in run.stdout
    assert "run-2025" not in run.stderr
    for result in SEED_RESULTS.values():
        assert result["title"] in run.stdout


def test_missing_path_fails_and_no_documents_at_all_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert cli("report", tmp_path / "empty").code == 2
    run = cli("report", tmp_path / "missing.json")
    assert run.code == 1 and "no such file or folder" in run.stderr


def doc(label: str, *orgs: dict[str, Any]) -> OutputDocument:
    return OutputDocument(Path(f"{label}.json"), {"document": {"path": label}}, {"organizations": list(orgs)},
                          load_schema("article").traits)


def test_organizations_merge_across_spellings_and_scripts() -> None:
    [section] = merge_entities([
        doc("a.txt", org("CATL", "宁德时代"), org("Zhaoqing Municipal Government", "肇庆市人民政府", kind="government")),
        # b.txt is linked to a.txt by the Chinese name only
        doc("b.txt", org("Contemporary Amperex Technology", "宁德时代", role="mentioned")),
        doc("c.txt", org("Contemporary Amperex Technology Co., Limited", "Contemporary Amperex Technology")),
        doc("d.txt", org("The University of Hong Kong", "Universidade de Hong Kong"),
            org("catl", "CATL")),  # case only
        doc("e.txt", org("University of Hong Kong", "香港大学", kind="university")),
    ])
    assert section.title == "Organizations"
    groups = section.groups
    assert [g.name for g in groups] == ["CATL", "The University of Hong Kong", "Zhaoqing Municipal Government"]
    catl = groups[0]  # most documents first; "CATL" / "catl" is its most common English name
    assert "宁德时代" in catl.spellings and "Contemporary Amperex Technology Co., Limited" in catl.spellings
    assert catl.documents == ["a.txt", "b.txt", "c.txt", "d.txt"]
    assert [m.details for m in catl.mentions][:2] == [["company", "party", "China"], ["company", "mentioned", "China"]]
    hku = groups[1]
    assert hku.documents == ["d.txt", "e.txt"] and "香港大学" in hku.spellings


def test_report_of_cli_outputs_skips_the_run_manifest(cli: Any, server: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli("summarize", SEEDS / "002_58b7a0a3b69e6006.txt", "--base-url", server.url, "--out", out).code == 0
    assert list(out.glob("run-*.jsonl"))
    run = cli("report", out, "--format", "md")
    assert run.code == 0, run.stderr
    assert "CATL and Zhaoqing sign comprehensive cooperation agreement" in run.stdout
    assert md_cell(str(SEEDS / "002_58b7a0a3b69e6006.txt")) in run.stdout  # documents named by their source


def generic_output(folder: Path, name: str, title: str, summary: str, entities: list[dict[str, Any]]) -> None:
    result = {"title": title, "summary": summary, "source_language": "en",
              "key_points": ["The first point of this document is stated here in one sentence."],
              "entities": entities}
    doc = envelope(result, f"docs/{name}.txt")
    doc["schema"] = {"id": "generic", "version": "2", "ref": "generic",
                     "traits": load_schema("generic").traits.as_dict()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(doc, ensure_ascii=False), "utf-8")


@pytest.fixture
def generic_outputs(tmp_path: Path) -> Path:
    folder = tmp_path / "generic"
    generic_output(folder, "a", "Port of Hamburg expands", "The Port of Hamburg opens a new terminal. It doubles "
                   "container capacity.", [{"name": "Port of Hamburg", "name_original": "Hamburger Hafen",
                                            "type": "organization"}])
    generic_output(folder, "b", "Hamburg harbour traffic grows", "Traffic in Hamburg grew last year. Most of it "
                   "came from Asia.", [{"name": "Hamburg Port", "name_original": "Hamburger Hafen",
                                        "type": "organization"},
                                       {"name": "Asia", "name_original": "Asien", "type": "place"}])
    return folder


@pytest.mark.parametrize("fmt", ["md", "html", "csv", "jsonl", None])
def test_generic_outputs_report_titles_summaries_and_entities(cli: Any, generic_outputs: Path,
                                                              fmt: str | None) -> None:
    run = cli("report", generic_outputs, *(["--format", fmt] if fmt else []))
    assert run.code == 0, run.stderr
    text = run.stdout if fmt != "md" else run.stdout.replace("\\", "")
    for expected in ("Port of Hamburg expands", "Hamburg harbour traffic grows", "The Port of Hamburg opens",
                     "Most of it came from Asia", "Hamburger Hafen", "Asien"):
        assert expected in " ".join(text.split()), (fmt, expected)


def test_generic_entities_merge_by_verbatim_spelling(cli: Any, generic_outputs: Path) -> None:
    md = cli("report", generic_outputs, "--format", "md").stdout
    entities = md.split("## Entities")[1].split("##")[0]
    hamburg = [line for line in entities.splitlines() if "Hamburger Hafen" in line]
    assert len(hamburg) == 1  # one entity: both documents wrote "Hamburger Hafen"
    assert md_cell("docs/a.txt: organization") in hamburg[0] and md_cell("docs/b.txt: organization") in hamburg[0]
    assert "## Key points" not in md  # sentences are not counted as terms


def test_any_schema_is_reported_from_the_traits_it_carries(cli: Any, tmp_path: Path) -> None:
    traits = {"title": "headline", "summary": "gist", "language": None, "verbatim": ["companies[].as_written"],
              "english": ["headline", "gist", "tags[]"], "entities": {"companies": "name"},
              "links": {"deals[].buyers[]": "companies[].name"}}
    folder = tmp_path / "deals"
    folder.mkdir()
    for name, year, buyer, spelling in (("x", 2023, "Acme", "ACME GmbH"), ("y", 2021, "Acme Corp", "ACME GmbH")):
        result = {"headline": f"Deal {name}", "gist": f"Gist of {name}.", "tags": ["m&a", "steel"],
                  "companies": [{"name": buyer, "as_written": spelling, "sector": "steel"},
                                {"name": "Seller", "as_written": "Seller", "sector": "mining"}],
                  "deals": [{"buyers": [buyer], "closed": {"year": year, "month": 3, "day": None},
                             "value": "10 M"}]}
        doc = envelope(result, f"{name}.txt")
        doc["schema"] = {"id": "deals", "version": "1", "ref": "deals.py:Deals", "traits": traits}
        (folder / f"{name}.json").write_text(json.dumps(doc), "utf-8")
    md = cli("report", folder, "--format", "md").stdout
    assert "### 1. Deal x" in md and "Gist of y." in md
    companies = md.split("## Companies")[1].split("##")[0]
    acme = [line for line in companies.splitlines() if "ACME GmbH" in line]
    assert len(acme) == 1 and md_cell("x.txt: steel (in deals.buyers)") in acme[0]
    assert md_cell("y.txt: steel (in deals.buyers)") in acme[0]
    timeline = md.split("## Deals timeline")[1].split("##")[0]
    assert timeline.index("2021-03") < timeline.index("2023-03")
    assert "| Buyers | Value |" in timeline
    assert "| steel | 2 |" in md.split("## Tags")[1]
    rows = list(csv.DictReader(io.StringIO(cli("report", folder, "--format", "csv").stdout)))
    assert rows[0]["title"] == "Deal x" and rows[0]["deals.buyers"] == "Acme" and rows[0]["deals.closed"] == "2023-03"


def test_older_outputs_without_traits_fall_back_to_title_and_summary(cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    doc = envelope({"title": "An old output", "summary": "Written before traits existed.", "x": [1]}, "old.txt")
    doc["schema"] = {"id": "custom", "version": "1"}
    (folder / "old.json").write_text(json.dumps(doc), "utf-8")
    run = cli("report", folder)
    assert run.code == 0 and "An old output" in run.stdout and "Written before traits existed." in run.stdout


# --- evidence: unsupported values marked where they appear, source texts highlighted ----------

INVENTED_SPELLING = "Hong Kong Polytechnic"


def flagged_outputs(folder: Path) -> Path:
    """The seed outputs, with one invented name in 004 (checked for real: it is flagged)."""
    write_seed_outputs(folder)
    stem = "004_28a269a1abbfeef6"
    result = copy.deepcopy(SEED_RESULTS[stem])
    result["organizations"][1]["name_original"] = INVENTED_SPELLING
    source = SEEDS / f"{stem}.txt"
    document = load_document(str(source), source.read_bytes())
    checks = run_checks(Article.model_validate(result), document)
    assert checks["passed"] is False
    (folder / f"{stem}.json").write_text(json.dumps(envelope(result, f"seeds/{stem}.txt", checks, document.text),
                                                    ensure_ascii=False), "utf-8")
    return folder


def test_markdown_marks_unsupported_values_wherever_they_appear(cli: Any, tmp_path: Path) -> None:
    md = cli("report", flagged_outputs(tmp_path / "out"), "--format", "md").stdout
    organizations = md.split("## Organizations")[1].split("\n## ")[0]
    hku = next(line for line in organizations.splitlines() if "University of Hong Kong" in line)
    assert f"{INVENTED_SPELLING} ⚠" in hku
    assert "⚠" not in next(line for line in organizations.splitlines() if line.startswith("| CATL |"))
    summaries = md.split("## Summaries")[1].split("\n## ")[0]
    assert summaries.count("Not found in the source:") == 1
    assert md_cell(f"{INVENTED_SPELLING} ⚠ (organizations[1].name_original)") in summaries
    documents = md.split("## Documents")[1].split("\n## ")[0]
    assert "| flagged (1) | seeds/004" in documents and documents.count("flagged (") == 1


class SourceText(HTMLParser):
    """The text of each source <pre> of an HTML report, and its highlighted pieces (class, title, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.marks: list[tuple[str, str, str]] = []
        self.inside = self.marking = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pre":
            self.inside = True
            self.texts.append("")
        elif tag == "mark" and self.inside:
            self.marking = True
            found = dict(attrs)
            self.marks.append((found.get("class") or "", found.get("title") or "", ""))

    def handle_endtag(self, tag: str) -> None:
        self.inside = self.inside and tag != "pre"
        self.marking = self.marking and tag != "mark"

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.texts[-1] += data
        if self.marking:
            kind, title, text = self.marks[-1]
            self.marks[-1] = (kind, title, text + data)


def test_html_shows_each_source_text_whole_with_its_evidence_highlighted(cli: Any, tmp_path: Path) -> None:
    folder = flagged_outputs(tmp_path / "out")
    page = cli("report", folder, "--format", "html").stdout
    parser = SourceText()
    parser.feed(page)
    outputs = [json.loads(p.read_text("utf-8")) for p in sorted(folder.glob("*.json"))]
    # Flagged documents first; every source text whole and in order, inside the page.
    assert parser.texts[0] == outputs[-1]["document"]["text"]
    assert sorted(parser.texts) == sorted(o["document"]["text"] for o in outputs)
    anchors = [e for o in outputs for e in o["checks"]["evidence"] if e["anchor"]]
    marked = {(kind, text) for kind, _, text in parser.marks}
    assert {(e["anchor"]["match"], e["anchor"]["source"]) for e in anchors} <= marked
    assert any("organizations[1].name_original: exact" in title for _, title, _ in parser.marks)
    # The invented name: beside its source text, and in the documents and organizations tables.
    card = page.split('id="doc-5"')[1].split("</article>")[0]
    assert f'Not found in the source (1)</h4><ul class="bad"><li><mark class="bad">{INVENTED_SPELLING}</mark>' in card
    flag = f'<mark class="bad" title="not found in the source text: seeds/004_28a269a1abbfeef6.txt: ' \
           f'organizations[1].name_original">{INVENTED_SPELLING}</mark>'
    assert flag in page.split('id="doc-table"')[1].split("</table>")[0]
    assert flag in page.split("<h2>Organizations</h2>")[1].split("</section>")[0]
    rows = page.split('id="doc-table"')[1].split("<tbody>")[1].split("</tbody>")[0].split("<tr")[1:]
    assert [r.startswith(' class="flagged"') for r in rows] == [True, False, False, False, False]
    assert page.count("<details open>") == 5  # a small report shows its (short) source texts open


def test_many_documents_keep_their_source_texts_collapsed(cli: Any, tmp_path: Path) -> None:
    for n in range(3):
        write_seed_outputs(tmp_path / "out" / str(n))
    page = cli("report", tmp_path / "out", "--format", "html").stdout
    assert page.count("<details>") == 2 * 15 and "<details open>" not in page  # source texts and field lists
    assert page.count('<article class="doc') == 15


def test_evidence_segments_cover_the_text_and_ignore_anchors_that_do_not_fit() -> None:
    text = "Китайская группа и CATL, 宁德时代。"
    catl, group = text.index("CATL"), text.index("группа")
    evidence = [
        {"path": "a", "value": "CATL", "anchor": {"start": catl, "end": catl + 4, "match": "exact", "score": 1.0,
                                                   "source": "CATL"}},
        {"path": "b", "value": "Китайской группы", "anchor": {"start": 0, "end": group + 6, "match": "fuzzy",
                                                               "score": 0.9, "source": text[:group + 6]}},
        {"path": "c", "value": "группа", "anchor": {"start": group, "end": group + 6, "match": "normalized",
                                                     "score": 1.0, "source": "группа"}},
        {"path": "d", "value": "宁德", "anchor": {"start": 1, "end": 3, "match": "exact", "score": 1.0,
                                                 "source": "宁德"}},  # not what the text has there
        {"path": "e", "value": "BYD", "anchor": None},
    ]
    checks = {"evidence": evidence, "unsupported": [{"field": "e", "value": "BYD"}], "grounding": "checked"}
    found = document_evidence(OutputDocument(Path("x.json"), {"document": {"text": text}, "checks": checks}, {}))
    assert "".join(text[s.start:s.end] for s in found.segments) == text
    lit = [s for s in found.segments if s.supports]
    assert [(text[s.start:s.end], s.match, [x.path for x in s.supports]) for s in lit] == [
        ("Китайская группа", "fuzzy", ["b", "c"]), ("CATL", "exact", ["a"])]  # overlaps merged, weakest shown
    assert [s.path for s in found.supports] == ["a", "b", "c", "d"] and found.unsupported == [("e", "BYD")]
    assert found.placed(found.supports[3]) is None  # listed, but it highlights nothing
