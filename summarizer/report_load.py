"""Reading output documents for `report` and `eval`: files are data, never code.

Files as given, folders walked recursively for *.json (hidden files and run-*.jsonl manifests
skipped). Each file is read with limits (a regular file, at most 32 MiB, UTF-8, JSON nested at
most 64 deep); a file that breaks one is reported and left out. A result is validated only
against a built-in schema (its "schema.id", written by a built-in `--schema`) or the schema named
on the command line (`--schema`, matched by id). A schema named inside a document ("schema.ref")
is never imported: such documents are read as plain JSON, described by their "schema.traits".
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from .artifacts import SchemaSpec, load_schema
from .traits import SchemaTraits

MAX_OUTPUT_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 64


@dataclass(frozen=True)
class OutputDocument:
    """One output file: its envelope, its result, and what the result's fields are (traits)."""

    path: Path
    envelope: dict[str, Any]
    result: dict[str, Any]
    traits: SchemaTraits = field(default_factory=SchemaTraits)
    validated: bool = False  # True: a built-in or command-line schema accepted the result

    @property
    def label(self) -> str:
        """How reports name the document: its source path, else the output file."""
        source = _dict(self.envelope.get("document")).get("path")
        return str(source) if isinstance(source, (str, int, float)) and str(source) else str(self.path)

    @property
    def checks(self) -> dict[str, Any]:
        return _dict(self.envelope.get("checks"))

    @property
    def schema_id(self) -> str:
        value = _dict(self.envelope.get("schema")).get("id")
        return value if isinstance(value, str) else ""


