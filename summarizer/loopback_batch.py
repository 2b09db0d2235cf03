"""The loopback server's Batch API: /v1/files and /v1/batches with a fast clock and scripted faults.

`enable_batches(server)` attaches a BatchService to a LoopbackServer. Batches move through
validating -> in_progress -> finalizing -> completed every `phase` seconds (read on each request:
no thread). Lines are answered by the server's chat responder and scripted replies, at the moment
the batch finishes. Faults, per batch in creation order (`faults[n] = {...}`): "expire_half",
"cancel_half" (as expire, ends cancelled), "drop" (lines missing from both files), "token_limit"
(failed at validation), "stall" (created, then the answer to the create call waits `stall`
seconds). Duplicate custom_ids always fail a batch at validation, as the real API does. `billed`
counts each answered line, so a test sees any request paid for twice.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

Answer = tuple[int, bytes, dict[str, str]]
_FILE = re.compile(r"^/v1/files(?:/(?P<id>[\w-]+)(?P<content>/content)?)?/?$")
_BATCH = re.compile(r"^/v1/batches(?:/(?P<id>[\w-]+)(?P<cancel>/cancel)?)?/?$")
TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class StoredFile:
    id: str
    data: bytes
    filename: str
    purpose: str
    created_at: int

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.data), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed"}


@dataclass
class StoredBatch:
    id: str
    input_file_id: str
    metadata: dict[str, str] | None
    created_at: int
    started: float
    faults: dict[str, Any]
    status: str = "validating"
    errors: list[dict[str, Any]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "batch", "endpoint": "/v1/chat/completions", "completion_window": "24h",
            "input_file_id": self.input_file_id, "status": self.status, "created_at": self.created_at,
            "output_file_id": self.output_file_id, "error_file_id": self.error_file_id,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "request_counts": self.counts, "metadata": self.metadata,
        }


class BatchService:
    """The server side of the Batch API, in memory; thread-safe (the HTTP server is threaded)."""

    def __init__(self, answer: Callable[[dict[str, Any]], tuple[int, bytes]], *, phase: float = 0.05) -> None:
        self.answer, self.phase = answer, phase
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, StoredBatch] = {}
        self.faults: dict[int, dict[str, Any]] = {}  # 1-based creation number -> faults of that batch
        self.billed: Counter[str] = Counter()  # custom_id -> answered lines
        self.lines: list[dict[str, Any]] = []  # every request line of every batch that passed validation
        self.created = 0
        self._lock = threading.RLock()

    @staticmethod
    def owns(path: str) -> bool:
        bare = path.split("?", 1)[0]
        return bool(_FILE.match(bare) or _BATCH.match(bare))

    def handle(self, method: str, path: str, content_type: str, body: bytes) -> Answer:
        bare, _, query = path.partition("?")
        if (match := _FILE.match(bare)) is not None:
            return self._files(method, match, content_type, body)
        match = _BATCH.match(bare)
        assert match is not None
        return self._batches(method, match, body, dict(p.split("=", 1) for p in query.split("&") if "=" in p))

    # -- files -----------------------------------------------------------------------------------

    def _files(self, method: str, match: re.Match[str], content_type: str, body: bytes) -> Answer:
        file_id = match.group("id")
        if method == "POST" and file_id is None:
            fields = parse_multipart(content_type, body)
            if "file" not in fields:
                return _error(400, "missing file")
            filename, data = fields["file"]
            stored = StoredFile("file-" + secrets.token_hex(8), data, filename or "upload.jsonl",
                                fields.get("purpose", ("", b"batch"))[1].decode(), int(time.time()))
            with self._lock:
                self.files[stored.id] = stored
            return _json(stored.as_dict())
        if method == "GET" and file_id is None:
            with self._lock:
                data = [f.as_dict() for f in self.files.values()]
            return _json({"object": "list", "data": data, "has_more": False})
        with self._lock:
            stored_file = self.files.get(file_id or "")
            if stored_file is None:
                return _error(404, f"No such File object: {file_id}")
            if method == "DELETE":
                del self.files[stored_file.id]
                return _json({"id": stored_file.id, "object": "file", "deleted": True})
        if match.group("content"):
            return 200, stored_file.data, {"content-type": "application/octet-stream"}
        return _json(stored_file.as_dict())

    # -- batches ---------------------------------------------------------------------------------

    def _batches(self, method: str, match: re.Match[str], body: bytes, query: dict[str, str]) -> Answer:
        batch_id = match.group("id")
        if method == "POST" and batch_id is None:
            return self._create(json.loads(body or b"{}"))
        if method == "GET" and batch_id is None:
            return self._list(int(query.get("limit", 20)), query.get("after"))
        with self._lock:
            batch = self.batches.get(batch_id or "")
            if batch is None:
                return _error(404, f"No such Batch object: {batch_id}")
            if method == "POST" and match.group("cancel"):
                if batch.status not in TERMINAL:
                    batch.status, batch.faults["cancel_half"] = "cancelling", True
                return _json(batch.as_dict())
            self._advance(batch)
            return _json(batch.as_dict())

    def _create(self, request: dict[str, Any]) -> Answer:
        with self._lock:
            if request.get("input_file_id") not in self.files:
                return _error(400, f"input file {request.get('input_file_id')} not found")
            self.created += 1
            batch = StoredBatch("batch_" + secrets.token_hex(8), request["input_file_id"], request.get("metadata"),
                                int(time.time()), time.monotonic(), dict(self.faults.get(self.created, {})))
            self.batches[batch.id] = batch
            answer = _json(batch.as_dict())
        if batch.faults.get("stall"):  # created, but the client hears nothing for a while
            time.sleep(float(batch.faults["stall"]))
        return answer

    def _list(self, limit: int, after: str | None) -> Answer:
        with self._lock:
            batches = sorted(self.batches.values(), key=lambda b: (b.created_at, b.started), reverse=True)
            if after is not None:
                ids = [b.id for b in batches]
                batches = batches[ids.index(after) + 1:] if after in ids else []
            for batch in batches[:limit]:
                self._advance(batch)
            page = [b.as_dict() for b in batches[:limit]]
        return _json({"object": "list", "data": page, "has_more": len(batches) > limit,
                      "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None})

    def _advance(self, batch: StoredBatch) -> None:
        """Move a batch along the fast clock; lines are answered when it finishes."""
        if batch.status in TERMINAL:
            return
        phases = int((time.monotonic() - batch.started) / self.phase) if self.phase else 3
        lines = self._input_lines(batch)
        if batch.status == "validating" and phases >= 1:
            batch.counts["total"] = len(lines)
            problem = self._validate(batch, lines)
            if problem is not None:
                batch.status, batch.errors = "failed", [problem]
                return
            batch.status = "in_progress"
            self.lines.extend(lines)
        if batch.status == "cancelling":
            self._finish(batch, lines, "cancelled")
        elif batch.status in ("in_progress", "finalizing") and phases >= 3:
            if batch.faults.get("expire_half"):
                self._finish(batch, lines, "expired")
            elif batch.faults.get("cancel_half"):
                self._finish(batch, lines, "cancelled")
            else:
                self._finish(batch, lines, "completed")
        elif batch.status == "in_progress" and phases >= 2:
            batch.status = "finalizing"

    def _input_lines(self, batch: StoredBatch) -> list[dict[str, Any]]:
        data = self.files[batch.input_file_id].data if batch.input_file_id in self.files else b""
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def _validate(self, batch: StoredBatch, lines: list[dict[str, Any]]) -> dict[str, Any] | None:
        if batch.faults.get("token_limit"):
            return {"code": "token_limit_exceeded", "message": "Enqueued token limit reached for this model."}
        seen: set[str] = set()
        for number, line in enumerate(lines, 1):
            cid = line.get("custom_id")
            if cid in seen:
                return {"code": "duplicate_custom_id", "line": number,
                        "message": f"The custom_id {cid!r} is used more than once in this batch."}
            seen.add(cid)
        return None

    def _finish(self, batch: StoredBatch, lines: list[dict[str, Any]], status: str) -> None:
        answered = lines if status == "completed" else lines[: len(lines) // 2]
        dropped = int(batch.faults.get("drop", 0))
        out: list[bytes] = []
        err: list[bytes] = []
        for number, line in enumerate(lines):
            cid = line["custom_id"]
            if status == "completed" and number >= len(lines) - dropped:
                continue  # lost: in neither file
            if number >= len(answered):
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                err.append(_result(cid, None, {"code": code, "message": f"This request was not run: batch {status}."}))
                continue
            code, body = self.answer(line["body"])
            if code == 200:
                self.billed[cid] += 1
                out.append(_result(cid, {"status_code": 200, "request_id": secrets.token_hex(6),
                                         "body": json.loads(body)}, None))
                batch.counts["completed"] += 1
            else:
                err.append(_result(cid, {"status_code": code, "request_id": secrets.token_hex(6),
                                         "body": json.loads(body or b"{}")}, None))
                batch.counts["failed"] += 1
        batch.output_file_id = self._store(batch, out, "output")
        batch.error_file_id = self._store(batch, err, "error")
        batch.status = status

    def _store(self, batch: StoredBatch, lines: list[bytes], kind: str) -> str | None:
        if not lines:
            return None
        stored = StoredFile("file-" + secrets.token_hex(8), b"".join(lines), f"{batch.id}_{kind}.jsonl",
                            "batch_output", int(time.time()))
        self.files[stored.id] = stored
        return stored.id


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Form fields of a multipart/form-data body: name -> (filename, bytes)."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def enable_batches(server: Any, *, phase: float = 0.05) -> BatchService:
    """Serve the Batch API from a LoopbackServer; lines are answered like its chat requests."""
    from .loopback import _completion_body

    def answer(body: dict[str, Any]) -> tuple[int, bytes]:
        reply = server._next_reply(body)
        return reply.status, reply.body if reply.body is not None else _completion_body(body, reply)

    server.batch = BatchService(answer, phase=phase)
    return server.batch


def _result(cid: str, response: dict[str, Any] | None, error: dict[str, Any] | None) -> bytes:
    record = {"id": "batch_req_" + secrets.token_hex(6), "custom_id": cid, "response": response, "error": error}
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def _json(data: dict[str, Any]) -> Answer:
    return 200, json.dumps(data).encode(), {"content-type": "application/json"}


def _error(status: int, message: str) -> Answer:
    return status, json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode(), {}
