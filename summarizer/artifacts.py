"""Versioned artifacts: extraction schemas and prompt templates, with their ids and hashes."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import string
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .errors import ConfigError
from .traits import SchemaTraits, traits_of


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces: the text that hashes are taken over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    """Hex sha256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SchemaSpec:
    """A Pydantic model plus the id, version and JSON Schema the model server sees."""

    id: str
    version: str
    model: type[BaseModel] = field(compare=False)

    @cached_property
    def json_schema(self) -> dict[str, Any]:
        return self.model.model_json_schema()

    @cached_property
    def json_schema_text(self) -> str:
        return json.dumps(self.json_schema, indent=2, ensure_ascii=False) + "\n"

    @cached_property
    def sha256(self) -> str:
        return sha256_text(canonical_json(self.json_schema))

    @cached_property
    def traits(self) -> SchemaTraits:
        """What the schema declares about its fields (verbatim, English, title, links...)."""
        return traits_of(self.model)

    @cached_property
    def strict(self) -> bool:
        """True when OpenAI's strict structured outputs accept the schema as it is."""
        return _strict_compatible(self.json_schema)


def _strict_compatible(node: Any) -> bool:
    # Strict mode needs every object closed and every property required.
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            if node.get("additionalProperties") is not False:
                return False
            if set(node.get("required", [])) != set(node["properties"]):
                return False
        return all(_strict_compatible(v) for v in node.values())
    if isinstance(node, list):
        return all(_strict_compatible(v) for v in node)
    return True


def load_schema(name: str) -> SchemaSpec:
    """Resolve a built-in schema name or a `path/to/file.py:ModelName` reference."""
    from summarizer.schemas import BUILTIN

    if name in BUILTIN:
        module_name, _, attr = BUILTIN[name].partition(":")
        module = importlib.import_module(f"summarizer.schemas.{module_name}")
        return _spec_from_model(getattr(module, attr), default_id=name)
    path_text, sep, attr = name.rpartition(":")
    if not sep or not path_text.endswith(".py"):
        known = ", ".join(sorted(BUILTIN))
        raise ConfigError(f"unknown schema {name!r}: use one of {known}, or path/to/file.py:ModelName")
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"schema file {path} does not exist: check the path before ':{attr}'")
    module_name = f"summarizer_user_schema_{sha256_text(str(path.resolve()))[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # pydantic resolves forward references through sys.modules
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report any failure as configuration
        raise ConfigError(f"cannot import schema file {path}: {type(exc).__name__}: {exc}") from exc
    model = getattr(module, attr, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(f"{path} has no Pydantic model named {attr!r}: name a BaseModel subclass after ':'")
    return _spec_from_model(model, default_id=attr.lower())


def schema_from_model(model: type[BaseModel]) -> SchemaSpec:
    """The SchemaSpec of a Pydantic model given directly (the Python API's `schema=Model`)."""
    return _spec_from_model(model, default_id=model.__name__.lower())


def _spec_from_model(model: type[BaseModel], default_id: str) -> SchemaSpec:
    schema_id = getattr(model, "SCHEMA_ID", default_id)
    version = getattr(model, "SCHEMA_VERSION", None)
    spec = SchemaSpec(id=schema_id, version=version or "0", model=model)
    if version is None:  # a user model without a version: its content hash stands in
        spec = SchemaSpec(id=schema_id, version=f"sha-{spec.sha256[:12]}", model=model)
    return spec


def builtin_schema_export(name: str) -> str:
    """The checked-in JSON Schema export of a built-in schema."""
    return resources.files("summarizer.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")


@dataclass(frozen=True)
class PromptSpec:
    """A system + user template pair with its id, version and content hash."""

    id: str
    version: str
    system: str
    user: str

    @property
    def sha256(self) -> str:
        return sha256_text(canonical_json({"system": self.system, "user": self.user}))

    def render_user(self, document: str, boundary: str) -> str:
        """Fill the user template; $document sits between $boundary markers."""
        return string.Template(self.user).substitute(document=document, boundary=boundary)


def load_prompt(prompt_id: str) -> PromptSpec:
    """Load the versioned prompt set for a schema id (falls back to `generic`)."""
    root = resources.files("summarizer.prompts")
    versions = recorded_prompt_hashes()
    if prompt_id not in versions:
        prompt_id = "generic"
    folder = root.joinpath(prompt_id)
    return PromptSpec(
        id=prompt_id,
        version=str(versions[prompt_id]["version"]),
        system=folder.joinpath("system.txt").read_text("utf-8"),
        user=folder.joinpath("user.txt").read_text("utf-8"),
    )


def recorded_prompt_hashes() -> dict[str, dict[str, str]]:
    """The version and sha256 that versions.toml records for each prompt set."""
    root = resources.files("summarizer.prompts")
    return tomllib.loads(root.joinpath("versions.toml").read_text("utf-8"))
