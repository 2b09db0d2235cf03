"""The export command: real outputs into SQLite, queried with sqlite3; user schemas; hostile files."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


from summarizer.loopback import SAMPLE_ARTICLE, Reply

from .helpers import SEED_FILES

PARTIES_QUERY = """
SELECT value AS organization, COUNT(DISTINCT document_id) AS documents
FROM links WHERE link = ? GROUP BY value ORDER BY documents DESC, organization
"""


def org(name: str, original: str, kind: str = "company", role: str = "party", country: str | None = "China") -> dict:
    return {"name": name, "name_original": original, "type": kind, "role": role, "country": country}


def article(title: str, summary: str, language: str, orgs: list[dict], parties: list[str], **more: Any) -> dict:
    agreement = {"kind": "strategic cooperation agreement", "parties": parties, "signed_on": more.pop("signed_on", None),
                 "place": None, "term_years": None, "areas": more.pop("areas", ["energy storage"])}
    return {"title": title, "summary": summary, "source_language": language, "organizations": orgs,
            "people": more.pop("people", []), "agreement": agreement, "key_figures": more.pop("key_figures", []),
            "topics": more.pop("topics", ["batteries"])}


# One grounded answer per seed: every name_original / as_written / value occurs in that seed.
SEED_ANSWERS: dict[str, dict] = {
    "CECEP": article(
        "CECEP and CATL sign a strategic agreement on energy storage",
        "China Energy Conservation and Environmental Protection Group and CATL signed a strategic agreement. "
        "They will cooperate on energy storage technology and projects.", "ru",
        [org("China Energy Conservation and Environmental Protection Group",
             "Китайская группа по энергосбережению и охране окружающей среды", "government"), org("CATL", "CATL")],
        ["China Energy Conservation and Environmental Protection Group", "CATL"],
        signed_on={"year": None, "month": 2, "day": 25, "as_written": "25 февраля"},
        key_figures=[{"value": "700", "meaning": "subsidiaries of CECEP"}]),
    "Henan": article(
        "CATL signs a framework agreement with Henan and Luoyang",
        "CATL signed a framework agreement on strategic cooperation with the Henan provincial government. "
        "A second agreement was made with the Luoyang city government.", "de",
        [org("CATL", "Contemporary Amperex Technology Co., Limited"),
         org("Henan Provincial Government", "Provinzregierung von Henan", "government"),
         org("Luoyang Municipal Government", "Stadtverwaltung von Luoyang", "government")],
        ["CATL", "Henan Provincial Government", "Luoyang Municipal Government"],
        signed_on={"year": 2022, "month": 6, "day": 22, "as_written": "22.06.2022"},
        people=[{"name": "Robin Zeng", "name_original": "Robin Zeng", "title": "Chairman", "organization": "CATL"}]),
    "Zhaoqing": SAMPLE_ARTICLE,
    "Lanzhou": article(
        "CATL and Lanzhou agree on zero-carbon cooperation",
        "CATL signed a strategic cooperation agreement with the Lanzhou municipal government. "
        "It covers battery after-sales services, electric transport and a zero-carbon city.", "pt",
        [org("CATL", "CATL"), org("Lanzhou Municipal Government", "Governo Municipal de Lanzhou", "government")],
        ["CATL", "Lanzhou Municipal Government"],
        signed_on={"year": None, "month": 5, "day": 29, "as_written": "29 de maio"}),
    "Hong Kong": article(
        "CATL and the University of Hong Kong form a zero-carbon alliance",
        "CATL signed a strategic cooperation agreement with the University of Hong Kong. "
        "They will set up a zero-carbon innovation centre and an industrial alliance.", "pt",
        [org("CATL", "CATL"), org("University of Hong Kong", "Universidade de Hong Kong", "university"),
         org("WeChat", "WeChat", role="mentioned")],
        ["CATL", "University of Hong Kong"]),
}


def per_seed(answers: dict[str, dict]):
    """A responder answering each seed with its own grounded article."""
    def respond(body: dict) -> Reply:
        text = body["messages"][-1]["content"]
        marker = next(m for m in answers if m in text)
        return Reply.json(answers[marker])
    return respond


def summarize_seeds(cli, server, out: Path, *extra: str) -> None:
    result = cli("summarize", *SEED_FILES, "--base-url", server.url, "--out", out, "--tables", "never", *extra)
    assert result.code == 0, result.stderr


def signed_counts(out: Path, list_path: str) -> Counter:
    """Independently of the export: in how many outputs each value of a list of parties appears."""
    counts: Counter = Counter()
    for path in out.glob("*.json"):
        node = json.loads(path.read_text("utf-8"))["result"]
        for step in list_path.split("."):
            node = (node or {}).get(step)
        counts.update(set(node or []))
    return counts


def query(db: Path, sql: str, *params: Any) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, params).fetchall()


def dump(db: Path) -> list[str]:
    connection = sqlite3.connect(db)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def sqlite_cli(db: Path, sql: str) -> list[tuple[str, int]]:
    done = subprocess.run(["sqlite3", "-separator", "\t", str(db), sql], capture_output=True, text=True, timeout=30,
                          check=True)
    return [(name, int(n)) for name, n in (line.split("\t") for line in done.stdout.splitlines())]


def test_seeds_export_answers_which_organizations_signed_in_how_many_documents(cli, server, tmp_path):
    out, db = tmp_path / "out", tmp_path / "results.sqlite"
    server.responder = per_seed(SEED_ANSWERS)
    summarize_seeds(cli, server, out)
    result = cli("export", out, "-o", db)
    assert result.code == 0, result.stderr
    assert "5 document(s) exported" in result.stderr

    expected = signed_counts(out, "agreement.parties")
    assert expected["CATL"] == 5 and len(expected) == 7  # the fixture is what the test thinks it is
    rows = query(db, PARTIES_QUERY, "agreement.parties[]")
    assert dict(rows) == dict(expected)
    assert [n for _, n in rows] == sorted(expected.values(), reverse=True)
    # The same answer from the plain child table, and through the link to the organization it names.
    assert dict(query(db, "SELECT value, COUNT(DISTINCT document_id) FROM agreement_parties GROUP BY value")) \
        == dict(expected)
    joined = query(db, """SELECT o.name, o.role, COUNT(DISTINCT l.document_id) FROM links l
                          JOIN organizations o ON o.document_id = l.document_id AND o.position = l.target_position
                          WHERE l.target_table = 'organizations' GROUP BY o.name, o.role""")
    assert {(name, n) for name, role, n in joined} == set(expected.items())
    assert {role for _, role, _ in joined} == {"party"}  # WeChat, only mentioned, signed nothing
    if shutil.which("sqlite3"):
        sql = PARTIES_QUERY.replace("?", "'agreement.parties[]'")
        assert dict(sqlite_cli(db, sql)) == dict(expected)

    documents = query(db, "SELECT document_path, status, checks_passed, title, source_language, schema_id, "
                          "agreement_signed_on_month, result_json FROM documents ORDER BY id")
    assert [Path(d[0]).name for d in documents] == [p.name for p in SEED_FILES]
    assert {(d[1], d[2], d[5]) for d in documents} == {("ok", 1, "article")}
    outputs = [json.loads((out / f"{p.stem}.json").read_text("utf-8"))["result"] for p in SEED_FILES]
    assert [(d[3], d[4]) for d in documents] == [(o["title"], o["source_language"]) for o in outputs]
    assert [d[6] for d in documents] == [((o["agreement"] or {}).get("signed_on") or {}).get("month") for o in outputs]
    assert [json.loads(d[7]) for d in documents] == outputs
    # Every organization of every output is one row, its fields in columns.
    organizations = query(db, "SELECT name, name_original, type FROM organizations ORDER BY document_id, position")
    assert organizations == [(o["name"], o["name_original"], o["type"]) for r in outputs for o in r["organizations"]]
    assert query(db, "SELECT value, meaning FROM key_figures") == [("700", "subsidiaries of CECEP")]
    assert query(db, "SELECT COUNT(*) FROM unsupported") == [(0,)]
    # Titles and summaries are searchable (FTS5, where SQLite has it; Datasette offers a search box).
    if query(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'documents_fts'") == [(1,)]:
        assert query(db, "SELECT title FROM documents_fts WHERE documents_fts MATCH 'Lanzhou'") \
            == [(SEED_ANSWERS["Lanzhou"]["title"],)]


USER_SCHEMA = '''
import os
from typing import Annotated
from pydantic import BaseModel, ConfigDict, Field
from summarizer.traits import English, Key, LinksTo, Summary, Title, Verbatim

if os.environ.get("EXPORT_TEST_MARKER"):  # proves the export never imports this file
    open(os.environ["EXPORT_TEST_MARKER"], "w").write("imported")


class Company(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Annotated[str, English(), Key()] = Field(description="Company name in English.")
    as_written: Annotated[str, Verbatim()] = Field(description="The name as written in the source.")
    sector: str | None = Field(description="Sector, or null.")


class Money(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: float | None = Field(description="Amount, or null.")
    currency: str | None = Field(description="Currency code, or null.")


class Deal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    headline: Annotated[str, Title(), English()] = Field(description="Headline in English.")
    gist: Annotated[str, Summary(), English()] = Field(description="Two sentences in English.")
    companies: list[Company] = Field(description="Companies named in the text.")
    signatories: list[Annotated[str, LinksTo("companies[].label")]] = Field(description="Labels of the signers.")
    value: Money | None = Field(description="The deal's value, or null.")
'''


def deal(headline: str, companies: list[tuple[str, str]], signatories: list[str], amount: float | None = None) -> dict:
    return {"headline": headline, "gist": f"{headline}. The source says so.",
            "companies": [{"label": label, "as_written": written, "sector": None} for label, written in companies],
            "signatories": signatories, "value": {"amount": amount, "currency": "CNY"} if amount else None}


DEAL_ANSWERS = {
    "CECEP": deal("CECEP and CATL sign", [("CECEP", "CECEP"), ("CATL", "CATL")], ["CECEP", "CATL"], 12.5),
    "Henan": deal("CATL signs with Henan", [("CATL", "CATL"), ("Henan", "Henan")], ["catl", "Henan"]),
    "Zhaoqing": deal("CATL and Zhaoqing", [("CATL", "CATL"), ("Zhaoqing", "Zhaoqing")], ["CATL", "Zhaoqing"]),
    "Lanzhou": deal("CATL and Lanzhou", [("CATL", "CATL"), ("Lanzhou", "Lanzhou")], ["Lanzhou"]),
    "Hong Kong": deal("CATL and HKU", [("CATL", "CATL"), ("HKU", "HKU")], []),
}


def test_user_schema_export_is_built_from_its_traits_and_never_imports_it(cli, server, tmp_path, monkeypatch):
    schema = tmp_path / "deal_schema.py"
    schema.write_text(USER_SCHEMA)
    out, db, marker = tmp_path / "out", tmp_path / "deals.sqlite", tmp_path / "imported.txt"
    server.responder = per_seed(DEAL_ANSWERS)
    summarize_seeds(cli, server, out, "--schema", f"{schema}:Deal")
    loaded = {name for name, module in sys.modules.items() if str(getattr(module, "__file__", "")) == str(schema)}
    for name in loaded:  # as a fresh process would be: the schema module not imported yet
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setenv("EXPORT_TEST_MARKER", str(marker))
    result = cli("export", out, "-o", db)
    assert result.code == 0, result.stderr
    assert not marker.exists()
    assert not any(str(getattr(m, "__file__", "")) == str(schema) for m in list(sys.modules.values()))

    expected = signed_counts(out, "signatories")
    assert expected["CATL"] == 2 and expected["catl"] == 1  # the fixture is what the test thinks it is
    assert dict(query(db, PARTIES_QUERY, "signatories[]")) == dict(expected)
    # Through the link, "catl" is the company keyed "CATL": the Key field names it.
    by_key = query(db, "SELECT target_key, COUNT(DISTINCT document_id) FROM links WHERE link = 'signatories[]' "
                       "GROUP BY target_key ORDER BY target_key")
    folded: Counter = Counter()
    for path in out.glob("*.json"):
        result_data = json.loads(path.read_text("utf-8"))["result"]
        labels = {c["label"].casefold(): c["label"] for c in result_data["companies"]}
        folded.update({labels[s.casefold()] for s in result_data["signatories"]})
    assert dict(by_key) == dict(folded) and folded["CATL"] == 3
    # Title and summary come from the Title/Summary traits; the Key field is indexed.
    titles = query(db, "SELECT title, summary, schema_id FROM documents ORDER BY id")
    assert {t[0] for t in titles} == {d["headline"] for d in DEAL_ANSWERS.values()}
    assert {t[2] for t in titles} == {"deal"}
    assert query(db, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'companies' "
                 "AND sql IS NOT NULL") \
        == [("idx_companies_label",)]
    assert query(db, "SELECT label, as_written FROM companies WHERE document_id = 1") == [("CECEP", "CECEP"),
                                                                                           ("CATL", "CATL")]
    # A nested object becomes columns of the documents table, named after its path.
    assert sorted(query(db, "SELECT value_amount, value_currency FROM documents WHERE value_amount IS NOT NULL")) \
        == [(12.5, "CNY")]
    assert ("documents", "value_amount", "value.amount") in query(db, "SELECT * FROM export_columns")


def test_export_is_idempotent_and_independent_of_argument_order(cli, server, tmp_path):
    out, db = tmp_path / "out", tmp_path / "results.sqlite"
    server.responder = per_seed(SEED_ANSWERS)
    summarize_seeds(cli, server, out)
    assert cli("export", out, "-o", db).code == 0
    first = dump(db)
    assert cli("export", out, "-o", db).code == 0
    assert dump(db) == first
    files = sorted(out.glob("*.json"), reverse=True)
    assert cli("export", *files, "-o", db).code == 0
    assert dump(db) == first
    # The same outputs twice (a copied folder): one row per document, the newest kept.
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    both = cli("export", out, copy, "-o", db)
    assert both.code == 0 and "5 output(s) repeat another output" in both.stderr
    assert query(db, "SELECT COUNT(*) FROM documents") == [(5,)]
    assert query(db, "SELECT COUNT(*) FROM organizations") == [(len(first_rows(first, "organizations")),)]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


def first_rows(lines: list[str], table: str) -> list[str]:
    return [line for line in lines if line.startswith(f'INSERT INTO "{table}"')]


def envelope(name: str, result: dict, **schema: Any) -> dict:
    """An output document shaped like a real one, for a document `name` of its own."""
    return {"document": {"path": name, "sha256": name * 64}, "schema": {"id": "article", **schema},
            "checks": {"passed": False, "unsupported": [{"field": "organizations[0].name_original", "value": "X"}]},
            "result": result}


def test_hostile_output_files_are_skipped_or_stored_as_data_never_executed(cli, server, tmp_path):
    out, db = tmp_path / "out", tmp_path / "results.sqlite"
    server.responder = per_seed(SEED_ANSWERS)
    summarize_seeds(cli, server, out)
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('executed')\nfrom pydantic import BaseModel\n"
                    "class Model(BaseModel):\n    x: int = 0\n")
    (out / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    deep = '{"a": ' * 40 + "1" + "}" * 40  # deeper than the columns go (8), within what is read (64)
    (out / "deep_result.json").write_text(json.dumps(envelope("d", {})).replace('"result": {}', f'"result": {deep}'))
    (out / "latin1.json").write_bytes(b'{"schema": {"id": "article"}, "result": {"title": "Z\xfcrich"}}')
    (out / "not_output.json").write_text('{"hello": "world"}')
    (out / "nan.json").write_text(json.dumps(envelope("z", {"x": float("nan")})))
    # schema.ref (and an id) naming a Python file: never loaded; a built-in id without traits gets the built-in's.
    (out / "evil_ref.json").write_text(json.dumps(envelope("r", {"title": "evil"}, ref=f"{evil}:Model")))
    (out / "evil_id.json").write_text(json.dumps(envelope("i", {"title": "evil id"}, id=f"{evil}:Model",
                                                          ref=f"{evil}:Model")))
    (out / "evil_traits.json").write_text(json.dumps({
        **envelope("t", {"title": "t", 'we"ird': 2**80, "lone": "\ud800", "sqlite_master": 1,
                         "list": [{"position": 1, "document_id": 2}, "scalar", [1, 2]],
                         **{f"k{i}": i for i in range(2100)}}),
        "schema": {"id": "article", "ref": f"{evil}:Model", "version": {"x": 1},
                   "traits": {"title": "title", "links": {"list[]": "nowhere[].x", 1: 2}, "entities": "nope"}}}))
    (out / os.fsdecode(b"name_\xff.json")).write_text(json.dumps(envelope("n", {"title": "odd name"})))
    (out / "huge.json").write_bytes(b" " * (33 * 1024 * 1024))
    os.mkfifo(out / "pipe.json")
    result = cli("export", out, "-o", db)
    assert result.code == 1  # some files were left out; the rest is exported
    assert not marker.exists()
    err = " ".join(result.stderr.split())
    for name, reason in [("deep.json", "nested too deeply"), ("nan.json", "not JSON (NaN"),
                             ("latin1.json", "not UTF-8"),
                         ("not_output.json", "not a summarizer output"), ("huge.json", "larger than 32 MiB"),
                         ("pipe.json", "not a regular file")]:
        assert f"{name}: {reason}" in err
    assert "left out (still in result_json)" in err  # 2,100 fields: the columns were capped
    assert query(db, "SELECT COUNT(*) FROM documents") == [(10,)]
    assert query(db, "SELECT output_file FROM documents WHERE title = 'odd name'") == [(str(out / "name_\\xff.json"),)]
    assert query(db, "SELECT title FROM documents WHERE document_path IN ('r', 'i') ORDER BY document_path") \
        == [("evil id",), ("evil",)]  # no traits: the built-in's, else a top-level "title"
    assert query(db, "SELECT schema_id FROM documents WHERE document_path = 'i'") == [(f"{evil}:Model",)]
    row = query(db, "SELECT we_ird, lone, t_sqlite_master, status, schema_version FROM documents "
                    "WHERE title = 't'")
    assert row == [(str(2**80), "?", 1, "flagged", None)]
    assert query(db, "SELECT position, position_2, document_id_2, value FROM list") == [
        (0, 1, 2, None), (1, None, None, "scalar"), (2, None, None, "[1, 2]")]
    assert query(db, "SELECT COUNT(*) FROM unsupported") == [(5,)]
    stored = query(db, "SELECT result_json FROM documents WHERE document_path = 'd'")
    assert json.loads(stored[0][0]) == json.loads(deep)


def test_export_refuses_what_it_cannot_do_with_exit_2(cli, tmp_path):
    no_outputs = cli("export")
    assert no_outputs.code == 2 and "no outputs given" in no_outputs.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = cli("export", empty, "-o", tmp_path / "r.sqlite")
    assert nothing.code == 2 and "no output documents to export" in nothing.stderr
    assert not (tmp_path / "r.sqlite").exists()
    precious = tmp_path / "precious.db"
    sqlite3.connect(precious).execute("CREATE TABLE mine (x)").connection.commit()
    before = precious.read_bytes()
    refused = cli("export", empty, "-o", precious)
    assert refused.code == 2 and "not a database written by `summarizer export`" in refused.stderr
    assert precious.read_bytes() == before
    duck = cli("export", empty, "-o", tmp_path / "r.duckdb")
    assert duck.code == 2 and "ATTACH" in duck.stderr
    assert cli("export", empty, "-o", tmp_path / "missing" / "r.sqlite").code == 2


def test_tables_the_traits_declare_exist_before_any_output_has_values(cli, tmp_path):
    from summarizer.artifacts import load_schema

    out, db = tmp_path / "out", tmp_path / "results.sqlite"
    out.mkdir()
    traits = load_schema("article").traits.as_dict()
    result = {**SAMPLE_ARTICLE, "organizations": [], "agreement": None, "key_figures": [], "topics": []}
    (out / "a.json").write_text(json.dumps(envelope("a", result, traits=traits)))
    assert cli("export", out, "-o", db).code == 0
    # The same query as for a full corpus: no rows rather than "no such table".
    assert query(db, PARTIES_QUERY, "agreement.parties[]") == []
    assert query(db, "SELECT COUNT(*) FROM agreement_parties") == [(0,)]
    columns = {name for _, name, *_ in query(db, "PRAGMA table_info(organizations)")}
    assert {"name", "name_original"} <= columns
    assert "agreement_kind" in {name for _, name, *_ in query(db, "PRAGMA table_info(documents)")}


def test_an_output_that_says_passed_but_lists_unsupported_facts_is_never_ok(cli, tmp_path):
    # As outputs written before flagging existed say: `passed: true` beside a fact not in the source.
    out = tmp_path / "out"
    out.mkdir()
    old = envelope("old", article("Old deal", "An old output. It was written before flagging.", "en", [org("X Corp", "X")],
                                  ["X Corp"]))
    old["checks"]["passed"] = True
    (out / "old.json").write_text(json.dumps(old))
    assert cli("export", out, "-o", tmp_path / "r.sqlite").code == 0
    assert query(tmp_path / "r.sqlite", "SELECT status, checks_passed FROM documents") == [("flagged", 1)]
    line = json.loads(cli("report", out, "--format", "jsonl").stdout)
    assert line["checks"] == "failed" and line["unsupported"] == 1


def test_a_party_named_as_the_source_spells_its_organization_is_linked_as_the_checks_accept(cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = article("A deal", "Two parties signed. The source says so.", "en",
                     [org("CATL", "Contemporary Amperex"), org("Zhaoqing", "municipal government of Zhaoqing")],
                     ["CATL", "municipal government of Zhaoqing"])
    (out / "deal.json").write_text(json.dumps({**envelope("deal", result), "checks": {"passed": True}}))
    assert cli("export", out, "-o", tmp_path / "r.sqlite").code == 0
    rows = query(tmp_path / "r.sqlite", "SELECT value, target_position, target_key FROM links ORDER BY value")
    assert rows == [("CATL", 0, "CATL"), ("municipal government of Zhaoqing", 1, "Zhaoqing")]
    md = cli("report", out, "--format", "md").stdout
    assert md.count("(in agreement.parties)") == 2
