"""Plain fakes for pure-code tests: a backend that replays scripted completions."""

from __future__ import annotations

import json
from typing import Any

from summarizer.backends.base import Completion, CompletionRequest, Usage
from summarizer.loopback import SAMPLE_ARTICLE


class ScriptedBackend:
    """Answers each request with the next scripted Completion and records the requests."""

    def __init__(self, *answers: Completion | str | dict[str, Any]) -> None:
        self.model = "fake-model"
        self.base_url = None
        self.answers = [self._completion(a) for a in answers]
        self.requests: list[CompletionRequest] = []

    @staticmethod
    def _completion(answer: Completion | str | dict[str, Any]) -> Completion:
        if isinstance(answer, Completion):
            return answer
        content = answer if isinstance(answer, str) else json.dumps(answer)
        return Completion(content=content, finish_reason="stop", usage=Usage(10, 5, 1))

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        return self.answers[len(self.requests) - 1]

    async def aclose(self) -> None:
        pass


def article(**changes: Any) -> dict[str, Any]:
    """A valid article answer with some fields changed."""
    data = json.loads(json.dumps(SAMPLE_ARTICLE))
    data.update(changes)
    return data
