"""Find the documents of a run: files, folders (recursive, globbed, no hidden files), lists, stdin."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

STDIN = "-"


@dataclass(frozen=True)
class InputItem:
    """One document to process: where to read it and where its output goes (relative name)."""

    index: int
    path: str  # as the user will recognise it; "-" for stdin
    relative: PurePath  # output name is derived from this, never from model output
    problem: str | None = None  # set when the path cannot be a document (missing, loop...)


def iter_inputs(paths: Sequence[str], globs: Sequence[str] = ("*",)) -> Iterator[InputItem]:
    """Yield documents in a stable order: arguments as given, folders walked sorted."""
    index = 0
    for raw in paths:
        if raw == STDIN:
            yield InputItem(index, STDIN, PurePath("stdin"))
            index += 1
            continue
        path = Path(raw)
        if path.is_dir():
            for file in _walk(path, globs):
                yield InputItem(index, str(file), file.relative_to(path))
                index += 1
            continue
        problem = None
        if path.is_symlink() and not path.exists():
            problem = "broken symbolic link"
        elif not path.exists():
            problem = "no such file"
        yield InputItem(index, raw, PurePath(path.name), problem)
        index += 1


def _walk(root: Path, globs: Sequence[str]) -> Iterator[Path]:
    # followlinks=False: a symlinked folder cannot make the walk loop forever.
    for folder, dirs, files in os.walk(root, followlinks=False, onerror=None):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if any(fnmatch.fnmatch(name, pattern) for pattern in globs):
                yield Path(folder) / name


def read_list(path: Path) -> list[str]:
    """Paths listed one per line in a file; blank lines and # comments ignored."""
    lines = path.read_text("utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
