"""The batch ledger: requests, uploaded files, batches and finished documents of a batch job, in SQLite.

It lives in the output folder (`.batch/ledger.sqlite3`) and is written before and after every
call to the Batch API, so `batch status` and `batch collect` can be repeated or resumed after a
crash or kill -9, and nothing is submitted twice. Request lines are kept until answered; an
answered line keeps only the answer's body.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, OutputUnwritable
from .usage import Usage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    custom_id TEXT PRIMARY KEY,
    line TEXT,                       -- the JSONL request line; NULL once answered
    bytes INTEGER NOT NULL,
    tokens INTEGER NOT NULL,         -- estimated, for the enqueued-token limit
    mode TEXT NOT NULL,
    state TEXT NOT NULL,             -- queued | submitted | answered | failed
    part INTEGER,                    -- the input part it was last sent in
    failures INTEGER NOT NULL DEFAULT 0,
    answer TEXT,                     -- the chat completion body, once answered
    error TEXT,                      -- the server's words about the last failure
    wanted INTEGER NOT NULL DEFAULT 1  -- a queued line some document of the current round still needs
);
CREATE INDEX IF NOT EXISTS requests_state ON requests (state, part);
CREATE TABLE IF NOT EXISTS parts (
    part INTEGER PRIMARY KEY,
    state TEXT NOT NULL,             -- uploading | uploaded | created | collected | abandoned
    requests INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    file_id TEXT,
    batch_id TEXT,
    status TEXT,                     -- the server's batch status, as last seen
    counts TEXT,                     -- the server's request_counts, as last seen
    output_file_id TEXT,
    error_file_id TEXT,
    detail TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS docs (
    path BLOB PRIMARY KEY,           -- the input path's bytes (names need not be UTF-8)
    status TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0
);
"""

QUEUED, SUBMITTED, ANSWERED, FAILED = "queued", "submitted", "answered", "failed"
TERMINAL_BATCH = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class Request:
    """One request line as the ledger knows it."""

    custom_id: str
    state: str
    mode: str
    failures: int
    answer: str | None
    error: str | None


@dataclass(frozen=True)
class Part:
    """One batch input file and the batch made of it."""

    part: int
    state: str
    requests: int
    tokens: int
    file_id: str | None
    batch_id: str | None
    status: str | None
    counts: dict[str, int]
    detail: str | None
    created: float


