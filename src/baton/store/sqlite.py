"""The embedded store: SQLite in WAL mode, synchronous=FULL, foreign keys on."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from baton.core.errors import Busy, Conflict, NotFound, VersionMismatch
from baton.core.models import (
    Account,
    Login,
    Message,
    Session,
    Share,
    StoredMessage,
    Token,
)
from baton.core.validation import message_text
from baton.store import migrations
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
)
from baton.store.migration import Migration
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

# A git snapshot's patch and bundle are blobs too: kept while a session or an unrevoked share
# names them in its `git` header (session_blobs, share_blobs).
_GIT_REFERENCE = (
    "SELECT 1 FROM session_blobs WHERE sha256 = ? "
    "UNION ALL SELECT 1 FROM share_blobs b JOIN shares s ON s.id = b.share_id "
    "WHERE b.sha256 = ? AND s.revoked_at IS NULL LIMIT 1"
)
_GIT_REFERENCES = (
    "SELECT sha256 FROM session_blobs UNION SELECT b.sha256 FROM share_blobs b "
    "JOIN shares s ON s.id = b.share_id WHERE s.revoked_at IS NULL"
)
BRIEF_WAIT_MS = 50  # how long a thread that must not stall waits for another writer
_LIVE_SHARE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
_CHAIN = """
WITH RECURSIVE chain(rowid, parent, depth) AS (
  SELECT rowid, parent, depth FROM messages WHERE id = ?
  UNION ALL
  SELECT m.rowid, m.parent, m.depth FROM messages m JOIN chain c ON m.id = c.parent
  WHERE c.depth > ?
)
"""


def fts_query(text: str) -> str | None:
    """A user's words as an FTS5 query: every word must appear, the last one as a prefix."""
    words = [w.replace('"', '""') for w in text.split()]
    if not words:
        return None
    terms = [f'"{w}"' for w in words]
    terms[-1] += "*"
    return " ".join(terms)


