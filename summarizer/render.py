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

from .traits import SchemaTraits

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


def _unsupported_fields(envelope: dict[str, Any]) -> set[str]:
    # Concrete paths (`clubs[1].spelled`), as the checks name the values they flag.
    checks = envelope.get("checks") or {}
    return {str(item.get("field")) for item in checks.get("unsupported", []) if isinstance(item, dict)}


def _marked(value: Any, where: str, unsupported: set[str]) -> Text:
    """A value, struck through and labelled when the checks found it nowhere in the source."""
    if isinstance(value, list) and any(u.startswith(f"{where}[") for u in unsupported):
        return Text(", ").join(_marked(v, f"{where}[{i}]", unsupported) for i, v in enumerate(value))
    text = safe(_plain(value))
    # Also an object holding a flagged value deeper down (`deals[0].closed.spelled`).
    if value is not None and (where in unsupported or any(u.startswith(f"{where}.") for u in unsupported)):
        text.stylize(UNSUPPORTED_STYLE)
        text.append(" (not in source)", style="red")
    return text


def _plain(value: Any) -> Any:
    # An object inside a cell: its set fields, "field: value; ...".
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items() if v not in (None, "", []))
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return " | ".join(str(_plain(v)) for v in value)
    return value


def _label(name: str) -> str:
    """A field name as a heading: `key_points` -> `Key points`."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _leaves(value: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    # The fields of an object, nested objects flattened to `venue.city`.
    rows: list[tuple[str, Any]] = []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            rows += _leaves(item, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", item))
    return rows


def _top(path: str | None) -> str | None:
    return path if path and "." not in path and "[" not in path else None


def document_renderable(envelope: dict[str, Any]) -> Group:
    """Panel with title and summary, then tables for the schema's other fields, read through its traits."""
    result = envelope.get("result")
    result = result if isinstance(result, dict) else {}
    schema = envelope.get("schema")
    traits = SchemaTraits.from_dict(schema.get("traits") if isinstance(schema, dict) else None)
    unsupported = _unsupported_fields(envelope)
    doc = envelope.get("document", {})
    title, summary, language = (_top(p) for p in (traits.title, traits.summary, traits.language))
    parts: list[Any] = [
        Panel(_marked(result.get(summary) if summary else None, summary or "", unsupported),
              title=_marked(result.get(title), title, unsupported) if title else safe(doc.get("path")),
              title_align="left",
              subtitle=safe(f"{doc.get('path', '')} · {result.get(language, '?') if language else '?'}"),
              subtitle_align="left")
    ]
    details = _table("Details", ["Field", "Value"])
    for name, value in result.items():
        if name in (title, summary, language) or value in (None, [], "", {}):
            continue
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            parts.append(_items_table(name, value, traits.entities.get(name), unsupported))
        elif isinstance(value, dict):
            table = _table(_label(name), ["Field", "Value"])
            for field, item in _leaves(value):
                label = field.replace("_", " ").replace(".", " · ")
                table.add_row(safe(label), _marked(item, f"{name}.{field}", unsupported))
            parts.append(table)
        else:
            details.add_row(safe(name.replace("_", " ")), _marked(value, name, unsupported))
    if details.row_count:
        parts.append(details)
    parts.append(_footer(envelope))
    return Group(*parts)


def _items_table(name: str, items: list[dict[str, Any]], key: str | None, unsupported: set[str]) -> Table:
    """A list of objects as a table: one row per item, the key field first, one column per field."""
    fields = list(dict.fromkeys([*([key] if key else []), *(f for item in items for f in item)]))
    table = _table(_label(name), [_label(f) for f in fields])
    for i, item in enumerate(items):
        table.add_row(*(_marked(item.get(f), f"{name}[{i}].{f}", unsupported) for f in fields))
    return table


def _footer(envelope: dict[str, Any]) -> Text:
    usage = envelope.get("usage", {})
    model = envelope.get("model", {})
    checks = envelope.get("checks") or {}
    line = Text(style="dim")
    line.append_text(safe(f"model {model.get('name')} · attempts {envelope.get('attempts')} · "
                          f"tokens {usage.get('total_tokens', 0)}"))
    if envelope.get("cached"):
        line.append(" · served from cache", style="green")
    if checks.get("grounding") == "not_checked":
        line.append(" · not checked against the source (the schema marks no Verbatim field)", style="yellow")
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
