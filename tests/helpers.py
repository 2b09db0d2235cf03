"""What several test modules share: paths, document folders, reading manifests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))
BODY = (SEEDS / "002_58b7a0a3b69e6006.txt").read_text()[:400]


def make_docs(folder: Path, count: int, body: str = BODY) -> Path:
    """`count` small documents doc000.txt... in `folder`, each starting "Document N."."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"doc{i:03d}.txt").write_text(f"Document {i}.\n{body}")
    return folder


def doc_number(request: Any) -> int:
    """Which document a request recorded by the loopback server was about."""
    return int(re.search(r"Document (\d+)\.", request.body["messages"][1]["content"]).group(1))


def manifest_entries(out: Path) -> list[dict[str, Any]]:
    """Every line of the newest run manifest in `out`."""
    manifests = sorted(out.glob("run-*.jsonl"), key=lambda p: p.stat().st_mtime)
    assert manifests, f"no run manifest in {out}"
    return [json.loads(line) for line in manifests[-1].read_text("utf-8").splitlines()]