class Ledger:
    """Open with `Ledger(out_dir)`; every write is committed at once unless inside `round()`."""

    def __init__(self, out_dir: Path) -> None:
        folder = out_dir / ".batch"
        self.path = folder / "ledger.sqlite3"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")  # WAL: kill -9 loses no committed step
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the batch ledger {self.path}: {exc} (choose another --out, "
                              "or fix its permissions)") from exc
        if self.meta("ledger_id") is None:
            self.set_meta("ledger_id", secrets.token_hex(8))

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.OperationalError as exc:
            raise OutputUnwritable(f"cannot write the batch ledger {self.path}: {exc} (free space or fix "
                                   "its permissions, then run `summarizer batch collect` again)") from exc

    # -- the job ---------------------------------------------------------------------------------

    @property
    def ledger_id(self) -> str:
        return str(self.meta("ledger_id"))

    def meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def start_job(self, job: dict[str, Any]) -> None:
        """A new job: finished documents of the last one are forgotten (answers stay reusable)."""
        self._write("BEGIN IMMEDIATE")
        self._write("DELETE FROM docs")
        self.set_meta("job", job)
        self.set_meta("run_id", time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3))
        self.set_meta("finished", False)
        self._write("COMMIT")

    # -- documents -------------------------------------------------------------------------------

    def doc_status(self, path: bytes) -> str | None:
        row = self._db.execute("SELECT status FROM docs WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def doc_done(self, path: bytes, status: str, usage: Usage) -> None:
        self._write("INSERT OR REPLACE INTO docs (path, status, prompt_tokens, completion_tokens, requests) "
                    "VALUES (?, ?, ?, ?, ?)", (path, status, usage.prompt_tokens, usage.completion_tokens,
                                               usage.requests))

    def doc_counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, COUNT(*) FROM docs GROUP BY status").fetchall())

    def doc_usage(self) -> Usage:
        """Tokens of the job's finished documents (what the job has cost)."""
        row = self._db.execute("SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
                               "COALESCE(SUM(requests), 0) FROM docs").fetchone()
        return Usage(*row)

    # -- requests --------------------------------------------------------------------------------

    def request(self, custom_id: str) -> Request | None:
        row = self._db.execute("SELECT custom_id, state, mode, failures, answer, error FROM requests "
                               "WHERE custom_id = ?", (custom_id,)).fetchone()
        return Request(*row) if row else None

    def queue(self, custom_id: str, line: str, tokens: int, mode: str) -> None:
        """Record a request line for the next batch (a known one is only marked as still wanted)."""
        self._write("INSERT INTO requests (custom_id, line, bytes, tokens, mode, state) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (custom_id) DO UPDATE SET wanted = 1",
                    (custom_id, line, len(line.encode()) + 1, tokens, mode, QUEUED))

    def unwant_queued(self) -> None:
        """Start of a round: a queued line is sent only if a document asks for it again (not after a
        cancelled job, or once its document came from the cache)."""
        self._write("UPDATE requests SET wanted = 0 WHERE state = ?", (QUEUED,))

    def queued(self) -> Iterator[tuple[str, int, int]]:
        """(custom_id, bytes, tokens) of every queued line still wanted, oldest first."""
        yield from self._db.execute("SELECT custom_id, bytes, tokens FROM requests WHERE state = ? AND wanted = 1 "
                                    "ORDER BY rowid", (QUEUED,)).fetchall()

    def lines_of(self, part: int) -> Iterator[str]:
        """The request lines sent in a part, streamed."""
        cursor = self._db.execute("SELECT line FROM requests WHERE part = ? AND state = ? ORDER BY rowid",
                                  (part, SUBMITTED))
        for (line,) in cursor:
            yield line

    def answer(self, custom_id: str, part: int, body: str) -> bool:
        """Store an answer of a line sent in `part`; False if it was not waiting for one."""
        cursor = self._write("UPDATE requests SET state = ?, answer = ?, line = NULL, error = NULL "
                             "WHERE custom_id = ? AND part = ? AND state = ?",
                             (ANSWERED, body, custom_id, part, SUBMITTED))
        return cursor.rowcount == 1

    def line_failed(self, custom_id: str, part: int, error: str, max_failures: int, counted: bool = True) -> None:
        """A line sent in `part` came back failed: queued again, or failed for good after `max_failures`."""
        self._write("UPDATE requests SET failures = failures + ?, error = ?, "
                    "state = CASE WHEN failures + ? >= ? THEN ? ELSE ? END "
                    "WHERE custom_id = ? AND part = ? AND state = ?",
                    (int(counted), error, int(counted), max_failures, FAILED, QUEUED, custom_id, part, SUBMITTED))

    def unanswered(self, part: int) -> list[str]:
        """custom_ids of a part still waiting (after its files were read: missing lines)."""
        return [r[0] for r in self._db.execute("SELECT custom_id FROM requests WHERE part = ? AND state = ?",
                                               (part, SUBMITTED))]

    def request_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT CASE WHEN state = ? AND wanted = 0 THEN 'unneeded' ELSE state END, "
                                "COUNT(*) FROM requests GROUP BY 1", (QUEUED,)).fetchall()
        return dict(rows)

    # -- parts (input files and batches) ---------------------------------------------------------

    def new_part(self, custom_ids: list[str], tokens: int) -> int:
        """Reserve a part number and mark its lines as submitted, before anything is uploaded."""
        self._write("BEGIN IMMEDIATE")
        try:
            part = int(self.meta("next_part") or 1)
            self.set_meta("next_part", part + 1)
            self._write("INSERT INTO parts (part, state, requests, tokens, created) VALUES (?, 'uploading', ?, ?, ?)",
                        (part, len(custom_ids), tokens, time.time()))
            self._db.executemany("UPDATE requests SET state = ?, part = ? WHERE custom_id = ? AND state = ?",
                                 [(SUBMITTED, part, cid, QUEUED) for cid in custom_ids])
            self._write("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return part

    def update_part(self, part: int, **fields: Any) -> None:
        if "counts" in fields:
            fields["counts"] = json.dumps(fields["counts"])
        names = ", ".join(f"{name} = ?" for name in fields)
        self._write(f"UPDATE parts SET {names} WHERE part = ?", (*fields.values(), part))

    def release(self, part: int) -> None:
        """Lines of a part that never became a batch go back to the queue."""
        self._write("UPDATE requests SET state = ? WHERE part = ? AND state = ?", (QUEUED, part, SUBMITTED))

    def parts(self, *states: str) -> list[Part]:
        where = f"WHERE state IN ({', '.join('?' * len(states))})" if states else ""
        rows = self._db.execute("SELECT part, state, requests, tokens, file_id, batch_id, status, counts, detail, "
                                f"created FROM parts {where} ORDER BY part", states).fetchall()
        return [Part(*row[:7], json.loads(row[7]) if row[7] else {}, *row[8:]) for row in rows]

    def in_flight_tokens(self) -> int:
        """Estimated tokens of batches the server still holds (its enqueued-token count)."""
        row = self._db.execute("SELECT COALESCE(SUM(tokens), 0) FROM parts WHERE state IN "
                               "('uploading', 'uploaded', 'created')").fetchone()
        return int(row[0])

    # -- transactions ----------------------------------------------------------------------------

    def begin(self) -> None:
        """Group the many small writes of a processing round (a crash loses only unsent lines)."""
        self._write("BEGIN")

    def commit(self) -> None:
        if self._db.in_transaction:
            self._write("COMMIT")
