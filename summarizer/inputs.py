"""Find the documents of a run: files, folders (recursive, globbed, no hidden files), lists, stdin."""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from .errors import ConfigError

STDIN = "-"


@dataclass(frozen=True)
class InputItem:
    """One document to process: where to read it and where its output goes (relative name)."""

    index: int
    path: str  # as the user will recognise it; "-" for stdin
    relative: PurePath  # output name is derived from this, never from model output
    problem: str | None = None  # set when the path cannot be a document (missing, loop...)
    stream: bool = False  # a pipe the user named (`<(curl ...)`): read to its end, in a thread
    data: bytes | None = None  # the document itself, when it comes from memory (the Python API)


def display_path(path: str) -> str:
    """A path as printable UTF-8: bytes that are not UTF-8 (lone surrogates here) become \\xNN."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def iter_inputs(
    paths: Sequence[str], globs: Sequence[str] = ("*",), exclude: Iterable[Path] = ()
) -> Iterator[InputItem]:
    """Yield documents in a stable order: arguments as given, folders walked sorted.

    Folders in `exclude` (the output and cache folders) are never walked into, so a run over
    "." does not summarize its own outputs. Paths that cannot be documents still yield an item,
    with `problem` set, so that every one of them gets a status in the manifest.
    """
    excluded = {_real(Path(p)) for p in exclude}
    index = 0
    for raw in paths:
        if raw == STDIN:
            yield InputItem(index, STDIN, PurePath("stdin"))
            index += 1
            continue
        path = Path(raw)
        problem, is_dir = _inspect(path, explicit=True)
        if is_dir:
            for file, relative, file_problem in _walk(path, globs, excluded):
                yield InputItem(index, str(file), relative, file_problem)
                index += 1
            continue
        yield InputItem(index, raw, PurePath(path.name or "document"), problem, stream=problem is None and _is_pipe(path))
        index += 1


def _is_pipe(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(path.stat().st_mode)
    except OSError:
        return False


def _real(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path.absolute())


def _inspect(
    path: Path, *, explicit: bool = False, entry: os.DirEntry[str] | None = None
) -> tuple[str | None, bool]:
    """(problem, is_folder) for one path; the problem says why it cannot be read as a document."""
    try:
        info = entry.stat() if entry is not None else path.stat()  # a DirEntry's stat is cached
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (following the link leads back to it)", False
        if exc.errno == errno.ENOENT:
            return ("broken symbolic link (its target does not exist)" if path.is_symlink() else "no such file"), False
        return f"cannot read ({exc.strerror or exc})", False
    if stat.S_ISDIR(info.st_mode):
        return None, True
    if stat.S_ISREG(info.st_mode) or (explicit and stat.S_ISFIFO(info.st_mode)):
        return None, False  # an explicit pipe is fine: `summarizer summarize <(curl ...)`
    kind = "named pipe" if stat.S_ISFIFO(info.st_mode) else "socket" if stat.S_ISSOCK(info.st_mode) else "device"
    # Reading a pipe or device found in a folder could block the run forever, or never end.
    return f"not a regular file (a {kind})", False


def _matches(name: str, relative: PurePath, globs: Sequence[str]) -> bool:
    posix = relative.as_posix()
    for pattern in globs:
        if fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(posix, pattern):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatch(name, pattern[3:]):
            return True
    return False


def _walk(root: Path, globs: Sequence[str], excluded: set[str]) -> Iterator[tuple[Path, PurePath, str | None]]:
    """(path, path relative to root, problem) of every file under root, depth first, sorted.

    Symbolic links to folders are followed, but a folder is read only once: a link back to a
    folder being walked is reported as a loop instead of walked forever. An explicit stack keeps
    very deep trees from hitting Python's recursion limit.
    """
    top = _key(root)
    visited = {top} if top else set()
    stack: list[tuple[Path, PurePath, frozenset[tuple[int, int]]]] = [
        (root, PurePath(), frozenset(visited))
    ]
    while stack:
        folder, relative, ancestors = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            name = relative if relative.parts else PurePath(root.name or "document")
            yield folder, name, f"cannot read folder ({exc.strerror or exc})"
            continue
        subfolders: list[tuple[Path, PurePath, frozenset[tuple[int, int]]]] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path, rel = Path(entry.path), relative / entry.name
            problem, is_dir = _inspect(path, entry=entry)
            if not is_dir:
                if _matches(entry.name, rel, globs):
                    yield path, rel, problem
                continue
            info = entry.stat()
            key = (info.st_dev, info.st_ino)
            if key in ancestors:
                yield path, rel, "symbolic link loop (it points back to a folder that contains it)"
                continue
            if key in visited or (excluded and _real(path) in excluded):
                continue  # already read through another link, or the output/cache folder
            visited.add(key)
            subfolders.append((path, rel, ancestors | {key}))
        stack.extend(reversed(subfolders))


def _key(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def read_list(path: Path) -> list[str]:
    """Paths listed one per line in a file; blank lines and # comments ignored."""
    try:
        # utf-8-sig: a list saved by Windows Notepad starts with a BOM that is not part of a path.
        lines = path.read_text("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read --from-list {path}: it is not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read --from-list {path}: {exc.strerror or exc}") from exc
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
