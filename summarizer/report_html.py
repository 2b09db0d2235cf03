"""The HTML report: one self-contained page, inline CSS, no scripts, a strict CSP, every value escaped."""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any

from .report_formats import checks_text, mention_text, overview_headers, overview_values, record_headers, summary_line
from .report_model import Report
from .report_text import clean

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
.summary { margin: 2px 0 4px; max-width: 70ch; }
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
# Only this exact style sheet may apply (by its hash): no script, no other style, image, form or base.
_STYLE_HASH = base64.b64encode(hashlib.sha256(_CSS.encode("utf-8")).digest()).decode("ascii")
CSP = f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'none'; base-uri 'none'"


def _e(value: Any) -> str:
    return html.escape(clean(value), quote=True)


def _table(headers: list[str], rows: list[list[str]], *, empty: str = "None.") -> str:
    # Cells arrive already escaped: they may hold the small bits of markup this module builds.
    if not rows:
        return f'<p class="muted">{html.escape(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in row) + "</tr>"
                     for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _list(values: Any) -> str:
    values = [v for v in values if clean(v)] if isinstance(values, list) else [values] if clean(values) else []
    if not values:
        return '<span class="muted">—</span>'
    if len(values) == 1:
        return _e(values[0])
    return '<ul class="cell">' + "".join(f"<li>{_e(v)}</li>" for v in values) + "</ul>"


def to_html(report: Report) -> str:
    """One self-contained page: inline CSS, no scripts, no external assets, every value escaped."""
    anchors: dict[str, str] = {}
    for i, row in enumerate(report.rows):
        anchors.setdefault(row.document, f"doc-{i + 1}")

    def doc_link(label: str) -> str:
        return (f'<a class="path" href="#{anchors[label]}">{_e(label)}</a>' if label in anchors
                else f'<span class="path">{_e(label)}</span>')

    overview = []
    for i, row in enumerate(report.rows):
        css = {"passed": "passed", "failed": "failed"}.get(row.checks, "notrun")
        overview.append([
            f'<td id="doc-{i + 1}"><strong>{_e(row.title or "—")}</strong>'
            f'<p class="summary">{_e(row.summary)}</p><div class="path">{_e(row.document)}</div></td>',
            *(_list(v) for v in overview_values(report, row)),
            f'<td><span class="badge {css}">{_e(checks_text(row))}</span></td>',
        ])
    headers = [h for h in overview_headers(report) if h != "Document"]
    headers[0] = "Title, summary and document"
    sections = [("documents", "Documents", _table(headers, overview))]
    for n, section in enumerate(report.entities, 1):
        rows = [[f"<strong>{_e(g.name)}</strong>", _list([s for s in g.spellings if s != g.name]),
                 '<ul class="cell">' + "".join(f"<li>{doc_link(m.document)}: {_e(mention_text(m, document=False))}</li>"
                                               for m in g.mentions) + "</ul>"] for g in section.groups]
        sections.append((f"entities-{n}", section.title,
                         _table(["Name", "Also written as", "Documents and details"], rows)))
    if report.terms:
        tables = "".join("<div>" + _table([t.title, "Documents"], [[_e(term), f'<td class="num">{count}</td>']
                                                                    for term, count in t.rows]) + "</div>"
                         for t in report.terms)
        sections.append(("terms", " and ".join(t.title for t in report.terms), f'<div class="columns">{tables}</div>'))
    for n, section in enumerate(report.records, 1):
        rows = [([f'<td class="date">{_e(r.date)}' + (f'<div class="muted">“{_e(r.date_text)}”</div>'
                                                      if r.date_text else "") + "</td>"] if section.dated else [])
                + [_list(r.values.get(c, [])) for c in section.columns] + [doc_link(r.document)]
                for r in section.records]
        sections.append((f"records-{n}", section.title, _table(record_headers(section), rows)))
    unsupported = [[doc_link(doc), f"<code>{_e(where)}</code>", f'<mark class="bad">{_e(value)}</mark>']
                   for doc, where, value in report.unsupported]
    sections.append(("unsupported", "Unsupported facts", '<p class="muted">Values the model gave as written in the '
                     "source but that do not occur in it.</p>" + _table(["Document", "Field", "Value"], unsupported)))
    sections.append(("failed-checks", "Other failed checks",
                     _table(["Document", "Check"], [[doc_link(doc), _e(failure)] for doc, failure in report.failed_checks])))
    nav = " ".join(f'<a href="#{anchor}">{_e(title)}</a>' for anchor, title, _ in sections)
    body = "\n".join(f'<section id="{anchor}">\n<h2>{_e(title)}</h2>\n{content}\n</section>'
                     for anchor, title, content in sections)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Summarizer report ({len(report.rows)} documents)</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>Summarizer report</h1>
<p class="lead">{_e(summary_line(report))}</p>
<nav>{nav}</nav>
{body}
</main>
</body>
</html>
"""
