"""What several test modules share: paths, document folders, reading manifests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from summarizer.artifacts import SchemaSpec
from summarizer.loopback import LoopbackServer

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


def fast_config(tmp_path: Path, **extra: Any) -> Path:
    """A config file with a short backoff (and any other settings) for fast fault tests."""
    config = tmp_path / "fast.toml"
    lines = ["backoff = 0.01", *(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in extra.items())]
    config.write_text("\n".join(lines) + "\n")
    return config


def manifest_entries(out: Path) -> list[dict[str, Any]]:
    """Every line of the newest run manifest in `out`."""
    manifests = sorted(out.glob("run-*.jsonl"), key=lambda p: p.stat().st_mtime)
    assert manifests, f"no run manifest in {out}"
    return [json.loads(line) for line in manifests[-1].read_text("utf-8").splitlines()]


@dataclass
class Interrupted:
    """What an interrupted run left, and what the re-run of the same command sent again."""

    code: int
    stderr: str
    finished: set[int]
    resent: list[int]
    out: Path


def interrupt_then_rerun(tmp_path: Path, workers: str, count: int, interrupt, *, latency: float,
                         concurrency: str, wait_for: int) -> Interrupted:
    """Start a run in its own process group, interrupt it once `wait_for` outputs exist, run it again."""
    docs = make_docs(tmp_path / "docs", count)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    with LoopbackServer(latency=latency) as server:
        cmd = [sys.executable, "-m", "summarizer", "summarize", str(docs), "--base-url", server.url,
               "--out", str(out), "--concurrency", concurrency, "--workers", workers, "--quiet"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        deadline = time.monotonic() + 30
        while len(list(out.glob("doc*.json"))) < wait_for and time.monotonic() < deadline:
            time.sleep(0.02)
        interrupt(proc)
        _, stderr = proc.communicate(timeout=15)
        assert _workers_gone(cmd), "a worker process outlived the interrupted run"
        finished = {int(p.stem[3:]) for p in out.glob("doc*.json")}
        assert wait_for <= len(finished) < count
        assert not list(out.glob(".*.tmp")), "a half-written output survived"
        first_run = len(server.requests)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        resent = [doc_number(r) for r in server.requests[first_run:]]
    assert not finished & set(resent), "a finished document was sent again"
    assert {int(p.stem[3:]) for p in out.glob("doc*.json")} == set(range(count))
    return Interrupted(proc.returncode, stderr, finished, resent, out)


def _workers_gone(cmd: list[str], timeout: float = 10) -> bool:
    """True once no live process runs `cmd` (forked workers keep their parent's command line)."""
    wanted = "\0".join(cmd) + "\0"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for proc_dir in Path("/proc").glob("[0-9]*"):
            try:
                state = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z" and (proc_dir / "cmdline").read_text(errors="replace") == wanted:
                    alive.append(proc_dir.name)
            except OSError:
                continue
        if not alive:
            return True
        time.sleep(0.05)
    return False


class Note(BaseModel):
    """A schema small enough for the tiny model to finish within a few dozen tokens."""

    model_config = ConfigDict(extra="forbid")

    city: str = Field(min_length=1, max_length=40)
    language: Literal["en", "de", "fr"]
    year: int | None = Field(ge=1900, le=2100)


NOTE = SchemaSpec(id="note", version="1", model=Note)
NOTE_MESSAGES = (
    {"role": "system", "content": "Answer with a JSON object."},
    {"role": "user", "content": "Berlin ist seit 1990 die Hauptstadt Deutschlands. Which city, language and year?"},
)
