"""What a schema says about its own fields, declared once and read by every module.

A schema marks its fields with `typing.Annotated` markers::

    from summarizer.traits import Verbatim, English, Title, Summary, SourceLanguage, Key, LinksTo

    class Club(BaseModel):
        name: Annotated[str, English(), Key()] = Field(description="Name in English.")
        spelled: Annotated[str, Verbatim()] = Field(description="As written in the source.")

Checks (grounding), grammar building, chunk merging, rendering, reports and export read the
resulting `SchemaTraits`, never a field name. Traits are plain data (`as_dict`), written into
every output document, so reports never need to import a schema to understand an output.

Paths name fields from the root: `match.venue.city`; `[]` steps into each item of a list:
`clubs[].spelled`.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from pydantic import BaseModel


class Trait:
    """Base of the field markers; markers are used as `Annotated[str, Verbatim()]`."""


@dataclass(frozen=True)
class Verbatim(Trait):
    """Copied from the source text as written (its language and script): grounding checks it."""


@dataclass(frozen=True)
class English(Trait):
    """Free text the model writes in English (whatever the source's language)."""


@dataclass(frozen=True)
class Title(Trait):
    """The document's title (English); shown first in tables and reports."""


@dataclass(frozen=True)
class Summary(Trait):
    """The document's summary (English)."""


@dataclass(frozen=True)
class SourceLanguage(Trait):
    """The source's language as an ISO 639-1 code; the tool's detector can check or fill it."""


@dataclass(frozen=True)
class Key(Trait):
    """Names an item of a list of objects (an entity): merge key for chunks, reports and export."""


@dataclass(frozen=True)
class LinksTo(Trait):
    """The value must be one of the values at `target` (e.g. `clubs[].name`)."""

    target: str


_MARKERS = (Verbatim, English, Title, Summary, SourceLanguage, Key, LinksTo)


@dataclass(frozen=True)
class SchemaTraits:
    """Every trait of one schema, as paths into its results."""

    title: str | None = None
    summary: str | None = None
    language: str | None = None
    verbatim: tuple[str, ...] = ()
    english: tuple[str, ...] = ()
    entities: Mapping[str, str] = field(default_factory=dict)  # list path -> its items' Key field
    links: Mapping[str, str] = field(default_factory=dict)  # value path -> target path

    @property
    def english_paths(self) -> tuple[str, ...]:
        """Every English field: the title, the summary and the English-marked ones, each once."""
        return tuple(dict.fromkeys(p for p in (self.title, self.summary, *self.english) if p))

    def link_names(self, target: str) -> list[str]:
        """The paths a link to `target` may name: the target, and its items' Verbatim fields (the
        source's spelling of the same thing)."""
        holder = target.rpartition(".")[0]
        return [target, *(v for v in self.verbatim if v.rpartition(".")[0] == holder)]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, written into output documents."""
        return {
            "title": self.title, "summary": self.summary, "language": self.language,
            "verbatim": list(self.verbatim), "english": list(self.english),
            "entities": dict(self.entities), "links": dict(self.links),
        }

    @classmethod
    def from_dict(cls, data: Any) -> SchemaTraits:
        """Traits read back from an output document (data from a file: anything malformed is dropped)."""
        if not isinstance(data, dict):
            return cls()

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        def texts(key: str) -> tuple[str, ...]:
            value = data.get(key)
            return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

        def pairs(key: str) -> dict[str, str]:
            value = data.get(key)
            if not isinstance(value, dict):
                return {}
            return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}

        return cls(text("title"), text("summary"), text("language"), texts("verbatim"), texts("english"),
                   pairs("entities"), pairs("links"))


def traits_of(model: type[BaseModel]) -> SchemaTraits:
    """Collect the markers of a model's fields, nested models and lists included."""
    found: dict[str, Any] = {"verbatim": [], "english": [], "entities": {}, "links": {}}
    _walk(model, "", found, seen=())
    return SchemaTraits(
        title=found.get("title"), summary=found.get("summary"), language=found.get("language"),
        verbatim=tuple(found["verbatim"]), english=tuple(found["english"]),
        entities=found["entities"], links=found["links"],
    )


def _walk(model: type[BaseModel], prefix: str, found: dict[str, Any], seen: tuple[type, ...]) -> None:
    if model in seen:  # a recursive schema: each model's fields are read once per path
        return
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        for marker in info.metadata:
            _record(marker, path, found)
        inner, is_list = _unwrap(info.annotation)
        if is_list:
            for marker in _list_item_markers(info.annotation):
                _record(marker, path + "[]", found)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            child = f"{path}[]." if is_list else f"{path}."
            if is_list:
                key = next((n for n, f in inner.model_fields.items() if any(_is(m, Key) for m in f.metadata)), None)
                if key is not None:
                    found["entities"][path] = key
            _walk(inner, child, found, (*seen, model))


def _record(marker: Any, path: str, found: dict[str, Any]) -> None:
    if _is(marker, Verbatim):
        found["verbatim"].append(path)
    elif _is(marker, English):
        found["english"].append(path)
    elif _is(marker, Title):
        found["title"] = path
    elif _is(marker, Summary):
        found["summary"] = path
    elif _is(marker, SourceLanguage):
        found["language"] = path
    elif isinstance(marker, LinksTo):
        found["links"][path] = marker.target


def _is(marker: Any, kind: type) -> bool:
    # Accept the class itself (`Annotated[str, Verbatim]`) as well as an instance.
    return isinstance(marker, kind) or marker is kind


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The model or type inside Optional[...] / list[...], and whether a list was crossed."""
    is_list = False
    for _ in range(4):
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, is_list
            annotation = args[0]
        elif origin in (list, tuple, set, frozenset):
            is_list = True
            args = typing.get_args(annotation)
            annotation = args[0] if args else Any
        else:
            break
    return annotation, is_list


def _list_item_markers(annotation: Any) -> list[Any]:
    # Markers on the items of a list: list[Annotated[str, Verbatim()]].
    for _ in range(3):
        origin = typing.get_origin(annotation)
        if origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else None
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        else:
            break
    if typing.get_origin(annotation) in (list, tuple, set, frozenset):
        args = typing.get_args(annotation)
        if args and typing.get_origin(args[0]) is typing.Annotated:
            return [m for m in args[0].__metadata__ if _is_marker(m)]
    return []


def _is_marker(marker: Any) -> bool:
    return isinstance(marker, Trait) or marker in _MARKERS


def iter_values(data: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Each (concrete path, value) found at `path` in a result dict: `a[].b` -> `a[0].b`, `a[1].b`.

    Missing keys, nulls and values of the wrong shape yield nothing (results come from models).
    """
    steps = path.split(".") if path else []
    yield from _iter(data, steps, "")


def _iter(node: Any, steps: list[str], where: str) -> Iterator[tuple[str, Any]]:
    if not steps:
        if node is not None:
            yield where, node
        return
    step, rest = steps[0], steps[1:]
    each = step.endswith("[]")
    name = step[:-2] if each else step
    if not isinstance(node, dict) or node.get(name) is None:
        return
    value = node[name]
    here = f"{where}.{name}" if where else name
    if each:
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield from _iter(item, rest, f"{here}[{i}]")
    else:
        yield from _iter(value, rest, here)


def strings_at(data: Any, path: str) -> Iterator[tuple[str, str]]:
    """Each non-blank string at `path`, a list of strings at the path giving one per item (`a[0]`)."""
    for where, value in iter_values(data, path):
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for i, item in items:
            if isinstance(item, str) and item.strip():
                yield (where if i is None else f"{where}[{i}]"), item


def item_path(path: str) -> tuple[str, str]:
    """Split a path into the object holding the field and the field: `a[].b` -> (`a[]`, `b`)."""
    holder, _, name = path.rpartition(".")
    return holder, name


_STEP = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


def path_steps(where: str) -> list[str | int] | None:
    """The keys and indexes of a concrete path: `a[0].b` -> ["a", 0, "b"]; None if malformed."""
    steps: list[str | int] = []
    for part in where.split("."):
        match = _STEP.fullmatch(part)
        if match is None:
            return None
        steps.append(match.group(1))
        steps += [int(i) for i in re.findall(r"\d+", match.group(2))]
    return steps


def set_value(data: Any, where: str, value: Any) -> bool:
    """Set the value at a concrete path (`a[0].b`, as iter_values yields); False if it is not there."""
    steps = path_steps(where)
    if steps is None:
        return False
    node = data
    for step in steps[:-1]:
        node = _child(node, step)
        if node is None:
            return False
    last = steps[-1] if steps else None
    if isinstance(last, str) and isinstance(node, dict) and last in node:
        node[last] = value
        return True
    if isinstance(last, int) and isinstance(node, list) and 0 <= last < len(node):
        node[last] = value
        return True
    return False


def _child(node: Any, step: str | int) -> Any:
    if isinstance(step, str):
        return node.get(step) if isinstance(node, dict) else None
    return node[step] if isinstance(node, list) and 0 <= step < len(node) else None
