"""Reading results by trait path: column names, headings, scalar values, and the one date shape.

Convention on shapes, not names: an object whose "year" and "month" (and "day") are integers or
null is a date.
"""

from __future__ import annotations

from typing import Any

from .traits import iter_values

DATE_PARTS = ("year", "month", "day")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def label(path: str) -> str:
    """A trait path as a column name: `deals[].tags[]` -> `deals.tags`."""
    return path.replace("[]", "")


def humanize(path: str) -> str:
    """A trait path as a heading: `deals[].closed_on` -> `Deals closed on`."""
    text = " ".join(label(path).replace(".", " ").replace("_", " ").split())
    return text[:1].upper() + text[1:]


def scalars(value: Any) -> list[str]:
    """Text of a scalar or of a list's scalars; objects, nulls and blanks give nothing."""
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if isinstance(v, (str, int, float)) and str(v).strip()]


def values_at(result: dict[str, Any], path: str) -> list[str]:
    """Every scalar at a trait path of a result."""
    return [text for _, value in iter_values(result, path) for text in scalars(value)]


def is_date(node: Any) -> bool:
    """An object with integer-or-null year and month (and day): the one shape reports know."""
    return (isinstance(node, dict) and "year" in node and "month" in node
            and all(node.get(k) is None or type(node.get(k)) is int for k in DATE_PARTS))


def format_date(signed: Any) -> str:
    """2022-06-22, 2022-06, 2022, ????-02-25, or '' when nothing is known."""
    signed = _dict(signed)
    year, month, day = (signed.get(k) if type(signed.get(k)) is int else None for k in DATE_PARTS)
    if year is None and month is None:
        return ""
    parts = [f"{year:04d}" if year is not None else "????"]
    if month is not None:
        parts.append(f"{month:02d}")
        if day is not None:
            parts.append(f"{day:02d}")
    return "-".join(parts)


def date_key(signed: Any) -> tuple[bool, int, bool, int, bool, int]:
    """Sort key: unknown parts after known ones, unknown years last, no date at all at the very end."""
    signed = _dict(signed)
    year, month, day = (signed.get(k) if type(signed.get(k)) is int else None for k in DATE_PARTS)
    return (year is None, year or 0, month is None, month or 0, day is None, day or 0)


def find_dates(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(trait path, date object) for every date in a result, in document order."""
    if is_date(node):
        return [(path, node)]
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found += find_dates(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for value in node:
            found += find_dates(value, f"{path}[]")
    return found


def one(value: Any) -> str:
    """The first scalar text of a value, or ""."""
    texts = scalars(value)
    return texts[0] if texts else ""
