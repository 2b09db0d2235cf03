"""Rate limit: a server that allows 600 requests per minute (429 beyond) and `--rpm 600`.

Prints the 429s the server sent (target 0) and the request rate reached over the busiest 20 s
window as a share of the allowed 10 requests per second (target >= 90 %).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import PYTHON, loopback_server, make_documents, summarizer_env

RPM, WINDOW, DOCS = 600, 20.0, 260


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs = make_documents(root / "docs", DOCS)
        with loopback_server("--rpm", str(RPM), "--latency", "0.05") as url:
            start = time.perf_counter()
            subprocess.run([PYTHON, "-m", "summarizer", "summarize", str(docs), "--base-url", url,
                            "--out", str(root / "out"), "--concurrency", "32", "--rpm", str(RPM),
                            "--tables", "never", "--quiet"], env=summarizer_env(root / "cache"), check=True)
            wall = time.perf_counter() - start
            stats = json.loads(urllib.request.urlopen(url + "/stats").read())
    times = sorted(stats["times"])
    best = max(sum(1 for t in times[i:] if t - times[i] < WINDOW) for i in range(len(times)))
    share = best / (WINDOW * RPM / 60)
    print(f"ratelimit: {stats['requests']} requests in {wall:.1f} s, {stats['rejected_429']} answered 429 (target 0); "
          f"{best} requests in the busiest {WINDOW:.0f} s window = {share:.1%} of the allowed rate (target >= 90%)")


if __name__ == "__main__":
    main()
