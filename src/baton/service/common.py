"""What the use cases share: the ports they work over, the two access rules (a session of the
caller's, a live share), the one "is this message on that chain" rule, reading a chain, and
small helpers (canonical JSON, durations, share ids)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from baton.core import ids
from baton.core.errors import Gone, InvalidInput, NotFound
from baton.core.models import JSON, Message, Session, Share, StoredMessage, format_time, parse_time
from baton.core.runs import Run
from baton.core.validation import hydrate_part
from baton.scanning import SecretScanner
from baton.store.base import BlobStore, Store

MAX_POSITION = 2**62  # no chain is this long: a page from here on is empty


class Events(Protocol):
    """Where the service tells watchers that something happened on a session (an append, a
    run's new state, streamed text): baton.runs.events provides the real ones."""

    def publish(self, session_id: str, event: JSON) -> None: ...


class Queue(Protocol):
    """Where a queued server run is handed to be executed: baton.runs.queue provides them."""

    def submit(self, run: Run) -> None: ...


class Nowhere:
    """Events nobody watches and a queue nobody takes from (the default of a Service)."""

    def publish(self, session_id: str, event: JSON) -> None:
        pass

    def submit(self, run: Run) -> None:
        pass


class Ports(Protocol):
    """What every use case works over (the Service is one): a store, a blob store, a secret
    scanner and a clock. Read at each call, so a clock swapped in later is used."""

    store: Store
    blobs: BlobStore
    scanner: SecretScanner
    now: Callable[[], str]


def canonical(value: Any) -> bytes:
    """Canonical JSON by orjson, for message ids: the bytes of `core.ids.canonical_json`
    (Python's json with sorted keys, no spaces, UTF-8), several times faster, for values whose
    floats are all `plain_float` (validation says so in `MessageInput.plain_numbers`;
    `chain.link` asks)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # beyond what orjson writes (a huge int…)
        return ids.canonical_json(value)


def owned(p: Ports, owner: str, session_id: str) -> Session:
    """A session of `owner`'s; anyone else's, or none, is 404 alike."""
    session = p.store.get_session(session_id)
    if session is None or session.owner != owner:
        raise NotFound(f"no session {session_id}")
    return session


def public_share(p: Ports, share_id: str) -> Share:
    """A share as anyone with the link sees it: 404 unknown, 410 revoked or expired."""
    share = p.store.get_share(share_id)
    if share is None:
        raise NotFound(f"no share {share_id}")
    state = share.state(p.now())
    if state != "live":
        raise Gone(f"share {share_id} was {state}")
    return share


def on_chain(store: Store, head: str | None, message: StoredMessage | None) -> bool:
    """Whether `message` is on the chain ending at `head`: the rule behind reading after a
    message, forking at one, and reading a blob through a session or share."""
    return (
        head is not None
        and message is not None
        and store.ancestor(head, message.depth) == message.message.id
    )


def find_on_chain(store: Store, head: str | None, message_id: str, source: str) -> StoredMessage:
    """Message `message_id` of the chain ending at `head`; NotFound naming `source` if it is
    not on it (or does not exist)."""
    found = store.get_messages([message_id]).get(message_id) if head is not None else None
    if found is None or not on_chain(store, head, found):
        raise NotFound(f"message {message_id} is not in {source}")
    return found


def hydrate(p: Ports, message: Message) -> Message:
    """The message with every offloaded payload read back from the blob store."""
    if not any(part.get("type") == "blob_ref" and "of" in part for part in message.parts):
        return message
    parts = []
    for part in message.parts:
        if part.get("type") == "blob_ref" and "of" in part:
            data = p.blobs.get(part["sha256"])
            if data is None:
                raise NotFound(f"blob {part['sha256']} of message {message.id} is missing")
            try:
                parts.append(hydrate_part(part, data))
            except InvalidInput:  # not what its blob_ref says: left as the reference
                parts.append(part)
        else:
            parts.append(part)
    return dataclasses.replace(message, parts=parts)


def read_chain(
    p: Ports, head: str | None, start: int, limit: int | None, full: bool
) -> list[Message]:
    """Messages `start`… (at most `limit`) of the chain ending at `head`, hydrated if `full`."""
    if start < 0 or (limit is not None and limit < 0):
        raise InvalidInput("start and limit must not be negative")
    if head is None or start >= MAX_POSITION:
        return []
    chain = p.store.chain(head, start, None if limit is None else min(limit, MAX_POSITION))
    return [hydrate(p, m) for m in chain] if full else chain


def repo_of(git: JSON | None) -> str | None:
    if not git:
        return None
    repo = git.get("remote") or git.get("repo") or git.get("root_commit")
    return repo if isinstance(repo, str) else None


def time_or(value: Any, default: str) -> str:
    if isinstance(value, str):
        try:
            return format_time(parse_time(value))
        except ValueError:
            pass
    return default
