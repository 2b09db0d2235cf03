"""Memory: 10,000 small documents through the loopback server; prints the run's peak memory (< 250 MB).

The run may fork worker processes: the figure is the peak of the summed RSS of the whole process
tree (sampled every 20 ms), which counts the pages the workers share with their parent once per
process; the summed PSS (shared pages split between their users) is printed beside it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from _common import PYTHON, loopback_server, make_documents, summarizer_env

DOCS = 10_000
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_kb(root: int) -> tuple[int, int, int]:
    """Summed RSS and PSS (KiB) of `root` and its descendants, and how many processes that was."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * PAGE_KB
    total, pss, count, todo = 0, 0, 0, [root]
    while todo:
        pid = todo.pop()
        if pid in rss:
            total, pss, count = total + rss[pid], pss + pss_kb(pid), count + 1
        todo.extend(children.get(pid, []))
    return total, pss, count


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs = make_documents(root / "docs", DOCS, size=300)
        with loopback_server() as url:
            start = time.perf_counter()
            proc = subprocess.Popen([PYTHON, "-m", "summarizer", "summarize", str(docs), "--base-url", url,
                                     "--out", str(root / "out"), "--concurrency", "32", "--tables", "never",
                                     "--quiet", "--jsonl", str(root / "all.jsonl")], env=summarizer_env(root / "cache"))
            peak_kb = peak_pss = processes = 0
            while proc.poll() is None:
                kb, pss, count = tree_memory_kb(proc.pid)
                peak_pss = max(peak_pss, pss)
                if kb > peak_kb:
                    peak_kb, processes = kb, count
                time.sleep(0.02)
            wall = time.perf_counter() - start
            assert proc.returncode == 0, "the run failed"
            lines = sum(1 for _ in open(root / "all.jsonl", encoding="utf-8"))
    print(f"memory: {DOCS} documents ({lines} JSONL lines) in {wall:.1f} s, peak RSS {peak_kb / 1024:.0f} MB "
          f"summed over {processes} process(es) (target < 250 MB; peak PSS {peak_pss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
