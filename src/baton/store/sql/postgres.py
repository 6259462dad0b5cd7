"""The scale-out store: PostgreSQL through psycopg 3 and a connection pool.

Servers hold no state: every rule that two servers could race on is one statement. Moving a
session's head is one conditional UPDATE (`WHERE head IS NOT DISTINCT FROM expected`), so of
two appends after the same head exactly one commits and the other is a Conflict. Reads run
in autocommit (one round trip each); writes run in a transaction. A lost or restarted
database surfaces as Busy (503), and the pool reconnects when it is back. What it shares with
SQLite is in common.py; here are the pool, transactions and their retries, the blob lock,
array inserts, the one-statement append and tsvector search."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import orjson
import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from baton.core.errors import Busy, Conflict, NotFound
from baton.core.models import Message, Session, StoredMessage
from baton.core.validation import message_text
from baton.store import pg_migrations
from baton.store.base import (
    Answered,
    Remembered,
    Remembering,
    git_blobs,
    idempotency_cutoff,
    safe_url,
)
from baton.store.pg_migrations import SEARCH_VECTOR, search_text
from baton.store.sql.dialect import POSTGRES
from baton.store.sql.rows import (
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    message_from,
    message_values,
    session_from,
    stored_from,
)
from baton.store.sql.runs import RunsSQLStore

# Writers that add a blob reference hold this lock shared; freeing blobs holds it alone.
BLOB_LOCK = 7_316_061_002
POOL_WAIT = 5.0  # seconds a request waits for a connection (a lost database: then 503)
_RETRIES = 5  # a deadlock or serialization failure is retried this many times
_CHAIN = """
WITH RECURSIVE chain(id, parent, depth) AS (
  SELECT id, parent, depth FROM messages WHERE id = %s
  UNION ALL
  SELECT m.id, m.parent, m.depth FROM messages m JOIN chain c ON m.id = c.parent
  WHERE c.depth > %s
)
"""


class _Dropped(Busy):
    """The connection broke under a request (a restarted or lost database)."""


F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _read_again(method: F) -> F:
    """A read that met a dropped connection runs once more on a fresh one: after a database
    restart the pool still holds connections to the old server, and a read is safe to
    repeat. Writes are not repeated (their outcome is unknown): they answer 503."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except _Dropped:
            return method(*args, **kwargs)

    return cast(F, wrapper)


_WORD = re.compile(r"[^\W_]+")


def ts_query(text: str) -> str | None:
    """A user's words as a tsquery: every word must appear, the last one as a prefix. Only
    word characters reach the query, so search syntax in the text is taken literally."""
    words = _WORD.findall(text.lower())
    if not words:
        return None
    terms = [f"'{w}'" for w in words]
    terms[-1] += ":*"
    return " & ".join(terms)


# The pool logs each failed connection attempt; the caller gets one Busy line instead.
logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)


