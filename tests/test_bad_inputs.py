"""Inputs that are not (readable) documents: each gets a status, the run goes on (cases 11, 12, 16)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path, PurePath
from typing import Any

import pytest

from summarizer.errors import ConfigError
from summarizer.inputs import iter_inputs, read_list
from summarizer.loopback import LoopbackServer
from summarizer.store import latest_manifest, read_manifest

# A real 1x1 PNG and a minimal PDF, as a user would have them.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002"
    "00015e2f1d9b0000000049454e44ae426082"
)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
STORY = "CATL signed a comprehensive cooperation agreement with the city of Zhaoqing on Monday."


def _skip_unless_mode_000_blocks_reading(tmp_path: Path) -> None:
    """Root (or any process with CAP_DAC_OVERRIDE) reads files whatever their mode: skip there."""
    probe = tmp_path / "probe"
    probe.write_text("x", "utf-8")
    probe.chmod(0)
    try:
        probe.read_bytes()
    except PermissionError:
        return
    finally:
        probe.chmod(0o644)
        probe.unlink()
    pytest.skip("this process reads files whatever their mode (root)")


def _summarize(cli, server: LoopbackServer, out: Path, *paths: Any, extra: tuple[str, ...] = ()):
    """Run the CLI against the loopback server, without per-document tables."""
    return cli("summarize", *paths, "--base-url", server.url, "--out", out, "--tables", "never", *extra)


def _manifest(out: Path) -> dict[str, dict[str, Any]]:
    """The run manifest's entries by relative path."""
    path = latest_manifest(out)
    assert path is not None, "the run wrote no manifest"
    entries = read_manifest(path)
    by_name = {e["relative"]: e for e in entries}
    assert len(by_name) == len(entries), "two manifest entries for one input"
    return by_name


def test_11_empty_and_whitespace_files_get_empty_status_without_api_call(tmp_path: Path, cli, server) -> None:
    """Empty and whitespace-only files are 'empty', with a clear reason, and nothing is sent."""
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_bytes(b" \n\t \r\n   \n")
    (tmp_path / "zero-width.txt").write_text("\u200b\ufeff\u200b\n", "utf-8")
    out = tmp_path / "out"
    result = _summarize(cli, server, out, tmp_path / "empty.txt", tmp_path / "blank.txt", tmp_path / "zero-width.txt")
    assert result.code == 1
    entries = _manifest(out)
    for name in ("empty.txt", "blank.txt", "zero-width.txt"):
        assert entries[name]["status"] == "empty"
        assert "empty document" in entries[name]["error"]
        assert "output" not in entries[name]
    assert "empty document" in result.stderr
    assert server.requests == []
    assert not list(out.glob("*.json"))


def test_12_binary_files_get_not_text_status_without_api_call(tmp_path: Path, cli, server) -> None:
    """A PNG, a PDF and a file with NUL bytes are 'not_text', named as such, and nothing is sent."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "image.png").write_bytes(PNG)
    (folder / "paper.pdf").write_bytes(PDF)
    (folder / "nul.txt").write_bytes(STORY.encode() + b"\x00\x01\x02" + STORY.encode())
    out = tmp_path / "out"
    result = _summarize(cli, server, out, folder)
    assert result.code == 1
    entries = _manifest(out)
    assert {name: e["status"] for name, e in entries.items()} == {
        "image.png": "not_text", "nul.txt": "not_text", "paper.pdf": "not_text"}
    assert "PNG image" in entries["image.png"]["error"]
    assert "PDF file" in entries["paper.pdf"]["error"]
    assert "NUL bytes" in entries["nul.txt"]["error"]
    assert all("not a text document" in e["error"] for e in entries.values())
    assert server.requests == []


def test_16_unreadable_file_chmod_000_is_reported_and_run_continues(tmp_path: Path, cli, server) -> None:
    """A file without read permission fails alone; the readable one is summarized."""
    _skip_unless_mode_000_blocks_reading(tmp_path)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text(STORY, "utf-8")
    locked = folder / "locked.txt"
    locked.write_text(STORY + " Locked.", "utf-8")
    locked.chmod(0)
    try:
        out = tmp_path / "out"
        result = _summarize(cli, server, out, folder)
    finally:
        locked.chmod(0o644)
    assert result.code == 1
    entries = _manifest(out)
    assert entries["good.txt"]["status"] == "ok"
    assert entries["locked.txt"]["status"] == "failed"
    assert "Permission denied" in entries["locked.txt"]["error"]
    assert len(server.requests) == 1


def test_16_unreadable_folder_chmod_000_is_reported(tmp_path: Path, cli, server) -> None:
    """A folder that cannot be listed is reported, not silently skipped."""
    _skip_unless_mode_000_blocks_reading(tmp_path)
    folder = tmp_path / "docs"
    (folder / "locked").mkdir(parents=True)
    (folder / "locked" / "inside.txt").write_text(STORY, "utf-8")
    (folder / "good.txt").write_text(STORY, "utf-8")
    (folder / "locked").chmod(0)
    try:
        out = tmp_path / "out"
        result = _summarize(cli, server, out, folder)
    finally:
        (folder / "locked").chmod(0o755)
    assert result.code == 1
    entries = _manifest(out)
    assert entries["good.txt"]["status"] == "ok"
    assert entries["locked"]["status"] == "failed"
    assert "cannot read folder" in entries["locked"]["error"]


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_16_file_whose_read_fails_is_reported_even_as_root(tmp_path: Path, cli, server) -> None:
    """A file that stats fine but cannot be read (an I/O error, as root too) fails alone."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text(STORY, "utf-8")
    (folder / "unreadable.txt").symlink_to("/proc/self/mem")  # reading from offset 0 is EIO for anyone
    out = tmp_path / "out"
    result = _summarize(cli, server, out, folder)
    assert result.code == 1
    entries = _manifest(out)
    assert entries["good.txt"]["status"] == "ok"
    assert entries["unreadable.txt"]["status"] == "failed"
    assert "cannot read" in entries["unreadable.txt"]["error"]


