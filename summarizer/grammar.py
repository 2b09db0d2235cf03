"""JSON Schema -> what llama.cpp's grammar can enforce, read through the schema's traits. Pure.

`prepare` caps a schema where llama.cpp's converter or parser gives up, and for the bundled tiny
model also holds its English fields to short ASCII text and spells its summary out as sentences;
`link_schema` builds the second pass for an answer that breaks a LinksTo; `to_gbnf` converts.

Traits name fields by result paths (`clubs[].name`); a JSON Schema declares each field
once per node (often in `$defs`, shared by every path through it), so paths are followed
through `$ref`, nullable `anyOf` and array `items` to the node that declares the field.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from typing import Any

from .errors import RunStopper
from .traits import SchemaTraits, item_path, iter_values

# llama-cpp-python spells maxLength/maxItems as one nested optional group per item above the
# minimum, and llama.cpp's grammar parser rejects more than 1000 of them (measured), after which
# it crashes on the missing sampler. Capping only shortens what the model may write, so every
# answer still fits the real schema (the article summary: 20..1500 characters becomes 20..1020).
_MAX_OPTIONAL_REPEATS = 1000
# The converter ignores minimum/maximum on integers; a small range becomes an enum it enforces.
_MAX_ENUM_RANGE = 256
# For the bundled 135M model only: answers within these bounds still fit the real schema.
_SMALL_MAX_ITEMS = 5
_SMALL_MAX_LENGTH = 100
# ...and its English strings: printable ASCII without quote or backslash, starting with a letter or
# digit. The tiny model otherwise drifts into the source's script and loops there until the cap.
_SMALL_ENGLISH_LENGTH = 80
_ASCII_FIRST = r"[A-Za-z0-9]"
_ASCII_REST = r"[ !#-\[\]-~]"
_SENTENCE = r"[A-Z][ #-\-/->@-\[\]-~]{10,140}[.!?]"  # ASCII without . ! ? " or backslash inside
# Three pattern sentences: an abbreviation ("Co.") may end one early and still leave two real ones.
_SMALL_SUMMARY = f"^{_SENTENCE}( {_SENTENCE}){{2}}$"
_LOOSE_CHAR = r'char ::= [^"\\] |'
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


def prepare(json_schema: dict[str, Any], traits: SchemaTraits, small: bool = False) -> dict[str, Any]:
    """A copy of a schema that llama.cpp can enforce; for the tiny model (`small`) also its traits' rules.

    The tiny model's English fields (and link values whose target is English) are held to short
    ASCII text, its summary to three sentences; Verbatim and unmarked fields keep any script.
    """
    prepared = grammar_schema(json_schema, small)
    if small:
        if traits.summary is not None:
            # The tiny model writes one endless sentence; spell the sentences out in the grammar.
            _edit(prepared, traits.summary, lambda node: _strings(node, _sentences))
        english = set(traits.english_paths)
        english |= {path for path, target in traits.links.items() if target in english}
        for path in sorted(english - {traits.summary}):
            _edit(prepared, path, _ascii_text)
    return prepared


def grammar_schema(node: Any, small: bool = False) -> Any:
    """A copy of a JSON Schema with the caps above (tighter for the tiny model); no trait rules."""
    if isinstance(node, list):
        return [grammar_schema(item, small) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: grammar_schema(value, small) for key, value in node.items()}
    for kind, low_key, high_key in (("string", "minLength", "maxLength"), ("array", "minItems", "maxItems")):
        if node.get("type") == kind and isinstance(node.get(high_key), int):
            node[high_key] = min(node[high_key], node.get(low_key, 0) + _MAX_OPTIONAL_REPEATS)
            if small:  # a tiny model fills every list to its bound and rambles: keep both short
                cap = _SMALL_MAX_ITEMS if kind == "array" else _SMALL_MAX_LENGTH
                node[high_key] = min(node[high_key], max(node.get(low_key, 0), cap))
    low, high = node.get("minimum"), node.get("maximum")
    if (
        node.get("type") == "integer"
        and "enum" not in node
        and isinstance(low, int)
        and isinstance(high, int)
        and 0 <= high - low < _MAX_ENUM_RANGE
    ):
        node["enum"] = list(range(low, high + 1))
    return node


def _ascii_text(node: Any) -> Any:
    """A free-text string node (also inside anyOf or as array items) held to short ASCII text."""
    if not isinstance(node, dict):
        return node
    if "anyOf" in node:
        return {**node, "anyOf": [_ascii_text(option) for option in node["anyOf"]]}
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        return {**node, "items": _ascii_text(node["items"])}
    if node.get("type") != "string" or any(k in node for k in ("enum", "const", "pattern", "format")):
        return node
    high = min(node.get("maxLength", _SMALL_ENGLISH_LENGTH), _SMALL_ENGLISH_LENGTH)
    low = max(node.get("minLength", 0), 1)  # an empty English string says nothing
    if low > high:
        return node
    rest = {k: v for k, v in node.items() if k not in ("minLength", "maxLength")}
    return {**rest, "pattern": f"^{_ASCII_FIRST}{_ASCII_REST}{{{low - 1},{high - 1}}}$"}


def _sentences(node: dict[str, Any]) -> dict[str, Any]:
    return {"type": "string", "pattern": _SMALL_SUMMARY}


def _strings(node: Any, change: Callable[[dict[str, Any]], Any]) -> Any:
    """`change` applied to the free-text string node(s) in `node` (an option of anyOf, list items)."""
    if not isinstance(node, dict):
        return node
    if "anyOf" in node:
        return {**node, "anyOf": [_strings(option, change) for option in node["anyOf"]]}
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        return {**node, "items": _strings(node["items"], change)}
    if node.get("type") != "string" or any(k in node for k in ("enum", "const", "pattern", "format")):
        return node
    return change(node)


def fix_values(prepared: dict[str, Any], fixed: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of a prepared schema where each (path, value) may only be that value (a fact the tool
    measured, such as the source's language): the decoder cannot write anything else there."""
    schema = copy.deepcopy(prepared)
    for path, value in fixed:
        _edit(schema, path, lambda node, v=value: {"enum": [v]})
    return schema


