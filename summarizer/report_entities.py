"""Entities across documents: the items of each entity list its traits name, grouped by spelling.

Items of one list (`companies`, say) are one entity when they share any key value or verbatim
spelling (compared without case, punctuation, spaces or a leading "the"). Each mention keeps the
item's other values and the link fields of its document that name it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .report_load import OutputDocument
from .report_paths import humanize, label, one, scalars, values_at
from .report_text import alias_key
from .traits import iter_values


@dataclass
class Mention:
    """One entity item in one document."""

    document: str
    details: list[str]  # the item's other values, in field order
    linked: list[str]  # link fields of the document that name this item


@dataclass
class EntityGroup:
    """One entity across documents, under every spelling it was given."""

    name: str
    spellings: list[str]
    mentions: list[Mention]

    @property
    def documents(self) -> list[str]:
        return list(dict.fromkeys(m.document for m in self.mentions))


@dataclass
class EntitySection:
    title: str
    groups: list[EntityGroup]


def _entity_items(doc: OutputDocument) -> list[tuple[str, list[str], list[str], Mention]]:
    """(list column, key names, all spellings, mention) of every entity item of one document."""
    traits, result = doc.traits, doc.result
    items = []
    for path, key in traits.entities.items():
        prefix = f"{path}[]."
        verbatim = [p[len(prefix):] for p in traits.verbatim if p.startswith(prefix)
                    and "." not in p[len(prefix):] and "[" not in p[len(prefix):]]
        # Links into this list: (link column, the item field it names, the folded values it gives).
        links = [(label(link), target[len(prefix):], {alias_key(v) for v in values_at(result, link)})
                 for link, target in traits.links.items() if target.startswith(prefix)]
        for _, item in iter_values(result, f"{path}[]"):
            if not isinstance(item, dict):
                continue
            names = scalars(item.get(key))
            spellings = names + [s for name in verbatim for s in scalars(item.get(name))]
            if not spellings:
                continue
            details = [s for name, value in item.items() if name != key and name not in verbatim
                       for s in scalars(value)]
            # As the checks accept links: by the target field or the item's verbatim spelling.
            linked = [column for column, target, given in links
                      if any(alias_key(one(item.get(field))) in given for field in (target, *verbatim))]
            items.append((label(path), names, spellings, Mention(doc.label, details, linked)))
    return items


def merge_entities(documents: list[OutputDocument]) -> list[EntitySection]:
    """Entities across documents, per list; items sharing any key or verbatim spelling are one."""
    by_list: dict[str, list[tuple[list[str], list[str], Mention]]] = {}
    for doc in documents:
        for column, names, spellings, mention in _entity_items(doc):
            by_list.setdefault(column, []).append((names, spellings, mention))
    return [EntitySection(humanize(column), _merge(items)) for column, items in by_list.items()]


def _merge(items: list[tuple[list[str], list[str], Mention]]) -> list[EntityGroup]:
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with_key: dict[str, int] = {}
    for i, (_, spellings, _) in enumerate(items):
        for spelling in spellings:
            key = alias_key(spelling)
            if not key:
                continue
            if key in first_with_key:
                parent[root(i)] = root(first_with_key[key])
            else:
                first_with_key[key] = i
    members: dict[int, list[int]] = {}
    for i in range(len(items)):
        members.setdefault(root(i), []).append(i)
    groups = []
    for indexes in members.values():
        # The most common key name (case and punctuation aside), as first spelled.
        names = Counter(alias_key(n) for i in indexes for n in items[i][0][:1])
        spellings = list(dict.fromkeys(s for i in indexes for s in items[i][1]))
        top = names.most_common(1)[0][0] if names else alias_key(spellings[0])
        name = next((s for s in spellings if alias_key(s) == top), spellings[0])
        groups.append(EntityGroup(name, spellings, [items[i][2] for i in indexes]))
    return sorted(groups, key=lambda g: (-len(g.documents), g.name.casefold()))
