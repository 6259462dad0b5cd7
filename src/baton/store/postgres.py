"""The scale-out store: PostgreSQL through psycopg 3 and a connection pool.

Servers hold no state: every rule that two servers could race on is one statement. Moving a
session's head is one conditional UPDATE (`WHERE head IS NOT DISTINCT FROM expected`), so of
two appends after the same head exactly one commits and the other is a Conflict. Reads run
in autocommit (one round trip each); writes run in a transaction. A lost or restarted
database surfaces as Busy (503), and the pool reconnects when it is back."""

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

from baton.core.errors import Busy, Conflict, NotFound, VersionMismatch
from baton.core.models import Account, Login, Message, Session, Share, StoredMessage, Token
from baton.store import pg_migrations
from baton.store.base import (
    SESSION_FIELDS,
    Answered,
    ListQuery,
    Page,
    Remembered,
    Remembering,
    Store,
    git_blobs,
    idempotency_cutoff,
    safe_url,
)
from baton.store.pg_migrations import SEARCH_VECTOR, search_text
from baton.store.rows import (
    LOGIN_COLUMNS,
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    SHARE_COLUMNS,
    TOKEN_COLUMNS,
    dump,
    list_filters,
    listing_sql,
    message_from,
    message_values,
    page_of,
    session_from,
    share_from,
    stored_from,
    totals_values,
)

_LIVE_SHARE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > %s)"
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


def _text(value: str | None) -> str | None:
    """PostgreSQL text holds no NUL character; JSON-escaped bodies do, plain columns don't."""
    return None if value is None else value.replace("\x00", "\ufffd")


# The pool logs each failed connection attempt; the caller gets one Busy line instead.
logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)


