"""Markdown, lightly: the text and its structure stay (headings, lists, emphasis, code); front
matter, comments, link and image targets go, as a reader of the rendered page would see it."""

from __future__ import annotations

import re

_FRONT_MATTER = re.compile(r"\A(?:---|\+\+\+)[ \t]*\n(.*?\n)?(?:---|\+\+\+|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_KEY = re.compile(r"\s*[\w\"'-]+\s*[:=]")  # front matter is keys and values, not a horizontal rule
_TITLE = re.compile(r"^title\s*[:=]\s*[\"']?(.*?)[\"']?\s*$", re.M | re.I)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\((?:[^()\n]|\([^()\n]*\))*\)")
_LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\((?:[^()\n]|\([^()\n]*\))*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]\n]+\]:[ \t]+\S+.*$\n?", re.M)
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")


def markdown_to_text(text: str) -> str:
    """Markdown without its noise; a front-matter title is kept as the first line."""
    title = ""
    match = _FRONT_MATTER.match(text)
    if match and _KEY.match(match.group(1) or ""):
        found = _TITLE.search(match.group(1) or "")
        title = found.group(1).strip() + "\n\n" if found and found.group(1).strip() else ""
        text = text[match.end():]
    text = _COMMENT.sub("", text)
    text = _IMAGE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _REFERENCE.sub("", text)
    text = _AUTOLINK.sub(lambda m: m.group(1), text)
    return title + text
