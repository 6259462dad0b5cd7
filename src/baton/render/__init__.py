"""Export formats: a session and its (hydrated) messages as one document.

| format | gives | for |
|---|---|---|
| `json` | dict | `baton sessions import` (docs/export-format.md) |
| `markdown` (`md`) | str | reading, pasting |
| `html` | str | one self-contained page to keep, mail or open in a browser |
| `opencode` | dict | `opencode import FILE`, `kilo import FILE` |

The html and opencode modules are imported when asked for, so a command that exports JSON
does not pay for Markdown rendering.
"""

from __future__ import annotations

from baton.core.errors import InvalidInput
from baton.core.models import JSON, Message, Session
from baton.render.document import export_document
from baton.render.markdown import export_markdown

FORMATS = ("json", "markdown", "html", "opencode")
ALIASES = {"md": "markdown"}
# What a file of each format is called, and what an HTTP response carries.
SUFFIXES = {"json": ".json", "markdown": ".md", "html": ".html", "opencode": ".opencode.json"}
MEDIA_TYPES = {
    "json": "application/json",
    "markdown": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "opencode": "application/json",
}


def export(session: Session, messages: list[Message], fmt: str, now: str) -> str | JSON:
    """The session in format `fmt`, exported at `now` (baton's time format)."""
    name = ALIASES.get(fmt, fmt)
    if name == "json":
        return export_document(session, messages, now)
    if name == "markdown":
        return export_markdown(session, messages)
    if name == "html":
        from baton.render.html import export_html

        return export_html(session, messages, exported_at=now)
    if name == "opencode":
        from baton.render.opencode import export_opencode

        return export_opencode(session, messages)
    raise InvalidInput(f"unknown export format {fmt!r}: use {', '.join(FORMATS)}")
