"""Ray engine: local engine vs `--engine ray` on the same documents, and the cluster-wide rate held.

Each engine summarizes the same 2,000 documents against its own loopback server (100 ms latency,
so that the server's count is that run's): wall time, requests sent, peak memory (summed RSS of
the whole process tree: with a Ray started by the run, that includes its GCS, raylet and actors).
Then `--engine ray --rpm 600` against a server that allows 600 requests per minute: the 429s it
answered (target 0) and the busiest 20 s window as a share of the allowed rate (target >= 90 %).
Needs the ray extra (pip install -e '.[ray]').
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import PYTHON, loopback_server, make_documents, summarizer_env
from memory import tree_memory_kb

RPM, WINDOW, RATE_DOCS = 600, 20.0, 260


def run(docs: Path, root: Path, url: str, engine: str, *extra: str) -> tuple[float, float]:
    """One `summarize` run: wall time (s) and peak tree RSS (MB)."""
    args = [PYTHON, "-m", "summarizer", "summarize", str(docs), "--base-url", url, "--out", str(root / f"out-{engine}"),
            "--tables", "never", "--quiet", "--engine", engine, *extra]
    start = time.perf_counter()
    # cwd: not bench/, where this very file would shadow the `ray` package for `python -m summarizer`.
    proc = subprocess.Popen(args, env=summarizer_env(root / f"cache-{engine}"), cwd=root)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_memory_kb(proc.pid)[0])
        time.sleep(0.05)
    assert proc.returncode == 0, f"the {engine} run failed"
    return time.perf_counter() - start, peak / 1024


def stats(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url + "/stats").read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--actors", type=int, default=2, help="--workers for the ray engine")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs = make_documents(root / "docs", args.docs)
        figures = []
        for engine, extra in (("local", ()), ("ray", ("--workers", str(args.actors)))):
            with loopback_server("--latency", "0.1") as url:
                wall, peak = run(docs, root, url, engine, "--concurrency", str(args.concurrency), *extra)
                figures.append(f"{engine} {wall:.1f} s, {stats(url)['requests']} requests, peak {peak:.0f} MB")
        rate_docs = make_documents(root / "rate-docs", RATE_DOCS)
        with loopback_server("--rpm", str(RPM), "--latency", "0.05") as url:
            run(rate_docs, root, url, "ray", "--concurrency", "32", "--rpm", str(RPM), "--workers", str(args.actors),
                "--out", str(root / "rate-out"), "--cache-dir", str(root / "rate-cache"))
            held = stats(url)
    times = sorted(held["times"])
    best = max(sum(1 for t in times[i:] if t - times[i] < WINDOW) for i in range(len(times)))
    print(f"ray: {args.docs} documents at 100 ms, --concurrency {args.concurrency}: " + "; ".join(figures)
          + f". --engine ray --rpm {RPM}: {held['rejected_429']} answered 429 (target 0), busiest {WINDOW:.0f} s "
          f"window {best / (WINDOW * RPM / 60):.1%} of the allowed rate (target >= 90%)")


if __name__ == "__main__":
    main()
