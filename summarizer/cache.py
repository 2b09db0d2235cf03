"""The result cache: validated results in SQLite (WAL), keyed by everything that shapes them."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .artifacts import canonical_json, sha256_text
from .errors import ConfigError, OutputUnwritable

_OPEN_ATTEMPTS = 100  # x 0.1 s, on top of SQLite's own busy timeout
_SCHEMA = "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"


def cache_key(parts: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of the key's parts (text hash, schema, prompt, model...)."""
    return sha256_text(canonical_json(dict(parts)))


def _busy(exc: sqlite3.OperationalError) -> bool:
    """True for "database is locked/busy" (wait and retry), not for read-only or disk full."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Cache:
    """One SQLite file shared safely by concurrent processes; a corrupt file is moved aside."""

    def __init__(self, directory: Path, warn: Callable[[str], None] = lambda message: None) -> None:
        self.path = directory / "cache.sqlite3"
        self._warn = warn
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the cache folder {directory}: {exc.strerror or exc} "
                              "(use --cache-dir elsewhere, or --no-cache)") from exc
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ConfigError(f"the cache folder {directory} is not writable: use --cache-dir elsewhere, "
                              "fix its permissions, or run with --no-cache")
        try:
            self._db = self._open_when_free()
        except sqlite3.OperationalError as exc:  # still locked after retrying: not corruption
            if not _busy(exc):
                raise ConfigError(f"cannot open the cache at {self.path}: {exc} (use --cache-dir elsewhere, "
                                  "or --no-cache)") from exc
            raise ConfigError(f"the cache at {self.path} is busy ({exc}): retry, or use --cache-dir") from exc
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"cache.sqlite3.corrupt-{int(time.time())}")
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            self._warn(f"the cache at {self.path} was corrupt ({exc}); moved it to {aside.name} and started a new one")
            self._db = self._open()

    def _open_when_free(self) -> sqlite3.Connection:
        # Another process may be creating the file or switching it to WAL at this very moment:
        # "locked"/"busy" (OperationalError) means wait, only other DatabaseErrors mean corrupt.
        for _ in range(_OPEN_ATTEMPTS - 1):
            try:
                return self._open()
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise  # read-only, no space, cannot open: waiting does not help
                time.sleep(0.1)
        return self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute(_SCHEMA)
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {row[0] if row else 'no answer'}")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached entry for key, or None."""
        row = self._db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except json.JSONDecodeError:
            self._db.execute("DELETE FROM results WHERE key = ?", (key,))
            return None

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store a validated entry; the first writer of a key wins."""
        try:
            self._db.execute(
                "INSERT OR IGNORE INTO results (key, value, created) VALUES (?, ?, ?)",
                (key, json.dumps(value, ensure_ascii=False), time.time()),
            )
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise
            raise OutputUnwritable(f"cannot write the cache at {self.path}: {exc} (free space or fix its "
                                   "permissions, or use --no-cache; then re-run the same command)") from exc

    def integrity_ok(self) -> bool:
        """True when SQLite's full integrity check passes."""
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self._db.close()
