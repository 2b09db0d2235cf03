"""Writers of a Report as Markdown, CSV, JSON Lines and terminal tables (HTML: report_html.py).

Sections, in every format but CSV and JSON Lines: documents (title, first date, link fields,
language, checks), summaries, one table per entity list, counted terms, the objects holding
links (a timeline when dated), unsupported facts, other failed checks. Headings and columns come
from the schema traits the documents carry. Every value goes through report_text.clean. In
Markdown and the terminal, a value the checks found nowhere in its document's source is followed
by ⚠ in the documents and entity tables (Markdown: records too, and each summary lists its
document's unsupported values); a document whose checks failed reads `flagged`, its run status.

CSV: one row per document. Columns: document, output, schema, title, summary, language, then one
column per field the documents' traits name (entity lists by their key, e.g. `companies`; link
fields, e.g. `deals.buyers`; dates as 2022-06-22 / 2022-06 / ????-02-25, e.g. `deals.closed`;
then the other English and verbatim fields, e.g. `companies.spelling`), then checks (passed |
failed | not run), failures and unsupported (counts), model, created_at. Lists are joined with "; ".
JSON Lines: one object per document with the same meta and check keys, "fields" (column -> list
of values), "check_details" (the output's `checks`) and "result".
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .report_entities import Mention
from .report_model import CHECK_COLUMNS, META_COLUMNS, DocumentRow, Report
from .report_paths import humanize
from .report_text import clean, clean_data, csv_cell

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$#])")  # inline markup, HTML, entities, tables, math on code hosts


def summary_line(report: Report) -> str:
    """One line of counts shown at the top of every report."""
    rows = report.rows
    passed = sum(1 for r in rows if r.checks == "passed")
    flagged = sum(1 for r in rows if r.flagged)
    entities = "".join(f" · {len(s.groups)} {s.title.lower()}" for s in report.entities)
    return (f"{len(rows)} document(s) · {passed} passed all checks · {flagged} flagged (failed some check) · "
            f"{len(report.unsupported)} unsupported fact(s){entities}")


FLAG = "⚠"  # after a value in Markdown and terminal tables: its document's source does not have it
FLAG_NOTE = f"{FLAG} marks a value the checks found nowhere in its document's source text."


def flagged(report: Report, value: Any, documents: list[str]) -> Any:
    """The value (each item of a list) with FLAG after it when the source of one of `documents` lacks it."""
    if isinstance(value, list):
        return [flagged(report, v, documents) for v in value]
    return f"{value} {FLAG}" if report.unsupported_in(value, documents) else value


def checks_text(row: DocumentRow) -> str:
    """`passed`, `flagged (2)` (failures), `not run`: the status a run gives such a document."""
    return ("flagged" if row.flagged else row.checks) + (f" ({row.failures})" if row.failures else "")


def overview_headers(report: Report) -> list[str]:
    """Columns of the documents table: title, first date, link fields, language, checks, document."""
    return ["Title", *(humanize(d) for d in report.dates[:1]), *(humanize(link) for link in report.links),
            "Language", "Checks", "Document"]


def overview_values(report: Report, row: DocumentRow) -> list[Any]:
    """The documents-table cells of one row (lists stay lists), after the title."""
    return [*(row.fields.get(d) or None for d in report.dates[:1]), *(row.fields.get(link) for link in report.links),
            row.language]


def mention_text(mention: Mention, *, document: bool = True) -> str:
    """`doc: steel, Germany (in deals.buyers)`: where an entity appears, its other values, what links to it."""
    details = ", ".join(mention.details) or "—"
    linked = f" (in {', '.join(mention.linked)})" if mention.linked else ""
    return (f"{mention.document}: " if document else "") + details + linked


def record_headers(section: Any) -> list[str]:
    return (["Date"] if section.dated else []) + [humanize(c) for c in section.columns] + ["Document"]


# --- Markdown ---------------------------------------------------------------------------------

def md_cell(value: Any) -> str:
    """Text for one Markdown table cell: one line, markup and `|` backslash-escaped."""
    text = " ".join(clean(value).split())
    return _MD_SPECIAL.sub(r"\\\1", text) if text else "—"


def _md_table(headers: list[str], rows: list[list[Any]], *, empty: str = "None.") -> str:
    if not rows:
        return f"_{empty}_\n"
    lines = ["| " + " | ".join(md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_markdown(report: Report) -> str:
    """GitHub-flavoured Markdown: headings and tables, every value escaped."""
    parts = ["# Summarizer report\n", md_cell(summary_line(report)) + "\n"]
    if report.unsupported:
        parts.append(md_cell(FLAG_NOTE) + "\n")
    parts += ["## Documents\n", _md_table(overview_headers(report), [
        [flagged(report, r.title, [r.document]), *flagged(report, overview_values(report, r), [r.document]),
         checks_text(r), r.document] for r in report.rows])]
    parts.append("## Summaries\n")
    for i, r in enumerate(report.rows, 1):
        parts.append(f"### {i}. {md_cell(flagged(report, r.title, [r.document]))}\n\n{md_cell(r.document)}\n\n"
                     f"{md_cell(r.summary)}\n")
        missing = [f"{value} {FLAG} ({where})" for doc, where, value in report.unsupported if doc == r.document]
        if missing:
            parts.append(f"Not found in the source: {md_cell(missing)}\n")
    for section in report.entities:
        parts += [f"## {md_cell(section.title)}\n", _md_table(["Name", "Also written as", "Documents and details"], [
            [flagged(report, g.name, g.documents),
             flagged(report, [s for s in g.spellings if s != g.name], g.documents) or None,
             [mention_text(m) for m in g.mentions]]
            for g in section.groups])]
    for terms in report.terms:
        parts += [f"## {md_cell(terms.title)}\n", _md_table([terms.title, "Documents"], [list(r) for r in terms.rows])]
    for section in report.records:
        rows = [([f"{r.date} ({flagged(report, r.date_text, [r.document])})" if r.date_text else r.date]
                 if section.dated else [])
                + [flagged(report, r.values.get(c), [r.document]) or None for c in section.columns] + [r.document]
                for r in section.records]
        parts += [f"## {md_cell(section.title)}\n", _md_table(record_headers(section), rows)]
    parts += ["## Unsupported facts\n", _md_table(["Document", "Field", "Value"], [list(u) for u in report.unsupported])]
    parts += ["## Other failed checks\n", _md_table(["Document", "Check"], [list(f) for f in report.failed_checks])]
    return "\n".join(parts)


# --- CSV and JSON Lines -----------------------------------------------------------------------

def csv_columns(report: Report) -> list[str]:
    """The CSV header: meta columns, the documents' field columns, check columns."""
    return [*META_COLUMNS, *report.columns, *CHECK_COLUMNS]


