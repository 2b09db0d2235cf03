"""One frozen Settings object, built once from flags > environment > config file > defaults.

Every option, run options included, has one name: the flag `--max-cost` is the setting
`max_cost`, the environment variable `SUMMARIZER_MAX_COST` and the config key `max_cost` (or
`max-cost`). Values are validated by pydantic: a wrong type is an error naming where the value
came from, never a guess.

Why not pydantic-settings: its errors cannot say which source (flag, variable, file) a bad value
came from, and naming that is the point of the message; the merge itself is a dozen lines.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from .choices import BACKENDS, ENGINES, MODES, TABLES
from .errors import ConfigError


# Variables with names of their own; every other setting is SUMMARIZER_<NAME>.
SPECIAL_ENVIRONMENT = {"OPENAI_API_KEY": "api_key", "OPENAI_BASE_URL": "base_url", "RAY_ADDRESS": "ray_address"}
# Bounds that keep a typo from allocating gigabytes or waiting for ever.
MAX_CONCURRENCY = 4096
MAX_WORKERS = 256


def _no_bool(value: Any) -> Any:
    # TOML `rpm = true` must not become 1.0: a number was meant, and guessing hides the mistake.
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


def _int_only(value: Any) -> Any:
    # A config `concurrency = 8.7` is a mistake, not 8.
    value = _no_bool(value)
    if isinstance(value, float):
        raise ValueError("expected a whole number")
    return value


def _finite(value: Any) -> Any:
    value = _no_bool(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value  # pydantic names the problem
    if not math.isfinite(number):
        raise ValueError("expected a finite number, not nan or inf")
    return value


Int = Annotated[int, BeforeValidator(_int_only)]
Num = Annotated[float, BeforeValidator(_finite)]


def _bool(value: Any) -> Any:
    # Environment values are text; config values are TOML booleans.
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError("expected true or false")
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false")


Bool = Annotated[bool, BeforeValidator(_bool)]


class Settings(BaseModel):
    """Everything a run needs to know; passed down, never read from globals."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    # The model
    api_key: str | None = Field(default=None, repr=False)
    base_url: str | None = None
    model: str | None = None
    backend: Literal[BACKENDS] = "auto"  # type: ignore[valid-type]
    model_path: Path | None = None
    mode: Literal[MODES] = "auto"  # type: ignore[valid-type]
    schema_ref: str = Field(default="article", alias="schema")
    prompt_dir: Path | None = None
    # Requests
    max_reasks: Int = Field(default=2, ge=0, le=10)
    max_tokens: Int | None = Field(default=None, ge=1, le=1_000_000)  # None: the backend's default
    temperature: Num = Field(default=0.0, ge=0.0, le=2.0)
    timeout: Num = Field(default=60.0, gt=0, le=86_400)
    retries: Int = Field(default=3, ge=0, le=20)
    max_retry_wait: Num = Field(default=60.0, ge=0, le=86_400)
    backoff: Num = Field(default=1.0, ge=0, le=600)
    # Bulk
    concurrency: Int = Field(default=8, ge=1, le=MAX_CONCURRENCY)
    workers: Int | None = Field(default=None, ge=1, le=MAX_WORKERS)  # None: one per 16 in flight, up to the CPUs
    engine: Literal[ENGINES] = "local"  # type: ignore[valid-type]
    ray_address: str | None = None  # None: start a Ray instance on this machine for the run
    rpm: Num | None = Field(default=None, gt=0)
    tpm: Num | None = Field(default=None, gt=0)
    max_cost: Num | None = Field(default=None, gt=0)
    max_tokens_total: Int | None = Field(default=None, ge=1)
    max_chunk_chars: Int = Field(default=24_000, ge=1_000, le=10_000_000)
    max_doc_chars: Int = Field(default=5_000_000, ge=1, le=1_000_000_000)
    n_ctx: Int = Field(default=8192, ge=512, le=1_048_576)
    # Batch mode (`summarizer batch ...`)
    batch_poll: Num = Field(default=30.0, gt=0, le=3600)  # seconds between looks at the batches
    batch_wait: Num = Field(default=90_000.0, gt=0)  # `batch run` gives up waiting after this many seconds
    batch_max_requests: Int = Field(default=50_000, ge=1, le=50_000)  # per batch input file
    batch_max_bytes: Int = Field(default=200_000_000, ge=10_000, le=200_000_000)  # per batch input file
    batch_max_tokens: Int | None = Field(default=None, ge=1)  # the model's enqueued-token limit
    batch_line_retries: Int = Field(default=3, ge=0, le=20)  # a line failed on the server is sent again
    # Inputs and outputs
    out_dir: Path = Path("outputs")
    cache_dir: Path | None = None
    store: str | None = None  # the shared result store: file:///path or s3://bucket/prefix
    store_endpoint: str | None = None  # an S3-compatible server's URL (MinIO, Ceph, R2...); None: AWS
    use_cache: Bool = True
    globs: tuple[str, ...] = ("*",)
    from_list: Path | None = None
    retry_failed: Bool = False
    jsonl: Path | None = None
    dry_run: Bool = False
    strict: Bool = False
    allow_flagged: Bool = False
    tables: Literal[TABLES] = "auto"  # type: ignore[valid-type]
    json_output: Bool = False
    quiet: Bool = False
    verbose: Bool = False

    @field_validator("out_dir", "cache_dir", "model_path", "from_list", "jsonl", "prompt_dir", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        if value is None or isinstance(value, Path):
            return value
        if not isinstance(value, str) or not value:
            raise ValueError("expected a path")
        return Path(value).expanduser()

    @field_validator("globs", mode="before")
    @classmethod
    def _globs(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: comma-separated
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def schema(self) -> str:
        """The schema reference: a built-in name or path/to/file.py:Model."""
        return self.schema_ref

    @property
    def own_folders(self) -> tuple[Path, ...]:
        """Folders a run writes (outputs, manifests, cache): never read as inputs (`summarize .`)."""
        return tuple(p for p in (self.out_dir, self.cache_dir) if p is not None)

    @property
    def resolved_backend(self) -> str:
        """openai when a key or base URL is configured (or asked for), local otherwise."""
        if self.backend != "auto":
            return self.backend
        return "openai" if (self.api_key or self.base_url) else "local"

    def check(self) -> Settings:
        """Raise ConfigError for combinations that cannot work; return self."""
        if self.resolved_backend == "openai" and not self.api_key and not self.base_url:
            raise ConfigError(
                "OPENAI_API_KEY is not set: export it, or pass --base-url for a local OpenAI-compatible "
                "server, or use --backend local for the embedded model"
            )
        return self


# The name a user writes (flag without dashes, config key) -> the field.
_NAMES = {("schema" if name == "schema_ref" else name): name for name in Settings.model_fields}
FLAG_OF = {name: "--" + ("schema" if name == "schema_ref" else name).replace("_", "-") for name in Settings.model_fields}
FLAG_OF.update({"prompt_dir": "--prompt", "out_dir": "--out", "json_output": "--json", "use_cache": "--no-cache", "globs": "--glob"})


def environment_names() -> dict[str, str]:
    """Environment variable -> setting name, for every setting."""
    names = {f"SUMMARIZER_{user.upper()}": user for user in _NAMES if user not in ("api_key", "base_url")}
    names["SUMMARIZER_OUT"] = "out_dir"
    return {**names, **SPECIAL_ENVIRONMENT}


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


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file; a missing file is an empty config."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    return {k.replace("-", "_"): v for k, v in parsed.items()}


def build_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the four sources, highest first: flags, environment, config file, defaults."""
    env = os.environ if env is None else env
    path = config_file or default_config_file(env)
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def put(name: str, value: Any, where: str) -> None:
        field_name = _NAMES.get(name)
        if field_name is None:
            raise ConfigError(f"unknown setting {name!r} in {where}: remove it or check its spelling")
        merged[field_name], origin[field_name] = value, where

    for key, value in load_config_file(path).items():
        put(key, value, f"config file {path}")
    for var, name in environment_names().items():
        if env.get(var):
            put(name, env[var], f"${var}")
    for key, value in flags.items():
        if value is not None:
            put(key, value, "the command line")
    if merged.get("cache_dir") is None:
        merged["cache_dir"] = default_cache_dir(env)
    if "schema_ref" in merged:
        merged["schema"] = merged.pop("schema_ref")
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
    return settings.check()


def _describe(error: ValidationError, origin: Mapping[str, str]) -> str:
    lines = []
    for item in error.errors(include_url=False):
        name = str(item["loc"][0]) if item["loc"] else "?"
        name = "schema_ref" if name == "schema" else name
        flag = FLAG_OF.get(name, name)
        where = origin.get(name, "the defaults")
        value = "(hidden)" if name == "api_key" else repr(item.get("input"))
        problem = str(item["msg"]).replace("Input should be", "must be").replace("Value error, ", "")
        if where.startswith("$"):
            lines.append(f"{where}={value} (the {flag} setting): {problem}")
        elif where.startswith("config file"):
            lines.append(f"{name} = {value} in {where} (the {flag} setting): {problem}")
        else:
            lines.append(f"{flag} {value} from {where}: {problem}")
    return "bad setting: " + "; ".join(lines)
