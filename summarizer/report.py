"""The `report` command: read output documents (report_load), aggregate them (report_model), write a format.

A file that cannot be read or fails its schema is reported on stderr and left out, and the
command exits 1 at the end; the report of the other documents is still written.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from .errors import ConfigError
from .render import make_console, safe
from .report_load import load_outputs, print_loading
from .report_model import Report, build_report

def render(report: Report, fmt: str | None) -> str:
    """The report as text in one format (None: the terminal tables, 120 columns, no colour)."""
    from .report_formats import terminal_renderable, to_csv, to_jsonl, to_markdown
    from .report_html import to_html

    writers = {"html": to_html, "md": to_markdown, "csv": to_csv, "jsonl": to_jsonl}
    if fmt is not None:
        return writers[fmt](report)
    buffer = io.StringIO()
    make_console(buffer, width=120).print(terminal_renderable(report))
    return buffer.getvalue()


def run_report(outputs: list[str], fmt: str | None, output: Path | None, schema: str | None = None) -> bool:
    """The `report` command: load, aggregate, write; True when some file could not be used."""
    loaded = load_outputs(outputs, schema)
    print_loading(loaded, sys.stderr)
    err = make_console(sys.stderr)
    if not loaded.documents and not loaded.problems:
        raise ConfigError(f"no output documents (*.json) in {', '.join(outputs)}: run `summarizer summarize` first")
    report = build_report(loaded.documents)
    if output is None and fmt is None:
        from .report_formats import terminal_renderable

        make_console(sys.stdout).print(terminal_renderable(report))  # the terminal's own width
    elif output is None:
        sys.stdout.write(render(report, fmt))
    else:
        from .store import atomic_write_text

        try:
            atomic_write_text(output, render(report, fmt))
        except OSError as exc:
            raise ConfigError(f"cannot write the report to {output}: {exc.strerror or exc}") from exc
        err.print(safe(f"report of {len(loaded.documents)} document(s) written to {output}"))
    if loaded.problems:
        err.print(safe(f"{len(loaded.problems)} file(s) could not be read; the report leaves them out"), style="red")
    return bool(loaded.problems)
