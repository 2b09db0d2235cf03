"""Source alignment: a result's verbatim values made to say only what the source says. Pure.

For backends whose decoding is constrained (the tiny embedded model), an answer may not invent a
verbatim value: each is aligned to the source (`anchoring.anchor`, exact, normalized or fuzzy)
and replaced by the exact source text it matched; one that cannot be aligned is removed (its list
item dropped, or the field set to null), link values whose targets went are dropped too, and the
result is validated again, emptying the nearest optional field that a removal left invalid.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from .anchoring import anchor
from .artifacts import SchemaSpec
from summarizer.schemas._common import fold
from .traits import SchemaTraits, iter_values, path_steps, set_value

MAX_ROUNDS = 8  # each round empties one more optional field; a schema has far fewer levels


def align_to_source(result: BaseModel, schema: SchemaSpec, text: str) -> tuple[BaseModel, list[dict[str, Any]]]:
    """The result with every verbatim value copied from the source, and what was changed."""
    data = result.model_dump(mode="json")
    traits = schema.traits
    changes: list[dict[str, Any]] = []
    removals: list[str] = []
    for path in traits.verbatim:
        for where, value in _strings(data, path):
            found = anchor(value, text)
            if found is None:
                removals.append(where)
                changes.append({"path": where, "value": value, "action": "removed"})
            elif found.source != value:
                set_value(data, where, found.source)
                changes.append({"path": where, "value": value, "action": "aligned", "source": found.source})
    if not changes:
        return result, []
    for where in sorted(removals, key=_depth_then_index, reverse=True):
        _remove(data, where)
    _drop_dangling_links(data, traits)
    for _ in range(MAX_ROUNDS):
        try:
            return schema.model.model_validate(data), changes
        except ValidationError as exc:
            if not _empty_first_optional(data, exc):
                break
    return result, [{**c, "action": "kept (could not be removed validly)"} for c in changes]


def _strings(data: Any, path: str) -> list[tuple[str, str]]:
    """Each string at `path` (blank ones too: they are removed), each item of a list of strings."""
    found = []
    for where, value in list(iter_values(data, path)):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else [(where, value)]
        found += [(w, v) for w, v in items if isinstance(v, str)]
    return found


def _depth_then_index(where: str) -> tuple[int, list[int]]:
    steps = path_steps(where) or []
    return len(steps), [s for s in steps if isinstance(s, int)]


def _parent(data: Any, steps: list[str | int]) -> Any:
    node = data
    for step in steps[:-1]:
        node = node[step]
    return node


def _remove(data: Any, where: str) -> None:
    """Drop the list item that holds the value, else set the value to null."""
    steps = path_steps(where)
    if not steps:
        return
    item_at = max((i for i, s in enumerate(steps) if isinstance(s, int)), default=None)
    try:
        if item_at is not None:
            container = _parent(data, steps[: item_at + 1])
            container.pop(steps[item_at])
        else:
            _parent(data, steps)[steps[-1]] = None
    except (KeyError, IndexError, TypeError):
        pass  # already gone with an enclosing item


def _drop_dangling_links(data: Any, traits: SchemaTraits) -> None:
    for source, target in traits.links.items():
        # As the checks accept them: the target's values, or its items' verbatim spellings.
        allowed = {fold(v) for name in traits.link_names(target) for _, v in _strings(data, name)}
        for where, value in sorted(iter_values(data, source), key=lambda pair: _depth_then_index(pair[0]), reverse=True):
            if isinstance(value, str) and fold(value) not in allowed:
                _remove(data, where)


def _empty_first_optional(data: Any, error: ValidationError) -> bool:
    """Set the deepest-but-one container of the first error to null; False when nothing changed."""
    for item in error.errors():
        loc = [s for s in item["loc"] if isinstance(s, (str, int))]
        while loc:
            loc = loc[:-1]
            if not loc or isinstance(loc[-1], int):
                continue
            try:
                parent = _parent(data, loc)
                if parent.get(loc[-1]) is not None:
                    parent[loc[-1]] = None
                    return True
            except (KeyError, IndexError, TypeError, AttributeError):
                continue
    return False
