"""Start-up: `summarizer --help` against `python -c "import json"` (target ratio < 3)."""

from __future__ import annotations

import subprocess
import time

from _common import PYTHON

RUNS = 15


def best_of(cmd: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    base = best_of([PYTHON, "-c", "import json"])
    help_ = best_of([PYTHON, "-m", "summarizer", "--help"])
    print(f"startup: summarizer --help {help_ * 1000:.0f} ms, python -c 'import json' {base * 1000:.0f} ms, "
          f"ratio {help_ / base:.2f} (target < 3)")


if __name__ == "__main__":
    main()