class PostgresStore(RunsSQLStore[psycopg.Cursor[Any]]):
    """One pool per process; each method is one transaction (or one autocommit read)."""

    inline_writes = False
    dialect = POSTGRES
    missing = (NotFound,)
    _claim_lock = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, migrate: bool = True, max_size: int = 16) -> None:
        self.url = url
        self.max_size = max_size
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True},
            timeout=POOL_WAIT,
            open=False,
            name="baton",
        )
        try:
            self._pool.open(wait=True, timeout=10)
        except PoolTimeout:
            self._pool.close()
            raise Busy(f"the database at {safe_url(url)} is unreachable; try again") from None
        if migrate:
            with self._connection() as conn:
                pg_migrations.migrate(conn)

    def _violation(self, exc: Exception) -> str | None:
        if isinstance(exc, psycopg.errors.UniqueViolation):
            return "unique"
        if isinstance(exc, psycopg.errors.ForeignKeyViolation):
            return "missing"
        return None

    # connections and transactions
    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.errors.ForeignKeyViolation as exc:
            raise NotFound("a message this refers to is not stored") from exc
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"it exists already ({_first_line(exc)})", None) from exc
        except PoolTimeout:
            stats = self._pool.get_stats()
            if stats.get("pool_size", 0) >= self.max_size and stats.get("pool_available", 0) == 0:
                raise Busy("every database connection is busy; try again") from None
            raise Busy("the database is unreachable; try again") from None
        except psycopg.OperationalError as exc:
            # A dropped connection (a restarted server) is discarded by the pool; check the
            # idle ones too, so only the requests in flight fail.
            with contextlib.suppress(Exception):
                self._pool.check()
            raise _Dropped(f"the database is unreachable ({_first_line(exc)}); try again") from None

    @contextmanager
    def _read(self) -> Iterator[psycopg.Cursor[Any]]:
        with self._connection() as conn, conn.cursor() as cur:
            yield cur

    def _write(self, work: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        """Run `work` in one transaction; a deadlock or serialization failure (a race between
        servers that left nothing behind) is retried."""
        for attempt in range(_RETRIES):
            try:
                with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
                    return work(cur)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                if attempt == _RETRIES - 1:
                    raise Busy("the database is busy with other writers; try again") from None
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    @_read_again
    def _reading(self, work: Callable[[psycopg.Cursor[Any]], T]) -> T:
        with self._read() as c:
            return work(c)

    def _writing(self, work: Callable[[psycopg.Cursor[Any]], T]) -> T:
        result: T = self._write(work)
        return result

    def _statement(self, work: Callable[[psycopg.Cursor[Any]], T]) -> T:
        return self._reading(work)  # one statement: autocommit is its transaction

    def _lock_blobs(self, c: psycopg.Cursor[Any], shared: bool) -> None:
        lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        c.execute(f"SELECT {lock}(%s)", (BLOB_LOCK,))

    def close(self) -> None:
        self._pool.close()

    @_read_again
    def messages_with_blob(self, sha256: str) -> list[StoredMessage]:
        with self._read() as c:
            rows = c.execute(
                f"SELECT {', '.join('m.' + x.strip() for x in MESSAGE_COLUMNS.split(','))} "
                "FROM message_blobs b JOIN messages m ON m.id = b.message WHERE b.sha256 = %s",
                (sha256,),
            ).fetchall()
        return [stored_from(row) for row in rows]

    @_read_again
    def chain(self, head: str, start: int = 0, limit: int | None = None) -> list[Message]:
        """One query in the common case: the head's family between two depths, read along the
        (root, depth) index. When the family branches inside the page (forks that share a
        prefix), the page's messages are picked by walking parent links from its last one."""
        start = max(start, 0)
        stop = 2**31 - 1 if limit is None else start + max(limit, 0)
        if stop <= start:
            return []
        with self._connection() as conn, conn.cursor(binary=True) as c:
            rows = c.execute(
                "WITH h AS (SELECT root, depth FROM messages WHERE id = %s) "
                "SELECT m.depth, m.id, m.parent, m.body, h.depth FROM messages m, h "
                "WHERE m.root = h.root AND m.depth >= %s AND m.depth < LEAST(h.depth + 1, %s) "
                "ORDER BY m.depth",
                (head, start, stop),
            ).fetchall()
            if not rows:
                return []
            head_depth = rows[0][4]
            last = min(head_depth, stop - 1)
            if len(rows) == last - start + 1 and _linked(rows):
                return [message_from(mid, parent, bytes(body)) for _, mid, parent, body, _ in rows]
            # Branches: find the page's last message on this chain, then walk back from it.
            end = head if last == head_depth else self._ancestor(c, head, last)
        by_id = {row[1]: row for row in rows}
        picked = []
        pointer = end
        while pointer is not None and pointer in by_id:
            row = by_id[pointer]
            picked.append(message_from(row[1], row[2], bytes(row[3])))
            pointer = row[2]
        picked.reverse()
        return picked

    @staticmethod
    def _ancestor(c: psycopg.Cursor[Any], head: str, depth: int) -> str | None:
        row = c.execute(
            "WITH h AS (SELECT root, depth FROM messages WHERE id = %s) "
            "SELECT m.id FROM messages m, h WHERE m.root = h.root AND m.depth = %s "
            "AND m.depth <= h.depth LIMIT 2",
            (head, depth),
        ).fetchall()
        if len(row) == 1:  # one message of the family at that depth: every chain passes it
            return str(row[0][0])
        found = c.execute(
            _CHAIN + "SELECT id FROM chain WHERE depth = %s", (head, depth, depth)
        ).fetchone()
        return str(found[0]) if found else None

    @_read_again
    def ancestor(self, head: str, depth: int) -> str | None:
        if depth < 0:
            return None
        with self._read() as c:
            return self._ancestor(c, head, depth)

    @_read_again
    def flagged(self, head: str) -> list[StoredMessage]:
        found: list[StoredMessage] = []
        with self._read() as c:
            row = c.execute("SELECT flagged FROM messages WHERE id = %s", (head,)).fetchone()
            pointer = row[0] if row else None
            while pointer is not None:
                mrow = c.execute(
                    f"SELECT {MESSAGE_COLUMNS}, (SELECT p.flagged FROM messages p "
                    "WHERE p.id = messages.parent) FROM messages WHERE id = %s",
                    (pointer,),
                ).fetchone()
                if mrow is None:
                    break
                found.append(stored_from(mrow))
                pointer = mrow[12]
        found.reverse()
        return found

    def _insert_messages(self, c: psycopg.Cursor[Any], messages: Sequence[StoredMessage]) -> None:
        if not messages:
            return
        if any(sm.blobs for sm in messages):
            self._lock_blobs(c, shared=True)
        c.execute(_insert_messages(""), _message_arrays(messages))
        links = [(sha, sm.message.id) for sm in messages for sha in sm.blobs]
        if links:
            c.executemany(
                "INSERT INTO message_blobs(sha256, message) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                links,
            )

    # sessions
    def append(
        self,
        session_id: str,
        expected_head: str | None,
        messages: Sequence[StoredMessage],
        changes: dict[str, Any],
        remember: Remembering | None = None,
    ) -> Session:
        move, move_args = self._move(session_id, expected_head, messages, changes)
        move += f" RETURNING {SESSION_COLUMNS}"
        if any(sm.blobs for sm in messages) or "git" in changes or remember is not None:
            # References to blobs are written under the blob lock (see release_blobs).
            def work(c: psycopg.Cursor[Any]) -> Any:
                if remember is not None:
                    kept = _claim(c, session_id, remember)
                    if kept is not None:
                        raise Answered(kept)
                if git_blobs(changes.get("git")):
                    self._lock_blobs(c, shared=True)
                self._insert_messages(c, messages)
                row = c.execute(move, move_args).fetchone()
                if row is None:
                    raise self._not_moved(c, session_id, expected_head)
                self._sync_git(c, session_id, changes)
                if remember is not None:
                    answer = remember.answer(session_from(row))
                    c.execute(
                        "UPDATE idempotency_keys SET request = %s, status = %s, response = %s "
                        "WHERE session_id = %s AND key = %s",
                        (
                            answer.request,
                            answer.status,
                            orjson.dumps(answer.response),
                            session_id,
                            POSTGRES.text(remember.key),
                        ),
                    )
                return row

            return session_from(self._write(work))
        # One statement, so one round trip: the head moves and the messages go in together,
        # or (the head moved meanwhile) nothing is written.
        with self._read() as c:
            row = c.execute(
                f"WITH moved AS ({move}), added AS "
                f"({_insert_messages('WHERE EXISTS (SELECT 1 FROM moved)')}) SELECT * FROM moved",
                (*move_args, *_message_arrays(messages)),
            ).fetchone()
            if row is None:
                raise self._not_moved(c, session_id, expected_head)
        return session_from(row)

    def update_session(
        self, session_id: str, expected_version: int | None, changes: dict[str, Any]
    ) -> Session:
        sets, values = self._changes(changes)

        def work(c: psycopg.Cursor[Any]) -> Session:
            if git_blobs(changes.get("git")):
                self._lock_blobs(c, shared=True)
            row = c.execute(
                f"UPDATE sessions SET version = version + 1{sets} "
                "WHERE id = %s AND (%s::bigint IS NULL OR version = %s) "
                f"RETURNING {SESSION_COLUMNS}",
                (*values, session_id, expected_version, expected_version),
            ).fetchone()
            if row is None:
                raise self._not_updated(c, session_id, expected_version)
            self._sync_git(c, session_id, changes)
            return session_from(row)

        return self._writing(work)

    _hits = (
        "hit_messages(id, root, depth) AS (\n"
        "  SELECT id, root, depth FROM messages WHERE search @@ to_tsquery('simple', ?))"
    )
    _session_row = "s.id"
    _title_match = (
        "to_tsvector('simple'::regconfig, s.title || ' ' || s.task) @@ to_tsquery('simple', ?)"
    )

    def _match(self, text: str) -> str | None:
        return ts_query(text)

    def delete_session(self, session_id: str, now: str) -> list[str]:
        def work(c: psycopg.Cursor[Any]) -> list[str]:
            row = c.execute(
                "DELETE FROM sessions WHERE id = %s RETURNING root", (session_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no session {session_id}")
            freed: set[str] = set()
            for family in self._family_roots(c, session_id, row[0]):
                freed.update(self._collect(c, now, family))
            return sorted(freed)

        return self._writing(work)

    def _collect(self, c: psycopg.Cursor[Any], now: str, root: str | None) -> list[str]:
        """Delete unreachable messages (of one family, or all when root is None)."""
        reachable, args = self._reachable(root, now)
        family, fargs = self._family(root)
        query = f"{reachable}SELECT id FROM messages WHERE id NOT IN (SELECT id FROM walk){family}"
        doomed = [r[0] for r in c.execute(query.encode(), (*args, *fargs)).fetchall()]
        if not doomed:
            return []
        shas = {
            r[0]
            for r in c.execute(
                "DELETE FROM message_blobs WHERE message = ANY(%s) RETURNING sha256", (doomed,)
            ).fetchall()
        }
        c.execute("DELETE FROM messages WHERE id = ANY(%s)", (doomed,))
        if not shas:
            return []
        still = {
            r[0]
            for r in c.execute(
                "SELECT DISTINCT sha256 FROM message_blobs WHERE sha256 = ANY(%s)", (list(shas),)
            ).fetchall()
        }
        return sorted(shas - still)

    # blob access and idempotency keys
    @_read_again
    def granted_blobs(self, account: str, shas: Sequence[str]) -> set[str]:
        wanted = sorted(set(shas))
        with self._read() as c:
            rows = c.execute(
                "SELECT sha256 FROM blob_grants WHERE account = %s AND sha256 = ANY(%s) UNION "
                "SELECT b.sha256 FROM session_blobs b JOIN sessions s ON s.id = b.session_id "
                "WHERE b.sha256 = ANY(%s) AND s.owner = %s",
                (account, wanted, wanted, account),
            ).fetchall()
        return {r[0] for r in rows}

    def remember(self, session_id: str, key: str, answer: Remembered, now: str) -> Remembered:
        def work(c: psycopg.Cursor[Any]) -> Any:
            c.execute(
                "DELETE FROM idempotency_keys WHERE created_at < %s", (idempotency_cutoff(now),)
            )
            c.execute(
                "INSERT INTO idempotency_keys"
                "(session_id, key, request, status, response, created_at) "
                "SELECT %s, %s, %s, %s, %s, %s WHERE EXISTS "
                "(SELECT 1 FROM sessions WHERE id = %s) ON CONFLICT DO NOTHING",
                (
                    session_id,
                    POSTGRES.text(key),
                    answer.request,
                    answer.status,
                    orjson.dumps(answer.response),
                    now,
                    session_id,
                ),
            )
            return c.execute(
                "SELECT request, status, response FROM idempotency_keys "
                "WHERE session_id = %s AND key = %s",
                (session_id, POSTGRES.text(key)),
            ).fetchone()

        row = self._write(work)
        if row is None:
            raise NotFound(f"no session {session_id}")
        return Remembered(row[0], row[1], orjson.loads(row[2]))


def _claim(c: psycopg.Cursor[Any], session_id: str, remember: Remembering) -> Remembered | None:
    """Take the idempotency key for this transaction (a concurrent holder is waited for), or
    return the live answer kept for it. Expired answers are forgotten first."""
    c.execute(
        "DELETE FROM idempotency_keys WHERE created_at < %s", (idempotency_cutoff(remember.now),)
    )
    taken = c.execute(
        "INSERT INTO idempotency_keys(session_id, key, request, status, response, created_at) "
        "SELECT %s, %s, '', 0, ''::bytea, %s WHERE EXISTS "
        "(SELECT 1 FROM sessions WHERE id = %s) ON CONFLICT DO NOTHING RETURNING 1",
        (session_id, POSTGRES.text(remember.key), remember.now, session_id),
    ).fetchone()
    if taken is not None:
        return None
    row = c.execute(
        "SELECT request, status, response FROM idempotency_keys WHERE session_id = %s AND key = %s",
        (session_id, POSTGRES.text(remember.key)),
    ).fetchone()
    return Remembered(row[0], row[1], orjson.loads(row[2])) if row else None


def _insert_messages(when: str) -> str:
    """One INSERT of any number of messages, each column an array (`_message_arrays`), the
    search vector made on the way in; `when` can make it depend on the rest of a statement."""
    return (
        f"INSERT INTO messages({MESSAGE_COLUMNS}, search) "
        "SELECT id, parent, depth, root, body, i, o, cr, cw, cost, findings, flagged, "
        f"{SEARCH_VECTOR.replace('%s', 'search')} FROM unnest("
        "%s::text[], %s::text[], %s::int[], %s::text[], %s::bytea[], %s::bigint[], "
        "%s::bigint[], %s::bigint[], %s::bigint[], %s::float8[], %s::bytea[], "
        "%s::text[], %s::text[]) AS m(id, parent, depth, root, body, i, o, cr, cw, "
        f"cost, findings, flagged, search) {when} ON CONFLICT (id) DO NOTHING"
    )


def _message_arrays(messages: Sequence[StoredMessage]) -> list[list[Any]]:
    rows = [(*message_values(sm), search_text(message_text(sm.message.parts))) for sm in messages]
    return [list(column) for column in zip(*rows, strict=True)]


def _linked(rows: Sequence[Sequence[Any]]) -> bool:
    """Rows of one depth each, in order: does each name the previous one as its parent?"""
    return all(rows[i][2] == rows[i - 1][1] for i in range(1, len(rows)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
