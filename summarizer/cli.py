"""The `summarizer` command: parse flags, build Settings, run, print, and pick the exit code.

Exit codes: 0 every document ok, 1 one or more documents failed, 2 usage or configuration error
(also: the run stopped on a bad key or exhausted quota). Heavy modules are imported lazily so that
`summarizer --help` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, RunStopper, SummarizerError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """All subcommands and flags; defaults live in Settings, not here (None = not given)."""
    parser = argparse.ArgumentParser(
        prog="summarizer",
        description="Summarize documents in any language into validated English JSON with an LLM.",
    )
    parser.add_argument("--version", action="version", version=f"summarizer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("summarize", help="summarize files or folders into outputs/*.json",
                       description="Summarize each document into a validated JSON output and a table.")
    s.add_argument("paths", nargs="*", metavar="PATH", help="files or folders ('-' reads standard input)")
    s.add_argument("--schema", help="built-in schema (article, generic) or path/to/file.py:Model")
    s.add_argument("--backend", choices=["auto", "openai", "local"],
                   help="auto (default): OpenAI-compatible if a key or base URL is set, else the local model")
    s.add_argument("--model", help="model name (default gpt-4o-mini; env SUMMARIZER_MODEL)")
    s.add_argument("--base-url", dest="base_url", help="OpenAI-compatible server URL (env OPENAI_BASE_URL)")
    s.add_argument("--model-path", dest="model_path", help="GGUF file for --backend local")
    s.add_argument("--mode", choices=["auto", "json_schema", "json_object", "tools"],
                   help="how the schema is sent; auto tries json_schema and falls back to json_object")
    s.add_argument("--out", dest="out_dir", help="output folder (default outputs/)")
    s.add_argument("--json", dest="json_output", action="store_true", default=None,
                   help="print output documents as JSON on stdout instead of tables")
    s.add_argument("--no-cache", dest="use_cache", action="store_false", default=None, help="bypass the cache")
    s.add_argument("--cache-dir", dest="cache_dir", help="cache folder (env SUMMARIZER_CACHE_DIR)")
    s.add_argument("--max-reasks", dest="max_reasks", type=int, help="re-asks after an invalid answer (default 2)")
    s.add_argument("--max-tokens", dest="max_tokens", type=int, help="output token budget per request (default 2048; local model 1024)")
    s.add_argument("--temperature", type=float)
    s.add_argument("--timeout", type=float, help="seconds per request (default 60)")
    s.add_argument("--retries", type=int, help="retries of transient errors per request (default 3)")
    s.add_argument("--max-retry-wait", dest="max_retry_wait", type=float,
                   help="longest Retry-After to wait inline; longer ones defer the document (default 60)")
    s.add_argument("--concurrency", type=int, help="requests in flight (default 8; local model: 1)")
    s.add_argument("--workers", type=int,
                   help="processes sharing --concurrency (default: one per 16 requests in flight, at most one per CPU)")
    s.add_argument("--rpm", type=float, help="requests per minute limit")
    s.add_argument("--tpm", type=float, help="tokens per minute limit")
    s.add_argument("--glob", action="append", dest="globs", metavar="PATTERN",
                   help="file name pattern inside folders (repeatable; default all non-hidden files)")
    s.add_argument("--from-list", dest="from_list", metavar="FILE", help="read paths from FILE, one per line")
    s.add_argument("--retry-failed", dest="retry_failed", action="store_true",
                   help="re-run only the documents that failed in the last run (from its manifest)")
    s.add_argument("--jsonl", metavar="FILE", help="also write all results, in input order, to FILE")
    s.add_argument("--dry-run", dest="dry_run", action="store_true", help="estimate requests, tokens and cost only")
    s.add_argument("--max-cost", dest="max_cost", type=float, help="stop once this many USD are spent (est.)")
    s.add_argument("--max-tokens-total", dest="max_tokens_total", type=int, help="stop once this many tokens are used")
    s.add_argument("--strict", action="store_true", default=None, help="re-ask, then fail, when a grounding check fails")
    s.add_argument("--tables", choices=["auto", "always", "never"], default="auto",
                   help="per-document tables (auto: when at most 20 documents)")
    s.add_argument("--config", type=Path, help="TOML config file (default ~/.config/summarizer/config.toml)")
    s.add_argument("-q", "--quiet", action="store_true", default=None, help="no progress or notes on stderr")
    s.add_argument("-v", "--verbose", action="store_true", default=None, help="more detail on stderr")

    c = sub.add_parser("schema", help="print the JSON Schema the model is asked to fill")
    c.add_argument("name", nargs="?", default="article", help="schema name or path/to/file.py:Model")

    r = sub.add_parser("report", help="build a report (md, html, csv, jsonl or terminal) from output files")
    r.add_argument("outputs", nargs="+", metavar="OUTPUT", help="output files or folders")
    r.add_argument("--format", choices=["md", "html", "csv", "jsonl"], help="default: tables in the terminal")
    r.add_argument("-o", "--output", type=Path, help="write to FILE instead of stdout")
    r.add_argument("--schema", help="validate outputs of this schema (path/to/file.py:Model); built-in ones always are")

    e = sub.add_parser("eval", help="score outputs against a gold file of hand-checked facts")
    e.add_argument("gold", type=Path, help="gold JSON file (see bench/seeds.gold.json)")
    e.add_argument("outputs", nargs="+", metavar="OUTPUT", help="output files or folders")
    e.add_argument("--schema", help="validate outputs of this schema (path/to/file.py:Model); built-in ones always are")
    return parser


_SETTINGS_FLAGS = (
    "schema", "backend", "model", "base_url", "model_path", "mode", "out_dir", "json_output", "use_cache",
    "cache_dir", "max_reasks", "max_tokens", "temperature", "timeout", "retries", "max_retry_wait",
    "concurrency", "workers", "rpm", "tpm", "strict", "quiet", "verbose",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "summarize":
            return _summarize(args, parser)
        if args.command == "schema":
            return _schema(args)
        if args.command == "report":
            from .report import run_report

            return run_report(args.outputs, args.format, args.output, args.schema)
        if args.command == "eval":
            from .evaluate import run_eval

            return run_eval(args.gold, args.outputs, args.schema)
    except (ConfigError, RunStopper) as exc:
        _fail(f"error: {exc}")
        return EXIT_USAGE
    except SummarizerError as exc:
        _fail(f"error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _fail("interrupted: finished documents are kept; run the same command again to continue")
        return 130
    except Exception as exc:  # the last line of defence: a message, not a traceback
        if os.environ.get("SUMMARIZER_DEBUG") == "1":
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set SUMMARIZER_DEBUG=1 for a traceback)")
        return EXIT_FAILED
    return EXIT_USAGE


def _fail(message: str) -> None:
    if os.environ.get("SUMMARIZER_DEBUG") == "1":
        import traceback

        traceback.print_exc()
    from .render import make_console, safe

    make_console(sys.stderr).print(safe(message), style="red", soft_wrap=True)


def _schema(args: argparse.Namespace) -> int:
    from .artifacts import load_schema

    sys.stdout.write(load_schema(args.name).json_schema_text)
    return EXIT_OK


def _summarize(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .settings import build_settings

    flags: dict[str, Any] = {name: getattr(args, name) for name in _SETTINGS_FLAGS}
    settings = build_settings(flags, os.environ, args.config)
    from . import run

    return run.summarize(settings, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
