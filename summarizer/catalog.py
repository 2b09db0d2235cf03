"""The `schemas` and `models` commands: what can be extracted, and what the server can run."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from .artifacts import load_schema, prompt_for
from .errors import ConfigError
from .settings import Settings


def list_schemas(name: str | None) -> str:
    """A table of the built-in schemas, or one schema's description, traits and prompt as JSON."""
    from summarizer.schemas import BUILTIN

    if name:
        spec = load_schema(name)
        prompt = prompt_for(spec)
        return json.dumps({
            "id": spec.id, "version": spec.version, "description": (spec.model.__doc__ or "").strip(),
            "traits": spec.traits.as_dict(), "prompt": {"id": prompt.id, "version": prompt.version},
            "json_schema": spec.json_schema,
        }, indent=2, ensure_ascii=False) + "\n"
    lines = []
    for builtin in sorted(BUILTIN):
        spec = load_schema(builtin)
        doc = (spec.model.__doc__ or "").strip().splitlines()
        lines.append(f"{spec.id}\tv{spec.version}\t{doc[0] if doc else ''}")
    lines.append("your own\t-\t--schema path/to/file.py:Model (any Pydantic model; see README 'Your own schema')")
    return "\n".join(lines) + "\n"


def list_models(settings: Settings) -> list[str]:
    """The models the configured backend offers; ConfigError when --model is not among them."""
    from .backends import make_backend
    from .backends.base import serves

    backend: Any = make_backend(settings)

    async def go() -> list[str]:
        try:
            return list(await backend.list_models())
        finally:
            await backend.aclose()

    names = asyncio.run(go())
    if settings.model and names and not serves(settings.model, names):  # as the run's own check decides
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise ConfigError(f"model {settings.model!r} is not offered by {settings.base_url or 'the server'}; "
                          f"it offers: {shown}")
    return names
