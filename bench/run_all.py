"""Run every benchmark in turn; each prints its figures on one line (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["startup.py", "throughput.py", "ratelimit.py", "memory.py", "local.py", "ray.py"]

if __name__ == "__main__":
    for name in BENCHES:
        if (HERE / name).exists():
            subprocess.run([sys.executable, str(HERE / name)], cwd=HERE, check=False)
