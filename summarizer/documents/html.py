"""Visible article text of an HTML page (stdlib parser): scripts, navigation and banners dropped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from .clean import clean_text

HTML_HINT = re.compile(r"^\s*(?:<!--.*?-->\s*)*(?:<!doctype html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I | re.S)


def looks_like_html(text: str) -> bool:
    """A page (doctype, <html>...) or a fragment with a few paragraphs, divs or line breaks."""
    if HTML_HINT.match(text[:2000]):
        return True
    head = text[:5000].lower()
    return head.count("</p>") + head.count("<div") + head.count("<br") >= 3


_DROP = {"script", "style", "noscript", "nav", "header", "footer", "aside", "svg", "iframe", "template",
         "button", "select", "textarea", "head", "dialog", "object", "canvas", "math"}
_RAW_DROP = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object"}  # fallback mode
_BLOCK = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section",
          "article", "blockquote", "pre", "hr", "dd", "dt", "dl", "main", "figure", "figcaption", "header",
          "footer", "address", "details", "summary", "caption", "form", "fieldset", "body"}
_CELLS = {"td", "th"}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr",
         "param"}
# Never dropped by a marker: a consent modal sets aria-hidden on <main>, anti-flicker snippets hide
# <body> until scripts run, and <body class="modal-open"> is just page state.
_CONTENT = {"html", "body", "main", "article"}
# Words in id/class that mark boilerplate. Not "banner", "paywall" or "subscription": hero banners
# hold headlines and paywall wrappers hold the article itself.
_BOILERPLATE_WORDS = {"cookie", "cookies", "consent", "gdpr", "newsletter", "subscribe", "popup", "modal", "advert",
                      "advertisement", "ads", "ad", "sponsored", "promo", "share", "sharing", "social", "related",
                      "breadcrumb", "breadcrumbs", "sidebar", "outbrain", "taboola", "skip", "toolbar", "menu",
                      "navbar", "nav", "navigation", "footer", "masthead"}
_LANDMARKS = {"navigation", "banner", "contentinfo", "complementary", "search", "dialog", "alertdialog", "menu",
              "menubar", "toolbar", "tablist"}
_MARKER_SPLIT = re.compile(r"[\s\-_:./]+|(?<=[a-z])(?=[A-Z])")
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


def _is_boilerplate(tag: str, attrs: dict[str, str]) -> bool:
    if tag in _CONTENT:
        return False
    if attrs.get("hidden") is not None or attrs.get("aria-hidden", "").lower() == "true":
        return True
    if re.search(r"display\s*:\s*none|visibility\s*:\s*hidden", attrs.get("style", ""), re.I):
        return True
    if attrs.get("role", "").lower() in _LANDMARKS:
        return True
    # Class tokens like "has-sidebar" or "no-ads" describe the content, they are not boilerplate.
    tokens = [t for k in ("id", "class", "aria-label") for t in attrs.get(k, "").split()
              if not t.lower().startswith(("has-", "no-", "with-", "without-"))]
    words = {w.lower() for w in _MARKER_SPLIT.split(" ".join([*tokens, tag])) if w}
    return bool(words & _BOILERPLATE_WORDS) or any(w.startswith("cookie") for w in words)


class _TextExtractor(HTMLParser):
    def __init__(self, *, lenient: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._lenient = lenient
        self._skip_stack: list[str] = []
        self._open: list[str] = []  # content elements we are inside (for <header> in <article>)
        self._pre = 0

    def _drops(self, tag: str, attrs: dict[str, str]) -> bool:
        if self._lenient:
            return tag in _RAW_DROP
        if tag in ("header", "footer") and ("article" in self._open or "main" in self._open):
            return _is_boilerplate(tag, attrs)  # an article's own header holds its headline
        return tag in _DROP or _is_boilerplate(tag, attrs)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag in _BLOCK and not self._skip_stack:
                self.parts.append("\n")
            return
        if self._skip_stack or self._drops(tag, {k: v or "" for k, v in attrs}):
            self._skip_stack.append(tag)
            return
        if tag in ("article", "main"):
            self._open.append(tag)
        if tag == "pre":
            self._pre += 1
        if tag in _BLOCK:
            self.parts.append("\n")
        elif tag in _CELLS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # Browsers would leave <div/> open; closing it here keeps a dropped <div class="ad"/>
        # from swallowing the rest of the page.
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip_stack:
            if tag in self._skip_stack:
                while self._skip_stack and self._skip_stack.pop() != tag:
                    pass
            return
        if tag in ("article", "main") and tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag)]  # the innermost one
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag in _BLOCK:
            self.parts.append("\n")
        elif tag in _CELLS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_stack:
            # Outside <pre>, HTML source line breaks are just spaces.
            self.parts.append(data if self._pre else _HTML_SPACE.sub(" ", data))


def html_to_text(html: str) -> str:
    """Visible article text of an HTML page: scripts, styles, navigation and banners dropped."""
    text = _extract(html, lenient=False)
    if not clean_text(text):  # the heuristics dropped everything: keep all visible text instead
        text = _extract(html, lenient=True)
    return text


def _extract(html: str, *, lenient: bool) -> str:
    parser = _TextExtractor(lenient=lenient)
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    return "\n".join(lines)
