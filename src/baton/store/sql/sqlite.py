"""The embedded store: SQLite in WAL mode, synchronous=FULL, foreign keys on. What it shares
with PostgreSQL is in common.py; here are connections and transactions, FTS5 search, and the
message walks that lean on SQLite's rowids."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson

from baton.core.errors import Busy, NotFound
from baton.core.models import JSON, Message, Session, StoredMessage
from baton.core.validation import message_text
from baton.store import migrations
from baton.store.base import (
    Answered,
    ListQuery,
    Page,
    Remembered,
    Remembering,
    idempotency_cutoff,
)
from baton.store.migration import Migration
from baton.store.sql.dialect import SQLITE
from baton.store.sql.rows import (
    MESSAGE_COLUMNS,
    dump,
    message_from,
    message_values,
    stored_from,
)
from baton.store.sql.runs import RunsSQLStore

BRIEF_WAIT_MS = 50  # how long a thread that must not stall waits for another writer
PAGE_SIZE = 16384  # bodies of a few kB fit a page: a third less time to write them than at 4096
INDEX_BATCH = 500  # messages indexed for search per transaction, after an import
WAL_TRIES = 1200  # 50 ms apart: how long an opener waits to switch the database to WAL
_CHAIN = """
WITH RECURSIVE chain(rowid, parent, depth) AS (
  SELECT rowid, parent, depth FROM messages WHERE id = ?
  UNION ALL
  SELECT m.rowid, m.parent, m.depth FROM messages m JOIN chain c ON m.id = c.parent
  WHERE c.depth > ?
)
"""
_QUALIFIED = ", ".join(f"m.{column.strip()}" for column in MESSAGE_COLUMNS.split(","))
T = TypeVar("T")


def fts_query(text: str) -> str | None:
    """A user's words as an FTS5 query: every word must appear, the last one as a prefix."""
    words = [w.replace('"', '""') for w in text.split()]
    if not words:
        return None
    terms = [f'"{w}"' for w in words]
    terms[-1] += "*"
    return " ".join(terms)


