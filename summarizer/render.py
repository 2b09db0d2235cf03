"""Rich rendering of output documents and run summaries. Text is always text, never markup."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from .outcome import RunReport

_UNSAFE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|.)?|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
UNSUPPORTED_STYLE = "bold red strike"
SUPPORTED_HINT = "yellow"


def safe(value: Any) -> Text:
    """Model or document text as a rich Text: escapes and control characters removed, no markup."""
    if value is None:
        return Text("—", style="dim")
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return Text(_UNSAFE.sub("", str(value)))


def make_console(file: IO[str], *, width: int | None = None) -> Console:
    """A console that never interprets markup or highlights data; plain when not a terminal."""
    return Console(file=file, markup=False, highlight=False, emoji=False, width=width, soft_wrap=False)


def _table(title: str, columns: Iterable[str]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, expand=False, show_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _unsupported_values(envelope: dict[str, Any]) -> set[str]:
    checks = envelope.get("checks") or {}
    return {str(item.get("value")) for item in checks.get("unsupported", []) if isinstance(item, dict)}


def _marked(value: Any, unsupported: set[str]) -> Text:
    text = safe(value)
    if value is not None and str(value) in unsupported:
        text.stylize(UNSUPPORTED_STYLE)
        text.append(" (not in source)", style="red")
    return text


def document_renderable(envelope: dict[str, Any]) -> Group:
    """Panel with title and summary, then tables for the schema's structured fields."""
    result = envelope.get("result", {})
    unsupported = _unsupported_values(envelope)
    doc = envelope.get("document", {})
    parts: list[Any] = [
        Panel(safe(result.get("summary")), title=safe(result.get("title")), title_align="left",
              subtitle=safe(f"{doc.get('path', '')} · {result.get('source_language', '?')}"), subtitle_align="left")
    ]
    if result.get("organizations"):
        table = _table("Organizations", ["Name", "As written", "Type", "Role", "Country"])
        for org in result["organizations"]:
            table.add_row(safe(org.get("name")), _marked(org.get("name_original"), unsupported),
                          safe(org.get("type")), safe(org.get("role")), safe(org.get("country")))
        parts.append(table)
    if result.get("people"):
        table = _table("People", ["Name", "As written", "Title", "Organization"])
        for person in result["people"]:
            table.add_row(safe(person.get("name")), _marked(person.get("name_original"), unsupported),
                          safe(person.get("title")), safe(person.get("organization")))
        parts.append(table)
    agreement = result.get("agreement")
    if isinstance(agreement, dict):
        table = _table("Agreement", ["Field", "Value"])
        signed = agreement.get("signed_on") or {}
        date = "-".join(f"{signed[k]:02d}" if isinstance(signed.get(k), int) else "??" for k in ("year", "month", "day"))
        table.add_row(safe("kind"), safe(agreement.get("kind")))
        table.add_row(safe("parties"), safe(agreement.get("parties")))
        if signed:
            table.add_row(safe("signed on"), Text.assemble(safe(date), " (", _marked(signed.get("as_written"), unsupported), ")"))
        table.add_row(safe("place"), safe(agreement.get("place")))
        table.add_row(safe("term (years)"), safe(agreement.get("term_years")))
        table.add_row(safe("areas"), safe(agreement.get("areas")))
        parts.append(table)
    if result.get("key_figures"):
        table = _table("Key figures", ["Value", "Meaning"])
        for figure in result["key_figures"]:
            table.add_row(_marked(figure.get("value"), unsupported), safe(figure.get("meaning")))
        parts.append(table)
    known = {"title", "summary", "source_language", "organizations", "people", "agreement", "key_figures"}
    other = {k: v for k, v in result.items() if k not in known and v not in (None, [], "")}
    if other:
        table = _table("Details", ["Field", "Value"])
        for key, value in other.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                value = "; ".join(", ".join(str(v) for v in item.values() if v is not None) for item in value)
            table.add_row(safe(key), safe(value))
        parts.append(table)
    parts.append(_footer(envelope))
    return Group(*parts)


def _footer(envelope: dict[str, Any]) -> Text:
    usage = envelope.get("usage", {})
    model = envelope.get("model", {})
    checks = envelope.get("checks") or {}
    line = Text(style="dim")
    line.append_text(safe(f"model {model.get('name')} · attempts {envelope.get('attempts')} · "
                          f"tokens {usage.get('total_tokens', 0)}"))
    if envelope.get("cached"):
        line.append(" · served from cache", style="green")
    if checks.get("failures"):
        failed = safe(f" · {len(checks['failures'])} check(s) failed: " + "; ".join(checks["failures"][:3]))
        failed.stylize("red")
        line.append_text(failed)
    return line


def run_summary_renderable(report: RunReport, *, price: tuple[float, float] | None = None) -> Group:
    """Counts per status, tokens, cost estimate, slowest documents and failures of a run."""
    table = _table("Run summary", ["Status", "Documents"])
    for status, count in sorted(report.counts.items()):
        table.add_row(safe(status), safe(count))
    usage = report.usage
    table.add_row(safe("tokens"), safe(f"{usage.prompt_tokens} in + {usage.completion_tokens} out in {usage.requests} request(s)"))
    if price is not None:
        from .pricing import cost as estimate

        cost = estimate(usage, price)
        table.add_row(safe("cost (est.)"), safe(f"${cost:.4f}"))
    table.add_row(safe("wall time"), safe(f"{report.seconds:.1f} s"))
    if report.manifest:
        table.add_row(safe("manifest"), safe(report.manifest))
    parts: list[Any] = [table]
    if report.slowest:
        slow = _table("Slowest documents", ["Seconds", "Document"])
        for seconds, path in report.slowest:
            slow.add_row(safe(f"{seconds:.2f}"), safe(path))
        parts.append(slow)
    if report.failures:
        failed = _table("Not summarized", ["Document", "Status", "Reason"])
        for path, status, reason in report.failures[:20]:
            failed.add_row(safe(path), safe(status), safe(reason[:300]))
        if len(report.failures) > 20:
            failed.caption = f"{report.failed - 20} more in the manifest"
        parts.append(failed)
    if report.stopped:
        parts.append(Text(f"Run stopped: {report.stopped}", style="bold red"))
    return Group(*parts)
