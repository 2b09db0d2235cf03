"""Writers of a Report: html, md, csv, jsonl, and rich tables for the terminal.

Every value comes from a model or a file, so every writer treats it as untrusted text: HTML
escapes it (and a Content-Security-Policy forbids scripts besides), Markdown backslash-escapes
inline markup and `|`, CSV neutralizes spreadsheet formulas, the terminal strips escape codes.

CSV columns (one row per document, lists joined with "; "), in this order:
  document, output, schema, title, date, date_as_written, agreement, parties, place, organizations,
  people, areas, topics, language, checks, failures, unsupported, model, created_at
where date is 2022-06-22 / 2022-06 / ????-02-25 (unknown parts), checks is passed|failed|not run,
and failures / unsupported count the failed checks and the values not found in the source.
JSON Lines: one object per document with the same keys (lists as lists, counts as numbers), plus
"check_details" (the output's `checks`) and "result".
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .render import make_console, safe
from .report import OrganizationGroup, Report

CSV_COLUMNS = ("document", "output", "schema", "title", "date", "date_as_written", "agreement", "parties", "place",
               "organizations", "people", "areas", "topics", "language", "checks", "failures", "unsupported",
               "model", "created_at")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$])")  # inline markup, HTML, entities, tables, math on code hosts
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def plain(value: Any) -> str:
    """Display text: lists joined with "; " (names have commas), control characters and escapes removed."""
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value) if value else None
    return safe(value).plain


def _summary_line(report: Report) -> str:
    rows = report.overview
    passed = sum(1 for r in rows if r["checks"] == "passed")
    failed = sum(1 for r in rows if r["checks"] == "failed")
    return (f"{len(rows)} document(s) · {passed} passed all checks · {failed} failed some check · "
            f"{len(report.unsupported)} unsupported fact(s) · {len(report.organizations)} organization(s)")


def _role(role: str, kind: str, country: str) -> str:
    details = ", ".join(x for x in (kind, country) if x)
    return (role or "?") + (f" ({details})" if details else "")


def _mentions(group: OrganizationGroup) -> list[str]:
    return [f"{doc}: {_role(*rest)}" for doc, *rest in group.mentions]


# --- HTML -------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; --line: #d8dee4; --muted: #57606a; --bad: #b42318; --good: #1a7f37; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "Noto Sans", sans-serif;
       color: #1f2328; background: #f6f8fa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; min-height: 100vh; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.lead, .muted, .path { color: var(--muted); }
.path { font-size: 12px; font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; word-break: break-all; }
nav a { margin-right: 14px; }
a, a.path { color: #0969da; text-decoration: none; }
table { width: 100%; border-collapse: collapse; margin: 4px 0 8px; }
th, td { text-align: left; vertical-align: top; padding: 6px 10px; border-bottom: 1px solid var(--line);
         overflow-wrap: anywhere; }
th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td.num { text-align: right; white-space: nowrap; }
td.date { white-space: nowrap; font-variant-numeric: tabular-nums; }
ul.cell { margin: 0; padding-left: 18px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
         white-space: nowrap; }
.passed { background: #dafbe1; color: var(--good); }
.failed { background: #ffebe9; color: var(--bad); }
.notrun { background: #eaeef2; color: var(--muted); }
mark.bad { background: #ffebe9; color: var(--bad); border: 1px solid #ffcecb; border-radius: 4px; padding: 0 4px; }
.columns { display: flex; gap: 32px; flex-wrap: wrap; }
.columns > div { flex: 1 1 320px; }
"""


def _e(value: Any) -> str:
    return html.escape(plain(value), quote=True)


def _html_table(headers: list[str], rows: list[list[str]], *, empty: str = "None.") -> str:
    # Cells arrive already escaped: they may hold the small bits of markup this module builds.
    if not rows:
        return f'<p class="muted">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in row) + "</tr>"
                     for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _html_list(values: list[Any]) -> str:
    if not values:
        return '<span class="muted">—</span>'
    return '<ul class="cell">' + "".join(f"<li>{_e(v)}</li>" for v in values) + "</ul>"