class SQLiteStore(RunsSQLStore[sqlite3.Connection]):
    """One connection per thread; writes take the database lock up front (BEGIN IMMEDIATE)."""

    dialect = SQLITE
    missing = (sqlite3.IntegrityError,)
    defers_scan = True

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
    def _violation(self, exc: Exception) -> str | None:
        if isinstance(exc, sqlite3.IntegrityError):
            text = str(exc)
            if text.startswith("UNIQUE"):
                return "unique"
            if text.startswith("FOREIGN KEY"):
                return "missing"
        return None

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60
            )
            # A new database's pages hold a message body or two each (set before its first
            # table; an existing database keeps its own).
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            _wal(conn)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout()}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _busy_timeout(self) -> int:
        """How long, in ms, this thread's statements wait for another writer."""
        return BRIEF_WAIT_MS if self._brief() else 60000

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

    def _reading(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return work(self._conn())

    def _writing(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._write() as c:
            return work(c)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

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
                c.execute(
                    "INSERT INTO message_search(rowid, text) VALUES (?, ?)",
                    (rowid, message_text(sm.message.parts)),
                )
                c.executemany(
                    "INSERT OR IGNORE INTO message_blobs(sha256, message) VALUES (?, ?)",
                    [(sha, rowid) for sha in sm.blobs],
                )

    def _insert_imported(self, c: sqlite3.Connection, messages: Sequence[StoredMessage]) -> None:
        """An import's messages in one statement, left unindexed and unscanned (the first search
        and the first pass reading findings catch up): an import stores what it must."""
        (top,) = c.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()
        c.executemany(
            f"INSERT OR IGNORE INTO messages({MESSAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [message_values(sm) for sm in messages],
        )
        # New rows take rowids above every stored one; a message stored already is not new.
        c.execute("INSERT INTO unindexed SELECT rowid FROM messages WHERE rowid > ?", (top,))
        c.execute("INSERT INTO unscanned SELECT rowid FROM messages WHERE rowid > ?", (top,))
        c.executemany(
            "INSERT OR IGNORE INTO message_blobs(sha256, message) "
            "SELECT ?, rowid FROM messages WHERE id = ? AND rowid > ?",
            [(sha, sm.message.id, top) for sm in messages for sha in sm.blobs],
        )

    def _index_imported(self) -> None:
        """Index for search the messages imports left unindexed, a batch per transaction."""
        conn = self._conn()
        while conn.execute("SELECT 1 FROM unindexed LIMIT 1").fetchone() is not None:
            with self._write() as c:
                rows = c.execute(
                    "SELECT u.rowid, m.body FROM unindexed u LEFT JOIN messages m "
                    "ON m.rowid = u.rowid ORDER BY u.rowid LIMIT ?",
                    (INDEX_BATCH,),
                ).fetchall()
                c.executemany(
                    "INSERT INTO message_search(rowid, text) VALUES (?, ?)",
                    [
                        (rowid, message_text(orjson.loads(body)["parts"]))
                        for rowid, body in rows
                        if body is not None  # gone (deleted): its mark goes too
                    ],
                )
                c.executemany("DELETE FROM unindexed WHERE rowid = ?", [(r,) for r, _ in rows])

    @contextmanager
    def alone(self) -> Iterator[None]:
        """While no other connection has the database open, a rollback journal instead of
        the WAL: a big import's pages are written once, not to the WAL and then again by its
        checkpoint (for 100 MB, 0.2 s of 0.4). A process opening it meanwhile waits (`_wal`);
        one that has it open already keeps the WAL as it is."""
        conn = self._conn()
        conn.execute("PRAGMA busy_timeout=0")  # asked once, not waited for
        try:
            mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        except sqlite3.OperationalError:  # "database is locked": someone else has it open
            mode = None
        finally:
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout()}")
        try:
            yield
        finally:
            if mode == "delete":
                _wal(conn)

    def list_sessions(self, query: ListQuery) -> Page:
        if query.text:
            self._index_imported()
        return super().list_sessions(query)

    def unscanned(self, limit: int) -> list[StoredMessage]:
        rows = (
            self._conn()
            .execute(
                f"SELECT {_QUALIFIED} FROM unscanned u JOIN messages m ON m.rowid = u.rowid "
                "ORDER BY u.rowid LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [stored_from(row) for row in rows]

    def count_unscanned(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM unscanned").fetchone()[0])

    def settle_scan(self, found: Sequence[tuple[str, list[JSON]]]) -> None:
        if not found:
            return
        with self._write() as c:
            c.executemany(
                "UPDATE messages SET findings = ? WHERE id = ?",
                [(dump(findings or None), mid) for mid, findings in found],
            )
            c.executemany(
                "DELETE FROM unscanned WHERE rowid = (SELECT rowid FROM messages WHERE id = ?)",
                [(mid,) for mid, _ in found],
            )
            marks = ",".join("?" * len(found))
            roots = [
                r[0]
                for r in c.execute(
                    f"SELECT DISTINCT root FROM messages WHERE id IN ({marks})",
                    [mid for mid, _ in found],
                )
            ]
            for root in roots:  # every pointer after a message whose findings were unknown
                pointers: dict[str, str | None] = {}
                moved = []
                for mid, parent, flagged, was in c.execute(
                    "SELECT id, parent, findings IS NOT NULL, flagged FROM messages "
                    "WHERE root = ? ORDER BY depth",
                    (root,),
                ):
                    pointer = mid if flagged else pointers.get(parent) if parent else None
                    pointers[mid] = pointer
                    if pointer != was:
                        moved.append((pointer, mid))
                c.executemany("UPDATE messages SET flagged = ? WHERE id = ?", moved)

    # sessions
    def _created(self, c: sqlite3.Connection, session: Session) -> None:
        c.execute(
            "INSERT INTO session_search(rowid, title, task) VALUES (last_insert_rowid(), ?, ?)",
            (session.title, session.task),
        )

    def append(
        self,
        session_id: str,
        expected_head: str | None,
        messages: Sequence[StoredMessage],
        changes: dict[str, Any],
        remember: Remembering | None = None,
    ) -> Session:
        move, args = self._move(session_id, expected_head, messages, changes)
        with self._write() as c:
            if remember is not None:  # the write lock is held: no one else claims the key
                kept = _kept(c, session_id, remember.key, remember.now)
                if kept is not None:
                    raise Answered(kept)
            self._insert_messages(c, messages)
            cur = c.execute(move, args)
            if cur.rowcount == 0:
                raise self._not_moved(c, session_id, expected_head)
            self._sync_search(c, session_id, changes)
            self._sync_git(c, session_id, changes)
            session = self._fetch_session(c, session_id)
            if remember is not None:
                _keep(c, session_id, remember.key, remember.answer(session), remember.now)
            return session

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
                raise self._not_updated(c, session_id, expected_version)
            self._sync_search(c, session_id, changes)
            self._sync_git(c, session_id, changes)
            return self._fetch_session(c, session_id)

    _hits = (
        "hits(rowid) AS (SELECT rowid FROM message_search WHERE message_search MATCH ?),\n"
        "hit_messages(id, root, depth) AS (\n"
        "  SELECT m.id, m.root, m.depth FROM messages m WHERE m.rowid IN (SELECT rowid FROM hits))"
    )
    _session_row = "s.rowid"
    _title_match = "s.rowid IN (SELECT rowid FROM session_search WHERE session_search MATCH ?)"

    def _match(self, text: str) -> str | None:
        return fts_query(text)

    def delete_session(self, session_id: str, now: str) -> list[str]:
        with self._write() as c:
            row = c.execute(
                "SELECT rowid, root FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no session {session_id}")
            rowid, root = row
            roots = self._family_roots(c, session_id, root)
            c.execute("DELETE FROM session_search WHERE rowid = ?", (rowid,))
            c.execute("DELETE FROM sessions WHERE rowid = ?", (rowid,))
            freed: set[str] = set()
            for family in roots:
                freed.update(self._collect(c, now, family))
            return sorted(freed)

    def _collect(self, c: sqlite3.Connection, now: str, root: str | None) -> list[str]:
        """Delete unreachable messages (of one family, or all when root is None)."""
        c.execute("CREATE TEMP TABLE IF NOT EXISTS reach(id TEXT PRIMARY KEY) WITHOUT ROWID")
        c.execute("DELETE FROM reach")
        reachable, args = self._reachable(root, now)
        c.execute(reachable + "INSERT INTO reach SELECT id FROM walk", args)
        family, fargs = self._family(root)
        doomed = c.execute(
            "SELECT rowid, body, rowid IN (SELECT rowid FROM unindexed) FROM messages "
            f"WHERE id NOT IN (SELECT id FROM reach){family}",
            fargs,
        ).fetchall()
        if not doomed:
            return []
        rowids = [r[0] for r in doomed]
        c.executemany(  # out of the index what is in it (an import's may not be yet)
            "INSERT INTO message_search(message_search, rowid, text) VALUES ('delete', ?, ?)",
            [
                (rid, message_text(orjson.loads(body)["parts"]))
                for rid, body, unindexed in doomed
                if not unindexed
            ],
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

    # blob access and idempotency keys
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
    def integrity_check(self) -> str:
        return str(self._conn().execute("PRAGMA integrity_check").fetchone()[0])


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


def _wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. Several processes opening a new database at once can find it locked
    while one of them switches, and so does one opening it while an import has it alone
    (`SQLiteStore.alone`); SQLite does not wait there: try again for a minute."""
    for attempt in range(WAL_TRIES):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_TRIES - 1:
                raise
            time.sleep(0.05)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection, begin: str) -> None:
        self.conn = conn
        self.begin = begin
        # A read inside this thread's write (an import deciding how it ends) reads what
        # that write sees, in its transaction.
        self.within = begin == "BEGIN" and conn.in_transaction

    def __enter__(self) -> sqlite3.Connection:
        if self.within:
            return self.conn
        try:
            self.conn.execute(self.begin)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise Busy("the database is busy with another writer; try again") from exc
            raise
        return self.conn

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        if self.within:
            return
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
