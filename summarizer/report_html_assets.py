"""The HTML report's one style sheet and one small script, and the CSP that allows exactly these two (by hash).

The page works without the script: the flagged-only view is a checkbox and a CSS `:has()` rule.
The script only adds sorting (a button in each header of the documents table) and a text filter.
"""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root { color-scheme: light; --line: #d8dee4; --muted: #57606a; --bad: #b42318; --good: #1a7f37; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", sans-serif;
       color: #1f2328; background: #f6f8fa; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; min-height: 100vh; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 17px; margin: 0; display: inline; }
h4 { font-size: 13px; margin: 14px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.lead, .muted, .path { color: var(--muted); }
.path { font-size: 12px; font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; word-break: break-all; }
code { font-size: 12px; font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; color: var(--muted); }
.summary { margin: 2px 0 4px; max-width: 75ch; }
#doc-table td:first-child { width: 36%; }
#doc-table .summary { font-size: 13px; color: var(--muted); display: -webkit-box; -webkit-box-orient: vertical;
                      -webkit-line-clamp: 2; overflow: hidden; }
nav { margin: 10px 0 0; }
nav a { margin-right: 14px; }
a, a.path { color: #0969da; text-decoration: none; }
a:hover { text-decoration: underline; }
table { width: 100%; border-collapse: collapse; margin: 4px 0 8px; }
th, td { text-align: left; vertical-align: top; padding: 6px 10px; border-bottom: 1px solid var(--line);
         overflow-wrap: anywhere; }
th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
tr.flagged td:first-child { box-shadow: inset 3px 0 0 var(--bad); }
td.num { text-align: right; white-space: nowrap; }
td.date { white-space: nowrap; font-variant-numeric: tabular-nums; }
ul.cell { margin: 0; padding-left: 18px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
         white-space: nowrap; vertical-align: 2px; }
.passed { background: #dafbe1; color: var(--good); }
.failed { background: #ffebe9; color: var(--bad); }
.notrun { background: #eaeef2; color: var(--muted); }
mark { color: inherit; border-radius: 3px; padding: 0 1px; }
mark.bad { background: #ffebe9; color: var(--bad); border: 1px solid #ffcecb; padding: 0 4px; }
mark.bad::after { content: " \\26a0"; }
mark.exact { background: #d1f5db; border-bottom: 2px solid #1a7f37; }
mark.normalized { background: #d6ecff; border-bottom: 2px dashed #0969da; }
mark.fuzzy { background: #fff1b8; border-bottom: 2px dotted #9a6700; }
mark:target { outline: 2px solid #0969da; outline-offset: 1px; }
.legend { font-size: 13px; color: var(--muted); margin: 6px 0 0; }
.legend mark { margin: 0 6px 0 2px; }
.columns { display: flex; gap: 32px; flex-wrap: wrap; }
.columns > div { flex: 1 1 320px; }
.tools { display: flex; gap: 18px; align-items: center; flex-wrap: wrap; margin: 8px 0; font-size: 14px; }
.tools input[type=search] { font: inherit; padding: 3px 8px; border: 1px solid var(--line); border-radius: 6px;
                            min-width: 260px; }
button.sort { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer;
              color: inherit; }
th[aria-sort=ascending] button.sort::after { content: " \\25b2"; font-size: 10px; }
th[aria-sort=descending] button.sort::after { content: " \\25bc"; font-size: 10px; }
body:has(#only-flagged:checked) #doc-table tbody tr:not(.flagged),
body:has(#only-flagged:checked) article.doc:not(.flagged) { display: none; }
article.doc { border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px; margin: 14px 0; }
article.doc.flagged { border-left: 4px solid var(--bad); }
article.doc > header .path { display: block; margin-top: 2px; }
.evidence h4:first-child { margin-top: 4px; }
.evidence { display: grid; grid-template-columns: minmax(0, 3fr) minmax(260px, 2fr); gap: 24px; margin-top: 8px; }
@media (max-width: 800px) { .evidence { grid-template-columns: 1fr; } }
details > summary { cursor: pointer; color: var(--muted); font-size: 13px; margin-bottom: 6px; }
pre.source { white-space: pre-wrap; overflow-wrap: anywhere; font: 14px/1.65 system-ui, "Noto Sans",
             "Noto Sans CJK SC", sans-serif; margin: 0; padding: 10px 14px; background: #fbfcfd;
             border: 1px solid var(--line); border-radius: 6px; max-height: 34em; overflow: auto; }
table.fields td, table.fields th { padding: 3px 6px; font-size: 13px; }
table.fields td:first-child { white-space: nowrap; color: var(--muted); width: 1%; }
ul.bad { margin: 0; padding-left: 18px; font-size: 14px; }
ul.bad li { margin: 2px 0; }
"""

SCRIPT = """
(() => {
  const table = document.getElementById("doc-table");
  const filter = document.getElementById("doc-filter");
  if (!table || !filter) return;
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const count = document.getElementById("doc-count");
  filter.hidden = false;
  filter.addEventListener("input", () => {
    const words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    let shown = 0;
    for (const row of rows) {
      const text = row.textContent.toLowerCase();
      row.hidden = !words.every((word) => text.includes(word));
      shown += row.hidden ? 0 : 1;
    }
    count.textContent = words.length ? `${shown} of ${rows.length} documents match` : "";
  });
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  const headers = Array.from(table.tHead.rows[0].cells);
  headers.forEach((th, column) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.textContent = th.textContent;
    th.textContent = "";
    th.appendChild(button);
    th.setAttribute("aria-sort", "none");
    button.addEventListener("click", () => {
      const order = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
      headers.forEach((other) => other.setAttribute("aria-sort", "none"));
      th.setAttribute("aria-sort", order);
      const key = (row) => {
        const cell = row.cells[column];
        return cell ? (cell.dataset.sort ?? cell.textContent.trim()) : "";
      };
      const sign = order === "ascending" ? 1 : -1;
      rows.sort((a, b) => sign * collator.compare(key(a), key(b)));
      rows.forEach((row) => body.appendChild(row));
    });
  });
})();
"""


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


# Only this style sheet and this script may apply (by their hashes): no other script, style, image, form or base.
CSP = (f"default-src 'none'; style-src 'sha256-{_sha256(CSS)}'; script-src 'sha256-{_sha256(SCRIPT)}'; "
       "form-action 'none'; base-uri 'none'")
