"""The `export` command: output documents into one SQLite database to query (sqlite3, Datasette).

Output files are data: each is read within report_load's limits (a regular file, 32 MiB, UTF-8,
JSON nested at most 64 deep) and taken apart by the traits it carries (`schema.traits`); nothing
it names is ever imported or run (a built-in schema id without traits gets the built-in's traits).
A file that is not an output document is reported and left out. The database is rebuilt from
the outputs named, in a temporary file renamed over the old one, so exporting the same outputs
again gives the same rows and a reader never sees half a file.
Tables are described in export_tables.py.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from pathlib import Path

from . import __version__
from .errors import ConfigError, OutputUnwritable
from .export_tables import FORMAT, Output, Table, build_tables, quote
from .inputs import display_path
from .report_load import find_output_files, read_json_file, traits_of_envelope

# Suffixes of other databases: exporting to them is not supported yet (the SQLite file opens in both).
OTHER_FORMATS = {".duckdb": "DuckDB can read the SQLite file: ATTACH 'results.sqlite' AS r (TYPE sqlite)",
                 ".parquet": "export to .sqlite, then COPY each table TO 'table.parquet' from DuckDB"}


def run_export(outputs: list[str], destination: Path) -> bool:
    """The `export` command: read, build the tables, write; True when some file was left out."""
    from .render import make_console, safe

    err = make_console(sys.stderr)
    if not outputs:
        raise ConfigError("no outputs given: name output files or folders, e.g. "
                          "`summarizer export outputs/ -o results.sqlite`")
    _check_destination(destination)
    files, problems = find_output_files(outputs)
    skipped = [(display_path(str(path)), reason) for path, reason in problems]
    loaded: list[Output] = []
    for path in files:
        try:
            loaded.append(read_output(path))
        except ValueError as exc:
            skipped.append((display_path(str(path)), str(exc)))
    built = build_tables(loaded, __version__)
    skipped += built.skipped
    for file, reason in skipped:
        err.print(safe(f"{file}: {reason}"), style="red", soft_wrap=True)  # one line per file, greppable
    documents = len(built.tables[0].rows)
    if not documents:
        where = ", ".join(outputs)
        raise ConfigError(f"no output documents to export in {where}: run `summarizer summarize` first, "
                          "or name the folder it wrote (default outputs/)")
    write_database(built.tables, destination)
    for note in built.notes:
        err.print(safe(f"note: {note}"), style="yellow", soft_wrap=True)
    lists = [t.name for t in built.tables[1:] if t.name not in ("unsupported", "links", "export_columns", "export_info")]
    err.print(safe(f"{documents} document(s) exported to {destination} (tables: documents, "
                   f"{', '.join(lists + ['unsupported', 'links'])})"), soft_wrap=True)
    if skipped:
        err.print(safe(f"{len(skipped)} file(s) could not be exported and were left out"), style="red")
    return bool(skipped)


def read_output(path: Path) -> Output:
    """One output document, read as data (limits of report_load); raises ValueError saying why not."""
    envelope = read_json_file(path)
    schema = envelope.get("schema") if isinstance(envelope, dict) else None
    if not isinstance(schema, dict) or not isinstance(schema.get("id"), str) \
            or not isinstance(envelope.get("result"), dict):
        raise ValueError("not a summarizer output document (needs 'schema.id' and a 'result' object)")
    return Output(display_path(str(path)), envelope, traits_of_envelope(envelope, envelope["result"]))


def _check_destination(destination: Path) -> None:
    """Refuse a destination that cannot be ours to replace before reading anything."""
    suffix = destination.suffix.lower()
    if suffix in OTHER_FORMATS:
        raise ConfigError(f"{destination}: only SQLite files are written (-o results.sqlite); "
                          f"{OTHER_FORMATS[suffix]}")
    if destination.is_dir():
        raise ConfigError(f"{destination} is a folder: name a file, e.g. -o {destination / 'results.sqlite'}")
    if not destination.parent.is_dir():
        raise ConfigError(f"folder {destination.parent} does not exist: create it, or choose another -o path")
    if destination.exists() and destination.stat().st_size and not is_export(destination):
        raise ConfigError(f"{destination} exists and is not a database written by `summarizer export`: "
                          "it is left alone; choose another -o path, or delete it first")


def is_export(path: Path) -> bool:
    """True for a SQLite file that an earlier export wrote (it may be replaced)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                return False
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = connection.execute("SELECT value FROM export_info WHERE key = 'format'").fetchone()
        finally:
            connection.close()
    except (OSError, sqlite3.Error):
        return False
    return bool(row) and isinstance(row[0], str) and row[0].startswith(FORMAT.split("/")[0])


def write_database(tables: list[Table], destination: Path) -> None:
    """Write every table into a new SQLite file, then rename it over `destination` (atomic)."""
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputUnwritable(f"cannot write {destination}: {exc.strerror or exc} "
                               f"(fix the permissions of {destination.parent}, or choose another -o path)") from exc
    try:
        connection = sqlite3.connect(temp)
        try:
            # A fresh file renamed into place only when complete: no journal needed while building.
            connection.execute("PRAGMA journal_mode = OFF")
            with connection:
                for table in tables:
                    _create(connection, table)
                _search_index(connection)
            connection.execute("VACUUM")  # compact, and the same bytes layout for the same rows
        finally:
            connection.close()
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, destination)
    except (OSError, sqlite3.OperationalError) as exc:
        raise OutputUnwritable(f"cannot write {destination}: {getattr(exc, 'strerror', None) or exc} "
                               "(free space or fix permissions, then export again)") from exc
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def _search_index(connection: sqlite3.Connection) -> None:
    """Full-text search over titles and summaries (Datasette shows a search box for it)."""
    try:
        connection.execute("CREATE VIRTUAL TABLE documents_fts USING fts5(title, summary, content='documents', "
                           "content_rowid='id')")
    except sqlite3.OperationalError:  # an SQLite built without FTS5: the tables are all that matter
        return
    connection.execute("INSERT INTO documents_fts (documents_fts) VALUES ('rebuild')")


def _create(connection: sqlite3.Connection, table: Table) -> None:
    columns = [f"{quote(name)} {kind}".rstrip() for name, kind in table.columns]
    if table.references_documents:
        columns[0] += " NOT NULL REFERENCES documents(id)"
    columns.append(f"PRIMARY KEY ({', '.join(quote(c) for c in table.primary_key)})")
    connection.execute(f"CREATE TABLE {quote(table.name)} ({', '.join(columns)})")
    marks = ", ".join("?" * len(table.columns))
    connection.executemany(f"INSERT INTO {quote(table.name)} VALUES ({marks})", table.rows)
    for name, columns_of_index in table.indexes:
        connection.execute(f"CREATE INDEX {quote(name)} ON {quote(table.name)} "
                           f"({', '.join(quote(c) for c in columns_of_index)})")
