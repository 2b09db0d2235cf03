"""One frozen Settings object, built once from flags > environment > config file > defaults."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

# Environment variable -> settings field.
ENVIRONMENT = {
    "OPENAI_API_KEY": "api_key",
    "OPENAI_BASE_URL": "base_url",
    "SUMMARIZER_MODEL": "model",
    "SUMMARIZER_BACKEND": "backend",
    "SUMMARIZER_MODEL_PATH": "model_path",
    "SUMMARIZER_MODE": "mode",
    "SUMMARIZER_SCHEMA": "schema",
    "SUMMARIZER_OUT": "out_dir",
    "SUMMARIZER_CACHE_DIR": "cache_dir",
    "SUMMARIZER_CONCURRENCY": "concurrency",
    "SUMMARIZER_WORKERS": "workers",
    "SUMMARIZER_RPM": "rpm",
    "SUMMARIZER_TPM": "tpm",
    "SUMMARIZER_TIMEOUT": "timeout",
}


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """The user's cache folder: $XDG_CACHE_HOME/summarizer or ~/.cache/summarizer."""
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "summarizer"


def default_config_file(env: Mapping[str, str]) -> Path:
    """$SUMMARIZER_CONFIG, else $XDG_CONFIG_HOME/summarizer/config.toml."""
    if env.get("SUMMARIZER_CONFIG"):
        return Path(env["SUMMARIZER_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "summarizer" / "config.toml"


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know; passed down, never read from globals."""

    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    model: str | None = None
    backend: str = "auto"  # auto | openai | local
    model_path: Path | None = None
    mode: str = "auto"  # auto | json_schema | json_object | tools
    schema: str = "article"
    out_dir: Path = Path("outputs")
    cache_dir: Path | None = None
    use_cache: bool = True
    max_reasks: int = 2
    max_tokens: int | None = None  # None: 2048, or 1024 for the local model (a runaway costs less)
    temperature: float = 0.0
    timeout: float = 60.0
    retries: int = 3
    max_retry_wait: float = 60.0
    backoff: float = 1.0
    concurrency: int = 8
    workers: int | None = None  # processes sharing the concurrency; None: 1 per 16 in flight, up to the CPUs
    rpm: float | None = None
    tpm: float | None = None
    max_chunk_chars: int = 24_000
    n_ctx: int = 8192
    strict: bool = False
    json_output: bool = False
    quiet: bool = False
    verbose: bool = False

    @property
    def resolved_backend(self) -> str:
        """openai when a key or base URL is configured (or asked for), local otherwise."""
        if self.backend != "auto":
            return self.backend
        return "openai" if (self.api_key or self.base_url) else "local"

    @property
    def resolved_max_tokens(self) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        return 1024 if self.resolved_backend == "local" else 2048

    @property
    def resolved_model(self) -> str:
        if self.model:
            return self.model
        if self.resolved_backend == "local":
            return Path(self.model_path).name if self.model_path else "SmolLM2-135M-Instruct.Q4_1.gguf"
        return DEFAULT_OPENAI_MODEL

    def check(self) -> Settings:
        """Raise ConfigError for combinations that cannot work; return self."""
        if self.backend not in ("auto", "openai", "local"):
            raise ConfigError(f"unknown backend {self.backend!r}: use auto, openai or local")
        if self.mode not in ("auto", "json_schema", "json_object", "tools"):
            raise ConfigError(f"unknown mode {self.mode!r}: use auto, json_schema, json_object or tools")
        if self.resolved_backend == "openai" and not self.api_key and not self.base_url:
            raise ConfigError(
                "OPENAI_API_KEY is not set: export it, or pass --base-url for a local OpenAI-compatible "
                "server, or use --backend local for the embedded model"
            )
        for flag, value in (("--concurrency", self.concurrency), ("--max-tokens", self.resolved_max_tokens),
                            ("--workers", 1 if self.workers is None else self.workers)):
            if value < 1:
                raise ConfigError(f"{flag} must be at least 1")
        if self.max_reasks < 0 or self.retries < 0:
            raise ConfigError("--max-reasks and --retries must be 0 or more")
        return self


def _coerce(name: str, value: Any, origin: str) -> Any:
    # Environment and config values arrive as text; give them the field's type.
    kind = {f.name: f.type for f in fields(Settings)}.get(name)
    if kind is None:
        raise ConfigError(f"unknown setting {name!r} in {origin}: remove it or check its spelling")
    if value is None:
        return None
    try:
        if "Path" in str(kind):
            return Path(str(value)).expanduser()
        if "bool" in str(kind):
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in ("1", "true", "yes", "on")
        if "int" in str(kind) and "float" not in str(kind):
            return int(value)
        if "float" in str(kind):
            return float(value)
    except ValueError as exc:
        raise ConfigError(f"setting {name!r} from {origin} has a bad value {value!r}: {exc}") from exc
    return str(value)


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file; a missing file is an empty config."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    return {k.replace("-", "_"): v for k, v in data.items()}


def build_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the four sources, highest first: flags, environment, config file, defaults."""
    env = os.environ if env is None else env
    path = config_file or default_config_file(env)
    merged: dict[str, Any] = {}
    for key, value in load_config_file(path).items():
        merged[key] = _coerce(key, value, str(path))
    for var, key in ENVIRONMENT.items():
        if env.get(var):
            merged[key] = _coerce(key, env[var], f"${var}")
    for key, value in flags.items():
        if value is not None:
            merged[key] = _coerce(key, value, "the command line")
    if merged.get("cache_dir") is None:
        merged["cache_dir"] = default_cache_dir(env)
    return dataclasses.replace(Settings(), **merged).check()
