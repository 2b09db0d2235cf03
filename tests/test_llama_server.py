"""llama-cpp-python's own OpenAI-compatible server, driven through OpenAIBackend (the `openai` package)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from summarizer.backends.base import CompletionRequest
from summarizer.backends.local import default_model_path
from summarizer.backends.openai_compat import OpenAIBackend

from .helpers import NOTE, NOTE_MESSAGES, Note

pytestmark = pytest.mark.model

STARTUP_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `python -m llama_cpp.server` on a free port; yield its /v1 URL; stop it afterwards."""
    port = _free_port()
    log_path: Path = tmp_path_factory.mktemp("llama-server") / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log_tail = log_path.read_text()[-2000:]
                pytest.fail(f"llama_cpp.server not ready after {STARTUP_TIMEOUT:.0f} s:\n{log_tail}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _complete(url: str, mode: str, max_tokens: int = 64):
    async def go():
        backend = OpenAIBackend(model="smollm2", base_url=url, api_key="sk-local", mode=mode,
                                max_attempts=2, backoff=0.01, timeout=60)
        try:
            return backend, await backend.complete(CompletionRequest(NOTE_MESSAGES, NOTE, max_tokens=max_tokens))
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_server_lists_the_model(server_url: str) -> None:
    with urllib.request.urlopen(server_url + "/models", timeout=5) as response:
        models = json.load(response)
    assert models["data"][0]["id"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_json_schema_response_format_is_answered_with_http_500(server_url: str) -> None:
    # The server only knows response_format "text" and "json_object"; its error handler turns the
    # validation error into 500, not 400/422, so OpenAIBackend sees a server failure.
    body = {"model": "smollm2", "messages": list(NOTE_MESSAGES), "max_tokens": 8,
            "response_format": {"type": "json_schema", "json_schema": {"name": "note", "schema": NOTE.json_schema}}}
    request = urllib.request.Request(server_url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 500
    assert "Input should be 'text' or 'json_object'" in info.value.read().decode()


def test_auto_mode_falls_back_to_json_object_on_that_500_and_remembers(server_url: str) -> None:
    # The 500 names response_format, so it is a rejection of the mode, not a server failure.
    backend, completion = _complete(server_url, "auto")
    assert backend.mode == "json_object" and completion.mode == "json_object"
    assert completion.usage.requests == 1 and completion.usage.completion_tokens > 0


def test_json_object_mode_answers_with_usage_counted(server_url: str) -> None:
    backend, completion = _complete(server_url, "json_object")
    assert backend.mode == "json_object" and completion.mode == "json_object"
    assert completion.finish_reason in ("stop", "length")
    assert completion.usage.requests == 1
    assert completion.usage.prompt_tokens > 50  # the schema travels in the system message
    assert 0 < completion.usage.completion_tokens <= 64
    assert (completion.content or "").lstrip().startswith("{")  # the server's JSON grammar


def test_tools_mode_is_held_to_the_schema(server_url: str) -> None:
    # A forced tool call makes the server compile the parameters' JSON Schema into a grammar.
    _, completion = _complete(server_url, "tools")
    assert completion.mode == "tools" and completion.finish_reason == "tool_calls"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    Note.model_validate_json(completion.content or "")
