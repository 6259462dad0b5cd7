"""Forking from the command line, shared by `baton fork`, `baton chat --fork` and
`baton --fork`: a share of this store (or of the server logged in to), one of my sessions, or
the share URL of another server."""

from __future__ import annotations

from typing import Any

from baton.cli.context import Context


def fork_into_mine(ctx: Context, source: str, at: str | None = None) -> Any:
    """A new session of mine forked from `source` (a share id or URL, or a session id of
    mine), at its head or at the earlier message `at`."""
    return fork_url(ctx, source, at) or ctx.service.fork(ctx.owner, source, at=at)


def fork_url(ctx: Context, source: str, at: str | None) -> Any:
    """A share URL of another server: read the public share and import it as a fork (into
    the logged-in account, or the local store). None when the share is where we are."""
    from urllib.parse import urlsplit

    from baton.core.errors import NotFound
    from baton.core.shares import share_id_from

    if not source.startswith(("http://", "https://")):
        return None
    share_id = share_id_from(source)
    origin = urlsplit(source)._replace(path="", query="", fragment="").geturl()
    remote = ctx.remote
    if remote is not None and remote["url"].rstrip("/") == origin:
        return None
    if remote is None and ctx.local.share_exists(share_id):
        return None
    from baton.client import share_document

    doc, blobs = share_document(source)
    for sha, data in blobs.items():  # the code and attachments travel with the fork
        ctx.service.put_blob(sha, data, ctx.owner)
    if at is not None:
        ids = [m["id"] for m in doc["messages"]]
        if at not in ids:
            raise NotFound(f"message {at} is not in share {share_id}")
        doc["messages"] = doc["messages"][: ids.index(at) + 1]
        doc["session"]["forked_from"]["message"] = at
    return ctx.service.import_document(ctx.owner, doc, fresh=True).session
