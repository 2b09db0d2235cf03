"""Output documents as database tables, shaped by each schema's traits (pure: no files, no SQL).

`build_tables` turns output envelopes into `Table`s: `documents` (one row per output),
one table per list of the result reached through objects (`organizations`, `agreement_parties`),
`unsupported` (facts the checks could not find in the source) and `links` (each value of a
`LinksTo` field, resolved to the entity it names), plus `export_columns` saying which JSON path
each column holds. No field name of any schema appears here: traits and the data decide.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from summarizer.schemas._common import fold

from .traits import SchemaTraits, iter_values

FORMAT = "summarizer-export/1"
MAX_DEPTH = 8  # objects nested deeper than this are stored as JSON text, not flattened further
MAX_COLUMNS = 500  # data columns per table (SQLite allows 2,000): the rarest fields beyond stay in JSON
MAX_TABLES = 200  # list tables: the rarest lists beyond stay in result_json only
FIXED_TABLES = ("documents", "unsupported", "links", "export_columns", "export_info",
                # the full-text index of documents (export.py) and the tables FTS5 keeps beside it
                "documents_fts", "documents_fts_data", "documents_fts_idx", "documents_fts_docsize",
                "documents_fts_config", "documents_fts_content")
_INT64 = (-(2**63), 2**63 - 1)
_NOT_WORD = re.compile(r"\W+")
_INDEX = re.compile(r"\[(\d+)\]")

# The documents table's own columns: (name, declared type, where in the envelope it comes from).
DOCUMENT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "INTEGER", ""), ("key", "TEXT", ""), ("output_file", "TEXT", ""),
    ("document_path", "TEXT", "document.path"), ("document_sha256", "TEXT", "document.sha256"),
    ("format", "TEXT", "document.format"), ("encoding", "TEXT", "document.encoding"),
    ("chars", "INTEGER", "document.chars"), ("chunks", "INTEGER", "document.chunks"),
    ("schema_id", "TEXT", "schema.id"), ("schema_version", "TEXT", "schema.version"),
    ("prompt_id", "TEXT", "prompt.id"), ("prompt_version", "TEXT", "prompt.version"),
    ("model", "TEXT", "model.name"), ("backend", "TEXT", "model.backend"),
    ("status", "TEXT", "checks.passed"), ("checks_passed", "INTEGER", "checks.passed"),
    ("title", "TEXT", "traits.title"), ("summary", "TEXT", "traits.summary"),
    ("source_language", "TEXT", "traits.language"), ("created_at", "TEXT", "created_at"),
)


@dataclass(frozen=True)
class Output:
    """One output document as read from a file: where it was, its envelope, its schema's traits."""

    file: str
    envelope: dict[str, Any]
    traits: SchemaTraits


@dataclass
class Table:
    """A table ready to write: column names and declared types, rows, keys and indexes."""

    name: str
    columns: list[tuple[str, str]]  # (name, declared type; "" for mixed values)
    rows: list[tuple[Any, ...]]
    primary_key: tuple[str, ...]
    references_documents: bool = True  # has a document_id column pointing at documents(id)
    indexes: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (index name, columns)


@dataclass
class Tables:
    """Everything one export writes, and notes for the person running it."""

    tables: list[Table]
    skipped: list[tuple[str, str]]  # (output file, why it was left out)
    notes: list[str]


def quote(name: str) -> str:
    """An SQL identifier, quoted: names come from data."""
    return '"' + name.replace('"', '""') + '"'


def build_tables(outputs: Sequence[Output], version: str) -> Tables:
    """Every table of one export: rows in a stable order, so the same outputs give the same rows."""
    records, skipped = [], []
    for output in outputs:
        try:
            records.append(_record(output))
        except (RecursionError, ValueError, TypeError, OverflowError) as exc:
            skipped.append((output.file, f"cannot be exported ({type(exc).__name__}: {str(exc)[:200]})"))
    records, duplicates = _deduplicate(records)
    notes = [f"{duplicates} output(s) repeat another output of the same document, schema and model: "
             "the newest of each was kept"] if duplicates else []
    return Tables(_tables(records, version, notes), skipped, notes)


@dataclass
class _Record:
    """One output, taken apart: its document row, the rows of its lists, unsupported facts, links."""

    output: Output
    key: str
    order: tuple[str, str]
    created: str
    fixed: dict[str, Any]  # documents column -> value, for the columns of DOCUMENT_COLUMNS
    fields: dict[str, Any]  # result path -> scalar
    lists: dict[str, list[dict[str, Any]]]  # list path -> item rows (path in item -> scalar)
    unsupported: list[tuple[Any, Any]]
    links: list[tuple[Any, ...]]
    result_json: str
    declared: dict[str, list[str]] = field(default_factory=dict)  # from traits: list path -> item paths


