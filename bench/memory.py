"""Memory: 10,000 small documents through the loopback server; prints the run's peak RSS (< 250 MB)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from _common import PYTHON, loopback_server, make_documents, summarizer_env

DOCS = 10_000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs = make_documents(root / "docs", DOCS, size=300)
        with loopback_server() as url:
            start = time.perf_counter()
            proc = subprocess.Popen([PYTHON, "-m", "summarizer", "summarize", str(docs), "--base-url", url,
                                     "--out", str(root / "out"), "--concurrency", "32", "--tables", "never",
                                     "--quiet", "--jsonl", str(root / "all.jsonl")], env=summarizer_env(root / "cache"))
            # wait4 gives this one process's peak RSS (KiB on Linux), not the loopback server's.
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            assert os.waitstatus_to_exitcode(status) == 0, "the run failed"
            lines = sum(1 for _ in open(root / "all.jsonl", encoding="utf-8"))
    peak_mb = usage.ru_maxrss / 1024
    print(f"memory: {DOCS} documents ({lines} JSONL lines) in {wall:.1f} s, peak RSS {peak_mb:.0f} MB (target < 250 MB)")


if __name__ == "__main__":
    main()