def test_16_broken_links_loops_and_pipes_in_a_folder_are_reported_per_file(tmp_path: Path, cli, server) -> None:
    """Broken link, self link, folder cycle and a named pipe each get a status; real files succeed."""
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.txt").write_text(STORY, "utf-8")
    (folder / "sub" / "inner.txt").write_text(STORY + " Inner.", "utf-8")
    (folder / "broken.txt").symlink_to(tmp_path / "missing.txt")
    (folder / "self.txt").symlink_to("self.txt")
    (folder / "sub" / "cycle").symlink_to("..")  # docs/sub/cycle -> docs
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "linked.txt").write_text(STORY + " Linked.", "utf-8")
    (folder / "shared").symlink_to(elsewhere)  # a linked folder that is not a cycle is read
    os.mkfifo(folder / "pipe.txt")  # reading it would block the run forever
    # Should a regression read the pipe, a late writer ends the read (as 'empty'): the test fails, not hangs.
    unblock = threading.Timer(10, _open_and_close_writer, [folder / "pipe.txt"])
    unblock.start()
    out = tmp_path / "out"
    try:
        result = _summarize(cli, server, out, folder)
    finally:
        unblock.cancel()
    assert result.code == 1
    entries = _manifest(out)
    statuses = {name: e["status"] for name, e in entries.items()}
    assert statuses == {
        "broken.txt": "failed", "good.txt": "ok", "pipe.txt": "failed", "self.txt": "failed",
        "shared/linked.txt": "ok", "sub/cycle": "failed", "sub/inner.txt": "ok",
    }
    assert "broken symbolic link" in entries["broken.txt"]["error"]
    assert "symbolic link loop" in entries["self.txt"]["error"]
    assert "symbolic link loop" in entries["sub/cycle"]["error"]
    assert "not a regular file" in entries["pipe.txt"]["error"]
    assert (out / "sub" / "inner.json").is_file() and (out / "shared" / "linked.json").is_file()
    assert len(server.requests) == 3


def _open_and_close_writer(fifo: Path) -> None:
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no reader: nothing is blocked
        pass