def _declared(traits: SchemaTraits) -> dict[str, list[str]]:
    """The paths the traits name, as columns: "" -> documents' fields, a list path -> its items' fields.

    So a table or column a schema declares exists even when no output has a value there yet.
    """
    paths = [traits.title, traits.summary, traits.language, *traits.verbatim, *traits.english,
             *(f"{k}[].{v}" for k, v in traits.entities.items()), *traits.links, *traits.links.values()]
    declared: dict[str, list[str]] = {"": []}
    for path in filter(None, paths):
        head, each, rest = path.partition("[]")
        if not each:
            declared[""].append(head)
        elif rest == "" or rest.startswith("."):
            # `a[].b[].c`: b, a list inside each item of a, is a column of a's table (JSON text)
            declared.setdefault(head, []).append(rest[1:].partition("[]")[0])
    return declared


def _record(output: Output) -> _Record:
    envelope, traits = output.envelope, output.traits
    result = envelope["result"]
    document, schema = _dict(envelope.get("document")), _dict(envelope.get("schema"))
    prompt, model, checks = _dict(envelope.get("prompt")), _dict(envelope.get("model")), _dict(envelope.get("checks"))
    passed = checks.get("passed") if isinstance(checks.get("passed"), bool) else None
    unsupported = [(_cell(u.get("field")), _cell(u.get("value"))) for u in _list(checks.get("unsupported"))
                   if isinstance(u, dict)]
    fields: dict[str, Any] = {}
    lists: dict[str, list[dict[str, Any]]] = {}
    _flatten(result, "", fields, lists, 0)
    for shown in (traits.title, traits.summary, traits.language):  # already columns of their own
        fields.pop(shown or "", None)
    fixed = {
        "id": None, "key": None, "output_file": output.file,
        "document_path": _text(document.get("path")), "document_sha256": _text(document.get("sha256")),
        "format": _text(document.get("format")), "encoding": _text(document.get("encoding")),
        "chars": _int(document.get("chars")), "chunks": _int(document.get("chunks")),
        "schema_id": _text(schema.get("id")), "schema_version": _text(schema.get("version")),
        "prompt_id": _text(prompt.get("id")), "prompt_version": _text(prompt.get("version")),
        "model": _text(model.get("name")), "backend": _text(model.get("backend")),
        "status": "flagged" if passed is False or unsupported else "ok",  # never ok with facts not in the source
        "checks_passed": None if passed is None else int(passed),
        "title": _first_text(result, traits.title), "summary": _first_text(result, traits.summary),
        "source_language": _first_text(result, traits.language), "created_at": _text(envelope.get("created_at")),
    }
    # The same document, schema, prompt and model: the same extraction, whichever run wrote it.
    identity = [document.get("sha256") or _sha(output.file), schema.get("id"), schema.get("version"),
                model.get("name"), prompt.get("sha256")]
    return _Record(
        output, _sha(json.dumps(identity, ensure_ascii=True, default=str)),
        (fixed["document_path"] or "", output.file), fixed["created_at"] or "", fixed, fields, lists, unsupported,
        _links(result, traits), _json(result), _declared(traits),
    )


def _flatten(value: Any, path: str, fields: dict[str, Any], lists: dict[str, list[dict[str, Any]]] | None,
             depth: int) -> None:
    """Scalars under `path` into fields (a.b); lists reached through objects into `lists`, when given."""
    if isinstance(value, dict) and depth < MAX_DEPTH:
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), fields, lists, depth + 1)
    elif isinstance(value, list) and lists is not None and path:
        rows = lists.setdefault(path, [])
        for item in value:
            row: dict[str, Any] = {}
            if isinstance(item, dict):
                _flatten(item, "", row, None, depth + 1)
            else:
                row[""] = _cell(item)
            rows.append(row)
    else:
        fields[path] = _cell(value)


def _links(result: dict[str, Any], traits: SchemaTraits) -> list[tuple[Any, ...]]:
    """(path, link, value, target, target list, target position, target key) per linked value."""
    rows: list[tuple[Any, ...]] = []
    for link, target in traits.links.items():
        names: dict[str, str] = {}
        for name in traits.link_names(target):  # as the checks accept links: the target first
            for where, value in iter_values(result, name):
                if isinstance(value, str):
                    names.setdefault(fold(value), where)
        target_list = target.rpartition("[]")[0] if target.count("[]") == 1 else None
        key_field = traits.entities.get(target_list or "")
        for where, value in _each(iter_values(result, link)):
            found = names.get(fold(value)) if isinstance(value, str) else None
            position = int(_INDEX.search(found).group(1)) if found and target_list else None
            key = None
            if position is not None and key_field:
                items = result
                for step in target_list.split("."):
                    items = _dict(items).get(step)
                item = _list(items)[position] if position < len(_list(items)) else None
                key = _cell(_dict(item).get(key_field))
            rows.append((where, link, _cell(value), target, target_list, position, key))
    return rows


