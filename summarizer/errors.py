"""Every exception summarizer raises on purpose, in one place.

SummarizerError
├── ConfigError            bad flags, environment or config file        -> exit 2
├── InputError             a document cannot be read as text            -> per-document status
│   ├── EmptyDocument      nothing left after decoding and cleaning
│   ├── NotTextDocument    binary data (image, archive, NUL bytes...)
│   │   └── CorruptDocument  a PDF/DOCX/PPTX that is damaged or not what it claims (status not_text)
│   ├── NoTextLayer        a scanned PDF: pages are pictures, run OCR first
│   ├── EncryptedDocument  password-protected PDF or Office file
│   ├── TooLarge           longer than --max-doc-chars, or over the page limit
│   └── ConverterMissing   the package that reads this format is not installed
├── RunStopper             nothing else in the run can succeed: it stops, finished work kept -> exit 2
│   ├── AuthError          401/403 (also a BackendError)
│   ├── QuotaExhausted     429 whose body says the quota is used up (also a BackendError)
│   ├── UnknownModel       the server does not serve the configured model (also a BackendError)
│   ├── ServerUnreachable  no connection to the server, even after the retries (also a BackendError)
│   ├── BackendMissing     the optional local backend is not installed (also a ConfigError)
│   ├── ExtraMissing       an optional engine or store package (ray, boto3) is not installed (also a ConfigError)
│   ├── StoreUnavailable   the shared result store (--store) cannot be read or written
│   ├── ActorsFailed       Ray actors cannot start on the nodes (a package or module missing there)
│   └── OutputUnwritable   an output, manifest or cache write failed (disk full, read-only folder)
├── BackendError           the model server or local model failed
│   ├── TransientError     worth retrying (408/409/429/5xx, timeouts, resets)
│   │   ├── RateLimited    429 with an optional Retry-After
│   │   └── MalformedResponse  an answer that cannot be read (not JSON, too deep, not UTF-8...)
│   │       └── ResponseTooLarge  the body passed the size cap (on the wire or inflated)
│   ├── RequestRejected    400/404/422, redirects: retrying the same request cannot help
│   └── BatchLineFailed    a batch line failed on the server more often than allowed
├── ExtractionError        the model answered, but not with a usable result
│   ├── Refused            refusal or content filter
│   ├── Truncated          finish_reason == "length" after the bigger budget
│   └── InvalidAnswer      still invalid after the allowed re-asks
├── WorkerFailed           a worker process died or hit a bug; the run ends -> exit 1
├── BudgetReached          --max-cost / --max-tokens-total spent; the run stops -> exit 1
├── NotStarted             the run stopped before this document's request went out (not recorded)
└── AwaitingBatch          batch mode: the document's next request waits for a batch -> status pending

Only the CLI turns these into exit codes; messages name the problem and the fix.
"""

from __future__ import annotations

from typing import Any


class SummarizerError(Exception):
    """Base class: the message is written for the person running the tool."""

    status = "failed"


class ConfigError(SummarizerError):
    """Flags, environment or config file are wrong or incomplete."""


class InputError(SummarizerError):
    """A document cannot be turned into text to summarize."""


class EmptyDocument(InputError):
    """The document has no text after decoding and cleaning."""

    status = "empty"


class NotTextDocument(InputError):
    """The document is binary (image, archive, NUL bytes...) or cannot be parsed."""

    status = "not_text"


class CorruptDocument(NotTextDocument):
    """A PDF, DOCX or PPTX that cannot be parsed: truncated, damaged or misnamed."""


class NoTextLayer(InputError):
    """A PDF whose pages hold pictures but no text (a scan): it needs OCR first."""

    status = "no_text_layer"


class EncryptedDocument(InputError):
    """A password-protected PDF or Office file."""

    status = "encrypted"


class TooLarge(InputError):
    """The document is longer than --max-doc-chars, or has more pages than are read."""

    status = "too_large"


class ConverterMissing(InputError):
    """The package that extracts text from this format is not installed."""

    status = "converter_missing"


class BackendError(SummarizerError):
    """The model server or local model failed to answer."""


class TransientError(BackendError):
    """A failure that a later identical request may not have."""


class RateLimited(TransientError):
    """HTTP 429; retry_after is the server's hint in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MalformedResponse(TransientError):
    """The server's answer cannot be read: not JSON, nested too deeply, not UTF-8, wrong shape."""


class ResponseTooLarge(MalformedResponse):
    """The answer's body passed the size cap, counted on the wire or after inflating it."""


class RequestRejected(BackendError):
    """The server rejected the request itself (400, 404, 422)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RunStopper(SummarizerError):
    """An error after which no other document can succeed either."""


class ActorsFailed(RunStopper):
    """The engine's Ray actors raised while starting: every other actor would fail the same way."""


class OutputUnwritable(RunStopper):
    """An output file, the manifest or the cache cannot be written (disk full, read-only folder)."""


class AuthError(RunStopper, BackendError):
    """The server refused the credentials (401/403)."""


class QuotaExhausted(RunStopper, BackendError):
    """The account has no quota left (429 with insufficient_quota)."""


class UnknownModel(RunStopper, BackendError):
    """The server does not serve the configured model (not listed, or 404 model_not_found)."""


class ServerUnreachable(RunStopper, BackendError):
    """No connection to the model server could be made, even after the retries."""


class BackendMissing(RunStopper, ConfigError):
    """An optional backend's packages are not installed."""


class ExtraMissing(RunStopper, ConfigError):
    """An optional package (the Ray engine, the S3 store) is missing; the message names the install command."""


class StoreUnavailable(RunStopper):
    """The shared result store (--store) cannot be read or written: every later document would fail too."""


class ExtractionError(SummarizerError):
    """The model answered, but the answer cannot be used."""

    def __init__(self, message: str, raw: str | None = None, usage: Any = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.usage = usage  # tokens spent before giving up (a backends.base.Usage), for budgets


class Refused(ExtractionError):
    """The model refused, or the content filter stopped it."""

    status = "refused"


class Truncated(ExtractionError):
    """The answer hit the output token limit, even with the larger budget."""

    status = "truncated"


class InvalidAnswer(ExtractionError):
    """The answer did not validate after the allowed re-asks."""

    status = "invalid"


class WorkerFailed(SummarizerError):
    """A worker process of a bulk run died or hit a bug; finished documents are kept."""


class BudgetReached(SummarizerError):
    """--max-cost or --max-tokens-total was spent: the run stops, finished documents are kept."""


class NotStarted(SummarizerError):
    """The run stopped (auth, quota, budget) before this document's request was sent."""


class BatchLineFailed(BackendError):
    """A batch request line failed on the server (error file) more often than allowed."""


class AwaitingBatch(SummarizerError):
    """Batch mode: this document's next request was queued for a batch; it resumes when answered."""

    status = "pending"