def offer_spans(prepared: dict[str, Any], verbatim: Iterable[str], spans: Iterable[str]) -> dict[str, Any]:
    """A copy of a prepared schema whose verbatim fields may only be one of `spans` (exact
    substrings of the document): the decoder can choose among the source's words, not invent."""
    choices = sorted(set(spans), key=list(spans).index)
    schema = copy.deepcopy(prepared)
    if choices:
        for path in verbatim:
            _edit(schema, path, lambda node: _strings(node, lambda _: {"type": "string", "enum": choices}))
    return schema


# --- finding a trait path's node ------------------------------------------------------------------


def _edit(schema: dict[str, Any], path: str, change: Callable[[Any], Any]) -> int:
    """Replace each node that declares the field at `path` by `change(node)`; how many were found."""
    slots = _slots(schema, path)
    for properties, name in slots:
        properties[name] = change(properties[name])
    return len(slots)


def _slots(schema: dict[str, Any], path: str) -> list[tuple[dict[str, Any], str]]:
    """(properties, name) of every object node that declares the field at `path`, each once."""
    steps = path.split(".") if path else []
    nodes: list[Any] = [schema]
    found: list[tuple[dict[str, Any], str]] = []
    for i, step in enumerate(steps):
        each = step.endswith("[]")
        name = step[:-2] if each else step
        found = []
        for node in nodes:
            for obj in _alternatives(schema, node):
                properties = obj.get("properties")
                if isinstance(properties, dict) and name in properties and not _has(found, properties, name):
                    found.append((properties, name))
        if i == len(steps) - 1:
            break
        nodes = []
        for properties, name in found:
            child = properties[name]
            nodes += [a["items"] for a in _alternatives(schema, child) if "items" in a] if each else [child]
    return found