def _each(found: Iterable[tuple[str, Any]]) -> Iterable[tuple[str, Any]]:
    # A link declared on a whole list (not on its items) names each item.
    for where, value in found:
        if isinstance(value, list):
            yield from ((f"{where}[{i}]", v) for i, v in enumerate(value))
        else:
            yield where, value


def _deduplicate(records: list[_Record]) -> tuple[list[_Record], int]:
    """One record per document, schema and model (the newest), in a stable order."""
    kept: dict[str, _Record] = {}
    for record in sorted(records, key=lambda r: r.order):
        if record.key not in kept or record.created > kept[record.key].created:
            kept[record.key] = record
    return sorted(kept.values(), key=lambda r: r.order), len(records) - len(kept)


def _tables(records: list[_Record], version: str, notes: list[str]) -> list[Table]:
    taken = {name.casefold() for name in FIXED_TABLES}  # table and index names, ignoring case as SQLite does
    described: list[tuple[str, str, str | None]] = []  # rows of export_columns
    for number, record in enumerate(records, 1):
        record.fixed["id"], record.fixed["key"] = number, record.key
    list_paths = _keep(Counter(p for r in records for p in [*r.lists, *r.declared] if p), MAX_TABLES,
                       "the export", "lists", notes)
    tables = [_documents(records, list_paths, described, notes)]
    table_of: dict[str, str] = {}
    for list_path in list_paths:
        tables.append(_list_table(records, list_path, _unique(_sanitize(list_path) or "list", taken), described, notes))
        table_of[list_path] = tables[-1].name
    tables.append(Table("unsupported", [("document_id", "INTEGER"), ("position", "INTEGER"), ("field", "TEXT"),
                                        ("value", "")],
                        [(r.fixed["id"], i, f, v) for r in records for i, (f, v) in enumerate(r.unsupported)],
                        ("document_id", "position")))
    tables.append(Table("links", [("document_id", "INTEGER"), ("path", "TEXT"), ("link", "TEXT"), ("value", ""),
                                  ("target", "TEXT"), ("target_table", "TEXT"), ("target_position", "INTEGER"),
                                  ("target_key", "")],
                        _link_rows(records, table_of), ("document_id", "path"), indexes=[("", ("link", "value"))]))
    tables.append(Table("export_columns", [("table_name", "TEXT"), ("column_name", "TEXT"), ("path", "TEXT")],
                        described, ("table_name", "column_name"), references_documents=False))
    tables.append(Table("export_info", [("key", "TEXT"), ("value", "TEXT")],
                        [("format", FORMAT), ("summarizer_version", version)], ("key",), references_documents=False))
    for table in tables:  # indexes share the tables' namespace: named once every table is
        table.indexes = [(_unique("_".join(["idx", table.name, *cols]), taken), cols) for _, cols in table.indexes]
    return tables


def _documents(records: list[_Record], list_paths: list[str], described: list[tuple[str, str, str | None]],
               notes: list[str]) -> Table:
    """One row per output: its own columns, then the result's scalars (a.b -> a_b), then result_json."""
    fixed = [name for name, _, _ in DOCUMENT_COLUMNS]
    shown = {p for r in records for p in (r.output.traits.title, r.output.traits.summary, r.output.traits.language)}
    declared = [p for r in records for p in r.declared[""] if p not in shown]
    paths = _keep(_paths([r.fields for r in records], list_paths, declared), MAX_COLUMNS, "documents", "fields",
                  notes)
    names = _names(paths, {*fixed, "result_json"})
    rows = [(*(r.fixed[n] for n in fixed), *(r.fields.get(p) for p in paths), r.result_json) for r in records]
    columns = [(n, t) for n, t, _ in DOCUMENT_COLUMNS] + list(zip(names, _types(rows, len(fixed), len(paths)),
                                                                  strict=True))
    sources = [where or None for _, _, where in DOCUMENT_COLUMNS] + [*paths, "result"]
    described.extend(("documents", n, p) for n, p in zip([*fixed, *names, "result_json"], sources, strict=True))
    return Table("documents", [*columns, ("result_json", "TEXT")], rows, ("id",), references_documents=False)


