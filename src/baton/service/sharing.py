"""Shares: freeze a session's head as a public, read-only conversation (refused, redacted or
allowed when it holds secrets), list, revoke and read them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from baton.core import ids
from baton.core.chain import link
from baton.core.durations import parse_duration
from baton.core.errors import InvalidInput, NotFound, SecretsFound
from baton.core.models import JSON, Message, Session, Share, StoredMessage, format_time, parse_time
from baton.core.redaction import redact_value
from baton.core.validation import MessageInput, validate_message
from baton.service import blobs, findings
from baton.service.common import (
    Ports,
    canonical,
    owned,
    public_share,
    read_chain,
)

SHARE_MODES = ("block", "redact", "allow")


# What a session's metadata says that is its owner's alone: the server run's repository,
# environment and branch (the environment's name and id are not for the public).
PRIVATE_METADATA = frozenset({"run"})


def public_metadata(metadata: JSON) -> JSON:
    """A session's metadata as a share freezes it: without what is its owner's alone."""
    return {k: v for k, v in metadata.items() if k not in PRIVATE_METADATA}


def scan_session(
    p: Ports,
    owner: str,
    session_id: str,
    *,
    code: bool = True,
    known: Mapping[str, str] | None = None,
    unopened: tuple[str, ...] = (),
) -> list[JSON]:
    """What a share of this session would be refused for: each finding with where it is
    (`known`, `unopened`: the secrets of its runs' environments, as `findings.scan` says)."""
    session = owned(p, owner, session_id)
    return [f for f, _ in findings.scan(p, session, code, known, unopened).found]


def share(
    p: Ports,
    owner: str,
    session_id: str,
    *,
    expires: str | timedelta | None = None,
    mode: str = "block",
    code: bool = True,
    known: Mapping[str, str] | None = None,
    unopened: tuple[str, ...] = (),
) -> Share:
    """Freeze the session's head as a public, read-only share (DESIGN §1, §7). With
    `code` false the git patch and bundle are not published (nor scanned); under
    `redact` a patch or bundle with secrets is left out and the share says so.

    `known`, `unopened`: the secrets of the environments the session's runs used (see
    `findings.scan`). They are never published: `allow` (the owner's word for the secrets
    the rules find) is `redact` for them."""
    if mode not in SHARE_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(SHARE_MODES)}")
    session = owned(p, owner, session_id)
    account = p.store.get_account(owner)
    if account is None:
        raise NotFound(f"no account {owner}")
    if isinstance(expires, str):
        expires = parse_duration(expires)
    now = p.now()
    expires_at = format_time(parse_time(now) + expires) if expires else None
    if mode == "allow":
        scanned = findings.Scan()
        if known or unopened:
            scanned = findings.scan(p, session, code, known, unopened)
            scanned.found = [(f, s) for f, s in scanned.found if findings.of_environment(f)]
            if scanned.found:
                mode = "redact"
    else:
        scanned = findings.scan(p, session, code, known, unopened)
    found = scanned.found
    if found and mode == "block":
        in_code = all(findings.in_code(f) for f, _ in found)
        raise SecretsFound(
            f"this session holds {len(found)} secret(s); nothing was shared. "
            "Remove them, or share with --redact (or --allow-secrets"
            f"{', or --no-code' if in_code else ''})",
            [f for f, _ in found],
        )
    if mode == "redact" and any(not s and not findings.in_code(f) for f, s in found):
        raise SecretsFound(
            "some secrets were found when the messages were recorded but cannot be located "
            "now (set the same environment variables, or remove them); nothing was shared",
            [f for f, _ in found],
        )
    secrets: dict[str, str] = {}
    for _, s in found:
        secrets.update(s)
    head = session.head
    copies, items = _redacted_copies(p, session, secrets, scanned)
    if copies:
        head = copies[-1].message.id
    head_totals = copies[-1].totals if copies else session.totals
    made = Share(
        id=ids.new_share_id(),
        session_id=session.id,
        owner=owner,
        shared_by={
            "account": account.id,
            "handle": account.handle,
            "display_name": account.display_name,
        },
        head=head,
        message_count=session.message_count,
        title=redact_value(session.title, secrets) or "Untitled session",
        task=redact_value(session.task, secrets),
        metadata=redact_value(public_metadata(session.metadata), secrets),
        git=findings.public_git(session.git, secrets, found, mode, code),
        created_at=now,
        expires_at=expires_at,
        redacted=[f for f, _ in found],
        totals=head_totals,
        inherited=session.inherited,
    )
    p.store.create_share(made, copies)
    blobs.keep(p, items)
    return made


def _redacted_copies(
    p: Ports, session: Session, secrets: dict[str, str], scanned: findings.Scan
) -> tuple[list[StoredMessage], list[MessageInput]]:
    """Copies of every message from the first one with a secret to the head, secrets
    replaced. The prefix before it is shared as it is, not copied. The first one is the
    first flagged when it was recorded, or an earlier one that holds a secret found
    now (elsewhere: in the header, the code, or with another environment). The flagged
    messages and the hydrated ones are those the scan read."""
    if not secrets or session.head is None:
        return [], []
    flagged = scanned.flagged
    end = flagged[0].depth if flagged else None
    chain = p.store.chain(session.head, 0, end)  # the prefix that was not flagged
    start = next(
        (i for i, m in enumerate(chain) if findings.holds(scanned.full(p, m).parts, secrets)),
        end,
    )
    if start is None:
        return [], []
    parent = None
    if start > 0:
        parent_id = chain[start - 1].id
        parent = p.store.get_messages([parent_id])[parent_id]
    copies: list[StoredMessage] = []
    items: list[MessageInput] = []
    now = p.now()
    for message in p.store.chain(session.head, start):
        full = scanned.full(p, message)
        raw: JSON = {
            "role": full.role,
            "parts": redact_value(full.parts, secrets),
            "created_at": full.created_at,
        }
        if full.model is not None:
            raw["model"] = full.model
        if full.usage is not None:
            raw["usage"] = full.usage
        item = validate_message(raw, now)
        items.append(item)
        copies.append(link(copies[-1] if copies else parent, item, [], canonical))
    blobs.keep(p, items)
    return copies, items


def revoke(p: Ports, owner: str, share_id: str) -> Share:
    found = p.store.get_share(share_id)
    if found is None or found.owner != owner:
        raise NotFound(f"no share {share_id}")
    return p.store.revoke_share(share_id, p.now())


def shares(p: Ports, owner: str, session_id: str | None = None) -> list[Share]:
    if session_id is not None:
        owned(p, owner, session_id)
    return p.store.list_shares(owner=owner, session_id=session_id)


def live_shares(p: Ports, owner: str, session_id: str) -> list[Share]:
    """The shares of one of my sessions that still answer."""
    now = p.now()
    return [s for s in shares(p, owner, session_id) if s.state(now) == "live"]


def share_messages(
    p: Ports, share_id: str, *, start: int = 0, limit: int | None = None, hydrate: bool = False
) -> list[Message]:
    return read_chain(p, public_share(p, share_id).head, start, limit, hydrate)


def share_exists(p: Ports, share_id: str) -> bool:
    """Whether this store holds share `share_id`, live or not (a share URL of this server)."""
    return p.store.get_share(share_id) is not None
