"""Embedded model on the seeds: tokens and seconds per document, and the tool's overhead over bare llama-cpp.

Each document goes once through pipeline.extract (max_reasks=0) with LocalBackend, and the very
requests it sent are replayed with a bare Llama.create_chat_completion on the same Llama instance
at temperature 0. What the two sides share, exactly: the messages and the prepared JSON Schema
(the tool's bounds for this model, with the request's candidate source spans and pinned values). The bare side turns that schema into a grammar with
llama-cpp-python's own `LlamaGrammar.from_json_schema`, not with the tool's code (which also
forbids raw control characters inside strings), so "same tokens" is measured, not built in; the
time difference is the tool's own cost (event loop, worker thread, lock, prompt building,
validation, grammar checks). The KV cache is reset before each side, so the bare call does not
profit from the prompt the tool just ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from _common import ROOT

from summarizer.artifacts import load_prompt, load_schema
from summarizer.backends.base import Completion, CompletionRequest
from summarizer.backends.local import LocalBackend
from summarizer.grammar import link_schema
from summarizer.errors import ExtractionError
from summarizer.pipeline import extract

TARGET = 5.0  # percent


class Recorder:
    """Passes requests through to the backend and keeps them, to replay them bare."""

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner
        self.model = inner.model
        self.base_url = inner.base_url
        self.requests: list[CompletionRequest] = []
        self.answers: list[Completion] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        answer = await self.inner.complete(request)
        self.answers.append(answer)
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


def tool_run(
    loop: asyncio.AbstractEventLoop, recorder: Recorder, llama: Any, text: str, max_tokens: int
) -> tuple[float, str]:
    schema, prompt = load_schema("article"), load_prompt("article")
    llama.reset()
    start = time.perf_counter()
    try:
        loop.run_until_complete(extract(text, schema, prompt, recorder, max_reasks=0, max_tokens=max_tokens,
                                        offer_spans=True))  # as the run does for a constrained decoder
        status = "valid"
    except ExtractionError as exc:
        status = exc.status
    return time.perf_counter() - start, status


def bare_run(llama: Any, grammar: Any, requests: list[CompletionRequest], repeat_penalty: float,
             request_schema: Callable[[CompletionRequest], dict[str, Any]],
             links: dict[str, str]) -> tuple[float, list]:
    """The same work with bare calls, including the second pass when an answer breaks a link."""
    from llama_cpp import LlamaGrammar

    llama.reset()
    start = time.perf_counter()
    answers = []
    for r in requests:
        if r.spans or r.fixed:  # this document's own grammar, built by llama-cpp-python's converter
            grammar = LlamaGrammar.from_json_schema(json.dumps(request_schema(r)), verbose=False)
        answer = llama.create_chat_completion(
            messages=list(r.messages), grammar=grammar, max_tokens=r.max_tokens,
            temperature=0.0, repeat_penalty=repeat_penalty,
        )
        choice = answer["choices"][0]
        if choice["finish_reason"] == "stop":
            try:
                linked = link_schema(request_schema(r), links,
                                     json.loads(choice["message"]["content"] or ""))
            except json.JSONDecodeError:
                linked = None
            if linked is not None:
                second = LlamaGrammar.from_json_schema(json.dumps(linked), verbose=False)
                answer = llama.create_chat_completion(
                    messages=list(r.messages), grammar=second, max_tokens=r.max_tokens,
                    temperature=0.0, repeat_penalty=repeat_penalty,
                )
        answers.append(answer)
    return time.perf_counter() - start, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=1024, help="answer budget of the first call (default 1024)")
    args = parser.parse_args()

    backend = LocalBackend()
    start = time.perf_counter()
    llama = backend.load()  # once per process; both sides use this instance
    load_seconds = time.perf_counter() - start
    from llama_cpp import LlamaGrammar

    schema = load_schema("article")
    prepared, links = backend.prepared_schema(schema), dict(schema.traits.links)
    grammar = LlamaGrammar.from_json_schema(json.dumps(prepared), verbose=False)
    # Warm both paths (thread pool, grammar cache, first allocations) outside the timings.
    warm = Recorder(backend)
    loop = asyncio.new_event_loop()  # one loop for the whole run, as in the CLI
    tool_run(loop, warm, llama, "CATL signed an agreement.", 8)
    bare_run(llama, grammar, warm.requests, backend.repeat_penalty, backend.request_schema, links)

    print(f"{'document':<24} {'prompt':>6} {'compl':>6} {'calls':>5} {'tool s':>7} {'bare s':>7} "
          f"{'overhead':>8}  same  result")
    totals = {"prompt": 0, "completion": 0, "tool": 0.0, "bare": 0.0, "valid": 0, "same": 0}
    seeds = sorted((ROOT / "seeds").glob("*.txt"))
    for path in seeds:
        text = path.read_text("utf-8")
        recorder = Recorder(backend)
        # The tool goes first: its requests (with the pipeline's random boundary) are what gets replayed.
        tool_s, status = tool_run(loop, recorder, llama, text, args.max_tokens)
        bare_s, bare = bare_run(llama, grammar, recorder.requests, backend.repeat_penalty, backend.request_schema,
                                links)
        same = [a.content for a in recorder.answers] == [b["choices"][0]["message"]["content"] for b in bare]
        prompt_tokens = sum(a.usage.prompt_tokens for a in recorder.answers)
        completion_tokens = sum(a.usage.completion_tokens for a in recorder.answers)
        overhead = (tool_s / bare_s - 1) * 100
        print(f"{path.name:<24} {prompt_tokens:>6} {completion_tokens:>6} {len(recorder.requests):>5} "
              f"{tool_s:>7.2f} {bare_s:>7.2f} {overhead:>7.2f}%  {'yes' if same else 'NO':<4}  {status}")
        totals["prompt"] += prompt_tokens
        totals["completion"] += completion_tokens
        totals["tool"] += tool_s
        totals["bare"] += bare_s
        totals["valid"] += status == "valid"
        totals["same"] += same
    overall = (totals["tool"] / totals["bare"] - 1) * 100
    print(f"local: {len(seeds)} documents, {totals['valid']} valid, {totals['prompt']} prompt + "
          f"{totals['completion']} completion tokens, tool {totals['tool']:.1f} s vs bare {totals['bare']:.1f} s, "
          f"overhead {overall:+.2f} % (target < {TARGET:.0f} %), same tokens {totals['same']}/{len(seeds)}, "
          f"model loaded once in {load_seconds:.2f} s")
    loop.run_until_complete(backend.aclose())
    loop.close()


if __name__ == "__main__":
    main()