def to_csv(report: Report) -> str:
    """One row per document; see the module docstring for the columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = csv_columns(report)
    writer.writerow([csv_cell(c) for c in columns])
    for row in report.rows:
        writer.writerow([csv_cell(row.column(c)) for c in columns])
    return buffer.getvalue()


def to_jsonl(report: Report) -> str:
    """One JSON object per document: meta and check values, fields, checks and result, all cleaned."""
    lines = []
    for row, doc in zip(report.rows, report.documents):
        record = {name: row.column(name) for name in (*META_COLUMNS, *CHECK_COLUMNS)}
        record.update(fields=row.fields, check_details=doc.checks, result=doc.result)
        lines.append(json.dumps(clean_data(record), ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


# --- Terminal ---------------------------------------------------------------------------------

def _cell(value: Any) -> Text:
    if isinstance(value, Text):
        return value
    text = clean(value)
    return Text(text) if text else Text("—", style="dim")


def _rich_table(title: str, headers: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=clean(title), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for header in headers:
        table.add_column(clean(header), overflow="fold")
    for row in rows:
        table.add_row(*(_cell(cell) for cell in row))
    if not rows:
        table.caption = "none"
    return table


def terminal_renderable(report: Report) -> Group:
    """The report as rich tables; every value cleaned, none read as markup."""
    status_style = {"passed": "green", "failed": "bold red"}
    parts: list[Any] = [Text(clean(summary_line(report)))]
    parts.append(_rich_table("Documents", overview_headers(report), [
        [flagged(report, r.title, [r.document]), *flagged(report, overview_values(report, r), [r.document]),
         Text(clean(checks_text(r)), style=status_style.get(r.checks, "dim")), r.document] for r in report.rows]))
    parts.append(_rich_table("Summaries", ["Title", "Summary"], [[r.title, r.summary] for r in report.rows]))
    for section in report.entities:
        parts.append(_rich_table(section.title, ["Name", "Also written as", "Documents and details"], [
            [flagged(report, g.name, g.documents),
             flagged(report, [s for s in g.spellings if s != g.name], g.documents) or None,
             Text("\n".join(clean(mention_text(m)) for m in g.mentions))] for g in section.groups]))
    for terms in report.terms:
        parts.append(_rich_table(terms.title, [terms.title, "Documents"], [list(r) for r in terms.rows]))
    for section in report.records:
        parts.append(_rich_table(section.title, record_headers(section), [
            ([Text(clean(r.date) + (f"\n“{clean(r.date_text)}”" if r.date_text else ""))] if section.dated else [])
            + [r.values.get(c) or None for c in section.columns] + [r.document] for r in section.records]))
    parts.append(_rich_table("Unsupported facts", ["Document", "Field", "Value"],
                             [[doc, where, Text(clean(value), style="bold red")]
                              for doc, where, value in report.unsupported]))
    parts.append(_rich_table("Other failed checks", ["Document", "Check"], [list(f) for f in report.failed_checks]))
    return Group(*parts)