class SQLiteStore(Store):
    """One connection per thread; writes take the database lock up front (BEGIN IMMEDIATE)."""

    def __init__(self, path: Path | str, synchronous: str = "FULL", migrate: bool = True) -> None:
        self.path = str(path)
        self.synchronous = synchronous
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if migrate:
            self.apply_migrations()

    def apply_migrations(self) -> list[Migration]:
        """Apply the pending schema migrations (`baton migrate`); return those that ran."""
        return migrations.migrate(self._conn())

    # connections and transactions
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60
            )
            _wal(conn)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={BRIEF_WAIT_MS if self._brief() else 60000}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _brief(self) -> bool:
        return bool(getattr(self._local, "brief", False))

    def wait_briefly(self) -> None:
        if not self._brief():
            self._local.brief = True
            self._conn().execute(f"PRAGMA busy_timeout={BRIEF_WAIT_MS}")

    def _write(self) -> _Transaction:
        return _Transaction(self._conn(), "BEGIN IMMEDIATE")

    def _read(self) -> _Transaction:
        return _Transaction(self._conn(), "BEGIN")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # accounts
    def add_account(self, account: Account) -> None:
        with self._write() as c:
            c.execute(
                "INSERT INTO accounts(id, handle, display_name, created_at) VALUES (?,?,?,?)",
                (account.id, account.handle, account.display_name, account.created_at),
            )

    def get_account(self, account_id: str) -> Account | None:
        row = (
            self._conn()
            .execute(
                "SELECT id, handle, display_name, created_at FROM accounts WHERE id = ?",
                (account_id,),
            )
            .fetchone()
        )
        return Account(*row) if row else None

    def find_account(self, handle: str) -> Account | None:
        row = (
            self._conn()
            .execute(
                "SELECT id, handle, display_name, created_at FROM accounts WHERE handle = ?",
                (handle,),
            )
            .fetchone()
        )
        return Account(*row) if row else None

    def list_accounts(self) -> list[Account]:
        rows = self._conn().execute(
            "SELECT id, handle, display_name, created_at FROM accounts ORDER BY created_at, id"
        )
        return [Account(*row) for row in rows]

    def set_password(self, account_id: str, password_hash: str | None) -> None:
        with self._write() as c:
            done = c.execute(
                "UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, account_id)
            )
            if done.rowcount == 0:
                raise NotFound(f"no account {account_id}")

    def password_hash(self, account_id: str) -> str | None:
        row = (
            self._conn()
            .execute("SELECT password_hash FROM accounts WHERE id = ?", (account_id,))
            .fetchone()
        )
        return row[0] if row else None

    # tokens
    def add_token(self, token: Token) -> None:
        try:
            with self._write() as c:
                c.execute(
                    f"INSERT INTO tokens({TOKEN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        token.id,
                        token.account_id,
                        token.name,
                        token.kind,
                        token.token_hash,
                        token.created_at,
                        token.expires_at,
                        token.revoked_at,
                        token.last_used_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise NotFound(f"no account {token.account_id}") from exc

    def find_token(self, token_hash: str) -> Token | None:
        row = (
            self._conn()
            .execute(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?", (token_hash,))
            .fetchone()
        )
        return Token(*row) if row else None

    def list_tokens(self, account_id: str) -> list[Token]:
        rows = self._conn().execute(
            f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE account_id = ? "
            "ORDER BY created_at DESC, id DESC",
            (account_id,),
        )
        return [Token(*row) for row in rows]

    def revoke_token(self, token_id: str, now: str) -> bool:
        with self._write() as c:
            done = c.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, token_id),
            )
            c.execute("DELETE FROM logins WHERE token_id = ?", (token_id,))
            return done.rowcount == 1

    def touch_token(self, token_id: str, now: str) -> None:
        with self._write() as c:
            c.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, token_id))

    # web logins
    def add_login(self, login: Login) -> None:
        try:
            with self._write() as c:
                c.execute(
                    "DELETE FROM logins WHERE account_id = ? AND expires_at <= ?",
                    (login.account_id, login.created_at),
                )
                c.execute(
                    f"INSERT INTO logins({LOGIN_COLUMNS}) VALUES (?,?,?,?,?)",
                    (
                        login.id,
                        login.account_id,
                        login.token_id,
                        login.created_at,
                        login.expires_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise NotFound(f"no account {login.account_id} (or no token {login.token_id})") from exc

    def get_login(self, login_id: str) -> Login | None:
        row = (
            self._conn()
            .execute(f"SELECT {LOGIN_COLUMNS} FROM logins WHERE id = ?", (login_id,))
            .fetchone()
        )
        return Login(*row) if row else None

    def end_login(self, login_id: str) -> bool:
        with self._write() as c:
            return c.execute("DELETE FROM logins WHERE id = ?", (login_id,)).rowcount == 1

    def end_password_logins(self, account_id: str) -> int:
        with self._write() as c:
            done = c.execute(
                "DELETE FROM logins WHERE account_id = ? AND token_id IS NULL", (account_id,)
            )
            return int(done.rowcount)

    # messages
    def get_messages(self, ids: Sequence[str]) -> dict[str, StoredMessage]:
        if not ids:
            return {}
        out: dict[str, StoredMessage] = {}
        conn = self._conn()
        for start in range(0, len(ids), 500):
            batch = list(ids[start : start + 500])
            marks = ",".join("?" * len(batch))
            rows = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ({marks})",
                batch,
            ).fetchall()
            out.update((row[0], stored_from(row)) for row in rows)
        return out

    def messages_with_blob(self, sha256: str) -> list[StoredMessage]:
        rows = self._conn().execute(
            "SELECT m.id FROM message_blobs b JOIN messages m ON m.rowid = b.message "
            "WHERE b.sha256 = ?",
            (sha256,),
        )
        return list(self.get_messages([row[0] for row in rows]).values())

    def chain(self, head: str, start: int = 0, limit: int | None = None) -> list[Message]:
        # No ORDER BY: sorting would copy every body through SQLite's sorter. The walk yields
        # head first; the rows are put in order here, and checked rather than trusted.
        stop = 2**62 if limit is None else start + limit
        with self._read() as c:
            if limit is not None and limit > 0:
                # A page far from the head starts its walk at its own last message.
                head = self._shortcut(c, head, start + limit - 1) or head
            rows = c.execute(
                _CHAIN + "SELECT chain.depth, m.id, m.parent, m.body FROM chain "
                "JOIN messages m ON m.rowid = chain.rowid "
                "WHERE chain.depth >= ? AND chain.depth < ?",
                (head, start, start, stop),
            ).fetchall()
        rows.reverse()
        if any(rows[i][0] >= rows[i + 1][0] for i in range(len(rows) - 1)):
            rows.sort(key=lambda row: row[0])
        return [message_from(mid, parent, body) for _, mid, parent, body in rows]

    def _shortcut(self, c: sqlite3.Connection, head: str, depth: int) -> str | None:
        """The head's ancestor at `depth` without walking to it, when the head's family (the
        messages that share its first message) holds only one message at that depth: every
        chain through the family passes there. None when the walk is needed."""
        row = c.execute("SELECT root, depth FROM messages WHERE id = ?", (head,)).fetchone()
        if row is None or row[1] <= depth + 32:  # close to the head, walking is as cheap
            return None
        found = c.execute(
            "SELECT id FROM messages WHERE root = ? AND depth = ? LIMIT 2", (row[0], depth)
        ).fetchall()
        return str(found[0][0]) if len(found) == 1 else None

    def ancestor(self, head: str, depth: int) -> str | None:
        conn = self._conn()
        if depth >= 0:
            found = self._shortcut(conn, head, depth)
            if found is not None:
                return found
        row = conn.execute(
            _CHAIN + "SELECT m.id FROM chain JOIN messages m ON m.rowid = chain.rowid "
            "WHERE chain.depth = ?",
            (head, depth, depth),
        ).fetchone()
        return row[0] if row else None

    def flagged(self, head: str) -> list[StoredMessage]:
        found: list[StoredMessage] = []
        row = self._conn().execute("SELECT flagged FROM messages WHERE id = ?", (head,)).fetchone()
        pointer = row[0] if row else None
        while pointer is not None:
            message = self.get_messages([pointer])[pointer]
            found.append(message)
            parent = message.message.parent
            pointer = None
            if parent is not None:
                prow = (
                    self._conn()
                    .execute("SELECT flagged FROM messages WHERE id = ?", (parent,))
                    .fetchone()
                )
                pointer = prow[0] if prow else None
        found.reverse()
        return found

    def _insert_messages(self, c: sqlite3.Connection, messages: Sequence[StoredMessage]) -> None:
        for sm in messages:
            cur = c.execute(
                f"INSERT OR IGNORE INTO messages({MESSAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                message_values(sm),
            )
            if cur.rowcount:
                rowid = cur.lastrowid
                c.execute("INSERT INTO message_search(rowid, text) VALUES (?, ?)", (rowid, sm.text))
                c.executemany(
                    "INSERT OR IGNORE INTO message_blobs(sha256, message) VALUES (?, ?)",
                    [(sha, rowid) for sha in sm.blobs],
                )

    # sessions
    def create_session(self, session: Session, messages: Sequence[StoredMessage] = ()) -> None:
        root = messages[0].root if messages else None
        with self._write() as c:
            self._insert_messages(c, messages)
            if session.head is not None and root is None:
                row = c.execute(
                    "SELECT root FROM messages WHERE id = ?", (session.head,)
                ).fetchone()
                if row is None:
                    raise NotFound(f"message {session.head} is not stored")
                root = row[0]
            c.execute(
                f"INSERT INTO sessions({SESSION_COLUMNS}, root) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (*self._session_values(session), root),
            )
            c.execute(
                "INSERT INTO session_search(rowid, title, task) VALUES (last_insert_rowid(), ?, ?)",
                (session.title, session.task),
            )
            _sync_git(c, session.id, {"git": session.git})

    @staticmethod
    def _session_values(s: Session) -> tuple[Any, ...]:
        return (
            s.id,
            s.owner,
            s.title,
            s.task,
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
            s.repo,
            int(s.title_auto),
            *totals_values(s.totals),
        )

    def get_session(self, session_id: str) -> Session | None:
        row = (
            self._conn()
            .execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,))
            .fetchone()
        )
        return session_from(row) if row else None

    def find_session(self, owner: str, head: str) -> Session | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions WHERE owner = ? AND head = ? "
                "AND root = (SELECT root FROM messages WHERE id = ?) ORDER BY rowid LIMIT 1",
                (owner, head, head),
            )
            .fetchone()
        )
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
        with self._write() as c:
            if remember is not None:  # the write lock is held: no one else claims the key
                kept = _kept(c, session_id, remember.key, remember.now)
                if kept is not None:
                    raise Answered(kept)
            self._insert_messages(c, messages)
            sets, values = self._changes(changes)
            cur = c.execute(
                "UPDATE sessions SET head = ?, root = ?, message_count = ?, version = version + 1, "
                "input_tokens = ?, output_tokens = ?, cache_read_tokens = ?, "
                f"cache_write_tokens = ?, cost_usd = ?{sets} WHERE id = ? AND head IS ?",
                (
                    last.message.id,
                    last.root,
                    last.depth + 1,
                    *totals_values(last.totals),
                    *values,
                    session_id,
                    expected_head,
                ),
            )
            if cur.rowcount == 0:
                row = c.execute("SELECT head FROM sessions WHERE id = ?", (session_id,)).fetchone()
                if row is None:
                    raise NotFound(f"no session {session_id}")
                raise Conflict(
                    f"the session moved on: its head is {row[0]}, not {expected_head}", row[0]
                )
            self._sync_search(c, session_id, changes)
            _sync_git(c, session_id, changes)
            session = _fetch_session(c, session_id)
            if remember is not None:
                _keep(c, session_id, remember.key, remember.answer(session), remember.now)
            return session

    @staticmethod
    def _changes(changes: dict[str, Any]) -> tuple[str, list[Any]]:
        unknown = set(changes) - SESSION_FIELDS
        if unknown:
            raise ValueError(f"cannot change {unknown}")
        sets, values = "", list[Any]()
        for key, value in changes.items():
            sets += f", {key} = ?"
            if key in ("metadata", "git"):
                values.append(dump(value))
            elif key == "title_auto":
                values.append(int(value))
            else:
                values.append(value)
        return sets, values

    @staticmethod
    def _sync_search(c: sqlite3.Connection, session_id: str, changes: dict[str, Any]) -> None:
        if "title" in changes or "task" in changes:
            c.execute(
                "UPDATE session_search SET title = s.title, task = s.task FROM "
                "(SELECT rowid, title, task FROM sessions WHERE id = ?) AS s "
                "WHERE session_search.rowid = s.rowid",
                (session_id,),
            )

    def update_session(
        self, session_id: str, expected_version: int | None, changes: dict[str, Any]
    ) -> Session:
        with self._write() as c:
            sets, values = self._changes(changes)
            cur = c.execute(
                f"UPDATE sessions SET version = version + 1{sets} "
                "WHERE id = ? AND (? IS NULL OR version = ?)",
                (*values, session_id, expected_version, expected_version),
            )
            if cur.rowcount == 0:
                row = c.execute(
                    "SELECT version FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                if row is None:
                    raise NotFound(f"no session {session_id}")
                raise VersionMismatch(
                    f"the session is at version {row[0]}, not {expected_version}", row[0]
                )
            self._sync_search(c, session_id, changes)
            _sync_git(c, session_id, changes)
            return _fetch_session(c, session_id)

    def list_sessions(self, query: ListQuery) -> Page:
        where, args = list_filters(query, "?")
        prefix = ""
        match = fts_query(query.text) if query.text else None
        if query.text and match is None:
            return Page([], None)
        if match is not None:
            prefix = """
WITH RECURSIVE hits(rowid) AS (SELECT rowid FROM message_search WHERE message_search MATCH ?),
hit_messages(id, root, depth) AS (
  SELECT m.id, m.root, m.depth FROM messages m WHERE m.rowid IN (SELECT rowid FROM hits)),
walk(sid, mid, depth, floor) AS (
  SELECT s.rowid, s.head, s.message_count - 1,
         (SELECT min(h.depth) FROM hit_messages h WHERE h.root = s.root)
  FROM sessions s WHERE s.owner = ? AND s.root IN (SELECT root FROM hit_messages)
  UNION ALL
  SELECT w.sid, m.parent, w.depth - 1, w.floor FROM walk w JOIN messages m ON m.id = w.mid
  WHERE w.depth > w.floor
),
found(sid) AS (SELECT DISTINCT w.sid FROM walk w JOIN hit_messages h ON h.id = w.mid)
"""
            args = [match, query.owner, *args]
            where.append(
                "(s.rowid IN (SELECT rowid FROM session_search WHERE session_search MATCH ?)"
                " OR s.rowid IN (SELECT sid FROM found))"
            )
            args.append(match)
        args.append(query.limit + 1)
        with self._read() as c:
            rows = c.execute(listing_sql(prefix, where, "?"), args).fetchall()
        return page_of(rows, query.limit)

    def delete_session(self, session_id: str, now: str) -> list[str]:
        with self._write() as c:
            row = c.execute(
                "SELECT rowid, root FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no session {session_id}")
            rowid, root = row
            # Redacted copies of this session's shares can start a chain of their own (when
            # the first message held the secret): their family is collected too.
            roots = {root} | {
                r[0]
                for r in c.execute(
                    "SELECT DISTINCT root FROM shares WHERE session_id = ? AND root IS NOT NULL",
                    (session_id,),
                )
            }
            roots.discard(None)
            c.execute("DELETE FROM session_search WHERE rowid = ?", (rowid,))
            c.execute("DELETE FROM sessions WHERE rowid = ?", (rowid,))
            freed: set[str] = set()
            for family in sorted(roots):
                freed.update(self._collect(c, now, family))
            return sorted(freed)

    def _collect(self, c: sqlite3.Connection, now: str, root: str | None) -> list[str]:
        """Delete unreachable messages (of one family, or all when root is None)."""
        family = "" if root is None else " AND root = ?"
        fargs: list[Any] = [] if root is None else [root]
        c.execute("CREATE TEMP TABLE IF NOT EXISTS reach(id TEXT PRIMARY KEY) WITHOUT ROWID")
        c.execute("DELETE FROM reach")
        c.execute(
            f"""
WITH RECURSIVE heads(id) AS (
  SELECT head FROM sessions WHERE head IS NOT NULL{family}
  UNION SELECT head FROM shares WHERE head IS NOT NULL AND {_LIVE_SHARE}{family}
), walk(id) AS (
  SELECT id FROM heads
  UNION SELECT m.parent FROM messages m JOIN walk w ON m.id = w.id WHERE m.parent IS NOT NULL
)
INSERT INTO reach SELECT id FROM walk""",
            (*fargs, now, *fargs),
        )
        doomed = c.execute(
            f"SELECT rowid, body FROM messages WHERE id NOT IN (SELECT id FROM reach){family}",
            fargs,
        ).fetchall()
        if not doomed:
            return []
        rowids = [r[0] for r in doomed]
        c.executemany(
            "INSERT INTO message_search(message_search, rowid, text) VALUES ('delete', ?, ?)",
            [(rid, message_text(orjson.loads(body)["parts"])) for rid, body in doomed],
        )
        shas: set[str] = set()
        for start in range(0, len(rowids), 500):
            batch = rowids[start : start + 500]
            marks = ",".join("?" * len(batch))
            shas.update(
                r[0]
                for r in c.execute(
                    f"SELECT sha256 FROM message_blobs WHERE message IN ({marks})", batch
                )
            )
            c.execute(f"DELETE FROM messages WHERE rowid IN ({marks})", batch)
        freed = [
            sha
            for sha in sorted(shas)
            if c.execute("SELECT 1 FROM message_blobs WHERE sha256 = ?", (sha,)).fetchone() is None
        ]
        c.execute("DELETE FROM reach")
        return freed

    # shares
    def create_share(self, share: Share, messages: Sequence[StoredMessage] = ()) -> None:
        with self._write() as c:
            self._insert_messages(c, messages)
            root = None
            if share.head is not None:
                row = c.execute("SELECT root FROM messages WHERE id = ?", (share.head,)).fetchone()
                if row is None:
                    raise NotFound(f"message {share.head} is not stored")
                root = row[0]
            c.execute(
                f"INSERT INTO shares({SHARE_COLUMNS}, root) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    share.id,
                    share.session_id,
                    share.owner,
                    orjson.dumps(share.shared_by),
                    share.head,
                    share.message_count,
                    share.title,
                    share.task,
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
            c.executemany(
                "INSERT OR IGNORE INTO share_blobs(share_id, sha256) VALUES (?, ?)",
                [(share.id, sha) for sha in git_blobs(share.git)],
            )

    def get_share(self, share_id: str) -> Share | None:
        row = (
            self._conn()
            .execute(f"SELECT {SHARE_COLUMNS} FROM shares WHERE id = ?", (share_id,))
            .fetchone()
        )
        return share_from(row) if row else None

    def list_shares(self, owner: str | None = None, session_id: str | None = None) -> list[Share]:
        where, args = [], []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if session_id is not None:
            where.append("session_id = ?")
            args.append(session_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = (
            self._conn()
            .execute(
                f"SELECT {SHARE_COLUMNS} FROM shares {clause} ORDER BY created_at DESC, id", args
            )
            .fetchall()
        )
        return [share_from(r) for r in rows]

    def revoke_share(self, share_id: str, now: str) -> Share:
        with self._write() as c:
            c.execute(
                "UPDATE shares SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, share_id),
            )
            row = c.execute(
                f"SELECT {SHARE_COLUMNS} FROM shares WHERE id = ?", (share_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no share {share_id}")
        return share_from(row)

    # blob access and idempotency keys
    def grant_blobs(self, account: str, shas: Sequence[str], now: str) -> None:
        if not shas:
            return
        with self._write() as c:
            c.executemany(
                "INSERT OR IGNORE INTO blob_grants(account, sha256, created_at) VALUES (?, ?, ?)",
                [(account, sha, now) for sha in shas],
            )

    def granted_blobs(self, account: str, shas: Sequence[str]) -> set[str]:
        found: set[str] = set()
        conn = self._conn()
        for sha in set(shas):
            row = conn.execute(
                "SELECT 1 FROM blob_grants WHERE account = ? AND sha256 = ? UNION ALL "
                "SELECT 1 FROM session_blobs b JOIN sessions s ON s.id = b.session_id "
                "WHERE b.sha256 = ? AND s.owner = ? LIMIT 1",
                (account, sha, sha, account),
            ).fetchone()
            if row is not None:
                found.add(sha)
        return found

    def family_heads(self, owner: str, root: str) -> list[str]:
        rows = self._conn().execute(
            "SELECT head FROM sessions WHERE root = ? AND owner = ? AND head IS NOT NULL",
            (root, owner),
        )
        return [row[0] for row in rows]

    def recall(self, session_id: str, key: str, since: str) -> Remembered | None:
        row = (
            self._conn()
            .execute(
                "SELECT request, status, response FROM idempotency_keys "
                "WHERE session_id = ? AND key = ? AND created_at >= ?",
                (session_id, key, since),
            )
            .fetchone()
        )
        return Remembered(row[0], row[1], orjson.loads(row[2])) if row else None

    def remember(self, session_id: str, key: str, answer: Remembered, now: str) -> Remembered:
        with self._write() as c:
            kept = _kept(c, session_id, key, now)
            if kept is not None:
                return kept
            if c.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
                raise NotFound(f"no session {session_id}")
            _keep(c, session_id, key, answer, now)
        return answer

    # maintenance
    def iter_sessions(self) -> Iterator[Session]:
        rows = (
            self._conn()
            .execute(f"SELECT {SESSION_COLUMNS} FROM sessions ORDER BY rowid")
            .fetchall()
        )
        for row in rows:
            yield session_from(row)

    def gc(self, now: str) -> tuple[int, list[str]]:
        with self._write() as c:
            before = c.execute("SELECT count(*) FROM messages").fetchone()[0]
            freed = self._collect(c, now, None)
            after = c.execute("SELECT count(*) FROM messages").fetchone()[0]
        return before - after, freed

    def release_blobs(self, shas: Sequence[str], delete: Callable[[list[str]], None]) -> list[str]:
        if not shas:
            return []
        with self._write() as c:
            doomed = [
                sha
                for sha in shas
                if c.execute("SELECT 1 FROM message_blobs WHERE sha256 = ?", (sha,)).fetchone()
                is None
                and c.execute(_GIT_REFERENCE, (sha, sha)).fetchone() is None
            ]
            delete(doomed)
            c.executemany("DELETE FROM blob_grants WHERE sha256 = ?", [(sha,) for sha in doomed])
        return doomed

    def referenced_blobs(self) -> set[str]:
        conn = self._conn()
        found = {r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM message_blobs")}
        found.update(r[0] for r in conn.execute(_GIT_REFERENCES))
        return found

    def integrity_check(self) -> str:
        return str(self._conn().execute("PRAGMA integrity_check").fetchone()[0])


def _sync_git(c: sqlite3.Connection, session_id: str, changes: dict[str, Any]) -> None:
    """Keep session_blobs naming the blobs of the session's git snapshot, when it changes."""
    if "git" not in changes:
        return
    c.execute("DELETE FROM session_blobs WHERE session_id = ?", (session_id,))
    c.executemany(
        "INSERT OR IGNORE INTO session_blobs(session_id, sha256) VALUES (?, ?)",
        [(session_id, sha) for sha in git_blobs(changes["git"])],
    )


def _kept(c: sqlite3.Connection, session_id: str, key: str, now: str) -> Remembered | None:
    """The live answer kept for `key`, after forgetting every expired one."""
    c.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (idempotency_cutoff(now),))
    row = c.execute(
        "SELECT request, status, response FROM idempotency_keys WHERE session_id = ? AND key = ?",
        (session_id, key),
    ).fetchone()
    return Remembered(row[0], row[1], orjson.loads(row[2])) if row else None


def _keep(c: sqlite3.Connection, session_id: str, key: str, answer: Remembered, now: str) -> None:
    c.execute(
        "INSERT INTO idempotency_keys(session_id, key, request, status, response, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (session_id, key, answer.request, answer.status, orjson.dumps(answer.response), now),
    )


def _fetch_session(c: sqlite3.Connection, session_id: str) -> Session:
    row = c.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no session {session_id}")
    return session_from(row)


def _wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. Several processes opening a new database at once can find it locked
    while one of them switches (SQLite does not wait there): try again for a while."""
    for attempt in range(200):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 199:
                raise
            time.sleep(0.05)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection, begin: str) -> None:
        self.conn = conn
        self.begin = begin

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute(self.begin)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise Busy("the database is busy with another writer; try again") from exc
            raise
        return self.conn

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        if kind is not None:
            self.conn.execute("ROLLBACK")
            return
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # A failed COMMIT (a deferred foreign key) leaves the transaction open, and every
            # later write on this connection would fail: end it here.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError) and "FOREIGN KEY" in str(exc):
                raise NotFound("a message this refers to is not stored") from exc
            raise
