"""`summarizer eval`: outputs scored against the hand-checked facts of bench/seeds.gold.json."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from summarizer.checks import run_checks
from summarizer.documents import load_document
from summarizer.evaluate import GoldDocument, load_gold, overall, score_document
from summarizer.evaluate_trust import RunStatuses, document_trust, find_manifests, trust_totals
from summarizer.report_load import OutputDocument, load_outputs
from summarizer.schemas.article import Article
from summarizer.traits import iter_values, traits_of
from .report_fixtures import SEED_RESULTS

GOLD = Path(__file__).resolve().parent.parent / "bench" / "seeds.gold.json"
SEEDS = GOLD.parent.parent / "seeds"


def result_from_gold(gold: GoldDocument) -> dict[str, Any]:
    """A valid article result that states exactly the gold facts (original-script aliases as name_original)."""
    required = [o for o in gold.organizations if not o.optional]
    date = gold.agreement_date
    return {
        "title": "A perfect answer",
        "summary": "This answer states exactly the hand-checked facts. It exists to test the scorer.",
        "source_language": gold.source_language,
        "organizations": [{"name": o.name, "name_original": (o.aliases or [o.name])[0], "type": "company",
                           "role": "party" if o.name in gold.parties else "mentioned", "country": None}
                          for o in required],
        "people": [{"name": p.name, "name_original": (p.aliases or [p.name])[0], "title": None, "organization": None}
                   for p in gold.people],
        "agreement": None if not gold.has_agreement else {
            "kind": "agreement", "parties": list(gold.parties),
            "signed_on": None if date is None else {**date.model_dump(), "as_written": "as written"},
            "place": None, "term_years": None, "areas": []},
        "key_figures": [],
        "topics": [],
    }


def write_output(folder: Path, stem: str, result: dict[str, Any]) -> Path:
    Article.model_validate(result)  # the scorer only ever sees schema-valid results
    envelope = {"document": {"path": f"seeds/{stem}.txt"}, "schema": {"id": "article", "version": "1"},
                "checks": {}, "result": result}
    path = folder / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(envelope, ensure_ascii=False), "utf-8")
    return path


def overall_lines(stdout: str) -> dict[str, str]:
    """Metric name -> score as printed in the overall table."""
    scores = {}
    for line in stdout.split("Overall")[1].split("Trust")[0].splitlines():
        cells = line.split()
        if len(cells) >= 3 and cells[-1].isdigit():  # metric words, score, count
            scores[" ".join(cells[:-2])] = cells[-2]
    return scores


@pytest.fixture
def gold() -> dict[str, GoldDocument]:
    return load_gold(GOLD).documents


def test_gold_file_covers_the_five_seeds(gold: dict[str, GoldDocument]) -> None:
    assert set(gold) == {p.stem for p in SEEDS.glob("*.txt")}
    assert {stem: g.source_language for stem, g in gold.items()} == {
        "000_f5657d2c5e6c31f2": "ru", "001_1a11767ed79f635d": "de", "002_58b7a0a3b69e6006": "en",
        "003_912c44fa5303de8d": "pt", "004_28a269a1abbfeef6": "pt"}


def test_outputs_matching_the_gold_file_score_perfectly(cli: Any, tmp_path: Path,
                                                        gold: dict[str, GoldDocument]) -> None:
    for stem, entry in gold.items():
        write_output(tmp_path / "out", stem, result_from_gold(entry))
    run = cli("eval", GOLD, tmp_path / "out")
    assert run.code == 0, run.stderr
    assert overall_lines(run.stdout) == {
        "organizations precision": "1.00", "organizations recall": "1.00", "parties precision": "1.00",
        "parties recall": "1.00", "agreement yes/no": "1.00", "signing date exact": "1.00",
        "source language": "1.00", "people recall": "1.00"}
    for stem in gold:
        assert stem in run.stdout


def test_a_missing_organization_lowers_recall_but_not_precision(gold: dict[str, GoldDocument]) -> None:
    entry = gold["001_1a11767ed79f635d"]  # three required organizations
    result = result_from_gold(entry)
    result["organizations"] = [o for o in result["organizations"] if o["name"] != "Luoyang Municipal Government"]
    result["agreement"]["parties"].remove("Luoyang Municipal Government")
    score = score_document("001_1a11767ed79f635d", entry, OutputDocument(Path("x.json"), {}, result))
    assert score.organizations.recall == pytest.approx(2 / 3)
    assert score.organizations.precision == 1.0
    assert score.missed == ["Luoyang Municipal Government"]
    assert score.parties.recall == pytest.approx(2 / 3)


def test_missing_organization_shows_in_the_cli_scores(cli: Any, tmp_path: Path, gold: dict[str, GoldDocument]) -> None:
    result = result_from_gold(gold["002_58b7a0a3b69e6006"])
    result["organizations"] = result["organizations"][:1]
    result["agreement"]["parties"] = result["agreement"]["parties"][:1]
    write_output(tmp_path / "out", "002_58b7a0a3b69e6006", result)
    run = cli("eval", GOLD, tmp_path / "out")
    assert overall_lines(run.stdout)["organizations recall"] == "0.50"
    missed = run.stdout.split("Missed and extra organizations")[1].split("Overall")[0]
    assert "002_58b7a0a3b69e6006" in missed and "Zhaoqing Municipal Government" in missed
    assert "4 gold document(s) have no output" in run.stderr


def test_aliases_match_in_english_and_original_script(gold: dict[str, GoldDocument]) -> None:
    entry = gold["004_28a269a1abbfeef6"]
    result = result_from_gold(entry)
    result["organizations"] = [
        {"name": "Contemporary Amperex Technology", "name_original": "宁德时代", "type": "company", "role": "party",
         "country": None},
        {"name": "HKU", "name_original": "Universidade de Hong Kong", "type": "university", "role": "party",
         "country": None},
        {"name": "Gasgoo", "name_original": "Gasgoo", "type": "company", "role": "mentioned", "country": None},
    ]
    result["agreement"]["parties"] = ["Contemporary Amperex Technology", "HKU"]
    score = score_document("004", entry, OutputDocument(Path("x.json"), {}, result))
    assert (score.organizations.precision, score.organizations.recall) == (1.0, 1.0)  # Gasgoo is optional
    assert (score.parties.precision, score.parties.recall) == (1.0, 1.0)


def test_wrong_facts_each_cost_their_own_metric(gold: dict[str, GoldDocument]) -> None:
    entry = gold["000_f5657d2c5e6c31f2"]
    result = result_from_gold(entry)
    result["source_language"] = "uk"
    result["agreement"]["signed_on"]["year"] = 2024  # the text gives no year
    result["organizations"].append({"name": "Tesla", "name_original": "Tesla", "type": "company",
                                    "role": "mentioned", "country": None})
    result["organizations"].append({**result["organizations"][1], "name": "CATL Group"})  # CATL listed twice
    score = score_document("000", entry, OutputDocument(Path("x.json"), {}, result))
    assert score.language is False and score.date is False and score.agreement is True
    assert score.organizations.precision == pytest.approx(3 / 5)
    assert score.extra == ["Tesla", "CATL Group"]
    no_agreement = copy.deepcopy(result_from_gold(entry))
    no_agreement["agreement"] = None
    missing = score_document("000", entry, OutputDocument(Path("x.json"), {}, no_agreement))
    assert missing.agreement is False and missing.date is False and missing.parties.recall == 0.0


def test_overall_micro_averages_and_leaves_out_what_cannot_be_scored(gold: dict[str, GoldDocument]) -> None:
    scores = [score_document(stem, g, OutputDocument(Path("x.json"), {}, result_from_gold(g)))
              for stem, g in gold.items()]
    metrics = {name: (value, n) for name, value, n in overall(scores)}
    required = sum(1 for g in gold.values() for o in g.organizations if not o.optional)
    assert metrics["organizations recall"] == (1.0, required)
    assert metrics["people recall"] == (1.0, 2)  # only 001 names people
    assert metrics["signing date exact"] == (1.0, 5)


def test_broken_output_fails_and_bad_gold_is_a_usage_error(cli: Any, tmp_path: Path,
                                                           gold: dict[str, GoldDocument]) -> None:
    write_output(tmp_path / "out", "003_912c44fa5303de8d", result_from_gold(gold["003_912c44fa5303de8d"]))
    (tmp_path / "out" / "broken.json").write_text("[1, 2", "utf-8")
    run = cli("eval", GOLD, tmp_path / "out")
    assert run.code == 1 and "broken.json: not JSON" in run.stderr
    assert "003_912c44fa5303de8d" in run.stdout
    bad_gold = tmp_path / "gold.json"
    bad_gold.write_text(json.dumps({"format": "summarizer-gold/1", "documents": {"x": {"source_language": "en"}}}))
    run = cli("eval", bad_gold, tmp_path / "out")
    assert run.code == 2 and "has_agreement" in run.stderr


def test_eval_never_imports_a_schema_named_inside_an_output(cli: Any, tmp_path: Path,
                                                            gold: dict[str, GoldDocument]) -> None:
    marker = tmp_path / "imported.marker"
    evil = tmp_path / "evil_schema.py"
    evil.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
                    "from pydantic import BaseModel\nclass Article(BaseModel):\n    title: str\n", "utf-8")
    stem = "002_58b7a0a3b69e6006"
    path = write_output(tmp_path / "out", stem, result_from_gold(gold[stem]))
    envelope = json.loads(path.read_text("utf-8"))
    envelope["schema"] = {"id": "article", "version": "3", "ref": f"{evil}:Article"}
    path.write_text(json.dumps(envelope), "utf-8")
    run = cli("eval", GOLD, tmp_path / "out")
    assert not marker.exists()
    assert run.code == 0, run.stderr
    assert stem in run.stdout and overall_lines(run.stdout)["organizations recall"] == "1.00"
    assert "read as plain JSON" in run.stderr


def test_eval_scores_plain_results_of_any_shape_without_crashing(gold: dict[str, GoldDocument]) -> None:
    weird = {"organizations": [{"name": 5, "name_original": None}, "x", None], "people": {"a": 1},
             "agreement": {"parties": "CATL", "signed_on": [1]}, "source_language": ["en"]}
    score = score_document("000", gold["000_f5657d2c5e6c31f2"], OutputDocument(Path("x.json"), {}, weird))
    assert score.organizations.recall == 0.0 and score.language is False and score.parties.tp == 0


# --- trust: inventions, flagged inventions, statuses that match checks ------------------------

INVENTED = {  # seed -> verbatim values replaced by ones its text does not have (path, value)
    "000_f5657d2c5e6c31f2": [("organizations", 2, "Fangda Holdings Limited"), ("organizations", 1, "BYD")],
    "002_58b7a0a3b69e6006": [("organizations", 1, "Guangdong Energy Bureau")],
}
# The run manifest's status per seed; 004 is in no manifest. 002 keeps `passed: true` although it has
# an invention (as an output written before flagging existed would), so its invention is not flagged.
STATUSES = {"000_f5657d2c5e6c31f2": "flagged", "001_1a11767ed79f635d": "ok", "002_58b7a0a3b69e6006": "ok",
            "003_912c44fa5303de8d": "flagged"}


def verbatim_count(result: dict[str, Any]) -> int:
    """Verbatim strings in a result, counted from the schema's traits (not from the checks)."""
    return sum(1 for path in traits_of(Article).verbatim for _, v in iter_values(result, path)
               if isinstance(v, str) and v.strip())


