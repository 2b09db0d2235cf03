"""Throughput: 1,000 documents through a loopback server with 100 ms latency at --concurrency 32.

Prints the run's wall time against the ideal 1000 / 32 * 0.1 s (target ratio <= 1.25), with and
without the tool's start-up, beside a baseline measured in the same run against the same server:
the bare `openai` client sending the same 1,000 requests (no reading, validating, checking or
writing), which is the floor any tool built on that package can reach on this machine. Then the
cached re-run's documents per second after start-up (target >= 1,000/s).
"""

from __future__ import annotations

import asyncio
import json
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


def bare_client(url: str, docs: str) -> None:
    """The baseline, in its own process: the same requests straight through AsyncOpenAI.post."""
    from openai import AsyncOpenAI  # inside the timing, as the tool's own import is

    from summarizer.artifacts import load_prompt, load_schema
    from summarizer.pipeline import build_messages

    schema, prompt = load_schema("article"), load_prompt("article")
    response_format = {"type": "json_schema",
                       "json_schema": {"name": schema.id, "schema": schema.json_schema, "strict": schema.strict}}

    async def main() -> None:
        client = AsyncOpenAI(api_key="bench", base_url=url, max_retries=0)
        paths = iter(sorted(Path(docs).iterdir()))

        async def worker() -> None:
            for path in paths:
                body = {"model": "gpt-4o-mini", "messages": build_messages(prompt, path.read_text("utf-8")),
                        "max_tokens": 2048, "temperature": 0.0, "response_format": response_format}
                content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
                await client.post("/chat/completions", content=content, cast_to=object)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        await client.close()

    asyncio.run(main())


def baseline(url: str, docs: Path) -> tuple[float, float]:
    """Wall time of the bare client for all documents, and for one (its start-up)."""
    times = []
    for folder in (docs, docs.parent / "one"):
        start = time.perf_counter()
        subprocess.run([PYTHON, __file__, "--bare", url, str(folder)], check=True)
        times.append(time.perf_counter() - start)
    return times[0], times[1] - LATENCY


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs = make_documents(root / "docs", DOCS)
        one = make_documents(root / "one", 1)
        env = summarizer_env(root / "cache")
        with loopback_server("--latency", str(LATENCY)) as url:
            bare, bare_start = baseline(url, docs)
            cold = run(url, docs, root / "out", env)
            warm = run(url, docs, root / "out", env)
            # Start-up = the same command on one cached document (imports, cache open, one write).
            run(url, one, root / "out1", env)
            base = min(run(url, one, root / "out1", env) for _ in range(3))
    ideal = DOCS / CONCURRENCY * LATENCY
    cached_rate = (DOCS - 1) / max(warm - base, 1e-9)
    print(f"throughput: {DOCS} docs in {cold:.2f} s, ideal {ideal:.2f} s, ratio {cold / ideal:.2f} "
          f"({(cold - base) / ideal:.2f} without the {base:.2f} s start-up; target <= 1.25); "
          f"baseline, the bare openai client sending the same requests: {bare:.2f} s, ratio {bare / ideal:.2f} "
          f"({(bare - bare_start) / ideal:.2f} without its {bare_start:.2f} s start-up); "
          f"cached re-run {warm:.2f} s = {cached_rate:.0f} docs/s after start-up (target >= 1000)")
    sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:
        bare_client(sys.argv[2], sys.argv[3])
    else:
        main()