class PostgresStore(Store):
    """One pool per process; each method is one transaction (or one autocommit read)."""

    inline_writes = False

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

    def close(self) -> None:
        self._pool.close()

    # accounts
    def add_account(self, account: Account) -> None:
        self._write(
            lambda c: c.execute(
                "INSERT INTO accounts(id, handle, display_name, created_at) VALUES (%s,%s,%s,%s)",
                (
                    account.id,
                    _text(account.handle),
                    _text(account.display_name),
                    account.created_at,
                ),
            )
        )

    @_read_again
    def _account(self, where: str, value: str) -> Account | None:
        with self._read() as c:
            row = c.execute(
                f"SELECT id, handle, display_name, created_at FROM accounts WHERE {where} = %s",
                (value,),
            ).fetchone()
        return Account(*row) if row else None

    def get_account(self, account_id: str) -> Account | None:
        return self._account("id", account_id)

    def find_account(self, handle: str) -> Account | None:
        return self._account("handle", handle)

    @_read_again
    def list_accounts(self) -> list[Account]:
        with self._read() as c:
            rows = c.execute(
                "SELECT id, handle, display_name, created_at FROM accounts ORDER BY created_at, id"
            ).fetchall()
        return [Account(*row) for row in rows]

    def set_password(self, account_id: str, password_hash: str | None) -> None:
        def work(c: psycopg.Cursor[Any]) -> None:
            c.execute(
                "UPDATE accounts SET password_hash = %s WHERE id = %s", (password_hash, account_id)
            )
            if c.rowcount == 0:
                raise NotFound(f"no account {account_id}")

        self._write(work)

    @_read_again
    def password_hash(self, account_id: str) -> str | None:
        with self._read() as c:
            row = c.execute(
                "SELECT password_hash FROM accounts WHERE id = %s", (account_id,)
            ).fetchone()
        return row[0] if row else None

    # tokens
    def add_token(self, token: Token) -> None:
        try:
            self._write(
                lambda c: c.execute(
                    f"INSERT INTO tokens({TOKEN_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (
                        token.id,
                        token.account_id,
                        _text(token.name),
                        token.kind,
                        token.token_hash,
                        token.created_at,
                        token.expires_at,
                        token.revoked_at,
                        token.last_used_at,
                    ),
                )
            )
        except NotFound:
            raise NotFound(f"no account {token.account_id}") from None

    @_read_again
    def find_token(self, token_hash: str) -> Token | None:
        with self._read() as c:
            row = c.execute(
                f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = %s", (token_hash,)
            ).fetchone()
        return Token(*row) if row else None

    @_read_again
    def list_tokens(self, account_id: str) -> list[Token]:
        with self._read() as c:
            rows = c.execute(
                f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE account_id = %s "
                "ORDER BY created_at DESC, id DESC",
                (account_id,),
            ).fetchall()
        return [Token(*row) for row in rows]

    def revoke_token(self, token_id: str, now: str) -> bool:
        def work(c: psycopg.Cursor[Any]) -> bool:
            c.execute(
                "UPDATE tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (now, token_id),
            )
            revoked = c.rowcount == 1
            c.execute("DELETE FROM logins WHERE token_id = %s", (token_id,))
            return revoked

        return bool(self._write(work))

    @_read_again
    def touch_token(self, token_id: str, now: str) -> None:
        with self._read() as c:  # one statement: autocommit is its transaction
            c.execute("UPDATE tokens SET last_used_at = %s WHERE id = %s", (now, token_id))

    # web logins
    def add_login(self, login: Login) -> None:
        def work(c: psycopg.Cursor[Any]) -> None:
            c.execute(
                "DELETE FROM logins WHERE account_id = %s AND expires_at <= %s",
                (login.account_id, login.created_at),
            )
            c.execute(
                f"INSERT INTO logins({LOGIN_COLUMNS}) VALUES (%s,%s,%s,%s,%s)",
                (login.id, login.account_id, login.token_id, login.created_at, login.expires_at),
            )

        try:
            self._write(work)
        except NotFound:
            raise NotFound(
                f"no account {login.account_id} (or no token {login.token_id})"
            ) from None

    @_read_again
    def get_login(self, login_id: str) -> Login | None:
        with self._read() as c:
            row = c.execute(
                f"SELECT {LOGIN_COLUMNS} FROM logins WHERE id = %s", (login_id,)
            ).fetchone()
        return Login(*row) if row else None

    def end_login(self, login_id: str) -> bool:
        def work(c: psycopg.Cursor[Any]) -> bool:
            c.execute("DELETE FROM logins WHERE id = %s", (login_id,))
            return c.rowcount == 1

        return bool(self._write(work))

    def end_password_logins(self, account_id: str) -> int:
        def work(c: psycopg.Cursor[Any]) -> int:
            c.execute(
                "DELETE FROM logins WHERE account_id = %s AND token_id IS NULL", (account_id,)
            )
            return c.rowcount

        return int(self._write(work))

    # messages
    @_read_again
    def get_messages(self, ids: Sequence[str]) -> dict[str, StoredMessage]:
        if not ids:
            return {}
        with self._read() as c:
            rows = c.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY(%s)", (list(ids),)
            ).fetchall()
        return {row[0]: stored_from(row) for row in rows}

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
            c.execute("SELECT pg_advisory_xact_lock_shared(%s)", (BLOB_LOCK,))
        c.execute(_insert_messages(""), _message_arrays(messages))
        links = [(sha, sm.message.id) for sm in messages for sha in sm.blobs]
        if links:
            c.executemany(
                "INSERT INTO message_blobs(sha256, message) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                links,
            )

    @staticmethod
    def _root_of(c: psycopg.Cursor[Any], head: str) -> str:
        row = c.execute("SELECT root FROM messages WHERE id = %s", (head,)).fetchone()
        if row is None:
            raise NotFound(f"message {head} is not stored")
        return str(row[0])

    # sessions
    def create_session(self, session: Session, messages: Sequence[StoredMessage] = ()) -> None:
        def work(c: psycopg.Cursor[Any]) -> None:
            if git_blobs(session.git):
                c.execute("SELECT pg_advisory_xact_lock_shared(%s)", (BLOB_LOCK,))
            self._insert_messages(c, messages)
            root = messages[0].root if messages else None
            if session.head is not None and root is None:
                root = self._root_of(c, session.head)
            c.execute(
                f"INSERT INTO sessions({SESSION_COLUMNS}, root) VALUES "
                "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (*self._session_values(session), root),
            )
            _sync_git(c, session.id, {"git": session.git})

        self._write(work)

    @staticmethod
    def _session_values(s: Session) -> tuple[Any, ...]:
        return (
            s.id,
            s.owner,
            _text(s.title),
            _text(s.task),
            s.status,
            s.head,
            s.message_count,
            s.created_at,
            s.updated_at,
            s.version,
            orjson.dumps(s.metadata),
            dump(s.git),
            s.platform,
            dump(s.forked_from),
            _text(s.repo),
            bool(s.title_auto),
            *totals_values(s.totals),
        )

    @_read_again
    def get_session(self, session_id: str) -> Session | None:
        with self._read() as c:
            row = c.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = %s", (session_id,)
            ).fetchone()
        return session_from(row) if row else None

    @_read_again
    def find_session(self, owner: str, head: str) -> Session | None:
        with self._read() as c:
            row = c.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions WHERE owner = %s AND head = %s "
                "AND root = (SELECT root FROM messages WHERE id = %s) ORDER BY seq LIMIT 1",
                (owner, head, head),
            ).fetchone()
        return session_from(row) if row else None

    def append(
        self,
        session_id: str,
        expected_head: str | None,
        messages: Sequence[StoredMessage],
        changes: dict[str, Any],
        remember: Remembering | None = None,
    ) -> Session:
        last = messages[-1]
        sets, values = self._changes(changes)
        move = (
            "UPDATE sessions SET head = %s, root = %s, message_count = %s, "
            "version = version + 1, input_tokens = %s, output_tokens = %s, "
            f"cache_read_tokens = %s, cache_write_tokens = %s, cost_usd = %s{sets} "
            f"WHERE id = %s AND head IS NOT DISTINCT FROM %s RETURNING {SESSION_COLUMNS}"
        )
        move_args = (
            last.message.id,
            last.root,
            last.depth + 1,
            *totals_values(last.totals),
            *values,
            session_id,
            expected_head,
        )
        if any(sm.blobs for sm in messages) or "git" in changes or remember is not None:
            # References to blobs are written under the blob lock (see release_blobs).
            def work(c: psycopg.Cursor[Any]) -> Any:
                if remember is not None:
                    kept = _claim(c, session_id, remember)
                    if kept is not None:
                        raise Answered(kept)
                if git_blobs(changes.get("git")):
                    c.execute("SELECT pg_advisory_xact_lock_shared(%s)", (BLOB_LOCK,))
                self._insert_messages(c, messages)
                row = c.execute(move, move_args).fetchone()
                if row is None:
                    raise self._not_moved(c, session_id, expected_head)
                _sync_git(c, session_id, changes)
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
                            _text(remember.key),
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

    @staticmethod
    def _not_moved(c: psycopg.Cursor[Any], session_id: str, expected_head: str | None) -> Exception:
        current = c.execute("SELECT head FROM sessions WHERE id = %s", (session_id,)).fetchone()
        if current is None:
            return NotFound(f"no session {session_id}")
        return Conflict(
            f"the session moved on: its head is {current[0]}, not {expected_head}", current[0]
        )

    @staticmethod
    def _changes(changes: dict[str, Any]) -> tuple[str, list[Any]]:
        unknown = set(changes) - SESSION_FIELDS
        if unknown:
            raise ValueError(f"cannot change {unknown}")
        sets, values = "", list[Any]()
        for key, value in changes.items():
            sets += f", {key} = %s"
            if key in ("metadata", "git"):
                values.append(dump(value))
            elif key == "title_auto":
                values.append(bool(value))
            elif isinstance(value, str):
                values.append(_text(value))
            else:
                values.append(value)
        return sets, values

    def update_session(
        self, session_id: str, expected_version: int | None, changes: dict[str, Any]
    ) -> Session:
        sets, values = self._changes(changes)

        def work(c: psycopg.Cursor[Any]) -> Session:
            if git_blobs(changes.get("git")):
                c.execute("SELECT pg_advisory_xact_lock_shared(%s)", (BLOB_LOCK,))
            row = c.execute(
                f"UPDATE sessions SET version = version + 1{sets} "
                "WHERE id = %s AND (%s::bigint IS NULL OR version = %s) "
                f"RETURNING {SESSION_COLUMNS}",
                (*values, session_id, expected_version, expected_version),
            ).fetchone()
            if row is None:
                current = c.execute(
                    "SELECT version FROM sessions WHERE id = %s", (session_id,)
                ).fetchone()
                if current is None:
                    raise NotFound(f"no session {session_id}")
                raise VersionMismatch(
                    f"the session is at version {current[0]}, not {expected_version}", current[0]
                )
            _sync_git(c, session_id, changes)
            return session_from(row)

        result: Session = self._write(work)
        return result

    @_read_again
    def list_sessions(self, query: ListQuery) -> Page:
        where, args = list_filters(query, "%s")
        args = [_text(a) if isinstance(a, str) else a for a in args]
        prefix = ""
        match = ts_query(query.text) if query.text else None
        if query.text and match is None:
            return Page([], None)
        if match is not None:
            prefix = """
WITH RECURSIVE hit_messages(id, root, depth) AS (
  SELECT id, root, depth FROM messages WHERE search @@ to_tsquery('simple', %s)),
walk(sid, mid, depth, floor) AS (
  SELECT s.id, s.head, s.message_count - 1,
         (SELECT min(h.depth) FROM hit_messages h WHERE h.root = s.root)
  FROM sessions s WHERE s.owner = %s AND s.root IN (SELECT root FROM hit_messages)
  UNION ALL
  SELECT w.sid, m.parent, w.depth - 1, w.floor FROM walk w JOIN messages m ON m.id = w.mid
  WHERE w.depth > w.floor
),
found(sid) AS (SELECT DISTINCT w.sid FROM walk w JOIN hit_messages h ON h.id = w.mid)
"""
            args = [match, query.owner, *args]
            where.append(
                "(to_tsvector('simple'::regconfig, s.title || ' ' || s.task) "
                "@@ to_tsquery('simple', %s) OR s.id IN (SELECT sid FROM found))"
            )
            args.append(match)
        args.append(query.limit + 1)
        with self._read() as c:
            rows = c.execute(listing_sql(prefix, where, "%s").encode(), args).fetchall()
        return page_of(rows, query.limit)

    def delete_session(self, session_id: str, now: str) -> list[str]:
        def work(c: psycopg.Cursor[Any]) -> list[str]:
            row = c.execute(
                "DELETE FROM sessions WHERE id = %s RETURNING root", (session_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no session {session_id}")
            # Redacted copies of this session's shares can start a chain of their own (when
            # the first message held the secret): their family is collected too.
            roots = {row[0]} | {
                r[0]
                for r in c.execute(
                    "SELECT DISTINCT root FROM shares WHERE session_id = %s AND root IS NOT NULL",
                    (session_id,),
                ).fetchall()
            }
            roots.discard(None)
            freed: set[str] = set()
            for family in sorted(roots):
                freed.update(self._collect(c, now, family))
            return sorted(freed)

        result: list[str] = self._write(work)
        return result

    @staticmethod
    def _collect(c: psycopg.Cursor[Any], now: str, root: str | None) -> list[str]:
        """Delete unreachable messages (of one family, or all when root is None)."""
        family = "" if root is None else " AND root = %s"
        fargs: list[Any] = [] if root is None else [root]
        doomed = [
            r[0]
            for r in c.execute(
                f"""
WITH RECURSIVE heads(id) AS (
  SELECT head FROM sessions WHERE head IS NOT NULL{family}
  UNION SELECT head FROM shares WHERE head IS NOT NULL AND {_LIVE_SHARE}{family}
), walk(id) AS (
  SELECT id FROM heads
  UNION SELECT m.parent FROM messages m JOIN walk w ON m.id = w.id WHERE m.parent IS NOT NULL
)
SELECT id FROM messages WHERE id NOT IN (SELECT id FROM walk){family}""".encode(),
                (*fargs, now, *fargs, *fargs),
            ).fetchall()
        ]
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

    # shares
    def create_share(self, share: Share, messages: Sequence[StoredMessage] = ()) -> None:
        def work(c: psycopg.Cursor[Any]) -> None:
            if git_blobs(share.git):
                c.execute("SELECT pg_advisory_xact_lock_shared(%s)", (BLOB_LOCK,))
            self._insert_messages(c, messages)
            root = None if share.head is None else self._root_of(c, share.head)
            c.execute(
                f"INSERT INTO shares({SHARE_COLUMNS}, root) VALUES "
                "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    share.id,
                    share.session_id,
                    share.owner,
                    orjson.dumps(share.shared_by),
                    share.head,
                    share.message_count,
                    _text(share.title),
                    _text(share.task),
                    orjson.dumps(share.metadata),
                    dump(share.git),
                    share.created_at,
                    share.expires_at,
                    share.revoked_at,
                    orjson.dumps(share.redacted),
                    *totals_values(share.totals),
                    root,
                ),
            )
            found = [(share.id, sha) for sha in git_blobs(share.git)]
            if found:
                c.executemany(
                    "INSERT INTO share_blobs(share_id, sha256) VALUES (%s, %s) "
                    "ON CONFLICT DO NOTHING",
                    found,
                )

        self._write(work)

    @_read_again
    def get_share(self, share_id: str) -> Share | None:
        with self._read() as c:
            row = c.execute(
                f"SELECT {SHARE_COLUMNS} FROM shares WHERE id = %s", (share_id,)
            ).fetchone()
        return share_from(row) if row else None

    @_read_again
    def list_shares(self, owner: str | None = None, session_id: str | None = None) -> list[Share]:
        where, args = [], []
        if owner is not None:
            where.append("owner = %s")
            args.append(owner)
        if session_id is not None:
            where.append("session_id = %s")
            args.append(session_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._read() as c:
            rows = c.execute(
                f"SELECT {SHARE_COLUMNS} FROM shares {clause} ORDER BY created_at DESC, id".encode(),
                args,
            ).fetchall()
        return [share_from(r) for r in rows]

    def revoke_share(self, share_id: str, now: str) -> Share:
        def work(c: psycopg.Cursor[Any]) -> Share:
            c.execute(
                "UPDATE shares SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (now, share_id),
            )
            row = c.execute(
                f"SELECT {SHARE_COLUMNS} FROM shares WHERE id = %s", (share_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no share {share_id}")
            return share_from(row)

        result: Share = self._write(work)
        return result

    # blob access and idempotency keys
    def grant_blobs(self, account: str, shas: Sequence[str], now: str) -> None:
        if not shas:
            return

        def work(c: psycopg.Cursor[Any]) -> None:
            c.executemany(
                "INSERT INTO blob_grants(account, sha256, created_at) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [(account, sha, now) for sha in shas],
            )

        self._write(work)

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

    @_read_again
    def family_heads(self, owner: str, root: str) -> list[str]:
        with self._read() as c:
            rows = c.execute(
                "SELECT head FROM sessions WHERE root = %s AND owner = %s AND head IS NOT NULL",
                (root, owner),
            ).fetchall()
        return [r[0] for r in rows]

    @_read_again
    def recall(self, session_id: str, key: str, since: str) -> Remembered | None:
        with self._read() as c:
            row = c.execute(
                "SELECT request, status, response FROM idempotency_keys "
                "WHERE session_id = %s AND key = %s AND created_at >= %s",
                (session_id, key, since),
            ).fetchone()
        return Remembered(row[0], row[1], orjson.loads(row[2])) if row else None

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
                    _text(key),
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
                (session_id, _text(key)),
            ).fetchone()

        row = self._write(work)
        if row is None:
            raise NotFound(f"no session {session_id}")
        return Remembered(row[0], row[1], orjson.loads(row[2]))

    # maintenance
    def iter_sessions(self) -> Iterator[Session]:
        with self._read() as c:
            rows = c.execute(f"SELECT {SESSION_COLUMNS} FROM sessions ORDER BY seq").fetchall()
        for row in rows:
            yield session_from(row)

    def gc(self, now: str) -> tuple[int, list[str]]:
        def work(c: psycopg.Cursor[Any]) -> tuple[int, list[str]]:
            # One collector at a time, and no append adding a blob reference meanwhile.
            c.execute("SELECT pg_advisory_xact_lock(%s)", (BLOB_LOCK,))
            before = c.execute("SELECT count(*) FROM messages").fetchone()
            freed = self._collect(c, now, None)
            after = c.execute("SELECT count(*) FROM messages").fetchone()
            return (before[0] if before else 0) - (after[0] if after else 0), freed

        result: tuple[int, list[str]] = self._write(work)
        return result

    def release_blobs(self, shas: Sequence[str], delete: Callable[[list[str]], None]) -> list[str]:
        if not shas:
            return []

        def work(c: psycopg.Cursor[Any]) -> list[str]:
            c.execute("SELECT pg_advisory_xact_lock(%s)", (BLOB_LOCK,))
            doomed = []
            for sha in shas:
                used = c.execute(
                    "SELECT 1 FROM message_blobs WHERE sha256 = %s "
                    "UNION ALL SELECT 1 FROM session_blobs WHERE sha256 = %s "
                    "UNION ALL SELECT 1 FROM share_blobs b JOIN shares s ON s.id = b.share_id "
                    "WHERE b.sha256 = %s AND s.revoked_at IS NULL LIMIT 1",
                    (sha, sha, sha),
                ).fetchone()
                if used is None:
                    doomed.append(sha)
            delete(doomed)
            if doomed:
                c.execute("DELETE FROM blob_grants WHERE sha256 = ANY(%s)", (doomed,))
            return doomed

        result: list[str] = self._write(work)
        return result

    @_read_again
    def referenced_blobs(self) -> set[str]:
        with self._read() as c:
            found = {r[0] for r in c.execute("SELECT DISTINCT sha256 FROM message_blobs")}
            found.update(
                r[0]
                for r in c.execute(
                    "SELECT sha256 FROM session_blobs UNION SELECT b.sha256 FROM share_blobs b "
                    "JOIN shares s ON s.id = b.share_id WHERE s.revoked_at IS NULL"
                )
            )
        return found


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
        (session_id, _text(remember.key), remember.now, session_id),
    ).fetchone()
    if taken is not None:
        return None
    row = c.execute(
        "SELECT request, status, response FROM idempotency_keys WHERE session_id = %s AND key = %s",
        (session_id, _text(remember.key)),
    ).fetchone()
    return Remembered(row[0], row[1], orjson.loads(row[2])) if row else None


def _sync_git(c: psycopg.Cursor[Any], session_id: str, changes: dict[str, Any]) -> None:
    """Keep session_blobs naming the blobs of the session's git snapshot, when it changes."""
    if "git" not in changes:
        return
    c.execute("DELETE FROM session_blobs WHERE session_id = %s", (session_id,))
    found = [(session_id, sha) for sha in git_blobs(changes["git"])]
    if found:
        c.executemany(
            "INSERT INTO session_blobs(session_id, sha256) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            found,
        )


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
    rows = [(*message_values(sm), search_text(sm.text)) for sm in messages]
    return [list(column) for column in zip(*rows, strict=True)]


def _linked(rows: Sequence[Sequence[Any]]) -> bool:
    """Rows of one depth each, in order: does each name the previous one as its parent?"""
    return all(rows[i][2] == rows[i - 1][1] for i in range(1, len(rows)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
