"""Prompts and responses as HTML that cannot run anything: escaped text by default, or CommonMark with raw HTML
switched off (markdown-it-py escapes it, and refuses javascript:, vbscript: and data: links)."""

from __future__ import annotations

from functools import lru_cache

from markupsafe import Markup, escape

from rewardkit.data.records import Text


@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def text_to_html(text: str, markdown: bool = False) -> Markup:
    if markdown:
        return Markup(f'<div class="md">{_markdown().render(text)}</div>')
    return Markup('<div class="plain">{}</div>').format(escape(text))


def render(value: Text, markdown: bool = False) -> Markup:
    """A prompt or response: plain text, or chat messages shown one after another under their role."""
    if isinstance(value, str):
        return text_to_html(value, markdown)
    parts = [Markup('<div class="message"><div class="role">{}</div>{}</div>').format(
        message.get("role", ""), text_to_html(message.get("content", ""), markdown)) for message in value]
    return Markup("").join(parts)