def _list_table(records: list[_Record], list_path: str, name: str, described: list[tuple[str, str, str | None]],
                notes: list[str]) -> Table:
    """One row per item of the list at `list_path` in every output; items' fields as columns."""
    item_paths = _keep(_paths([row for r in records for row in r.lists.get(list_path, [])], (),
                              [p for r in records for p in r.declared.get(list_path, [])]),
                       MAX_COLUMNS, name, "fields", notes)
    columns = _names(item_paths, {"document_id", "position"})
    rows = [(r.fixed["id"], i, *(row.get(p) for p in item_paths))
            for r in records for i, row in enumerate(r.lists.get(list_path, []))]
    item = f"{list_path}[]"
    described.extend((name, c, p) for c, p in zip(["document_id", "position", *columns],
                                                  ["documents.id", None, *(f"{item}.{p}" if p else item
                                                                           for p in item_paths)], strict=True))
    keys = sorted({r.output.traits.entities.get(list_path) for r in records} - {None})  # entity lists: Key indexed
    return Table(name, [("document_id", "INTEGER"), ("position", "INTEGER"),
                        *zip(columns, _types(rows, 2, len(item_paths)), strict=True)], rows, ("document_id", "position"),
                 indexes=[("", (columns[item_paths.index(k)],)) for k in keys if k in item_paths])


def _link_rows(records: list[_Record], table_of: dict[str, str]) -> list[tuple[Any, ...]]:
    rows = []
    for record in records:
        seen: set[str] = set()
        for where, link, value, target, target_list, position, key in record.links:
            if where not in seen:  # two links declared on one value: the first one wins
                seen.add(where)
                table = table_of.get(target_list or "")
                rows.append((record.fixed["id"], where, link, value, target, table,
                             position if table else None, key))
    return rows


def _paths(rows: list[dict[str, Any]], lists: Iterable[str] = (), declared: Iterable[str] = ()) -> Counter[str]:
    """How often each path has a column value (paths the traits declare count too, once seen or
    not); a path that is only ever null where others hold an object or a list there
    (`agreement: null` beside `agreement.kind`) gets no column of its own."""
    counts = Counter(p for row in rows for p in row)
    for path in declared:
        counts[path] += 0  # a column, ranked after every path that has values
    containers = {q for p in counts for q in _prefixes(p)} | {q for p in lists for q in (p, *_prefixes(p))}
    filled = {p for row in rows for p, v in row.items() if v is not None}
    return Counter({p: n for p, n in counts.items() if p not in containers or p in filled})


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _keep(counts: Counter[str], limit: int, where: str, what: str, notes: list[str]) -> list[str]:
    """The paths to give columns or tables, in first-seen order; the rarest beyond `limit` are noted."""
    paths = list(counts)
    if len(paths) <= limit:
        return paths
    ranked = sorted(paths, key=lambda p: -counts[p])[:limit]  # stable: ties keep first-seen order
    notes.append(f"{where}: {len(paths) - limit} rare {what} beyond {limit} left out (still in result_json)")
    kept = set(ranked)
    return [p for p in paths if p in kept]


def _names(paths: Iterable[str], reserved: set[str]) -> list[str]:
    """Column names for paths (a.b -> a_b, '' -> value), unique ignoring case, none reserved."""
    taken = {r.casefold() for r in reserved}
    return [_unique(_sanitize(p) or ("value" if p == "" else "field"), taken) for p in paths]


def _sanitize(path: str) -> str:
    name = _NOT_WORD.sub("_", path.replace("[]", "")).strip("_")[:60]
    return f"t_{name}" if name.casefold().startswith("sqlite_") else name  # SQLite reserves sqlite_*


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate.casefold())
    return candidate


def _types(rows: list[tuple[Any, ...]], start: int, count: int) -> list[str]:
    """A declared type per column when all its values agree; "" (no conversion) when they do not."""
    types = []
    for column in range(start, start + count):
        kinds = {type(row[column]) for row in rows if row[column] is not None}
        types.append({frozenset({int}): "INTEGER", frozenset({float}): "REAL", frozenset({int, float}): "REAL",
                      frozenset({str}): "TEXT"}.get(frozenset(kinds), ""))
    return types


def _cell(value: Any) -> Any:
    """A value SQLite stores as is: text, a 64-bit integer, a float, NULL; anything else as JSON text."""
    if value is None or isinstance(value, str):
        return _text(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return _json(value)


def _json(value: Any) -> str:
    return _text(json.dumps(value, ensure_ascii=False))


def _text(value: Any) -> str | None:
    # Lone surrogates (from \ud800 escapes in the JSON) cannot be stored as UTF-8: they become '?'.
    if not isinstance(value, str):
        return None
    return value.encode("utf-8", "replace").decode("utf-8") if not value.isascii() else value


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and _INT64[0] <= value <= _INT64[1] else None


def _first_text(result: dict[str, Any], path: str | None) -> str | None:
    if not path:
        return None
    return next((_text(v) for _, v in iter_values(result, path) if isinstance(v, str)), None)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
