"""What the SQL stores (SQLite and PostgreSQL) do alike, written once over a `Dialect`:
accounts, tokens, web logins, sessions' rows, shares, blob grants and references, idempotency
keys, listing and its text search, an append's conditional UPDATE. A backend supplies how a
statement runs (`_reading`, `_writing`), the blob lock PostgreSQL's servers need, its search
index (FTS5 or tsvector), and what is truly its own: inserting messages, walking chains, the
append's transaction, collecting garbage."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import orjson

from baton.core.errors import Busy, Conflict, NotFound, VersionMismatch
from baton.core.models import JSON, Account, Login, Session, Share, StoredMessage, Token
from baton.store.base import (
    SESSION_FIELDS,
    ImportPlan,
    ListQuery,
    Page,
    Remembered,
    Store,
    batches,
    git_blobs,
)
from baton.store.sql.dialect import Dialect
from baton.store.sql.rows import (
    LOGIN_COLUMNS,
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    SHARE_COLUMNS,
    TOKEN_COLUMNS,
    dump,
    list_filters,
    listing_sql,
    page_of,
    session_from,
    share_from,
    stored_from,
    totals_values,
)


class _Nothing(Exception):
    """An import that plans nothing: its transaction is rolled back."""


_ACCOUNT = "SELECT id, handle, display_name, created_at FROM accounts"
_LIVE_SHARE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"


def search_prefix(hits: str, sid: str) -> str:
    """The WITH prefix of a listing's text search, given `hits`, the definition of
    hit_messages(id, root, depth) (the messages that match), and `sid`, what names a row of
    `sessions s`: found(sid) are the sessions whose chain passes through a hit, walked from
    each head down to its family's first hit."""
    return f"""
WITH RECURSIVE {hits},
walk(sid, mid, depth, floor) AS (
  SELECT {sid}, s.head, s.message_count - 1,
         (SELECT min(h.depth) FROM hit_messages h WHERE h.root = s.root)
  FROM sessions s WHERE s.owner = ? AND s.root IN (SELECT root FROM hit_messages)
  UNION ALL
  SELECT w.sid, m.parent, w.depth - 1, w.floor FROM walk w JOIN messages m ON m.id = w.mid
  WHERE w.depth > w.floor
),
found(sid) AS (SELECT DISTINCT w.sid FROM walk w JOIN hit_messages h ON h.id = w.mid)
"""


class Rows(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Cursor(Protocol):
    """What the shared code asks of a connection (SQLite) or a cursor (psycopg)."""

    def execute(self, query: str, params: Any = ..., /) -> Rows: ...

    def executemany(self, query: str, params: Iterable[Any], /) -> object: ...


C = TypeVar("C", bound=Cursor)
T = TypeVar("T")


class SQLStore(Store, Generic[C]):
    dialect: ClassVar[Dialect]
    # What a write that names a missing account or token raises (the backend's error).
    missing: ClassVar[tuple[type[Exception], ...]]

    # how statements run
    @abstractmethod
    def _reading(self, work: Callable[[C], T]) -> T:
        """Run `work` as a read."""

    @abstractmethod
    def _writing(self, work: Callable[[C], T]) -> T:
        """Run `work` in one write transaction."""

    def _statement(self, work: Callable[[C], T]) -> T:
        """Run a write of one statement (which is a transaction of its own)."""
        return self._writing(work)

    def _lock_blobs(self, c: C, shared: bool) -> None:
        """Taken shared by writers that add a blob reference, alone by those freeing blobs
        (a backend whose writers are serialised anyway needs none)."""

    def _sql(self, query: str) -> str:
        return self.dialect.sql(query)

    # what each backend does its own way
    @abstractmethod
    def _insert_messages(self, c: C, messages: Sequence[StoredMessage]) -> None: ...

    def _insert_imported(self, c: C, messages: Sequence[StoredMessage]) -> None:
        """An import's messages (a backend that `defers_scan` keeps them unscanned)."""
        self._insert_messages(c, messages)

    @abstractmethod
    def _collect(self, c: C, now: str, root: str | None) -> list[str]:
        """Delete unreachable messages (of one family, or all when root is None); return
        the blobs no message names any more."""

    # A listing's text search, with `?` placeholders: what defines hit_messages(id, root,
    # depth), the messages that match; what names a row of `sessions s`; the term by which a
    # session's title or task matches.
    _hits: ClassVar[str]
    _session_row: ClassVar[str]
    _title_match: ClassVar[str]

    @abstractmethod
    def _match(self, text: str) -> str | None:
        """A user's words as this database's search query; None when there is no word."""

    def _family(self, root: str | None) -> tuple[str, list[Any]]:
        """The term (and its argument) that keeps garbage collection to one family."""
        return ("", []) if root is None else (f" AND root = {self.dialect.mark}", [root])

    def _reachable(self, root: str | None, now: str) -> tuple[str, list[Any]]:
        """A WITH clause naming walk(id): the messages a session's head or a live share's
        reaches (of one family, or all when root is None); and its arguments."""
        family, fargs = self._family(root)
        clause = f"""
WITH RECURSIVE heads(id) AS (
  SELECT head FROM sessions WHERE head IS NOT NULL{family}
  UNION SELECT head FROM shares WHERE head IS NOT NULL AND {self._sql(_LIVE_SHARE)}{family}
), walk(id) AS (
  SELECT id FROM heads
  UNION SELECT m.parent FROM messages m JOIN walk w ON m.id = w.id WHERE m.parent IS NOT NULL
)
"""
        return clause, [*fargs, now, *fargs]

    def _created(self, c: C, session: Session) -> None:
        """After a session's row is inserted (SQLite indexes its title and task)."""

    # accounts
    def add_account(self, account: Account) -> None:
        d = self.dialect
        self._writing(
            lambda c: c.execute(
                self._sql(
                    "INSERT INTO accounts(id, handle, display_name, created_at) VALUES (?,?,?,?)"
                ),
                (
                    account.id,
                    d.text(account.handle),
                    d.text(account.display_name),
                    account.created_at,
                ),
            )
        )

    def _account(self, where: str, value: str) -> Account | None:
        row = self._reading(
            lambda c: c.execute(self._sql(f"{_ACCOUNT} WHERE {where} = ?"), (value,)).fetchone()
        )
        return Account(*row) if row else None

    def get_account(self, account_id: str) -> Account | None:
        return self._account("id", account_id)

    def find_account(self, handle: str) -> Account | None:
        return self._account("handle", handle)

    def list_accounts(self) -> list[Account]:
        rows = self._reading(lambda c: c.execute(f"{_ACCOUNT} ORDER BY created_at, id").fetchall())
        return [Account(*row) for row in rows]

    def set_password(self, account_id: str, password_hash: str | None) -> None:
        def work(c: C) -> None:
            done = c.execute(
                self._sql("UPDATE accounts SET password_hash = ? WHERE id = ?"),
                (password_hash, account_id),
            )
            if done.rowcount == 0:
                raise NotFound(f"no account {account_id}")

        self._writing(work)

    def password_hash(self, account_id: str) -> str | None:
        row = self._reading(
            lambda c: c.execute(
                self._sql("SELECT password_hash FROM accounts WHERE id = ?"), (account_id,)
            ).fetchone()
        )
        return row[0] if row else None

    # tokens
    def add_token(self, token: Token) -> None:
        values = (
            token.id,
            token.account_id,
            self.dialect.text(token.name),
            token.kind,
            token.token_hash,
            token.created_at,
            token.expires_at,
            token.revoked_at,
            token.last_used_at,
        )
        try:
            self._writing(lambda c: c.execute(self.dialect.insert("tokens", TOKEN_COLUMNS), values))
        except self.missing as exc:
            raise NotFound(f"no account {token.account_id}") from exc

    def find_token(self, token_hash: str) -> Token | None:
        row = self._reading(
            lambda c: c.execute(
                self._sql(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?"), (token_hash,)
            ).fetchone()
        )
        return Token(*row) if row else None

    def list_tokens(self, account_id: str) -> list[Token]:
        rows = self._reading(
            lambda c: c.execute(
                self._sql(
                    f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE account_id = ? "
                    "ORDER BY created_at DESC, id DESC"
                ),
                (account_id,),
            ).fetchall()
        )
        return [Token(*row) for row in rows]

    def revoke_token(self, token_id: str, now: str) -> bool:
        def work(c: C) -> bool:
            done = c.execute(
                self._sql("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
                (now, token_id),
            )
            revoked = done.rowcount == 1
            c.execute(self._sql("DELETE FROM logins WHERE token_id = ?"), (token_id,))
            return revoked

        return self._writing(work)

    def touch_token(self, token_id: str, now: str) -> None:
        self._statement(
            lambda c: c.execute(
                self._sql("UPDATE tokens SET last_used_at = ? WHERE id = ?"), (now, token_id)
            )
        )

    # web logins
    def add_login(self, login: Login) -> None:
        def work(c: C) -> None:
            c.execute(
                self._sql("DELETE FROM logins WHERE account_id = ? AND expires_at <= ?"),
                (login.account_id, login.created_at),
            )
            c.execute(
                self.dialect.insert("logins", LOGIN_COLUMNS),
                (login.id, login.account_id, login.token_id, login.created_at, login.expires_at),
            )

        try:
            self._writing(work)
        except self.missing as exc:
            raise NotFound(f"no account {login.account_id} (or no token {login.token_id})") from exc

    def get_login(self, login_id: str) -> Login | None:
        row = self._reading(
            lambda c: c.execute(
                self._sql(f"SELECT {LOGIN_COLUMNS} FROM logins WHERE id = ?"), (login_id,)
            ).fetchone()
        )
        return Login(*row) if row else None

    def end_login(self, login_id: str) -> bool:
        return self._writing(
            lambda c: (
                c.execute(self._sql("DELETE FROM logins WHERE id = ?"), (login_id,)).rowcount == 1
            )
        )

    def end_password_logins(self, account_id: str) -> int:
        return self._writing(
            lambda c: (
                c.execute(
                    self._sql("DELETE FROM logins WHERE account_id = ? AND token_id IS NULL"),
                    (account_id,),
                ).rowcount
            )
        )

    # messages
    def get_messages(self, ids: Sequence[str]) -> dict[str, StoredMessage]:
        if not ids:
            return {}

        def work(c: C) -> dict[str, StoredMessage]:
            out: dict[str, StoredMessage] = {}
            for term, args in self.dialect.any_of("id", ids):
                rows = c.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {term}", args)
                out.update((row[0], stored_from(row)) for row in rows.fetchall())
            return out

        return self._reading(work)

    # the secret scan's rules version, and the one-time rescan
    def scan_rules(self) -> int | None:
        def work(c: C) -> int | None:
            row = c.execute("SELECT version FROM scan_rules").fetchone()
            return int(row[0]) if row else None

        return self._reading(work)

    def set_scan_rules(self, version: int) -> None:
        def work(c: C) -> None:
            c.execute("DELETE FROM scan_rules")
            c.execute(self._sql("INSERT INTO scan_rules(version) VALUES (?)"), (version,))

        self._writing(work)

    def count_messages(self) -> int:
        return int(
            self._reading(lambda c: c.execute("SELECT count(*) FROM messages").fetchone()[0])
        )

    def messages_in_order(
        self, after: tuple[str, int, str] | None, limit: int
    ) -> list[StoredMessage]:
        def work(c: C) -> list[StoredMessage]:
            where = "WHERE (root, depth, id) > (?, ?, ?) " if after is not None else ""
            query = (
                f"SELECT {MESSAGE_COLUMNS} FROM messages {where}ORDER BY root, depth, id LIMIT ?"
            )
            args = (*after, limit) if after is not None else (limit,)
            return [stored_from(row) for row in c.execute(self._sql(query), args).fetchall()]

        return self._reading(work)

    def set_findings(self, updates: Sequence[tuple[str, list[JSON], str | None]]) -> None:
        def work(c: C) -> None:
            c.executemany(
                self._sql("UPDATE messages SET findings = ?, flagged = ? WHERE id = ?"),
                [(dump(findings or None), flagged, mid) for mid, findings, flagged in updates],
            )

        if updates:
            self._writing(work)

    def _root_of(self, c: C, head: str) -> str:
        row = c.execute(self._sql("SELECT root FROM messages WHERE id = ?"), (head,)).fetchone()
        if row is None:
            raise NotFound(f"message {head} is not stored")
        return str(row[0])

    # sessions
    def create_session(self, session: Session, messages: Sequence[StoredMessage] = ()) -> None:
        def work(c: C) -> None:
            if git_blobs(session.git):
                self._lock_blobs(c, shared=True)
            self._insert_messages(c, messages)
            root = messages[0].root if messages else None
            if session.head is not None and root is None:
                root = self._root_of(c, session.head)
            c.execute(
                self.dialect.insert("sessions", f"{SESSION_COLUMNS}, root"),
                (*self._session_values(session), root),
            )
            self._created(c, session)
            self._sync_git(c, session.id, {"git": session.git})

        self._writing(work)

    _IMPORT_BATCH = 256

    def import_chain(
        self, messages: Iterable[StoredMessage], finish: Callable[[], ImportPlan]
    ) -> Session | None:
        began = False

        def work(c: C) -> Session:
            nonlocal began
            if began:  # a retried transaction: the messages were taken already
                raise Busy("the database is busy with other writers; try again")
            began = True
            self._lock_blobs(c, shared=True)  # blob files written meanwhile stay referenced
            for batch in batches(messages, self._IMPORT_BATCH):
                self._insert_imported(c, batch)
            plan = finish()
            if plan.grant is not None and plan.grant[1]:
                account, shas, now = plan.grant
                c.executemany(
                    self.dialect.insert("blob_grants", "account, sha256, created_at", True),
                    [(account, sha, now) for sha in shas],
                )
            if plan.create is not None:
                session = plan.create
                root = self._root_of(c, session.head) if session.head is not None else None
                c.execute(
                    self.dialect.insert("sessions", f"{SESSION_COLUMNS}, root"),
                    (*self._session_values(session), root),
                )
                self._created(c, session)
                self._sync_git(c, session.id, {"git": session.git})
                return session
            if plan.append is None:
                raise _Nothing
            session_id, expected, last, changes = plan.append
            move, args = self._move(session_id, expected, [last], changes)
            if c.execute(move, args).rowcount == 0:
                raise self._not_moved(c, session_id, expected)
            self._sync_search(c, session_id, changes)
            self._sync_git(c, session_id, changes)
            return self._fetch_session(c, session_id)

        try:
            return self._writing(work)
        except _Nothing:
            return None

    def _sync_search(self, c: C, session_id: str, changes: dict[str, Any]) -> None:
        """After a session's title or task changed (SQLite re-indexes them)."""

    def _session_values(self, s: Session) -> tuple[Any, ...]:
        d = self.dialect
        return (
            s.id,
            s.owner,
            d.text(s.title),
            d.text(s.task),
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
            d.text(s.repo),
            d.flag(s.title_auto),
            *totals_values(s.totals),
            *totals_values(s.inherited),
        )

    def _changes(self, changes: dict[str, Any]) -> tuple[str, list[Any]]:
        """The SET terms (each after a comma) and values of a session's changed fields."""
        unknown = set(changes) - SESSION_FIELDS
        if unknown:
            raise ValueError(f"cannot change {unknown}")
        sets, values = "", list[Any]()
        for key, value in changes.items():
            sets += f", {key} = {self.dialect.mark}"
            if key in ("metadata", "git", "forked_from"):
                values.append(dump(value))
            elif key == "title_auto":
                values.append(self.dialect.flag(value))
            elif isinstance(value, str):
                values.append(self.dialect.text(value))
            else:
                values.append(value)
        return sets, values

    def _move(
        self,
        session_id: str,
        expected_head: str | None,
        messages: Sequence[StoredMessage],
        changes: dict[str, Any],
    ) -> tuple[str, tuple[Any, ...]]:
        """An append's UPDATE (and its arguments): the head moves to the last message only
        while it is still `expected_head`, and the session's counts follow."""
        last = messages[-1]
        sets, values = self._changes(changes)
        move = self._sql(
            "UPDATE sessions SET head = ?, root = ?, message_count = ?, version = version + 1, "
            "input_tokens = ?, output_tokens = ?, cache_read_tokens = ?, "
            f"cache_write_tokens = ?, cost_usd = ?{sets} "
            f"WHERE id = ? AND head {self.dialect.same} ?"
        )
        args = (
            last.message.id,
            last.root,
            last.depth + 1,
            *totals_values(last.totals),
            *values,
            session_id,
            expected_head,
        )
        return move, args

    def _not_moved(self, c: C, session_id: str, expected_head: str | None) -> Exception:
        """Why an append's conditional UPDATE changed no row."""
        row = c.execute(
            self._sql("SELECT head FROM sessions WHERE id = ?"), (session_id,)
        ).fetchone()
        if row is None:
            return NotFound(f"no session {session_id}")
        return Conflict(f"the session moved on: its head is {row[0]}, not {expected_head}", row[0])

    def _not_updated(self, c: C, session_id: str, expected_version: int | None) -> Exception:
        """Why an update's conditional UPDATE changed no row."""
        row = c.execute(
            self._sql("SELECT version FROM sessions WHERE id = ?"), (session_id,)
        ).fetchone()
        if row is None:
            return NotFound(f"no session {session_id}")
        return VersionMismatch(
            f"the session is at version {row[0]}, not {expected_version}", row[0]
        )

    def _fetch_session(self, c: C, session_id: str) -> Session:
        row = c.execute(
            self._sql(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?"), (session_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no session {session_id}")
        return session_from(row)

    def _sync_git(self, c: C, session_id: str, changes: dict[str, Any]) -> None:
        """Keep session_blobs naming the blobs of the session's git snapshot, when it changes."""
        if "git" not in changes:
            return
        c.execute(self._sql("DELETE FROM session_blobs WHERE session_id = ?"), (session_id,))
        found = [(session_id, sha) for sha in git_blobs(changes["git"])]
        if found:
            c.executemany(self.dialect.insert("session_blobs", "session_id, sha256", True), found)

    def get_session(self, session_id: str) -> Session | None:
        row = self._reading(
            lambda c: c.execute(
                self._sql(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?"), (session_id,)
            ).fetchone()
        )
        return session_from(row) if row else None

    def find_session(self, owner: str, head: str) -> Session | None:
        row = self._reading(
            lambda c: c.execute(
                self._sql(
                    f"SELECT {SESSION_COLUMNS} FROM sessions WHERE owner = ? AND head = ? "
                    "AND root = (SELECT root FROM messages WHERE id = ?) "
                    f"ORDER BY {self.dialect.order} LIMIT 1"
                ),
                (owner, head, head),
            ).fetchone()
        )
        return session_from(row) if row else None

    def imported_sessions(self, owner: str, mentioning: str) -> list[Session]:
        # The owner's imported headers (no index on metadata): the string is looked for in
        # the raw bytes (JSON-encoded, as stored) before a header is read whole.
        needle = orjson.dumps(mentioning)[1:-1]
        rows = self._reading(
            lambda c: c.execute(
                self._sql(
                    "SELECT id, metadata, forked_from FROM sessions "
                    "WHERE owner = ? AND platform = 'import' ORDER BY updated_at DESC, id DESC"
                ),
                (owner,),
            ).fetchall()
        )
        found = []
        for session_id, metadata, origin in rows:
            if needle in bytes(metadata) or (origin is not None and needle in bytes(origin)):
                session = self.get_session(session_id)
                if session is not None:
                    found.append(session)
        return found

    def list_sessions(self, query: ListQuery) -> Page:
        d = self.dialect
        where, args = list_filters(query, d.mark)
        args = [d.text(a) if isinstance(a, str) else a for a in args]
        prefix = ""
        if query.text:
            match = self._match(query.text)
            if match is None:
                return Page([], None)
            prefix = self._sql(search_prefix(self._hits, self._session_row))
            args = [match, query.owner, *args, match]
            where.append(
                self._sql(
                    f"({self._title_match} OR {self._session_row} IN (SELECT sid FROM found))"
                )
            )
        args.append(query.limit + 1)
        rows = self._reading(
            lambda c: c.execute(listing_sql(prefix, where, d.mark), args).fetchall()
        )
        return page_of(rows, query.limit)

    def _family_roots(self, c: C, session_id: str, root: str | None) -> list[str]:
        """The families a deleted session's messages belong to: its own, and those of
        redacted copies of its shares, which can start a chain of their own (when the first
        message held the secret)."""
        roots = {root} | {
            r[0]
            for r in c.execute(
                self._sql(
                    "SELECT DISTINCT root FROM shares WHERE session_id = ? AND root IS NOT NULL"
                ),
                (session_id,),
            ).fetchall()
        }
        return sorted(r for r in roots if r is not None)

    # shares
    def create_share(self, share: Share, messages: Sequence[StoredMessage] = ()) -> None:
        def work(c: C) -> None:
            if git_blobs(share.git):
                self._lock_blobs(c, shared=True)
            self._insert_messages(c, messages)
            root = None if share.head is None else self._root_of(c, share.head)
            c.execute(
                self.dialect.insert("shares", f"{SHARE_COLUMNS}, root"),
                (*self._share_values(share), root),
            )
            found = [(share.id, sha) for sha in git_blobs(share.git)]
            if found:
                c.executemany(self.dialect.insert("share_blobs", "share_id, sha256", True), found)

        self._writing(work)

    def _share_values(self, share: Share) -> tuple[Any, ...]:
        return (
            share.id,
            share.session_id,
            share.owner,
            orjson.dumps(share.shared_by),
            share.head,
            share.message_count,
            self.dialect.text(share.title),
            self.dialect.text(share.task),
            orjson.dumps(share.metadata),
            dump(share.git),
            share.created_at,
            share.expires_at,
            share.revoked_at,
            orjson.dumps(share.redacted),
            *totals_values(share.totals),
            *totals_values(share.inherited),
        )

    def get_share(self, share_id: str) -> Share | None:
        row = self._reading(
            lambda c: c.execute(
                self._sql(f"SELECT {SHARE_COLUMNS} FROM shares WHERE id = ?"), (share_id,)
            ).fetchone()
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
        query = self._sql(
            f"SELECT {SHARE_COLUMNS} FROM shares {clause} ORDER BY created_at DESC, id"
        )
        rows = self._reading(lambda c: c.execute(query, args).fetchall())
        return [share_from(r) for r in rows]

    def revoke_share(self, share_id: str, now: str) -> Share:
        def work(c: C) -> Share:
            c.execute(
                self._sql("UPDATE shares SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
                (now, share_id),
            )
            row = c.execute(
                self._sql(f"SELECT {SHARE_COLUMNS} FROM shares WHERE id = ?"), (share_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no share {share_id}")
            return share_from(row)

        return self._writing(work)

    # blob access and idempotency keys
    def grant_blobs(self, account: str, shas: Sequence[str], now: str) -> None:
        if not shas:
            return
        self._writing(
            lambda c: c.executemany(
                self.dialect.insert("blob_grants", "account, sha256, created_at", True),
                [(account, sha, now) for sha in shas],
            )
        )

    def family_heads(self, owner: str, root: str) -> list[str]:
        rows = self._reading(
            lambda c: c.execute(
                self._sql(
                    "SELECT head FROM sessions WHERE root = ? AND owner = ? AND head IS NOT NULL"
                ),
                (root, owner),
            ).fetchall()
        )
        return [row[0] for row in rows]

    def recall(self, session_id: str, key: str, since: str) -> Remembered | None:
        row = self._reading(
            lambda c: c.execute(
                self._sql(
                    "SELECT request, status, response FROM idempotency_keys "
                    "WHERE session_id = ? AND key = ? AND created_at >= ?"
                ),
                (session_id, key, since),
            ).fetchone()
        )
        return Remembered(row[0], row[1], orjson.loads(row[2])) if row else None

    # maintenance
    def iter_sessions(self) -> Iterator[Session]:
        rows = self._reading(
            lambda c: c.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions ORDER BY {self.dialect.order}"
            ).fetchall()
        )
        for row in rows:
            yield session_from(row)

    def gc(self, now: str) -> tuple[int, list[str]]:
        def work(c: C) -> tuple[int, list[str]]:
            # One collector at a time, and no writer adding a blob reference meanwhile.
            self._lock_blobs(c, shared=False)
            before = c.execute("SELECT count(*) FROM messages").fetchone()[0]
            freed = self._collect(c, now, None)
            after = c.execute("SELECT count(*) FROM messages").fetchone()[0]
            return int(before - after), freed

        return self._writing(work)

    def release_blobs(self, shas: Sequence[str], delete: Callable[[list[str]], None]) -> list[str]:
        if not shas:
            return []
        # A git snapshot's patch and bundle are blobs too: kept while a session or an
        # unrevoked share names them in its `git` header (session_blobs, share_blobs).
        used = self._sql(
            "SELECT 1 FROM message_blobs WHERE sha256 = ? "
            "UNION ALL SELECT 1 FROM session_blobs WHERE sha256 = ? "
            "UNION ALL SELECT 1 FROM share_blobs b JOIN shares s ON s.id = b.share_id "
            "WHERE b.sha256 = ? AND s.revoked_at IS NULL LIMIT 1"
        )

        def work(c: C) -> list[str]:
            self._lock_blobs(c, shared=False)
            doomed = [sha for sha in shas if c.execute(used, (sha, sha, sha)).fetchone() is None]
            delete(doomed)
            for term, args in self.dialect.any_of("sha256", doomed):
                c.execute(f"DELETE FROM blob_grants WHERE {term}", args)
            return doomed

        return self._writing(work)

    def referenced_blobs(self) -> set[str]:
        def work(c: C) -> set[str]:
            found = {
                r[0] for r in c.execute("SELECT DISTINCT sha256 FROM message_blobs").fetchall()
            }
            found.update(
                r[0]
                for r in c.execute(
                    "SELECT sha256 FROM session_blobs UNION SELECT b.sha256 FROM share_blobs b "
                    "JOIN shares s ON s.id = b.share_id WHERE s.revoked_at IS NULL"
                ).fetchall()
            )
            return found

        return self._reading(work)
