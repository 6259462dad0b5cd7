"""Blobs: who may read one (through a session or a live share that reaches it), who may
reference one (its uploader, or whoever sent its bytes), and keeping and freeing the files."""

from __future__ import annotations

from collections.abc import Sequence

from baton.core import ids
from baton.core.errors import InvalidInput, NotFound
from baton.core.models import JSON
from baton.core.validation import MessageInput
from baton.service.common import Ports, on_chain, owned, public_share
from baton.store.base import git_blobs


def blob(
    p: Ports,
    owner: str | None,
    sha256: str,
    *,
    session_id: str | None = None,
    share_id: str | None = None,
) -> bytes:
    """A blob, read through a session of the caller's or a live share whose conversation
    references it. Anything else is 404, whether or not the blob exists."""
    if session_id is not None and owner is not None:
        session = owned(p, owner, session_id)
        head, git = session.head, session.git
    elif share_id is not None:
        share = public_share(p, share_id)
        head, git = share.head, share.git
    else:
        raise NotFound(f"no blob {sha256}")
    if sha256 in git_blobs(git):  # the session's git patch or bundle
        data = p.blobs.get(sha256)
        if data is not None:
            return data
    for sm in p.store.messages_with_blob(sha256) if head else []:
        if on_chain(p.store, head, sm):
            data = p.blobs.get(sha256)
            if data is not None:
                return data
    raise NotFound(f"no blob {sha256}")


def put_blob(p: Ports, sha256: str, data: bytes, owner: str | None = None) -> None:
    """Store a blob; `owner` may then reference it (in messages or a git snapshot)."""
    if ids.sha256_hex(data) != sha256:
        raise InvalidInput(f"the body does not hash to {sha256}")
    p.blobs.put(sha256, data)
    if owner is not None:
        p.store.grant_blobs(owner, [sha256], p.now())


def check_references(p: Ports, owner: str, items: Sequence[MessageInput]) -> None:
    """Every blob_ref a caller sends names a blob it holds: uploaded by it, with its bytes
    in this request, or referenced by one of its sessions. Any other is refused, with the
    same answer whether or not the blob exists, and nothing is stored."""
    given = {sha for item in items for sha in item.blobs}
    named = [
        (i, part["sha256"])
        for i, item in enumerate(items)
        for part in item.parts
        if part.get("type") == "blob_ref" and part["sha256"] not in given
    ]
    if not named:
        return
    allowed = p.store.blob_access(owner, sorted({sha for _, sha in named}))
    for i, sha in named:
        if sha not in allowed:
            raise InvalidInput(
                f"message {i + 1}: blob {sha} is not one of yours; send its content, or "
                f"upload it first (POST /api/blobs/{sha})"
            )


def check_git(p: Ports, owner: str, git: JSON | None) -> None:
    """A git snapshot names only patches and bundles the caller holds (see
    check_references)."""
    shas = git_blobs(git)
    if not shas:
        return
    allowed = p.store.blob_access(owner, shas)
    for key in ("patch", "bundle"):
        sha = git_blobs({key: (git or {}).get(key)})
        if sha and sha[0] not in allowed:
            raise InvalidInput(
                f"git.{key}: blob {sha[0]} is not one of yours; upload it first "
                f"(POST /api/blobs/{sha[0]})"
            )


def grant(p: Ports, owner: str, items: Sequence[MessageInput]) -> None:
    """The payloads a caller sent in full are theirs to reference later."""
    shas = sorted({sha for item in items for sha in item.blobs})
    if shas:
        p.store.grant_blobs(owner, shas, p.now())


def free(p: Ports, shas: Sequence[str]) -> list[str]:
    """Delete blob files that nothing references any more (checked under the write lock)."""

    def delete(doomed: list[str]) -> None:
        for sha in doomed:
            p.blobs.delete(sha)

    return p.store.release_blobs(shas, delete)


def keep(p: Ports, items: Sequence[MessageInput]) -> None:
    """Blobs are written before the messages that reference them commit, and again after:
    a concurrent delete that freed the same content in between cannot leave an
    acknowledged message without its payload."""
    for item in items:
        for sha, data in item.blobs.items():
            p.blobs.put(sha, data)
