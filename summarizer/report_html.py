"""The HTML report: one self-contained page, a strict CSP, every value escaped; each document with its evidence.

Sections: the documents table (flagged documents first; a checkbox shows only flagged ones, with
CSS alone; the inline script adds sorting and a text filter), then one card per document (title,
status, summary, fields, its source text with the supported spans highlighted by how they matched,
and the values not found in it), then entities, terms, records, unsupported facts and other failed
checks. A value the checks found nowhere in its document's source is marked wherever it appears.
"""

from __future__ import annotations

import html
from typing import Any

from .report_evidence import Evidence
from .report_formats import mention_text, overview_headers, overview_values, record_headers, summary_line
from .report_html_assets import CSP, CSS, SCRIPT
from .report_model import DocumentRow, Report
from .report_text import clean

__all__ = ["CSP", "to_html"]

OPEN_CHARS = 4000  # source texts up to this long are shown open, when the report is small
OPEN_DOCUMENTS = 10  # more documents than this: every source text starts collapsed
STATUS = {"passed": ("passed", "passed"), "failed": ("flagged", "failed"), "not run": ("not checked", "notrun")}


def _e(value: Any) -> str:
    return html.escape(clean(value), quote=True)


def _table(headers: list[str], rows: list[list[str]], *, empty: str = "None.", attrs: str = "",
           row_attrs: list[str] | None = None) -> str:
    # Cells arrive already escaped: they may hold the small bits of markup this module builds.
    if not rows:
        return f'<p class="muted">{html.escape(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    extra = row_attrs or [""] * len(rows)
    body = "\n".join(f"<tr{extra[i]}>" + "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>"
                                                 for cell in row) + "</tr>" for i, row in enumerate(rows))
    return f"<table{attrs}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


