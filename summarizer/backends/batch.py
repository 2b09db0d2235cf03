"""The batch backend: answers a request from the batch ledger, or queues it for the next batch.

It lets batch mode reuse the whole per-document pipeline (cache, validation, re-asks, chunks,
checks, outputs): a request whose answer the ledger holds is answered at once; any other is
recorded as a request line and the document waits (AwaitingBatch). Re-asks and chunk digests
become the next round's lines by themselves.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..batch_ledger import ANSWERED, FAILED, QUEUED, Ledger
from ..errors import AwaitingBatch, BatchLineFailed
from .base import Capabilities, Completion, CompletionRequest
from .openai_compat import OpenAIBackend, estimate_tokens, request_body, unpack_response

ENDPOINT = "/v1/chat/completions"


def custom_id(body: dict[str, Any]) -> str:
    """sha256 of the canonical body: the same request always gets the same id, another never."""
    canonical = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class BatchBackend:
    """The Backend protocol over a ledger: no request is sent from here."""

    capabilities = Capabilities(default_model=OpenAIBackend.capabilities.default_model)

    def __init__(self, ledger: Ledger, *, model: str, base_url: str | None, mode: str) -> None:
        self.ledger, self.model, self.base_url = ledger, model, base_url
        # No fallback between rounds: json_schema unless another mode was asked for.
        self.mode = "json_schema" if mode == "auto" else mode

    async def complete(self, request: CompletionRequest) -> Completion:
        body = request_body(request, self.model, self.mode)
        cid = custom_id(body)
        known = self.ledger.request(cid)
        if known is None or known.state == QUEUED:
            line = json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body},
                              ensure_ascii=False, separators=(",", ":"))
            self.ledger.queue(cid, line, estimate_tokens(request), self.mode)
            raise AwaitingBatch("waiting for a batch answer")
        if known.state == ANSWERED and known.answer is not None:
            return unpack_response(json.loads(known.answer), known.mode, self.base_url or "the OpenAI Batch API")
        if known.state == FAILED:
            raise BatchLineFailed(f"the Batch API failed this request {known.failures} time(s); last: {known.error} "
                                  "(raise --batch-line-retries, or run `summarizer summarize` for this document)")
        raise AwaitingBatch("waiting for a batch answer")

    async def aclose(self) -> None:
        pass