def test_16_broken_and_looping_links_given_as_arguments(tmp_path: Path, cli, server) -> None:
    """Arguments that are broken or looping links are reported; the good argument still succeeds."""
    (tmp_path / "good.txt").write_text(STORY, "utf-8")
    (tmp_path / "broken.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "loop.txt").symlink_to("loop.txt")
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    out = tmp_path / "out"
    result = _summarize(cli, server, out, tmp_path / "broken.txt", tmp_path / "loop.txt", tmp_path / "a",
                        tmp_path / "good.txt")
    assert result.code == 1
    entries = _manifest(out)
    assert entries["good.txt"]["status"] == "ok"
    assert "broken symbolic link" in entries["broken.txt"]["error"]
    assert "symbolic link loop" in entries["loop.txt"]["error"]
    assert "symbolic link loop" in entries["a"]["error"]
    assert len(server.requests) == 1


def test_16_a_missing_path_on_the_command_line_is_a_usage_error(tmp_path: Path, cli, server) -> None:
    """A typo in a path stops before anything is sent: exit 2, the path named, no manifest."""
    (tmp_path / "good.txt").write_text(STORY, "utf-8")
    out = tmp_path / "out"
    result = _summarize(cli, server, out, tmp_path / "missing.txt", tmp_path / "good.txt")
    assert result.code == 2 and "no such file or folder" in result.stderr and "missing.txt" in result.stderr
    assert server.requests == [] and not list(out.glob("run-*.jsonl"))


def test_16_ten_thousand_files_each_reported_and_the_run_completes(tmp_path: Path, cli, server) -> None:
    """10,000 tiny files plus a few bad ones: one manifest entry each, every good file summarized.

    The files repeat 50 texts: the OpenAI SDK alone costs a few ms of CPU per request, so 10,000
    distinct requests could not finish in seconds; repeats are served by the cache, while every
    file still goes through the walk, decoding, output writing and the manifest.
    """
    folder = tmp_path / "many"
    for i in range(10_000):
        sub = folder / f"batch{i // 1000:02d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        (sub / f"note{i:05d}.txt").write_text(f"Note {i % 50}: {STORY}\n", "utf-8")
    (folder / "batch00" / "empty.txt").write_bytes(b"")
    (folder / "batch01" / "image.png").write_bytes(PNG)
    (folder / "batch02" / "broken.txt").symlink_to(tmp_path / "gone.txt")
    (folder / "batch03" / "loop.txt").symlink_to("loop.txt")
    out = tmp_path / "out"
    result = _summarize(cli, server, out, folder, extra=("--concurrency", "16", "-q"))
    assert result.code == 1
    entries = _manifest(out)
    assert len(entries) == 10_004
    bad = {name: e["status"] for name, e in entries.items() if e["status"] not in ("ok", "cached")}
    assert bad == {"batch00/empty.txt": "empty", "batch01/image.png": "not_text",
                   "batch02/broken.txt": "failed", "batch03/loop.txt": "failed"}
    assert 50 <= len(server.requests) < 200
    assert sum(1 for _ in out.rglob("note*.json")) == 10_000


def test_16_hidden_files_and_folders_are_skipped_and_globs_match_paths(tmp_path: Path) -> None:
    """Hidden entries are never read; globs match names, relative paths and '**/' patterns."""
    for name in ("a.txt", "b.md", ".hidden.txt", ".git/config.txt", "sub/c.txt", "sub/d.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", "utf-8")
    relative = lambda globs: [i.relative.as_posix() for i in iter_inputs([str(tmp_path)], globs)]  # noqa: E731
    assert relative(("*",)) == ["a.txt", "b.md", "sub/c.txt", "sub/d.md"]
    assert relative(("*.md",)) == ["b.md", "sub/d.md"]
    assert relative(("sub/*",)) == ["sub/c.txt", "sub/d.md"]
    assert relative(("**/*.txt",)) == ["a.txt", "sub/c.txt"]


def test_16_excluded_folders_are_not_walked(tmp_path: Path) -> None:
    """The output and cache folders inside an input folder are left out when excluded."""
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "old.json").write_text("{}", "utf-8")
    (tmp_path / "doc.txt").write_text(STORY, "utf-8")
    items = list(iter_inputs([str(tmp_path)], exclude=[tmp_path / "outputs"]))
    assert [i.relative for i in items] == [PurePath("doc.txt")]


def test_16_very_deep_folders_do_not_hit_the_recursion_limit(tmp_path: Path) -> None:
    """Walking is iterative: a tree deeper than Python's recursion limit is still read."""
    depth = sys.getrecursionlimit() + 50
    deep = tmp_path
    try:
        for _ in range(depth):  # one level at a time: mkdir(parents=True) itself recurses
            deep = deep / "d"
            deep.mkdir()
    except OSError:
        pytest.skip("the file system refuses paths this long")
    try:
        (deep / "bottom.txt").write_text(STORY, "utf-8")
        items = list(iter_inputs([str(tmp_path)]))
        assert len(items) == 1 and items[0].problem is None
        assert len(items[0].relative.parts) == depth + 1
    finally:  # bottom-up: pytest's own cleanup (shutil.rmtree) recurses and would fail on this tree
        (deep / "bottom.txt").unlink(missing_ok=True)
        while deep != tmp_path:
            deep.rmdir()
            deep = deep.parent


def test_16_path_list_with_bom_and_comments(tmp_path: Path, cli, server) -> None:
    """A --from-list file saved with a BOM and CRLF line ends still names the right files."""
    (tmp_path / "good.txt").write_text(STORY, "utf-8")
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xef\xbb\xbf" + f"{tmp_path / 'good.txt'}\r\n# a comment\r\n\r\n".encode())
    assert read_list(listing) == [str(tmp_path / "good.txt")]
    out = tmp_path / "out"
    result = _summarize(cli, server, out, extra=("--from-list", str(listing)))
    assert result.code == 0, result.stderr
    assert _manifest(out)["good.txt"]["status"] == "ok"


def test_16_path_list_that_is_not_utf8_is_a_clear_usage_error(tmp_path: Path, cli, server) -> None:
    """A list in a legacy encoding is refused with a message, not a traceback."""
    listing = tmp_path / "list.txt"
    listing.write_bytes("документ.txt\n".encode("cp1251"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_list(listing)
    result = _summarize(cli, server, tmp_path / "out", extra=("--from-list", str(listing)))
    assert result.code == 2
    assert "not UTF-8" in result.stderr
    assert server.requests == []