class _Page:
    """Writes the parts of one report; knows each document's anchor and which values lack support."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.anchors: dict[str, str] = {}
        for i, row in enumerate(report.rows):
            self.anchors.setdefault(row.document, f"doc-{i + 1}")
        # Flagged documents first, otherwise in the order given.
        self.order = sorted(range(len(report.rows)), key=lambda i: not report.rows[i].flagged)

    def value(self, value: Any, documents: list[str]) -> str:
        """One value, marked when the source of any of `documents` does not have it."""
        missing = self.report.unsupported_in(value, documents)
        if not missing:
            return _e(value)
        title = "not found in the source text: " + "; ".join(missing)
        return f'<mark class="bad" title="{_e(title)}">{_e(value)}</mark>'

    def values(self, values: Any, documents: list[str], *, inline: bool = False) -> str:
        """Values as a bulleted list, or `; `-separated when `inline` (the dense documents table)."""
        items = values if isinstance(values, list) else [values]
        items = [v for v in items if clean(v)]
        if not items:
            return '<span class="muted">—</span>'
        if len(items) == 1 or inline:
            return "; ".join(self.value(v, documents) for v in items)
        return '<ul class="cell">' + "".join(f"<li>{self.value(v, documents)}</li>" for v in items) + "</ul>"

    def link(self, label: str) -> str:
        return (f'<a class="path" href="#{self.anchors[label]}">{_e(label)}</a>' if label in self.anchors
                else f'<span class="path">{_e(label)}</span>')

    def badge(self, row: DocumentRow) -> str:
        text, css = STATUS.get(row.checks, STATUS["not run"])
        count = f" ({row.unsupported} not in source)" if row.unsupported else \
            f" ({row.failures} failed)" if row.failures else ""
        return f'<span class="badge {css}">{_e(text + count)}</span>'

    def documents_table(self) -> str:
        report = self.report
        headers = ["Title and summary", *overview_headers(report)[1:-2], "Status", "Not in source", "Document"]
        rows, attrs = [], []
        for i in self.order:
            row, docs = report.rows[i], [report.rows[i].document]
            unsupported = [value for doc, _, value in report.unsupported if doc == row.document]
            rows.append([
                f'<td data-sort="{_e(row.title)}"><a href="#doc-{i + 1}"><strong>{self.value(row.title or "—", docs)}'
                f'</strong></a><p class="summary">{_e(row.summary)}</p></td>',
                *(self.values(v, docs, inline=True) for v in overview_values(report, row)),
                f'<td data-sort="{STATUS.get(row.checks, STATUS["not run"])[0]}">{self.badge(row)}</td>',
                f'<td data-sort="{len(unsupported):06d}">' + self.values(unsupported, docs, inline=True) + "</td>",
                f'<span class="path">{_e(row.document)}</span>',
            ])
            attrs.append(f' class="{"flagged" if row.flagged else "ok"}"')
        flagged = sum(1 for r in report.rows if r.flagged)
        tools = ('<div class="tools">'
                 f'<label><input type="checkbox" id="only-flagged"> only flagged documents ({flagged})</label>'
                 '<input type="search" id="doc-filter" placeholder="Filter documents…" aria-label="Filter documents" '
                 'hidden><span id="doc-count" class="muted"></span></div>')
        return tools + _table(headers, rows, attrs=' id="doc-table"', row_attrs=attrs)

    def source(self, anchor: str, evidence: Evidence, opened: bool) -> str:
        """The source text, highlighted span by span, inside a details element."""
        if evidence.text is None:
            return ('<p class="muted">This output does not carry its source text (longer than 200,000 characters, '
                    'or written before outputs carried it).</p>')
        text, pieces = evidence.text, []
        for k, segment in enumerate(evidence.segments):
            chunk = _e(text[segment.start:segment.end])
            if segment.supports:
                title = "\n".join(s.describe() for s in segment.supports)
                pieces.append(f'<mark class="{segment.match}" id="{anchor}-s{k}" title="{_e(title)}">{chunk}</mark>')
            else:
                pieces.append(chunk)
        found = sum(1 for s in evidence.supports if evidence.placed(s) is not None)
        total = len(evidence.supports) + len(evidence.unsupported)
        counts = f" · {found} of {total} verbatim values found in it" if evidence.grounding == "checked" else \
            " · not compared with the fields (the schema marks no field Verbatim)"
        return (f'<details{" open" if opened else ""}><summary>Source text · {len(text):,} characters{counts}'
                f'</summary><pre class="source">{"".join(pieces)}</pre></details>')

    def aside(self, anchor: str, row: DocumentRow, evidence: Evidence) -> str:
        """Unsupported values, supported values (each linked to its span), and the document's fields."""
        docs, parts = [row.document], []
        if evidence.unsupported:
            items = "".join(f'<li><mark class="bad">{_e(value)}</mark> <code>{_e(where)}</code></li>'
                            for where, value in evidence.unsupported)
            parts.append(f'<h4>Not found in the source ({len(evidence.unsupported)})</h4><ul class="bad">{items}</ul>')
        if evidence.supports:
            rows = []
            for s in evidence.supports:
                k = evidence.placed(s)
                shown = f'<a href="#{anchor}-s{k}">{_e(s.value)}</a>' if k is not None else _e(s.value)
                rows.append([f"<code>{_e(s.path)}</code>", f'{shown} <mark class="{s.match}">{_e(s.match)}</mark>'])
            parts.append(f"<h4>Found in the source ({len(evidence.supports)})</h4>"
                         + _table(["Field", "Value"], rows, attrs=' class="fields"'))
        fields = [[f"<code>{_e(name)}</code>", self.values(values, docs)]
                  for name, values in row.fields.items() if values]
        parts.append(f"<details><summary>All fields ({len(fields)})</summary>"
                     + _table(["Field", "Values"], fields, attrs=' class="fields"', empty="None.") + "</details>")
        return "".join(parts)

    def cards(self) -> str:
        report, cards = self.report, []
        opened = len(report.rows) <= OPEN_DOCUMENTS
        for i in self.order:
            row, evidence, anchor = report.rows[i], report.evidence[i], f"doc-{i + 1}"
            is_open = opened and evidence.text is not None and len(evidence.text) <= OPEN_CHARS
            cards.append(
                f'<article class="doc{" flagged" if row.flagged else ""}" id="{anchor}">'
                f'<header><h3>{self.value(row.title or "—", [row.document])}</h3> {self.badge(row)}'
                f'<span class="path">{_e(row.document)}</span></header>'
                f'<p class="summary">{_e(row.summary) or "<span class=muted>No summary.</span>"}</p>'
                f'<div class="evidence"><div>{self.source(anchor, evidence, is_open)}</div>'
                f"<div>{self.aside(anchor, row, evidence)}</div></div></article>")
        return "\n".join(cards)

    def records(self, section: Any) -> str:
        """One table of the objects that hold links (a timeline when they carry a date)."""
        rows = []
        for r in section.records:
            date = []
            if section.dated:
                said = f'<div class="muted">“{self.value(r.date_text, [r.document])}”</div>' if r.date_text else ""
                date = [f'<td class="date">{_e(r.date)}{said}</td>']
            rows.append(date + [self.values(r.values.get(c, []), [r.document]) for c in section.columns]
                        + [self.link(r.document)])
        return _table(record_headers(section), rows)

    def sections(self) -> list[tuple[str, str, str]]:
        """(anchor, heading, content) of every section, in page order."""
        report = self.report
        sections = [("documents", "Documents", self.documents_table()),
                    ("evidence", "Documents and their evidence", self.cards())]
        for n, section in enumerate(report.entities, 1):
            rows = [[f"<strong>{self.value(g.name, g.documents)}</strong>",
                     self.values([s for s in g.spellings if s != g.name], g.documents),
                     '<ul class="cell">' + "".join(f"<li>{self.link(m.document)}: {_e(mention_text(m, document=False))}"
                                                   "</li>" for m in g.mentions) + "</ul>"] for g in section.groups]
            sections.append((f"entities-{n}", section.title,
                             _table(["Name", "Also written as", "Documents and details"], rows)))
        if report.terms:
            tables = "".join("<div>" + _table([t.title, "Documents"], [[_e(term), f'<td class="num">{count}</td>']
                                                                        for term, count in t.rows]) + "</div>"
                             for t in report.terms)
            sections.append(("terms", " and ".join(t.title for t in report.terms),
                             f'<div class="columns">{tables}</div>'))
        sections += [(f"records-{n}", section.title, self.records(section))
                     for n, section in enumerate(report.records, 1)]
        unsupported = [[self.link(doc), f"<code>{_e(where)}</code>", f'<mark class="bad">{_e(value)}</mark>']
                       for doc, where, value in report.unsupported]
        sections.append(("unsupported", "Unsupported facts",
                         '<p class="muted">Values the model gave as written in the source but that do not occur '
                         "in it.</p>" + _table(["Document", "Field", "Value"], unsupported)))
        sections.append(("failed-checks", "Other failed checks",
                         _table(["Document", "Check"], [[self.link(doc), _e(failure)]
                                                        for doc, failure in report.failed_checks])))
        return sections


LEGEND = ('<p class="legend">In the source texts: <mark class="exact">exact</mark> <mark class="normalized">'
          'normalized</mark> (case, spacing, accents or width differ) <mark class="fuzzy">fuzzy</mark> (inflected '
          'or slightly different; hover for the score) · <mark class="bad">not in the source</mark></p>')


def to_html(report: Report) -> str:
    """One self-contained page: inline CSS and one hashed script, no external assets, every value escaped."""
    sections = _Page(report).sections()
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
<style>{CSS}</style>
</head>
<body>
<main>
<h1>Summarizer report</h1>
<p class="lead">{_e(summary_line(report))}</p>
{LEGEND}
<nav>{nav}</nav>
{body}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
