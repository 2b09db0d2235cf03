"""Built-in extraction schemas: each module holds one Pydantic model with an id and a version."""

from __future__ import annotations

# name -> "module:Model"; checked-in JSON Schema exports sit beside them as NAME.schema.json.
BUILTIN = {
    "article": "article:Article",
    "generic": "generic:Generic",
}