def to_html(report: Report) -> str:
    """One self-contained page: inline CSS, no scripts, no external assets, every value escaped."""
    anchors: dict[str, str] = {}
    for i, row in enumerate(report.overview):
        anchors.setdefault(row["document"], f"doc-{i + 1}")

    def doc_link(label: str) -> str:
        return (f'<a class="path" href="#{anchors[label]}">{_e(label)}</a>' if label in anchors
                else f'<span class="path">{_e(label)}</span>')

    overview = []
    for i, row in enumerate(report.overview):
        css = {"passed": "passed", "failed": "failed"}.get(row["checks"], "notrun")
        badge = row["checks"] + (f" ({row['failures']})" if row["failures"] else "")
        overview.append([
            f'<td id="doc-{i + 1}"><strong>{_e(row["title"])}</strong>'
            f'<div class="path">{_e(row["document"])}</div></td>',
            f'<td class="date">{_e(row["date"] or "—")}</td>',
            _html_list(row["parties"]),
            _e(row["language"]),
            f'<td><span class="badge {css}">{_e(badge)}</span></td>',
        ])
    organizations = [[f"<strong>{_e(g.name)}</strong>", _html_list([s for s in g.spellings if s != g.name]),
                      '<ul class="cell">' + "".join(f"<li>{doc_link(doc)}: {_e(_role(*rest))}</li>"
                                                    for doc, *rest in g.mentions) + "</ul>"]
                     for g in report.organizations]
    timeline = [[f'<td class="date">{_e(e["date"])}</td>', _e(e["kind"]) + (
                 f'<div class="muted">“{_e(e["as_written"])}”</div>' if e["as_written"] else ""),
                 _html_list(e["parties"]), _e(e["place"] or "—"), doc_link(e["document"])] for e in report.timeline]
    unsupported = [[doc_link(doc), f'<code>{_e(field)}</code>', f'<mark class="bad">{_e(value)}</mark>']
                   for doc, field, value in report.unsupported]
    failed = [[doc_link(doc), _e(failure)] for doc, failure in report.failed_checks]
    counts = [[_e(term), f'<td class="num">{n}</td>'] for term, n in report.areas]
    topics = [[_e(term), f'<td class="num">{n}</td>'] for term, n in report.topics]
    sections = [
        ("documents", "Documents", _html_table(["Title and document", "Signed", "Parties", "Language", "Checks"],
                                               overview)),
        ("organizations", "Organizations", _html_table(["Organization", "Also written as", "Documents and role"],
                                                       organizations)),
        ("areas", "Cooperation areas and topics", '<div class="columns"><div>'
         + _html_table(["Cooperation area", "Documents"], counts) + "</div><div>"
         + _html_table(["Topic", "Documents"], topics) + "</div></div>"),
        ("timeline", "Timeline of agreements", _html_table(["Signed", "Agreement", "Parties", "Place", "Document"],
                                                           timeline, empty="No agreements.")),
        ("unsupported", "Unsupported facts", '<p class="muted">Values the model gave as written in the source '
         "but that do not occur in it.</p>" + _html_table(["Document", "Field", "Value"], unsupported)),
        ("failed-checks", "Other failed checks", _html_table(["Document", "Check"], failed)),
    ]
    nav = " ".join(f'<a href="#{anchor}">{html.escape(title)}</a>' for anchor, title, _ in sections)
    body = "\n".join(f'<section id="{anchor}">\n<h2>{html.escape(title)}</h2>\n{content}\n</section>'
                     for anchor, title, content in sections)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Summarizer report ({len(report.overview)} documents)</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>Summarizer report</h1>