def write_checked_outputs(folder: Path) -> dict[str, dict[str, Any]]:
    """The seed results with the inventions above, each checked for real against its seed text."""
    results = {}
    for stem, original in SEED_RESULTS.items():
        result = copy.deepcopy(original)
        for field, index, value in INVENTED.get(stem, []):
            result[field][index]["name_original"] = value
        source = SEEDS / f"{stem}.txt"
        checks = run_checks(Article.model_validate(result), load_document(str(source), source.read_bytes()))
        if stem == "002_58b7a0a3b69e6006":
            checks["passed"] = True
        envelope = {"document": {"path": f"seeds/{stem}.txt"}, "schema": {"id": "article", "version": "1"},
                    "checks": checks, "result": result}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.json").write_text(json.dumps(envelope, ensure_ascii=False), "utf-8")
        results[stem] = result
    # One manifest line per document as the runner writes it: 000 and 001 named by output file, the
    # others by input path; an older manifest's status for 001 is overridden by the newer one.
    older = folder / "run-20250101T000000-aaaaaa.jsonl"
    older.write_text(json.dumps({"path": "seeds/001_1a11767ed79f635d.txt", "status": "failed"}) + "\n", "utf-8")
    os.utime(older, (1_000_000, 1_000_000))
    lines = [{"path": f"seeds/{stem}.txt", "status": status,
              **({"output": str(folder / f"{stem}.json")} if stem < "002" else {})}
             for stem, status in STATUSES.items()]
    (folder / "run-20250102T000000-bbbbbb.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines) + '{"torn', "utf-8")
    return results


def test_trust_counts_inventions_flagged_inventions_and_matching_statuses(tmp_path: Path) -> None:
    results = write_checked_outputs(tmp_path / "out")
    loaded = load_outputs([str(tmp_path / "out")])
    statuses = RunStatuses(find_manifests([str(tmp_path / "out")]))
    trust = {Path(d.label).stem: document_trust(d, statuses.status_of(d)) for d in loaded.documents}
    assert {stem: t.inventions for stem, t in trust.items()} == {stem: len(INVENTED.get(stem, [])) for stem in results}
    assert {stem: t.verbatim for stem, t in trust.items()} == {stem: verbatim_count(r) for stem, r in results.items()}
    assert {stem: t.status for stem, t in trust.items()} == {**STATUSES, "004_28a269a1abbfeef6": None}
    totals = trust_totals(trust.values())
    assert totals.inventions == 3 and totals.verbatim == sum(map(verbatim_count, results.values()))
    assert totals.flagged_inventions == 2  # 000's two; 002 claims it passed
    # 000 flagged and failing, 001 ok and passing, 002 ok and "passing": match; 003 flagged but passing: no.
    assert (totals.status_matches, totals.with_status) == (3, 4)


def test_eval_prints_the_trust_table(cli: Any, tmp_path: Path) -> None:
    write_checked_outputs(tmp_path / "out")
    run = cli("eval", GOLD, tmp_path / "out")
    assert run.code == 0, run.stderr
    trust = {" ".join(line.split()[:-3]): line.split()[-3:] for line in run.stdout.split("Trust")[1].splitlines()
             if len(line.split()) > 3}
    verbatim = sum(map(verbatim_count, (json.loads(p.read_text("utf-8"))["result"]
                                        for p in (tmp_path / "out").glob("*.json"))))
    assert trust["inventions (verbatim values not in the source)"] == ["3", str(verbatim), f"{3 / verbatim:.2f}"]
    assert trust["inventions flagged (their document is flagged)"] == ["2", "3", "0.67"]
    assert trust["status matches checks (flagged iff checks failed)"] == ["3", "4", "0.75"]
    assert "1 scored document(s) have no run status" in run.stderr
    per_document = run.stdout.split("Per document")[1].split("Overall")[0]
    row = next(line for line in per_document.splitlines() if line.split()[:1] == ["002_58b7a0a3b69e6006"])
    assert row.split()[-1] == "1!"  # one invention its document was not flagged for


def test_outputs_written_before_evidence_count_their_unsupported_values() -> None:
    checks = {"passed": False, "unsupported": [{"field": "a", "value": "x"}, {"field": "b", "value": "y"}]}
    trust = document_trust(OutputDocument(Path("x.json"), {"checks": checks}, {}), None)
    assert (trust.inventions, trust.verbatim, trust.flagged, trust.status_matches) == (2, 2, True, None)
