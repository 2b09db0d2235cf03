"""The shared result store (--store): validated results by cache key, on a shared folder or S3.

The per-node SQLite cache stays in front of it. Keys are the cache keys (content-addressed: the
document's text hash with everything that shapes the result), so any node or run that meets the
same document under the same settings finds the result. The first writer of a key wins: a
folder store links a finished temporary file to its final name (create-exclusive, never a
half-written file), an S3 store puts with `If-None-Match: *`.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from .errors import ConfigError, ExtraMissing, StoreUnavailable

S3_INSTALL = "pip install 'summarizer[ray]' (or pip install boto3)"


class ResultStore(Protocol):
    """Results by cache key, shared by every node and run; the first writer of a key wins."""

    uri: str

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry for key, or None."""
        ...

    def put(self, key: str, value: dict[str, Any]) -> bool:
        """Store the entry unless one is there; True when this call wrote it."""
        ...


def open_store(uri: str, endpoint: str | None = None) -> ResultStore:
    """The store a --store URI names: file:///path or s3://bucket/prefix."""
    parts = urlsplit(uri)
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path:
        return FileStore(Path(unquote(parts.path)))
    if parts.scheme == "s3" and parts.netloc:
        return S3Store(parts.netloc, parts.path.strip("/"), endpoint)
    raise ConfigError(f"--store {uri!r}: expected file:///absolute/path or s3://bucket/prefix")


def _decode(data: bytes) -> dict[str, Any] | None:
    # A damaged entry is a miss (the result is made again), never a failed document.
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) and "result" in value else None


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")


class FileStore:
    """A folder on storage every node mounts (NFS, EFS, a local disk for one machine)."""

    def __init__(self, root: Path) -> None:
        self.root, self.uri = root, root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return _decode(self._path(key).read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the result store {self.uri}: {exc.strerror or exc} "
                                   "(check that it is mounted and readable, or run without --store)") from exc

    def put(self, key: str, value: dict[str, Any]) -> bool:
        final = self._path(key)
        if final.exists():
            return False
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=final.parent, prefix=".tmp-", suffix=".json")
            try:
                # mkstemp makes it owner-only; other users' runs on a shared mount must read it too.
                os.fchmod(fd, 0o644)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(_encode(value))
                    handle.flush()
                    os.fsync(handle.fileno())
                try:
                    # link() creates the name only if it does not exist, with the whole content:
                    # exclusive like O_CREAT|O_EXCL, atomic like rename.
                    os.link(temporary, final)
                except FileExistsError:
                    return False
                return True
            finally:
                os.unlink(temporary)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise StoreUnavailable(f"cannot write the result store {self.uri}: {exc.strerror or exc} "
                                   "(free space or fix its permissions, or run without --store)") from exc


class S3Store:
    """A bucket (and prefix) on S3 or an S3-compatible server; credentials from boto3's usual chain."""

    def __init__(self, bucket: str, prefix: str, endpoint: str | None = None) -> None:
        self.bucket, self.prefix, self.endpoint = bucket, prefix, endpoint
        self.uri = f"s3://{bucket}/{prefix}".rstrip("/")
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}  # each process makes its own client

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as exc:
                raise ExtraMissing(f"--store s3://... needs boto3: {S3_INSTALL}") from exc
            self._client = boto3.client("s3", endpoint_url=self.endpoint,
                                        config=Config(retries={"mode": "standard", "max_attempts": 5}))
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}.json" if self.prefix else f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        client = self.client  # first: without boto3, ExtraMissing names the install command
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = client.get_object(Bucket=self.bucket, Key=self._key(key))
            return _decode(answer["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._unavailable("read", exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable("read", exc) from exc

    def put(self, key: str, value: dict[str, Any]) -> bool:
        client = self.client  # first: without boto3, ExtraMissing names the install command
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client.put_object(Bucket=self.bucket, Key=self._key(key), Body=_encode(value),
                                   ContentType="application/json", IfNoneMatch="*")
            return True
        except ClientError as exc:
            # 412: the key exists; 409: another writer's put of the same key is in progress.
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise self._unavailable("write", exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable("write", exc) from exc

    def _unavailable(self, doing: str, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"cannot {doing} the result store {self.uri}: {exc} (check the bucket, the "
                                "credentials and --store-endpoint, or run without --store)")
