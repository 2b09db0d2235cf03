"""The `summarizer` command: parse flags, build Settings, run, and pick the exit code.

Exit codes (here and nowhere else): 0 every document ok; 1 one or more documents not ok
(failed, invalid, flagged unless --allow-flagged...) or the run stopped on its budget;
2 usage or configuration error, or a stop that no document could get past (bad key,
exhausted quota, unknown model, unreachable server, unwritable output folder). Heavy modules
are imported lazily so that `summarizer --help` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .choices import BACKENDS, ENGINES, MODES, REPORT_FORMATS, TABLES
from .errors import ConfigError, RunStopper, SummarizerError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

SUMMARIZE_EXAMPLES = """\
examples:
  summarizer summarize seeds/                          every file in a folder (embedded model offline)
  summarizer summarize report.pdf --json | jq .result  one file, JSON on stdout
  OPENAI_API_KEY=sk-... summarizer summarize corpus/ --glob '*.txt' --concurrency 32 --rpm 500
  summarizer summarize docs/ --base-url http://localhost:11434/v1 --model qwen2.5:7b
  summarizer summarize notes/ --schema my_schema.py:Meeting
"""

TOP_EXAMPLES = """\
examples:
  summarizer summarize seeds/             summarize documents into outputs/*.json
  summarizer report outputs/ --format html -o report.html
  summarizer eval bench/seeds.gold.json outputs/
  summarizer export outputs/ -o results.sqlite    then: sqlite3 results.sqlite
  summarizer schema article               the JSON Schema the model fills

Run 'summarizer COMMAND --help' for a command's options.
"""


class Parser(argparse.ArgumentParser):
    """argparse that suggests the nearest command or flag for a typo, and exits 2."""

    def error(self, message: str) -> NoReturn:
        hint = self._suggestion(message)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{hint}\n")

    def _suggestion(self, message: str) -> str:
        import difflib  # only on a usage error: not part of every start-up

        known = _known_words(self)
        words = message.replace("'", " ").replace(",", " ").split()
        for word in words:
            if word.startswith("-") or "invalid choice" in message:
                close = difflib.get_close_matches(word, known, n=1, cutoff=0.75)
                if close and close[0] != word:
                    return f" (did you mean {close[0]}?)"
        return ""


def _known_words(parser: argparse.ArgumentParser) -> list[str]:
    """Every --flag and command name of a parser and its subcommands (unknown flags reach the top)."""
    words = []
    for action in parser._actions:
        words += [o for o in action.option_strings if o.startswith("--")]
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words += [name, *_known_words(sub)]
    return words


def build_parser() -> argparse.ArgumentParser:
    """All subcommands and flags; defaults live in Settings, not here (None = not given)."""
    parser = Parser(
        prog="summarizer",
        description="Summarize documents in any language into validated English JSON with an LLM.",
        epilog=TOP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"summarizer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    s = sub.add_parser("summarize", help="summarize files or folders into outputs/*.json",
                       description="Summarize each document into a validated JSON output and a table. Every "
                                   "option can also come from SUMMARIZER_<NAME> or the config file.",
                       epilog=SUMMARIZE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("paths", nargs="*", metavar="PATH", help="files or folders ('-' reads standard input)")
    _add_run_options(s)
    _add_batch_parser(sub)

    c = sub.add_parser("schemas", help="list the built-in schemas, or show one (traits, prompt, JSON Schema)")
    c.add_argument("name", nargs="?", help="a schema to show: built-in name or path/to/file.py:Model")

    c = sub.add_parser("models", help="list the models the configured server offers")
    c.add_argument("--base-url", dest="base_url", help="OpenAI-compatible server URL (env OPENAI_BASE_URL)")
    c.add_argument("--backend", choices=BACKENDS)
    c.add_argument("--model", help="also check that this model is offered (exit 2 if not)")
    c.add_argument("--model-path", dest="model_path", help="GGUF file for --backend local")
    c.add_argument("--timeout", type=float, help="seconds for the request (default 60)")
    c.add_argument("--config", type=Path, help="TOML config file")

    c = sub.add_parser("schema", help="print the JSON Schema the model is asked to fill")
    c.add_argument("name", nargs="?", default="article", help="schema name or path/to/file.py:Model")

    r = sub.add_parser("report", help="build a report (md, html, csv, jsonl or terminal) from output files")
    r.add_argument("outputs", nargs="+", metavar="OUTPUT", help="output files or folders")
    r.add_argument("--format", choices=REPORT_FORMATS, help="default: tables in the terminal")
    r.add_argument("-o", "--output", type=Path, help="write to FILE instead of stdout")
    r.add_argument("--schema", help="validate outputs of this schema (path/to/file.py:Model); built-in ones always are")

    x = sub.add_parser("export", help="write output files into a SQLite database to query (sqlite3, Datasette)")
    x.add_argument("outputs", nargs="*", metavar="OUTPUT", help="output files or folders")
    x.add_argument("-o", "--output", type=Path, default=Path("results.sqlite"),
                   help="SQLite file to write (default results.sqlite; rebuilt on every export)")

    e = sub.add_parser("eval", help="score outputs against a gold file of hand-checked facts")
    e.add_argument("gold", type=Path, help="gold JSON file (see bench/seeds.gold.json)")
    e.add_argument("outputs", nargs="+", metavar="OUTPUT", help="output files or folders")
    e.add_argument("--schema", help="validate outputs of this schema (path/to/file.py:Model); built-in ones always are")
    return parser


def _add_run_options(s: argparse.ArgumentParser) -> None:
    """The options of `summarize`, shared by `batch run` and `batch submit`."""
    g = s.add_argument_group("model")
    g.add_argument("--schema", help="built-in schema (article, generic) or path/to/file.py:Model")
    g.add_argument("--backend", choices=BACKENDS,
                   help="auto (default): OpenAI-compatible if a key or base URL is set, else the local model")
    g.add_argument("--model", help="model name (default gpt-4o-mini; env SUMMARIZER_MODEL)")
    g.add_argument("--base-url", dest="base_url", help="OpenAI-compatible server URL (env OPENAI_BASE_URL)")
    g.add_argument("--model-path", dest="model_path", help="GGUF file for --backend local")
    g.add_argument("--mode", choices=MODES,
                   help="how the schema is sent; auto tries json_schema and falls back to json_object")
    g.add_argument("--prompt", dest="prompt_dir", metavar="DIR",
                   help="your own prompt: DIR/system.txt and DIR/user.txt (with $document and $boundary)")
    g.add_argument("--max-reasks", dest="max_reasks", type=int, help="re-asks after an invalid answer (default 2)")
    g.add_argument("--max-tokens", dest="max_tokens", type=int,
                   help="output token budget per request (default 2048; local model 1024)")
    g.add_argument("--temperature", type=float, help="sampling temperature, 0 to 2 (default 0: most repeatable)")
    g.add_argument("--strict", action="store_true", default=None,
                   help="re-ask, then fail, when a grounding check fails")
    g = s.add_argument_group("requests and limits")
    g.add_argument("--timeout", type=float, help="seconds per request, connect to last byte (default 60)")
    g.add_argument("--retries", type=int, help="retries of transient errors per request (default 3)")
    g.add_argument("--max-retry-wait", dest="max_retry_wait", type=float,
                   help="longest Retry-After to wait inline; longer ones defer the document (default 60)")
    g.add_argument("--concurrency", type=int, help="requests in flight (default 8; local model: 1)")
    g.add_argument("--workers", type=int,
                   help="processes sharing --concurrency (default: one per 16 requests in flight, at most one per CPU)")
    g.add_argument("--engine", choices=ENGINES,
                   help="where documents are processed: this machine (default) or a Ray cluster (pip install '.[ray]')")
    g.add_argument("--ray-address", dest="ray_address", metavar="ADDRESS",
                   help="the Ray cluster to join (env RAY_ADDRESS; default: start one on this machine)")
    g.add_argument("--rpm", type=float, help="requests per minute limit")
    g.add_argument("--tpm", type=float, help="tokens per minute limit")
    g.add_argument("--max-cost", dest="max_cost", type=float, help="stop once this many USD are spent (est.)")
    g.add_argument("--max-tokens-total", dest="max_tokens_total", type=int, help="stop once this many tokens are used")
    g.add_argument("--max-doc-chars", dest="max_doc_chars", type=int,
                   help="longer documents get status too_large (default 5,000,000)")
    g.add_argument("--dry-run", dest="dry_run", action="store_true", default=None,
                   help="estimate requests, tokens and cost only")
    g = s.add_argument_group("inputs")
    g.add_argument("--glob", action="append", dest="globs", metavar="PATTERN",
                   help="file name pattern inside folders (repeatable; default all non-hidden files)")
    g.add_argument("--from-list", dest="from_list", metavar="FILE", help="read paths from FILE, one per line")
    g.add_argument("--retry-failed", dest="retry_failed", action="store_true", default=None,
                   help="re-run only the documents that failed in the last run (from its manifest)")
    g = s.add_argument_group("outputs")
    g.add_argument("--out", dest="out_dir", help="output folder (default outputs/)")
    g.add_argument("--json", dest="json_output", action="store_true", default=None,
                   help="print output documents as JSON on stdout instead of tables")
    g.add_argument("--store", metavar="URI",
                   help="shared result store, file:///path or s3://bucket/prefix: a result in it is never paid twice")
    g.add_argument("--store-endpoint", dest="store_endpoint", metavar="URL",
                   help="URL of an S3-compatible server for an s3:// --store (default: AWS)")
    g.add_argument("--jsonl", metavar="FILE", help="also write all results, in input order, to FILE")
    g.add_argument("--tables", choices=TABLES,
                   help="per-document tables (auto: when at most 20 documents)")
    g.add_argument("--allow-flagged", dest="allow_flagged", action="store_true", default=None,
                   help="exit 0 even when some documents are flagged (facts not found in the source)")
    g.add_argument("--no-cache", dest="use_cache", action="store_false", default=None, help="bypass the cache")
    g.add_argument("--cache-dir", dest="cache_dir", help="cache folder (env SUMMARIZER_CACHE_DIR)")
    g.add_argument("--config", type=Path, help="TOML config file (default ~/.config/summarizer/config.toml)")
    g.add_argument("-q", "--quiet", action="store_true", default=None, help="no progress or notes on stderr")
    g.add_argument("-v", "--verbose", action="store_true", default=None, help="more detail on stderr")

BATCH_EXAMPLES = """\
examples:
  summarizer batch run corpus/ --glob '*.txt'         submit, wait (up to 25 h) and collect; half the price
  summarizer batch submit corpus/ --out out/          submit and return; nothing waits on this machine
  summarizer batch status --out out/                  documents, requests and batches, as the server sees them
  summarizer batch collect --out out/ [--wait]        write what has been answered, send re-asks; resumable
  summarizer batch cancel --out out/                  cancel the job's batches, keep what they finished
"""


def _add_batch_parser(sub: Any) -> None:
    b = sub.add_parser("batch", help="summarize through the OpenAI Batch API: half the price, results within 24 h",
                       description="Batch mode: the same validation, checks, cache and outputs as summarize, with "
                                   "requests sent as OpenAI batches (half the price, answers within 24 h). The "
                                   "job's ledger lives in OUT/.batch/; every command can be repeated or resumed.",
                       epilog=BATCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = b.add_subparsers(dest="batch_command", metavar="ACTION", parser_class=Parser)
    for name, text in (("run", "submit, wait with progress on stderr and collect, until every document is done"),
                       ("submit", "process and submit, then return (collect later)")):
        p = actions.add_parser(name, help=text, description=text)
        p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders")
        _add_run_options(p)
        _add_batch_options(p)
    for name, text in (("collect", "write the answered documents, submit re-asks and missing lines"),
                       ("status", "the job's documents, requests and batches (ledger and server)"),
                       ("cancel", "cancel the job's running batches and close the job (answers are kept)")):
        p = actions.add_parser(name, help=text, description=text)
        p.add_argument("--out", dest="out_dir", type=Path, help="the output folder of the job (default outputs/)")
        p.add_argument("--config", type=Path, help="TOML config file")
        if name == "collect":
            p.add_argument("--wait", action="store_true", help="wait and collect until every document is done")
            _add_batch_options(p)
            p.add_argument("-q", "--quiet", action="store_true", default=None, help="no progress or notes on stderr")
        if name == "status":
            p.add_argument("--json", dest="json_output", action="store_true", help="print the state as JSON")


def _add_batch_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("batches")
    g.add_argument("--batch-poll", dest="batch_poll", type=float, help="seconds between looks at the batches (default 30)")
    g.add_argument("--batch-wait", dest="batch_wait", type=float,
                   help="give up waiting after this many seconds (default 90000, 25 h); collect later")
    g.add_argument("--batch-max-requests", dest="batch_max_requests", type=int,
                   help="requests per batch (default and API limit 50000)")
    g.add_argument("--batch-max-bytes", dest="batch_max_bytes", type=int,
                   help="bytes per batch input file (default and API limit 200000000)")
    g.add_argument("--batch-max-tokens", dest="batch_max_tokens", type=int,
                   help="the model's enqueued-token limit: further batches wait until earlier ones finish")
    g.add_argument("--batch-line-retries", dest="batch_line_retries", type=int,
                   help="times a request the server failed is sent again before its document fails (default 3)")


# Flags that are not settings: positional paths, the subcommand, the config file itself.
_NOT_SETTINGS = {"command", "paths", "config", "batch_command", "wait"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's usage errors and --help
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "summarize":
            return _summarize(args)
        if args.command == "batch":
            return _batch(args)
        if args.command == "schema":
            return _schema(args)
        if args.command == "schemas":
            from .catalog import list_schemas

            sys.stdout.write(list_schemas(args.name))
            return EXIT_OK
        if args.command == "models":
            return _models(args)
        if args.command == "report":
            from .report import run_report

            return EXIT_FAILED if run_report(args.outputs, args.format, args.output, args.schema) else EXIT_OK
        if args.command == "export":
            from .export import run_export

            return EXIT_FAILED if run_export(args.outputs, args.output) else EXIT_OK
        if args.command == "eval":
            from .evaluate import run_eval

            return EXIT_FAILED if run_eval(args.gold, args.outputs, args.schema) else EXIT_OK
    except SummarizerError as exc:
        _fail(f"error: {exc}")
        return exit_code_for(type(exc))
    except KeyboardInterrupt:
        _fail("interrupted: finished documents are kept; run the same command again to continue")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: a message, not a traceback
        if os.environ.get("SUMMARIZER_DEBUG") == "1":
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set SUMMARIZER_DEBUG=1 for a traceback)")
        return EXIT_FAILED
    return EXIT_USAGE


def exit_code_for(error: type[BaseException]) -> int:
    """The exit code of an error class: 2 for what the user must fix before anything can work."""
    return EXIT_USAGE if issubclass(error, (ConfigError, RunStopper)) else EXIT_FAILED


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


def _models(args: argparse.Namespace) -> int:
    from .catalog import list_models
    from .settings import build_settings

    flags = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    for name in list_models(build_settings(flags, os.environ, args.config)):
        sys.stdout.write(name + "\n")
    return EXIT_OK


def _summarize(args: argparse.Namespace) -> int:
    from .settings import build_settings

    flags: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    if flags.get("globs") is not None:
        flags["globs"] = tuple(flags["globs"])
    settings = build_settings(flags, os.environ, args.config)
    from . import run

    report = run.summarize(settings, list(args.paths))
    if report is None:  # --dry-run
        return EXIT_OK
    if report.stop is not None and exit_code_for(report.stop) == EXIT_USAGE:
        return EXIT_USAGE
    not_ok = report.failed - (report.flagged if settings.allow_flagged else 0)
    return EXIT_FAILED if not_ok or report.stopped else EXIT_OK


def _batch(args: argparse.Namespace) -> int:
    from . import batch_run

    action = args.batch_command
    if action is None:
        try:
            build_parser().parse_args(["batch", "--help"])
        except SystemExit:
            pass
        return EXIT_USAGE
    flags: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS and v is not None}
    if action in ("run", "submit"):
        if flags.get("globs") is not None:
            flags["globs"] = tuple(flags["globs"])
        paths = list(args.paths)
        if not paths and not flags.get("from_list"):
            raise ConfigError("no documents given: pass files or folders, or --from-list FILE")
        from .run import _check_paths, summarize
        from .settings import build_settings

        _check_paths(paths)
        if flags.get("dry_run"):  # an estimate at the Batch API price; nothing is recorded or sent
            summarize(build_settings(flags, os.environ, args.config), paths, batch=True)
            return EXIT_OK
        settings, ledger = batch_run.start(flags, paths, args.config)
        report = batch_run.run_command(settings, ledger, wait=action == "run")
    else:
        overrides = {k: v for k, v in flags.items() if k not in ("out_dir", "json_output")}
        settings, ledger = batch_run.reopen(args.out_dir, args.config, overrides=overrides)
        if action == "status":
            batch_run.status_command(settings, ledger, bool(args.json_output))
            return EXIT_OK
        if action == "cancel":
            batch_run.cancel_command(settings, ledger)
            return EXIT_OK
        report = batch_run.run_command(settings, ledger, wait=bool(args.wait))
    not_ok = report.failed - (report.flagged if settings.allow_flagged else 0)
    if not_ok or (action == "run" and report.pending):
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
