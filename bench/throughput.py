"""Throughput: 1,000 documents through a loopback server with 100 ms latency at --concurrency 32.

Prints wall time against the ideal 1000 / 32 * 0.1 s (target ratio <= 1.25), then the cached
re-run's documents per second after start-up (target >= 1,000/s).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PYTHON, loopback_server, make_documents, summarizer_env

DOCS, CONCURRENCY, LATENCY = 1000, 32, 0.1


def run(url: str, docs: Path, out: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([PYTHON, "-m", "summarizer", "summarize", str(docs), "--base-url", url, "--out", str(out),
                    "--concurrency", str(CONCURRENCY), "--tables", "never", "--quiet"], env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs = make_documents(root / "docs", DOCS)
        one = make_documents(root / "one", 1)
        env = summarizer_env(root / "cache")
        with loopback_server("--latency", str(LATENCY)) as url:
            cold = run(url, docs, root / "out", env)
            warm = run(url, docs, root / "out", env)
            # Start-up = the same command on one cached document (imports, cache open, one write).
            run(url, one, root / "out1", env)
            base = min(run(url, one, root / "out1", env) for _ in range(3))
    ideal = DOCS / CONCURRENCY * LATENCY
    cached_rate = (DOCS - 1) / max(warm - base, 1e-9)
    print(f"throughput: {DOCS} docs in {cold:.2f} s, ideal {ideal:.2f} s, ratio {cold / ideal:.2f} (target <= 1.25; "
          f"{(cold - base) / ideal:.2f} without the {base:.2f} s start-up); "
          f"cached re-run {warm:.2f} s = {cached_rate:.0f} docs/s after start-up (target >= 1000)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