<p class="lead">{_e(_summary_line(report))}</p>
<nav>{nav}</nav>
{body}
</main>
</body>
</html>
"""


# --- Markdown ---------------------------------------------------------------------------------

def md_cell(value: Any) -> str:
    """Text for one Markdown table cell: one line, markup and `|` backslash-escaped."""
    text = " ".join(plain(value).split())
    return _MD_SPECIAL.sub(r"\\\1", text) if text else "—"


def _md_table(headers: list[str], rows: list[list[Any]], *, empty: str = "None.") -> str:
    if not rows:
        return f"_{empty}_\n"
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_markdown(report: Report) -> str:
    """GitHub-flavoured Markdown: headings and tables, every cell escaped."""
    parts = ["# Summarizer report\n", md_cell(_summary_line(report)) + "\n"]
    parts += ["## Documents\n", _md_table(["Title", "Signed", "Parties", "Language", "Checks", "Document"], [
        [r["title"], r["date"] or "—", r["parties"], r["language"],
         r["checks"] + (f" ({r['failures']})" if r["failures"] else ""), r["document"]] for r in report.overview])]
    parts += ["## Organizations\n", _md_table(["Organization", "Also written as", "Documents and role"], [
        [g.name, [s for s in g.spellings if s != g.name] or None, _mentions(g)] for g in report.organizations])]
    parts += ["## Cooperation areas\n", _md_table(["Cooperation area", "Documents"], [list(r) for r in report.areas])]
    parts += ["## Topics\n", _md_table(["Topic", "Documents"], [list(r) for r in report.topics])]
    parts += ["## Timeline of agreements\n", _md_table(["Signed", "Agreement", "Parties", "Place", "Document"], [
        [e["date"], e["kind"], e["parties"], e["place"] or None, e["document"]] for e in report.timeline],
        empty="No agreements.")]
    parts += ["## Unsupported facts\n", _md_table(["Document", "Field", "Value"],
                                                  [list(u) for u in report.unsupported])]
    parts += ["## Other failed checks\n", _md_table(["Document", "Check"], [list(f) for f in report.failed_checks])]
    return "\n".join(parts)


# --- CSV and JSON Lines -----------------------------------------------------------------------

def _csv_value(value: Any) -> str:
    text = "; ".join(str(v) for v in value) if isinstance(value, list) else "" if value is None else str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: a leading ' keeps it text.
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(report: Report) -> str:
    """One row per document with the documented CSV_COLUMNS."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.overview:
        writer.writerow([_csv_value(row[column]) for column in CSV_COLUMNS])
    return buffer.getvalue()


def to_jsonl(report: Report) -> str:
    """One JSON object per document: the overview fields, then its checks and result."""
    lines = [json.dumps({**row, "check_details": doc.checks, "result": doc.result}, ensure_ascii=False)
             for row, doc in zip(report.overview, report.documents)]
    return "".join(line + "\n" for line in lines)


# --- Terminal ---------------------------------------------------------------------------------

def _rich_table(title: str, headers: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(cell if isinstance(cell, Text) else safe(plain(cell)) if isinstance(cell, list) else safe(cell)
                        for cell in row))
    if not rows:
        table.caption = "none"
    return table


def terminal_renderable(report: Report) -> Group:
    """The report as rich tables; every value goes through render.safe."""
    status_style = {"passed": "green", "failed": "bold red"}
    overview = [[r["title"], r["date"] or None, r["parties"], r["language"],
                 Text(plain(r["checks"] + (f" ({r['failures']})" if r["failures"] else "")),
                      style=status_style.get(r["checks"], "dim")), r["document"]] for r in report.overview]
    return Group(
        safe(_summary_line(report)),
        _rich_table("Documents", ["Title", "Signed", "Parties", "Language", "Checks", "Document"], overview),
        _rich_table("Organizations", ["Organization", "Also written as", "Documents and role"],
                    [[g.name, [s for s in g.spellings if s != g.name] or None,
                      safe("\n".join(plain(m) for m in _mentions(g)))] for g in report.organizations]),
        _rich_table("Cooperation areas", ["Area", "Documents"], [list(r) for r in report.areas]),
        _rich_table("Topics", ["Topic", "Documents"], [list(r) for r in report.topics]),
        _rich_table("Timeline of agreements", ["Signed", "Agreement", "Parties", "Place", "Document"],
                    [[e["date"], e["kind"], e["parties"], e["place"] or None, e["document"]] for e in report.timeline]),
        _rich_table("Unsupported facts", ["Document", "Field", "Value"],
                    [[doc, field, Text(plain(value), style="bold red")] for doc, field, value in report.unsupported]),
        _rich_table("Other failed checks", ["Document", "Check"], [list(f) for f in report.failed_checks]),
    )


def render(report: Report, fmt: str | None) -> str:
    """The report as text in one format (None: the terminal tables, 120 columns, no colour)."""
    writers = {"html": to_html, "md": to_markdown, "csv": to_csv, "jsonl": to_jsonl}
    if fmt is not None:
        return writers[fmt](report)
    buffer = io.StringIO()
    make_console(buffer, width=120).print(terminal_renderable(report))
    return buffer.getvalue()
