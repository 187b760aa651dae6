"""Markdown that researchers write (the guidelines), rendered for raters without letting it run anything.

CommonMark with tables and strikethrough; raw HTML in the text is escaped, never passed through,
and links to anything but http(s), mailto and relative addresses are not made links
(markdown-it's link validation refuses javascript:, vbscript:, file: and data:).
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt

MAX_CHARS = 50_000  # guidelines longer than this are refused (services.quality)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(["table", "strikethrough"])


def markdown_html(text: str) -> str:
    """Return ``text`` (Markdown) as HTML safe to put in a page."""
    return _parser().render(text or "")
