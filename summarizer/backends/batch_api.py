"""The Batch API side of batch mode: upload and create batches, adopt, poll and collect them.

Every call is framed by ledger writes: a part's lines are marked before the upload, its file id
after it, its batch id after the create. A batch created but not recorded (kill -9 between the
two) is found again by its metadata (`summarizer_ledger`, `part`), never created twice. Results
files are read line by line.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..batch_ledger import TERMINAL_BATCH, Ledger, Part
from ..errors import AuthError, ConfigError, QuotaExhausted, TransientError
from .batch import ENDPOINT

# The Batch API's limits per input file.
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1000 * 1000
# Error codes that say nothing about the request itself: its line is sent again, not counted.
_NOT_THE_LINE = frozenset({"batch_expired", "batch_cancelled", "token_limit_exceeded"})


@dataclass(frozen=True)
class Limits:
    """How big a batch may be, how many tokens may wait on the server, how often a line may fail."""

    max_requests: int = MAX_REQUESTS
    max_bytes: int = MAX_BYTES
    max_enqueued_tokens: int | None = None
    line_retries: int = 3


def plan_parts(queued: Iterable[tuple[str, int, int]], limits: Limits, in_flight: int) -> list[tuple[list[str], int]]:
    """Split queued lines (custom_id, bytes, tokens) into parts under the limits: [(ids, tokens)].

    Lines that would push the server's enqueued tokens over the limit stay queued for later; one
    line alone is always sent when nothing else waits, so a run cannot stall.
    """
    parts: list[tuple[list[str], int]] = []
    ids: list[str] = []
    size = tokens = 0
    budget = None if limits.max_enqueued_tokens is None else limits.max_enqueued_tokens - in_flight
    for cid, nbytes, ntokens in queued:
        if budget is not None and ntokens > budget and not (in_flight == 0 and not parts and not ids):
            break
        if ids and (len(ids) >= limits.max_requests or size + nbytes > limits.max_bytes):
            parts.append((ids, tokens))
            ids, size, tokens = [], 0, 0
        ids.append(cid)
        size += nbytes
        tokens += ntokens
        if budget is not None:
            budget -= ntokens
    if ids:
        parts.append((ids, tokens))
    return parts


class BatchClient:
    """Talks to /v1/files and /v1/batches through the `openai` SDK; the ledger records each step."""

    def __init__(self, ledger: Ledger, *, api_key: str, base_url: str | None, timeout: float, retries: int,
                 limits: Limits, warn: Callable[[str], None] = lambda message: None) -> None:
        from openai import OpenAI

        self.ledger, self.limits, self.warn = ledger, limits, warn
        self._secret = api_key
        self._where = base_url or "the OpenAI API"
        self._client = OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=retries)

    def close(self) -> None:
        self._client.close()

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        """One SDK call, its errors turned into the tool's (the SDK already retried transient ones)."""
        import openai

        try:
            return call()
        except openai.APIStatusError as exc:
            detail = str(exc).replace(self._secret, "[redacted]") if len(self._secret) >= 4 else str(exc)
            if exc.status_code in (401, 403):
                raise AuthError(f"the Batch API refused the API key (HTTP {exc.status_code}) while trying to "
                                f"{what}: check OPENAI_API_KEY") from exc
            if exc.status_code == 429 and "quota" in detail:
                raise QuotaExhausted(f"the API quota is exhausted while trying to {what}: add credit, then run "
                                     "`summarizer batch collect` again") from exc
            if exc.status_code in (400, 404, 422):
                raise ConfigError(f"the Batch API rejected the request to {what} (HTTP {exc.status_code}): "
                                  f"{detail[:500]}") from exc
            raise TransientError(f"the Batch API failed to {what} (HTTP {exc.status_code}): {detail[:300]}; "
                                 "run `summarizer batch collect` again later") from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise TransientError(f"cannot reach the Batch API at {self._where} to {what}: {exc}; nothing was "
                                 "lost, run `summarizer batch collect` again") from exc

    # -- after a crash ---------------------------------------------------------------------------

    def recover(self, create: bool = True) -> None:
        """Settle parts a crash left between two ledger writes (create=False: only look and adopt)."""
        for part in self.ledger.parts("uploading") if create else []:
            # Killed before the upload was recorded: no batch can exist (it is created only from a
            # recorded file), so the lines simply go back to the queue.
            self.ledger.release(part.part)
            self.ledger.update_part(part.part, state="abandoned", detail="interrupted during upload")
        stranded = self.ledger.parts("uploaded")
        if not stranded:
            return
        found = self._find_created({p.part for p in stranded}, min(p.created for p in stranded))
        for part in stranded:
            batch = found.get(part.part)
            if batch is not None:
                self.ledger.update_part(part.part, state="created", batch_id=batch.id, status=batch.status)
            elif create:
                self._create(part.part, str(part.file_id))

    def _find_created(self, parts: set[int], since: float) -> dict[int, Any]:
        """This ledger's batches on the server for these parts, by their metadata."""
        found: dict[int, Any] = {}
        page = self._call("list batches", lambda: self._client.batches.list(limit=100))
        for batch in page:  # the SDK follows the pages; newest first
            if batch.created_at < since - 3600:
                break
            meta = batch.metadata or {}
            if meta.get("summarizer_ledger") == self.ledger.ledger_id and str(meta.get("part", "")).isdigit():
                number = int(meta["part"])
                if number in parts and number not in found:
                    found[number] = batch
            if len(found) == len(parts):
                break
        return found

    # -- submit ----------------------------------------------------------------------------------

    def submit(self) -> int:
        """Send the queued lines as batches under the limits; the number of batches created."""
        plan = plan_parts(self.ledger.queued(), self.limits, self.ledger.in_flight_tokens())
        for ids, tokens in plan:
            part = self.ledger.new_part(ids, tokens)
            file_id = self._upload(part)
            self.ledger.update_part(part, state="uploaded", file_id=file_id)
            self._create(part, file_id)
        return len(plan)

    def _upload(self, part: int) -> str:
        # Written to a temporary file first, so that the upload streams from disk.
        handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".jsonl", delete=False)
        try:
            with handle:
                for line in self.ledger.lines_of(part):
                    handle.write(line + "\n")
            name = f"summarizer-{self.ledger.ledger_id}-part{part}.jsonl"
            with open(handle.name, "rb") as data:
                uploaded = self._call("upload a batch input file",
                                      lambda: self._client.files.create(file=(name, data), purpose="batch"))
        finally:
            os.unlink(handle.name)
        return str(uploaded.id)

    def _create(self, part: int, file_id: str) -> None:
        metadata = {"summarizer_ledger": self.ledger.ledger_id, "part": str(part)}
        batch = self._call("create a batch", lambda: self._client.batches.create(
            input_file_id=file_id, endpoint=ENDPOINT, completion_window="24h", metadata=metadata))
        self.ledger.update_part(part, state="created", batch_id=batch.id, status=batch.status)

    # -- poll and collect ------------------------------------------------------------------------

    def refresh(self) -> list[Part]:
        """The server's state of every batch not collected yet (recorded in the ledger)."""
        for part in self.ledger.parts("created"):
            batch = self._call("read a batch", lambda: self._client.batches.retrieve(str(part.batch_id)))
            counts = batch.request_counts.model_dump() if batch.request_counts else {}
            self.ledger.update_part(part.part, status=batch.status, counts=counts,
                                    output_file_id=batch.output_file_id, error_file_id=batch.error_file_id,
                                    detail=_batch_errors(batch))
        return self.ledger.parts("created")

    def cancel_all(self) -> None:
        """Ask the server to cancel every batch still running (finished lines stay collectable)."""
        for part in self.refresh():
            if part.status not in TERMINAL_BATCH and part.status != "cancelling":
                self._call("cancel a batch", lambda: self._client.batches.cancel(str(part.batch_id)))

    def collect(self) -> int:
        """Read the results of every finished batch into the ledger; the number of batches collected."""
        collected = 0
        for part in self.refresh():
            if part.status not in TERMINAL_BATCH:
                continue
            batch = self._call("read a batch", lambda: self._client.batches.retrieve(str(part.batch_id)))
            self._collect(part, batch)
            collected += 1
        return collected

    def _collect(self, part: Part, batch: Any) -> None:
        retries = self.limits.line_retries + 1
        self.ledger.begin()  # one transaction for the whole file; reading it again changes nothing
        try:
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    for record in self._lines(file_id):
                        self._record(part.part, record, retries)
        finally:
            self.ledger.commit()
        # Lines in neither file: the batch failed, expired or was cancelled before them, or the
        # server lost them. Sent again; counted as a failure unless the batch as a whole was at fault.
        errors = _batch_errors(batch)
        counted = batch.status in ("completed", "failed") and "token_limit_exceeded" not in (errors or "")
        reason = (f"batch {batch.id} {batch.status}" + (f": {errors}" if errors else "")
                  if batch.status != "completed" else f"missing from the results of batch {batch.id}")
        missing = self.ledger.unanswered(part.part)
        for cid in missing:
            self.ledger.line_failed(cid, part.part, reason, retries, counted=counted)
        if batch.status in ("expired", "cancelled"):
            self.warn(f"batch {batch.id} {batch.status}: its finished answers are kept, the rest are sent again")
        elif missing and batch.status == "completed":
            self.warn(f"batch {batch.id}: {len(missing)} request(s) missing from its results; sent again")
        if errors and "token_limit_exceeded" in errors:
            self.warn(f"batch {batch.id} failed on the enqueued-token limit: its requests are sent again "
                      "as earlier batches finish (set --batch-max-tokens to stay under it)")
        self.ledger.update_part(part.part, state="collected")
        for file_id in (batch.input_file_id, batch.output_file_id, batch.error_file_id):
            if file_id:  # the account's file storage is limited; the answers are in the ledger now
                try:
                    self._client.files.delete(file_id)
                except Exception:
                    pass

    def _lines(self, file_id: str) -> Iterable[dict[str, Any]]:
        """The JSON lines of a results file, streamed (never the whole file in memory)."""
        import openai

        try:
            with self._client.files.with_streaming_response.content(file_id) as response:
                for text in response.iter_lines():
                    if text.strip():
                        try:
                            record = json.loads(text)
                        except json.JSONDecodeError:
                            continue  # a torn line: its request counts as missing and goes again
                        if isinstance(record, dict) and isinstance(record.get("custom_id"), str):
                            yield record
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            raise TransientError(f"cannot read batch results file {file_id}: {exc}; run "
                                 "`summarizer batch collect` again") from exc

    def _record(self, part: int, record: dict[str, Any], retries: int) -> None:
        cid = record["custom_id"]
        response = record.get("response")
        response = response if isinstance(response, dict) else {}  # data from the server: any shape
        body = response.get("body")
        if record.get("error") is None and response.get("status_code") == 200 and _is_completion(body):
            self.ledger.answer(cid, part, json.dumps(body, ensure_ascii=False, separators=(",", ":")))
            return
        error = record.get("error")
        if not isinstance(error, dict) and isinstance(body, dict):
            error = body.get("error")
        code = str(error.get("code")) if isinstance(error, dict) else ""
        message = (str(error.get("message") or code) if isinstance(error, dict)
                   else f"HTTP {response.get('status_code')}: an answer that is not a chat completion")
        self.ledger.line_failed(cid, part, message[:500], retries, counted=code not in _NOT_THE_LINE)


def _is_completion(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("choices"), list) and bool(body["choices"])


def _batch_errors(batch: Any) -> str | None:
    errors = getattr(batch, "errors", None)
    data = getattr(errors, "data", None) or []
    words = [f"{e.code}: {e.message}" if getattr(e, "code", None) else str(getattr(e, "message", e)) for e in data]
    return "; ".join(words)[:500] or None