def _has(found: list[tuple[dict[str, Any], str]], properties: dict[str, Any], name: str) -> bool:
    return any(p is properties and n == name for p, n in found)


def _alternatives(schema: dict[str, Any], node: Any, depth: int = 0) -> list[dict[str, Any]]:
    """The concrete nodes `node` stands for: through $ref, anyOf / oneOf / allOf (a nullable field)."""
    if not isinstance(node, dict) or depth > 8:
        return []
    if isinstance(node.get("$ref"), str):
        name = node["$ref"].rsplit("/", 1)[-1]
        return _alternatives(schema, schema.get("$defs", {}).get(name), depth + 1)
    options = [o for key in ("anyOf", "oneOf", "allOf") for o in node.get(key, [])]
    if options:
        return [a for option in options for a in _alternatives(schema, option, depth + 1)]
    return [node]


# --- the second pass for links ---------------------------------------------------------------------


def link_schema(schema: dict[str, Any], links: dict[str, str], answer: Any) -> dict[str, Any] | None:
    """The schema with each broken link held to the names in `answer`, or None if all links hold.

    A link `final.teams[]` -> `clubs[].name` means every team must be the name of one of the
    clubs; a grammar cannot say that, so the second pass fixes the clubs to the first answer's
    and offers their names as an enum.
    """
    if not isinstance(answer, dict):
        return None
    schema = copy.deepcopy(schema)
    broken = False
    for path, target in links.items():
        names = [v for _, v in iter_values(answer, target) if isinstance(v, str)]
        values = [v for _, v in _flat(iter_values(answer, path))]
        if not names or not values or all(v in names for v in values):
            continue
        # What the second pass holds fixed: the list the targets are items of, or the target itself.
        holder, _ = item_path(target)
        fixed_path = holder[:-2] if holder.endswith("[]") else target
        fixed = [v for _, v in iter_values(answer, fixed_path)]
        if len(fixed) != 1 or "[]" in fixed_path:
            continue  # targets spread over several lists: no one value to hold them to
        enum = list(dict.fromkeys(names))
        if _edit(schema, fixed_path, lambda _: {"const": fixed[0]}) and _edit(
                schema, path, lambda node: _choose(node, enum)):
            broken = True
    return schema if broken else None


def _choose(node: Any, enum: list[str]) -> Any:
    """A string node (also inside anyOf or as list items) that may only be one of `enum`."""
    if not isinstance(node, dict):
        return node
    if "anyOf" in node:
        return {**node, "anyOf": [_choose(option, enum) for option in node["anyOf"]]}
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        return {**node, "items": _choose(node["items"], enum)}
    return {"type": "string", "enum": enum} if node.get("type") == "string" else node


def _flat(pairs: Any) -> Any:
    for where, value in pairs:
        if isinstance(value, list):
            yield from ((f"{where}[{i}]", v) for i, v in enumerate(value))
        else:
            yield where, value


# --- JSON Schema -> GBNF -----------------------------------------------------------------------------


def to_gbnf(schema_id: str, prepared: dict[str, Any]) -> str:
    """GBNF for a prepared schema by llama-cpp-python's converter (imported here: it loads llama.cpp)."""
    # Converting here instead of passing response_format: llama-cpp-python silently falls back to
    # "any JSON" when it cannot convert a schema, and llama.cpp segfaults on a grammar it rejects.
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = json_schema_to_gbnf(json.dumps(prepared))
    except Exception as exc:  # the converter raises bare asserts and ValueErrors alike
        raise RunStopper(f"llama.cpp cannot turn schema {schema_id!r} into a grammar ({exc}): "
                         f"{GRAMMAR_HINT}") from exc
    # The converter lets raw control characters (a newline...) into strings, which is not JSON.
    return grammar.replace(_LOOSE_CHAR, _STRICT_CHAR)


GRAMMAR_HINT = "use a model server (--base-url) or simplify the schema"
