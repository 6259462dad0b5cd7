"""What a user may type to name a share: its id, its URL, a fork link, or a session id."""

from __future__ import annotations

import re

from baton.core.errors import InvalidInput

_ID = re.compile(r"[A-Za-z0-9_-]+")


def share_id_from(value: str) -> str:
    """A share id from a share id, a share URL (`…/share/ID`) or a session id."""
    value = value.strip()
    if "/share/" in value:
        value = value.split("/share/", 1)[1].split("?", 1)[0].split("#", 1)[0].strip("/")
    if value.startswith("baton://fork/"):
        value = value[len("baton://fork/") :]
    if not value or not _ID.fullmatch(value):
        raise InvalidInput(f"{value!r} is not a share id, share URL or session id")
    return value
