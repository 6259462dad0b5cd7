"""Rows of the SQL stores (SQLite and PostgreSQL) to objects and back: one mapping for both,
so the two cannot drift apart. JSON columns hold orjson bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from baton.core.chain import blob_refs
from baton.core.models import Message, Session, Share, StoredMessage, Totals
from baton.store.base import ListQuery, Page, decode_cursor, encode_cursor

SESSION_COLUMNS = (
    "id, owner, title, task, status, head, message_count, created_at, updated_at, version, "
    "metadata, git, platform, forked_from, repo, title_auto, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_tokens, cost_usd, inherited_input_tokens, "
    "inherited_output_tokens, inherited_cache_read_tokens, inherited_cache_write_tokens, "
    "inherited_cost_usd"
)
SHARE_COLUMNS = (
    "id, session_id, owner, shared_by, head, message_count, title, task, metadata, git, "
    "created_at, expires_at, revoked_at, redacted, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_tokens, cost_usd, inherited_input_tokens, "
    "inherited_output_tokens, inherited_cache_read_tokens, inherited_cache_write_tokens, "
    "inherited_cost_usd"
)
TOKEN_COLUMNS = (
    "id, account_id, name, kind, token_hash, created_at, expires_at, revoked_at, last_used_at"
)
LOGIN_COLUMNS = "id, account_id, token_id, created_at, expires_at"


def dump(value: Any) -> bytes | None:
    return None if value is None else orjson.dumps(value)


def load(value: bytes | None) -> Any:
    return None if value is None else orjson.loads(value)


def session_from(row: Sequence[Any]) -> Session:
    """A session from a row of SESSION_COLUMNS."""
    return Session(
        id=row[0],
        owner=row[1],
        title=row[2],
        task=row[3],
        status=row[4],
        head=row[5],
        message_count=row[6],
        created_at=row[7],
        updated_at=row[8],
        version=row[9],
        metadata=orjson.loads(row[10]),
        git=load(row[11]),
        platform=row[12],
        forked_from=load(row[13]),
        repo=row[14],
        title_auto=bool(row[15]),
        totals=Totals(row[16], row[17], row[18], row[19], row[20]),
        inherited=Totals(row[21], row[22], row[23], row[24], row[25]),
    )


def share_from(row: Sequence[Any]) -> Share:
    """A share from a row of SHARE_COLUMNS."""
    return Share(
        id=row[0],
        session_id=row[1],
        owner=row[2],
        shared_by=orjson.loads(row[3]),
        head=row[4],
        message_count=row[5],
        title=row[6],
        task=row[7],
        metadata=orjson.loads(row[8]),
        git=load(row[9]),
        created_at=row[10],
        expires_at=row[11],
        revoked_at=row[12],
        redacted=orjson.loads(row[13]),
        totals=Totals(row[14], row[15], row[16], row[17], row[18]),
        inherited=Totals(row[19], row[20], row[21], row[22], row[23]),
    )


def totals_values(t: Totals) -> tuple[int, int, int, int, float]:
    return (t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens, t.cost_usd)


def stored_from(row: Sequence[Any]) -> StoredMessage:
    """A stored message from a row of MESSAGE_COLUMNS, with the blobs its parts name (as the
    memory store keeps them), so whatever it is copied into records those references."""
    message = message_from(row[0], row[1], bytes(row[4]))
    return StoredMessage(
        message=message,
        depth=row[2],
        root=row[3],
        totals=Totals(row[5], row[6], row[7], row[8], row[9]),
        findings=load(row[10]) or [],
        flagged=row[11],
        blobs=blob_refs(message.parts),
    )


def message_from(mid: str, parent: str | None, body: bytes) -> Message:
    d = orjson.loads(body)
    return Message(
        mid, parent, d["role"], d["parts"], d["created_at"], d.get("model"), d.get("usage")
    )


# The columns of a message row, in the order of `message_values`.
MESSAGE_COLUMNS = (
    "id, parent, depth, root, body, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, cost_usd, findings, flagged"
)


def message_values(sm: StoredMessage) -> tuple[Any, ...]:
    """A stored message as a row of MESSAGE_COLUMNS (the body holds what the id does not)."""
    m = sm.message
    body: dict[str, Any] = {"role": m.role, "parts": m.parts, "created_at": m.created_at}
    if m.model is not None:
        body["model"] = m.model
    if m.usage is not None:
        body["usage"] = m.usage
    return (
        m.id,
        m.parent,
        sm.depth,
        sm.root,
        orjson.dumps(body),
        *totals_values(sm.totals),
        dump(sm.findings or None),
        sm.flagged,
    )


# The session columns as the listing query names them (`sessions s`).
LISTED_COLUMNS = ", ".join("s." + c.strip() for c in SESSION_COLUMNS.split(","))


def list_filters(query: ListQuery, mark: str) -> tuple[list[str], list[Any]]:
    """The WHERE terms (and their arguments) of a listing, but for its text search: the owner,
    the keyset cursor, status and repo. `mark` is the driver's placeholder."""
    where = [f"s.owner = {mark}"]
    args: list[Any] = [query.owner]
    if query.cursor:
        updated_at, sid = decode_cursor(query.cursor)
        where.append(f"(s.updated_at, s.id) < ({mark}, {mark})")
        args += [updated_at, sid]
    if query.status:
        where.append(f"s.status = {mark}")
        args.append(query.status)
    if query.repo:
        where.append(f"s.repo = {mark}")
        args.append(query.repo)
    return where, args


def listing_sql(prefix: str, where: list[str], mark: str) -> str:
    return (
        f"{prefix}SELECT {LISTED_COLUMNS} FROM sessions s WHERE {' AND '.join(where)} "
        f"ORDER BY s.updated_at DESC, s.id DESC LIMIT {mark}"
    )


def page_of(rows: Sequence[Sequence[Any]], limit: int) -> Page:
    """One page from up to `limit + 1` rows: the extra row says there is a next page."""
    sessions = [session_from(r) for r in rows[:limit]]
    cursor = None
    if len(rows) > limit:
        cursor = encode_cursor(sessions[-1].updated_at, sessions[-1].id)
    return Page(sessions, cursor)
