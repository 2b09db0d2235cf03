"""`summarizer report` over hostile outputs: files are data, never code; bad files are skipped; values are inert."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from summarizer.artifacts import load_schema
from summarizer.report_text import clean, csv_cell, is_formula

FORMATS = ["md", "html", "csv", "jsonl", None]
SUMMARY = "A plain summary of the document. It has two sentences."


def plain_envelope(result: dict[str, Any], source: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"document": {"path": source}, "schema": schema, "checks": {"passed": True, "unsupported": [],
                                                                          "failures": []}, "result": result}


def evil_schema_file(tmp_path: Path) -> tuple[Path, Path]:
    """A schema file that writes a marker file when imported; returns (file, marker)."""
    marker = tmp_path / "imported.marker"
    evil = tmp_path / "evil_schema.py"
    evil.write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('the report imported me')\n"
        "from pydantic import BaseModel\n"
        "class Model(BaseModel):\n"
        "    title: str\n", "utf-8")
    return evil, marker


def report(cli: Any, folder: Path, fmt: str | None, *extra: Any) -> Any:
    return cli("report", folder, *(["--format", fmt] if fmt else []), *extra)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_schema_named_inside_an_output_is_never_imported(cli: Any, tmp_path: Path, fmt: str | None) -> None:
    evil, marker = evil_schema_file(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    traits = {"title": "title", "summary": "summary", "entities": {"things": "name"}}
    documents = {
        # A user's schema id, its file named in "ref", its traits in the envelope.
        "own.json": ({"id": "model", "version": "0", "ref": f"{evil}:Model", "traits": traits}, "Own schema document"),
        # A file that reuses a built-in id: still not the built-in model, and never imported.
        "shadow.json": ({"id": "article", "version": "3", "ref": f"{evil}:Model"}, "Shadowing document"),
    }
    for name, (schema, title) in documents.items():
        result = {"title": title, "summary": SUMMARY, "things": [{"name": "Widget"}]}
        (out / name).write_text(json.dumps(plain_envelope(result, f"{name}.txt", schema)), "utf-8")
    run = report(cli, out, fmt)
    assert not marker.exists()
    assert run.code == 0, run.stderr
    assert "Own schema document" in run.stdout and "Shadowing document" in run.stdout
    assert "Widget" in run.stdout  # the entity list its traits name
    assert "read as plain JSON" in run.stderr and "never imported" in run.stderr


def test_a_schema_given_on_the_command_line_validates_its_documents(cli: Any, tmp_path: Path) -> None:
    schema = tmp_path / "invoice.py"
    schema.write_text(
        "from typing import Annotated, ClassVar\n"
        "from pydantic import BaseModel, Field\n"
        "from summarizer.traits import Title, Summary\n"
        "class Invoice(BaseModel):\n"
        "    SCHEMA_ID: ClassVar[str] = 'invoice'\n"
        "    headline: Annotated[str, Title()]\n"
        "    gist: Annotated[str, Summary()] = Field(min_length=20)\n", "utf-8")
    out = tmp_path / "out"
    out.mkdir()
    block = {"id": "invoice", "version": "0", "ref": f"{schema}:Invoice",
             "traits": {"title": "headline", "summary": "gist"}}
    (out / "good.json").write_text(json.dumps(plain_envelope({"headline": "Good invoice", "gist": SUMMARY},
                                                             "good.txt", block)), "utf-8")
    (out / "bad.json").write_text(json.dumps(plain_envelope({"headline": "Bad invoice", "gist": "short"},
                                                            "bad.txt", block)), "utf-8")
    unchecked = cli("report", out, "--format", "md")
    assert unchecked.code == 0 and "Bad invoice" in unchecked.stdout  # plain JSON: shown, not judged
    checked = cli("report", out, "--format", "md", "--schema", f"{schema}:Invoice")
    assert checked.code == 1
    assert f"{out / 'bad.json'}: result does not match schema 'invoice'" in checked.stderr
    # The command line's schema gives the traits: its title and summary fields.
    assert "Good invoice" in checked.stdout and SUMMARY in checked.stdout and "Bad invoice" not in checked.stdout
    other = cli("report", out, "--format", "md", "--schema", "generic")
    assert "matched no document" in other.stderr


def write_good(out: Path, title: str = "A good document") -> None:
    traits = load_schema("generic").traits.as_dict()
    result = {"title": title, "summary": SUMMARY, "source_language": "en", "key_points": ["One point."],
              "entities": []}
    (out / "good.json").write_text(json.dumps(plain_envelope(result, "good.txt", {"id": "generic", "version": "2",
                                                                                  "traits": traits})), "utf-8")


def test_hostile_files_are_reported_and_skipped(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_good(out)
    (out / "latin1.json").write_bytes(b'{"title": "caf\xe9"}')
    (out / "deep.json").write_text("[" * 100_000, "utf-8")
    (out / "deep_valid.json").write_text("[" * 100 + "]" * 100, "utf-8")
    (out / "nan.json").write_text('{"schema": {"id": "x"}, "result": {"n": NaN}}', "utf-8")
    with open(out / "huge.json", "wb") as handle:
        handle.truncate(33 * 1024 * 1024)  # sparse: large to stat, nothing on disk
    (out / "dangling.json").symlink_to(tmp_path / "missing-target")
    os.mkfifo(out / "fifo.json")  # opening it for reading would block a careless reader forever
    run = cli("report", out, "--format", "md")
    assert run.code == 1
    assert "A good document" in run.stdout and SUMMARY in run.stdout
    expected = {"latin1.json": "not UTF-8 text", "deep.json": "nested too deeply",
                "deep_valid.json": "nested too deeply", "nan.json": "NaN is not a JSON number",
                "huge.json": "larger than 32 MiB", "dangling.json": "cannot read", "fifo.json": "not a regular file"}
    lines = run.stderr.splitlines()
    for name, reason in expected.items():
        assert any(line.startswith(f"{out / name}: ") and reason in line for line in lines), name
    assert f"{len(expected)} file(s) could not be read" in run.stderr


HOSTILE = ("\x1b[2J\x1b[H", "\x1b]0;pwned title\x07", "\x1b]8;;http://evil\x1b\\", "\x9b31m", "\u202e", "\u2066",
           "\x00", "\r", "\x07", "\x85", "\ud800")


def hostile(text: str) -> str:
    return "".join(f"{piece}{text}" for piece in HOSTILE)


def test_clean_removes_every_escape_control_and_override() -> None:
    cleaned = clean(hostile("x"))
    assert cleaned == "xxx31mxxxxxxxx"  # a C1 CSI loses its introducer; its parameters stay, inert
    assert clean(["a\x1b[31m", None, "b"]) == "a; b"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_strips_escapes_controls_and_bidi_overrides(cli: Any, tmp_path: Path, fmt: str | None) -> None:
    out = tmp_path / "out"
    out.mkdir()
    traits = load_schema("generic").traits.as_dict()
    result = {"title": hostile("Title"), "summary": hostile("Summary text of this document."),
              "source_language": hostile("en"), "key_points": [hostile("Point")],
              "entities": [{"name": hostile("Entity"), "name_original": hostile("Orig"), "type": hostile("other")}]}
    envelope = plain_envelope(result, hostile("source.txt"), {"id": hostile("generic"), "version": "2",
                                                              "traits": traits})
    envelope["checks"] = {"passed": False, "unsupported": [{"field": hostile("f"), "value": hostile("v")}],
                          "failures": [hostile("failure")]}
    (out / "evil.json").write_text(json.dumps(envelope), "utf-8")
    target = tmp_path / "report.out"
    run = report(cli, out, fmt, *(["-o", target] if fmt else []))
    assert run.code == 0, run.stderr
    text = target.read_text("utf-8") if fmt else run.stdout  # written as UTF-8: no lone surrogate left
    strings = [text]
    if fmt == "jsonl":  # JSON escapes controls as \u001b: look at the decoded values too
        strings += list(_strings(json.loads(text)))
    for value in strings:
        assert not any(ch in value for ch in "\x1b\x9b\x00\x07\r\x85\u202e\u2066"), fmt
        assert "\ud800" not in value
    assert "Title" in text and "Entity" in text and "Summary text" in text


def _strings(value: Any) -> Any:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


FORMULAS = ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "＝1+1", "＋cmd", "－2", "＠SUM(A1)", "﹦1", "\t=1", " =1",
            "\u200b=1", "\u3000＝1"]


@pytest.mark.parametrize("value", FORMULAS)
def test_csv_cell_neutralizes_formulas(value: str) -> None:
    assert is_formula(value)
    assert csv_cell(value) == "'" + clean(value)


def test_csv_cell_leaves_plain_text_alone() -> None:
    for value in ("CATL", "2022-06-22", "R&D; batteries", "宁德时代", "'quoted"):
        assert csv_cell(value) == value
    assert csv_cell("\r=1") == "'=1"  # the carriage return goes, the formula is still caught


def test_csv_report_neutralizes_formulas_in_every_column(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    traits = load_schema("generic").traits.as_dict()
    for i, value in enumerate(FORMULAS):
        result = {"title": value, "summary": value, "source_language": "en", "key_points": [value],
                  "entities": [{"name": value, "name_original": value, "type": "other"}]}
        envelope = plain_envelope(result, value, {"id": "formulas", "version": "1", "traits": traits})
        (out / f"doc{i:02d}.json").write_text(json.dumps(envelope), "utf-8")
    run = cli("report", out, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert len(rows) == len(FORMULAS)
    for row in rows:
        for column in ("document", "title", "summary", "key_points", "entities", "entities.name_original"):
            assert row[column].startswith("'"), (column, row[column])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_reported_and_skipped(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_good(out)
    locked = out / "locked.json"
    locked.write_text("{}", "utf-8")
    locked.chmod(0)
    run = cli("report", out, "--format", "md")
    assert run.code == 1 and "A good document" in run.stdout
    assert f"{locked}: cannot read (Permission denied)" in run.stderr


def test_report_modules_import_no_cycle() -> None:
    import ast

    package = Path(__file__).resolve().parent.parent / "summarizer"
    names = [p.stem for p in package.glob("report*.py")] + ["evaluate"]
    graph = {name: {node.module for node in ast.walk(ast.parse((package / f"{name}.py").read_text("utf-8")))
                    if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module in names}
             for name in names}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start])

    assert {"report", "report_load", "report_model", "report_formats", "report_html"} <= set(names)
    assert not [name for name in names if reaches(name, name, set())]