@dataclass
class Loaded:
    """What reading a set of output paths gave: documents, unusable files (with why), and notes."""

    documents: list[OutputDocument] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def find_output_files(outputs: Iterable[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Output files to read, in a stable order, and paths that could not be used (with why)."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []

    def unreadable(exc: OSError) -> None:
        problems.append((Path(exc.filename or "?"), f"cannot read folder ({exc.strerror or exc})"))

    for raw in outputs:
        path = Path(raw)
        if path.is_dir():
            # os.walk without followlinks: a symlinked folder cannot loop the walk.
            for folder, dirs, names in os.walk(path, followlinks=False, onerror=unreadable):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files += [Path(folder) / n for n in sorted(names) if n.endswith(".json") and not n.startswith(".")]
        elif path.name.startswith("run-") and path.name.endswith(".jsonl"):
            continue  # a run manifest, not an output document
        elif path.exists():
            files.append(path)
        else:
            problems.append((path, "no such file or folder"))
    return list(dict.fromkeys(files)), problems


def read_json_file(path: Path) -> Any:
    """A file's JSON value, within the limits above; raises ValueError with a readable reason."""
    limit = MAX_OUTPUT_BYTES
    try:
        # O_NONBLOCK: a FIFO named x.json must not hang the command; fstat then rejects it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ValueError(f"cannot read ({exc.strerror or exc})") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > limit:
            raise ValueError(f"larger than {limit // 2**20} MiB ({info.st_size} bytes); not read")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise ValueError(f"cannot read ({exc.strerror or exc})") from exc
    if len(data) > limit:  # it grew while we looked
        raise ValueError(f"larger than {limit // 2**20} MiB; not read")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (bad byte at offset {exc.start})") from exc
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    except RecursionError as exc:
        raise ValueError(f"nested too deeply (more than {MAX_DEPTH} levels)") from exc
    if _depth_exceeds(value, MAX_DEPTH):
        raise ValueError(f"nested too deeply (more than {MAX_DEPTH} levels)")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"not JSON ({name} is not a JSON number)")


def _depth_exceeds(value: Any, limit: int) -> bool:
    # Iterative: a deep value must not exhaust the stack of the code that reads it later.
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return False


@lru_cache(maxsize=None)
def builtin_schema(schema_id: str) -> SchemaSpec | None:
    """A built-in schema by id (None if there is none): imports only summarizer's own package."""
    from summarizer.schemas import BUILTIN

    return load_schema(schema_id) if schema_id in BUILTIN else None


class SchemaChoice:
    """Which schema may validate a document: the command line's, else a built-in one; never the file's."""

    def __init__(self, given: str | None = None) -> None:
        # The user named it on the command line: importing their own file is their choice.
        self.given = load_schema(given) if given else None
        self.given_used = 0

    def schema_for(self, envelope: dict[str, Any]) -> SchemaSpec | None:
        """The schema that validates this envelope's result, or None to read it as plain JSON."""
        block = _dict(envelope.get("schema"))
        schema_id, ref = block.get("id"), block.get("ref")
        if self.given is not None and schema_id == self.given.id:
            self.given_used += 1
            return self.given
        # A built-in schema wrote it when its ref (what --schema said) is the id itself; a
        # user's file may reuse a built-in id, and then the built-in model is not its schema.
        if isinstance(schema_id, str) and (ref is None or ref == schema_id):
            return builtin_schema(schema_id)
        return None


def traits_of_envelope(envelope: dict[str, Any], result: dict[str, Any]) -> SchemaTraits:
    """The traits an output carries; for older outputs a built-in schema's, else top-level title/summary."""
    block = _dict(envelope.get("schema"))
    if isinstance(block.get("traits"), dict):
        return SchemaTraits.from_dict(block["traits"])
    spec = builtin_schema(block["id"]) if isinstance(block.get("id"), str) else None
    if spec is not None:
        return spec.traits
    return SchemaTraits(title="title" if "title" in result else None, summary="summary" if "summary" in result else None)


def load_output(path: Path, choice: SchemaChoice) -> OutputDocument:
    """Read one output file, validating it when a trusted schema is known; raises ValueError."""
    envelope = read_json_file(path)
    if not isinstance(envelope, dict) or not isinstance(_dict(envelope.get("schema")).get("id"), str) \
            or not isinstance(envelope.get("result"), dict):
        raise ValueError("not a summarizer output document (needs 'schema.id' and a 'result' object)")
    spec = choice.schema_for(envelope)
    if spec is None:
        return OutputDocument(path, envelope, envelope["result"], traits_of_envelope(envelope, envelope["result"]))
    try:
        result = spec.model.model_validate(envelope["result"])
    except ValidationError as exc:
        from .pipeline import describe_validation_error

        block = envelope["schema"]
        written = block.get("version")
        note = f" (written with schema version {written}, this is {spec.version})" if written != spec.version else ""
        raise ValueError(f"result does not match schema {block['id']!r}{note}:\n"
                         f"{describe_validation_error(exc)}") from exc
    return OutputDocument(path, envelope, result.model_dump(mode="json"), spec.traits, validated=True)


def load_outputs(outputs: Iterable[str], schema: str | None = None) -> Loaded:
    """Every readable output document, (path, reason) for every file that is not one, and notes."""
    choice = SchemaChoice(schema)  # a --schema that cannot be loaded is a ConfigError (exit 2)
    files, problems = find_output_files(outputs)
    loaded = Loaded(problems=problems)
    for path in files:
        try:
            loaded.documents.append(load_output(path, choice))
        except ValueError as exc:
            loaded.problems.append((path, str(exc)))
    plain = sorted({doc.schema_id[:80] for doc in loaded.documents if not doc.validated})
    if plain:
        count = sum(1 for doc in loaded.documents if not doc.validated)
        names = ", ".join(map(repr, plain[:5])) + (f" and {len(plain) - 5} more" if len(plain) > 5 else "")
        loaded.notes.append(f"{count} document(s) of schema {names} read as plain JSON, "
                            "not validated: their schema is not built in (to check them, pass "
                            "--schema path/to/file.py:Model; a schema named inside an output is never imported)")
    if choice.given is not None and not choice.given_used:
        loaded.notes.append(f"--schema {schema} (id {choice.given.id!r}) matched no document: "
                            "documents are matched by their 'schema.id'")
    return loaded


def print_loading(loaded: Loaded, err: IO[str]) -> None:
    """Unusable files (red, one greppable line each) and notes (yellow) on stderr."""
    from .render import make_console, safe

    console = make_console(err)
    for path, reason in loaded.problems:
        console.print(safe(f"{path}: {reason}"), style="red", soft_wrap=True)
    for note in loaded.notes:
        console.print(safe(f"note: {note}"), style="yellow", soft_wrap=True)
