"""Everything summarizer writes to disk: output documents, run manifests, reports (atomically)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Collection, Iterator
from pathlib import Path, PurePath
from typing import IO, Any

from .errors import ConfigError, OutputUnwritable

_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and rename: readers never see half a file."""
    # No fsync: the rename is atomic against crashes and kill -9, which is what a run meets;
    # an fsync per document (~1 ms) would cap cached re-runs well below 1,000 documents/s.
    with atomic_writer(path) as handle:
        handle.write(text)


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[IO[str]]:
    """A text handle whose content replaces `path` only when the block finishes without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The name's start only: any output name the filesystem takes must leave room for the suffix.
    tmp = path.with_name(f".{path.name[:40]}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict[str, Any], keep_if_same_but: Collection[str] = ()) -> bool:
    """Atomically write UTF-8 JSON on one line (pipe through `jq .` to read it); True if written.

    With keep_if_same_but, an existing file that already says the same except for those
    top-level keys is left as it is: a re-run served from the cache rewrites nothing.
    """
    if keep_if_same_but and _same_but(path, data, keep_if_same_but):
        return False
    # Compact on purpose: indent= switches json to its pure-Python encoder (~0.3 ms per document).
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    return True


def _same_but(path: Path, data: dict[str, Any], keys: Collection[str]) -> bool:
    # Reading a small file costs far less than replacing it (~0.6 ms per file on some filesystems).
    try:
        old = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    if not isinstance(old, dict):
        return False
    return {k: v for k, v in old.items() if k not in keys} == {k: v for k, v in data.items() if k not in keys}


def output_name(relative: PurePath) -> PurePath:
    """outputs/ path for an input path relative to its root: same folders, .json, nothing unsafe."""
    parts = [(_UNSAFE.sub("_", part).strip("._").lstrip("-") or "_") for part in relative.parts if part not in ("", ".", "..", "/")]
    if not parts:
        parts = ["document"]
    stem = PurePath(parts[-1]).stem or parts[-1]
    return PurePath(*parts[:-1], stem + ".json")


class OutputPaths:
    """Output paths inside out_dir for input paths; each folder is resolved (symlinks followed) once."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir
        self._root = out_dir.resolve()
        self._folders: dict[PurePath, Path] = {}

    def for_input(self, relative: PurePath) -> Path:
        """Join safely: the result always lies inside out_dir (a file there is replaced, never followed)."""
        name = output_name(relative)
        folder = self._folders.get(name.parent)
        if folder is None:
            folder = (self._out_dir / name.parent).resolve()
            if folder != self._root and self._root not in folder.parents:  # a symlinked folder; '..' is gone already
                raise ConfigError(f"output folder {self._out_dir / name.parent} leads to {folder}, outside "
                                  f"{self._root}: remove that link or choose another --out")
            self._folders[name.parent] = folder
        return folder / name.name


class Manifest:
    """outputs/run-<id>.jsonl: one line per document, written whole as soon as its status is known."""

    def __init__(self, out_dir: Path, run_id: str | None = None) -> None:
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        self.path = out_dir / f"run-{self.run_id}.jsonl"
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot write to the output folder {out_dir}: {exc.strerror or exc} "
                              "(choose another --out, or fix its permissions)") from exc

    def record(self, entry: dict[str, Any]) -> None:
        """Append one line; a write that fails (disk full) leaves no torn line behind."""
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
        before = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            written = os.write(self._fd, line)  # one write of the whole line: O_APPEND keeps it in one piece
            if written != len(line):
                raise OSError(28, "No space left on device (short write)")
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)
            raise OutputUnwritable(f"cannot write the run manifest {self.path}: {exc.strerror or exc} "
                                   "(free space, then re-run the same command to continue)") from exc

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def latest_manifest(out_dir: Path) -> Path | None:
    """The most recent run manifest in out_dir, if any."""
    manifests = sorted(out_dir.glob("run-*.jsonl"), key=lambda p: p.stat().st_mtime)
    return manifests[-1] if manifests else None


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """Entries of a manifest; a torn last line (from kill -9) is skipped."""
    entries = []
    for line in path.read_text("utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries
