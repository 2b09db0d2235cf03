"""Shared helpers for the benchmarks: a loopback server subprocess and a folder of documents."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def loopback_server(*args: str) -> Iterator[str]:
    """Run `python -m summarizer.loopback ARGS` in its own process; yield its base URL."""
    port = free_port()
    proc = subprocess.Popen([PYTHON, "-m", "summarizer.loopback", "--port", str(port), *args],
                            stdout=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("loopback server did not start") from None
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def make_documents(folder: Path, count: int, size: int = 600) -> Path:
    """`count` distinct small English documents in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    base = (ROOT / "seeds" / "002_58b7a0a3b69e6006.txt").read_text("utf-8")[:size]
    for i in range(count):
        (folder / f"doc{i:06d}.txt").write_text(f"Document {i}.\n{base}", "utf-8")
    return folder


def summarizer_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SUMMARIZER_"))}
    env["SUMMARIZER_CACHE_DIR"] = str(cache)
    return env
