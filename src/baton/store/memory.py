"""An in-memory store: the reference implementation of the contract, and a fast test fake."""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from baton.core.errors import Conflict, NotFound, VersionMismatch
from baton.core.models import JSON, Account, Login, Message, Session, Share, StoredMessage, Token
from baton.core.runs import PREPARING, QUEUED, Environment, Repo, Run
from baton.core.validation import message_text
from baton.store.base import (
    SESSION_FIELDS,
    Answered,
    ListQuery,
    Page,
    Remembered,
    Remembering,
    Store,
    decode_cursor,
    encode_cursor,
    git_blobs,
    idempotency_cutoff,
)


class MemoryStore(Store):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._messages: dict[str, StoredMessage] = {}
        self._scan_rules: int | None = None
        self._sessions: dict[str, Session] = {}
        self._shares: dict[str, Share] = {}
        self._passwords: dict[str, str] = {}
        self._tokens: dict[str, Token] = {}
        self._logins: dict[str, Login] = {}
        self._grants: dict[tuple[str, str], str] = {}  # (account, sha256) -> when
        self._answers: dict[tuple[str, str], tuple[Remembered, str]] = {}  # (session, key)
        self._repos: dict[str, Repo] = {}
        self._environments: dict[str, Environment] = {}
        self._runs: dict[str, Run] = {}

    def add_account(self, account: Account) -> None:
        with self._lock:
            if account.id in self._accounts or self.find_account(account.handle):
                raise ValueError(f"account {account.handle} exists")
            self._accounts[account.id] = copy.copy(account)

    def get_account(self, account_id: str) -> Account | None:
        account = self._accounts.get(account_id)
        return copy.copy(account) if account else None

    def find_account(self, handle: str) -> Account | None:
        for account in self._accounts.values():
            if account.handle == handle:
                return copy.copy(account)
        return None

    def list_accounts(self) -> list[Account]:
        return sorted(
            (copy.copy(a) for a in self._accounts.values()), key=lambda a: (a.created_at, a.id)
        )

    def set_password(self, account_id: str, password_hash: str | None) -> None:
        with self._lock:
            if account_id not in self._accounts:
                raise NotFound(f"no account {account_id}")
            if password_hash is None:
                self._passwords.pop(account_id, None)
            else:
                self._passwords[account_id] = password_hash

    def password_hash(self, account_id: str) -> str | None:
        return self._passwords.get(account_id)

    def add_token(self, token: Token) -> None:
        with self._lock:
            if token.account_id not in self._accounts:
                raise NotFound(f"no account {token.account_id}")
            self._tokens[token.id] = copy.copy(token)

    def find_token(self, token_hash: str) -> Token | None:
        for token in self._tokens.values():
            if token.token_hash == token_hash:
                return copy.copy(token)
        return None

    def list_tokens(self, account_id: str) -> list[Token]:
        found = [copy.copy(t) for t in self._tokens.values() if t.account_id == account_id]
        return sorted(found, key=lambda t: (t.created_at, t.id), reverse=True)

    def revoke_token(self, token_id: str, now: str) -> bool:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None or token.revoked_at is not None:
                return False
            token.revoked_at = now
            for login in [g for g in self._logins.values() if g.token_id == token_id]:
                del self._logins[login.id]
            return True

    def touch_token(self, token_id: str, now: str) -> None:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is not None:
                token.last_used_at = now

    def add_login(self, login: Login) -> None:
        with self._lock:
            if login.account_id not in self._accounts:
                raise NotFound(f"no account {login.account_id}")
            if login.token_id is not None and login.token_id not in self._tokens:
                raise NotFound(f"no token {login.token_id}")
            for old in list(self._logins.values()):
                if old.account_id == login.account_id and old.expires_at <= login.created_at:
                    del self._logins[old.id]
            self._logins[login.id] = copy.copy(login)

    def get_login(self, login_id: str) -> Login | None:
        login = self._logins.get(login_id)
        return copy.copy(login) if login else None

    def end_login(self, login_id: str) -> bool:
        with self._lock:
            return self._logins.pop(login_id, None) is not None

    def end_password_logins(self, account_id: str) -> int:
        with self._lock:
            ended = [
                g.id
                for g in self._logins.values()
                if g.account_id == account_id and g.token_id is None
            ]
            for login_id in ended:
                del self._logins[login_id]
            return len(ended)

    def messages_with_blob(self, sha256: str) -> list[StoredMessage]:
        return [sm for sm in self._messages.values() if sha256 in sm.blobs]

    def get_messages(self, ids: Sequence[str]) -> dict[str, StoredMessage]:
        return {i: self._messages[i] for i in ids if i in self._messages}

    def _walk(self, head: str | None) -> Iterator[StoredMessage]:
        while head is not None:
            sm = self._messages[head]
            yield sm
            head = sm.message.parent

    def chain(self, head: str, start: int = 0, limit: int | None = None) -> list[Message]:
        with self._lock:
            if head not in self._messages:
                return []
            items = [sm.message for sm in self._walk(head) if sm.depth >= start]
        items.reverse()
        return items if limit is None else items[:limit]

    def ancestor(self, head: str, depth: int) -> str | None:
        with self._lock:
            if head not in self._messages:
                return None
            for sm in self._walk(head):
                if sm.depth == depth:
                    return sm.message.id
        return None

    def flagged(self, head: str) -> list[StoredMessage]:
        with self._lock:
            found = []
            pointer = self._messages[head].flagged if head in self._messages else None
            while pointer is not None:
                sm = self._messages[pointer]
                found.append(sm)
                parent = sm.message.parent
                pointer = self._messages[parent].flagged if parent else None
        found.reverse()
        return found

    def scan_rules(self) -> int | None:
        return self._scan_rules

    def set_scan_rules(self, version: int) -> None:
        self._scan_rules = version

    def count_messages(self) -> int:
        return len(self._messages)

    def messages_in_order(
        self, after: tuple[str, int, str] | None, limit: int
    ) -> list[StoredMessage]:
        with self._lock:
            keyed = sorted((sm.root, sm.depth, sm.message.id) for sm in self._messages.values())
        keys = [k for k in keyed if after is None or k > after][:limit]
        return [self._messages[k[2]] for k in keys]

    def set_findings(self, updates: Sequence[tuple[str, list[JSON], str | None]]) -> None:
        with self._lock:
            for mid, findings, flagged in updates:
                if mid in self._messages:
                    sm = self._messages[mid]
                    self._messages[mid] = dataclasses.replace(
                        sm, findings=list(findings), flagged=flagged
                    )

    def _insert(self, messages: Sequence[StoredMessage]) -> None:
        """All or nothing: every parent is checked before anything is stored."""
        given = {sm.message.id for sm in messages}
        for sm in messages:
            parent = sm.message.parent
            if parent is not None and parent not in self._messages and parent not in given:
                raise NotFound(f"parent {parent} is not stored")
        for sm in messages:
            self._messages.setdefault(sm.message.id, sm)

    def create_session(self, session: Session, messages: Sequence[StoredMessage] = ()) -> None:
        with self._lock:
            if session.id in self._sessions:
                raise ValueError(f"session {session.id} exists")
            if session.owner not in self._accounts:
                raise NotFound(f"no account {session.owner}")
            if (
                session.head is not None
                and session.head not in self._messages
                and not any(m.message.id == session.head for m in messages)
            ):
                raise NotFound(f"message {session.head} is not stored")
            self._insert(messages)
            self._sessions[session.id] = copy.deepcopy(session)

    def get_session(self, session_id: str) -> Session | None:
        with self._lock:
            session = self._sessions.get(session_id)
            return copy.deepcopy(session) if session else None

    def find_session(self, owner: str, head: str) -> Session | None:
        with self._lock:
            for session in self._sessions.values():
                if session.owner == owner and session.head == head:
                    return copy.deepcopy(session)
        return None

    def append(
        self,
        session_id: str,
        expected_head: str | None,
        messages: Sequence[StoredMessage],
        changes: dict[str, Any],
        remember: Remembering | None = None,
    ) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise NotFound(f"no session {session_id}")
            if remember is not None:
                kept = self.recall(session_id, remember.key, idempotency_cutoff(remember.now))
                if kept is not None:
                    raise Answered(kept)
            if session.head != expected_head:
                raise Conflict(
                    f"the session moved on: its head is {session.head}, not {expected_head}",
                    session.head,
                )
            self._check(changes)
            self._insert(messages)
            last = messages[-1]
            updated = dataclasses.replace(
                session,
                head=last.message.id,
                message_count=last.depth + 1,
                totals=last.totals,
                version=session.version + 1,
                **changes,
            )
            self._sessions[session_id] = updated
            if remember is not None:
                self.remember(session_id, remember.key, remember.answer(updated), remember.now)
            return copy.deepcopy(updated)

    @staticmethod
    def _check(changes: dict[str, Any]) -> None:
        unknown = set(changes) - SESSION_FIELDS
        if unknown:
            raise ValueError(f"cannot change {unknown}")

    def update_session(
        self, session_id: str, expected_version: int | None, changes: dict[str, Any]
    ) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise NotFound(f"no session {session_id}")
            if expected_version is not None and session.version != expected_version:
                raise VersionMismatch(
                    f"the session is at version {session.version}, not {expected_version}",
                    session.version,
                )
            self._check(changes)
            updated = dataclasses.replace(
                session, version=session.version + 1, **copy.deepcopy(changes)
            )
            self._sessions[session_id] = updated
            return copy.deepcopy(updated)

    def _contains(self, session: Session, words: list[str]) -> bool:
        haystack = f"{session.title}\n{session.task}".lower()
        if all(w in haystack for w in words):
            return True
        return any(
            all(w in message_text(sm.message.parts).lower() for w in words)
            for sm in self._walk(session.head)
        )

    def list_sessions(self, query: ListQuery) -> Page:
        with self._lock:
            found = [s for s in self._sessions.values() if s.owner == query.owner]
            if query.status:
                found = [s for s in found if s.status == query.status]
            if query.repo:
                found = [s for s in found if s.repo == query.repo]
            if query.text is not None:
                words = query.text.lower().split()
                found = [s for s in found if words and self._contains(s, words)]
            found.sort(key=lambda s: (s.updated_at, s.id), reverse=True)
            if query.cursor:
                key = decode_cursor(query.cursor)
                found = [s for s in found if (s.updated_at, s.id) < key]
            page = [copy.deepcopy(s) for s in found[: query.limit]]
        cursor = None
        if len(found) > query.limit:
            cursor = encode_cursor(page[-1].updated_at, page[-1].id)
        return Page(page, cursor)

    def delete_session(self, session_id: str, now: str) -> list[str]:
        with self._lock:
            if self._sessions.pop(session_id, None) is None:
                raise NotFound(f"no session {session_id}")
            for k in [k for k in self._answers if k[0] == session_id]:
                del self._answers[k]
            for run_id in [r.id for r in self._runs.values() if r.session_id == session_id]:
                del self._runs[run_id]
            return self._collect(now)

    def _collect(self, now: str) -> list[str]:
        heads = [s.head for s in self._sessions.values()]
        heads += [s.head for s in self._shares.values() if s.state(now) == "live"]
        reach: set[str] = set()
        for head in heads:
            for sm in self._walk(head):
                if sm.message.id in reach:
                    break
                reach.add(sm.message.id)
        doomed = [i for i in self._messages if i not in reach]
        shas: set[str] = set()
        for i in doomed:
            shas.update(self._messages.pop(i).blobs)
        return sorted(shas - self.referenced_blobs())

    def create_share(self, share: Share, messages: Sequence[StoredMessage] = ()) -> None:
        with self._lock:
            if (
                share.head is not None
                and share.head not in self._messages
                and not any(m.message.id == share.head for m in messages)
            ):
                raise NotFound(f"message {share.head} is not stored")
            self._insert(messages)
            self._shares[share.id] = copy.deepcopy(share)

    def get_share(self, share_id: str) -> Share | None:
        share = self._shares.get(share_id)
        return copy.deepcopy(share) if share else None

    def list_shares(self, owner: str | None = None, session_id: str | None = None) -> list[Share]:
        with self._lock:
            found = [
                copy.deepcopy(s)
                for s in self._shares.values()
                if (owner is None or s.owner == owner)
                and (session_id is None or s.session_id == session_id)
            ]
        found.sort(key=lambda s: s.id)
        found.sort(key=lambda s: s.created_at, reverse=True)
        return found

    def revoke_share(self, share_id: str, now: str) -> Share:
        with self._lock:
            share = self._shares.get(share_id)
            if share is None:
                raise NotFound(f"no share {share_id}")
            if share.revoked_at is None:
                share.revoked_at = now
            return copy.deepcopy(share)

    def grant_blobs(self, account: str, shas: Sequence[str], now: str) -> None:
        with self._lock:
            for sha in shas:
                self._grants.setdefault((account, sha), now)

    def granted_blobs(self, account: str, shas: Sequence[str]) -> set[str]:
        with self._lock:
            found = {sha for sha in shas if (account, sha) in self._grants}
            for session in self._sessions.values():
                if session.owner == account:
                    found.update(sha for sha in git_blobs(session.git) if sha in shas)
            return found

    def family_heads(self, owner: str, root: str) -> list[str]:
        with self._lock:
            return [
                s.head
                for s in self._sessions.values()
                if s.owner == owner and s.head is not None and self._messages[s.head].root == root
            ]

    def recall(self, session_id: str, key: str, since: str) -> Remembered | None:
        with self._lock:
            kept = self._answers.get((session_id, key))
            return copy.deepcopy(kept[0]) if kept and kept[1] >= since else None

    def remember(self, session_id: str, key: str, answer: Remembered, now: str) -> Remembered:
        since = idempotency_cutoff(now)
        with self._lock:
            for k in [k for k, (_, at) in self._answers.items() if at < since]:
                del self._answers[k]
            kept = self._answers.setdefault((session_id, key), (copy.deepcopy(answer), now))
            return copy.deepcopy(kept[0])

    # server runs
    def add_repo(self, repo: Repo) -> None:
        with self._lock:
            if repo.owner not in self._accounts:
                raise NotFound(
                    f"a repository named {repo.name!r} refers to something that is not stored"
                )
            if repo.id in self._repos or any(
                r.owner == repo.owner and r.name == repo.name for r in self._repos.values()
            ):
                raise Conflict(f"a repository named {repo.name!r} exists already", None)
            self._repos[repo.id] = repo

    def get_repo(self, repo_id: str) -> Repo | None:
        return self._repos.get(repo_id)

    def list_repos(self, owner: str) -> list[Repo]:
        with self._lock:
            found = [r for r in self._repos.values() if r.owner == owner]
        return sorted(found, key=lambda r: (r.name, r.id))

    def delete_repo(self, repo_id: str) -> bool:
        with self._lock:
            return self._repos.pop(repo_id, None) is not None

    def _named(self, environment: Environment) -> bool:
        return any(
            e.owner == environment.owner and e.name == environment.name and e.id != environment.id
            for e in self._environments.values()
        )

    def add_environment(self, environment: Environment) -> None:
        with self._lock:
            if environment.owner not in self._accounts:
                raise NotFound(
                    f"an environment named {environment.name!r} refers to something that is "
                    "not stored"
                )
            if environment.id in self._environments or self._named(environment):
                raise Conflict(f"an environment named {environment.name!r} exists already", None)
            self._environments[environment.id] = environment

    def get_environment(self, environment_id: str) -> Environment | None:
        return self._environments.get(environment_id)

    def list_environments(self, owner: str) -> list[Environment]:
        with self._lock:
            found = [e for e in self._environments.values() if e.owner == owner]
        return sorted(found, key=lambda e: (e.name, e.id))

    def put_environment(self, environment: Environment) -> None:
        with self._lock:
            if environment.id not in self._environments:
                raise NotFound(f"no environment {environment.id}")
            if self._named(environment):
                raise Conflict(f"an environment named {environment.name!r} exists already", None)
            self._environments[environment.id] = environment

    def delete_environment(self, environment_id: str) -> bool:
        with self._lock:
            return self._environments.pop(environment_id, None) is not None

    def add_run(self, run: Run) -> None:
        with self._lock:
            if run.session_id not in self._sessions:
                raise NotFound(f"no session {run.session_id}")
            if run.id in self._runs:
                raise Conflict(f"run {run.id} exists already", None)
            active = [r for r in self._runs.values() if r.session_id == run.session_id and r.active]
            if active and run.active:
                raise Conflict(
                    f"session {run.session_id} has a run in progress ({active[0].id}): "
                    "wait for it or stop it",
                    None,
                )
            self._runs[run.id] = run

    def get_run(self, run_id: str) -> Run | None:
        return self._runs.get(run_id)

    def list_runs(
        self, owner: str | None = None, session_id: str | None = None, limit: int = 50
    ) -> list[Run]:
        with self._lock:
            found = [
                r
                for r in self._runs.values()
                if (owner is None or r.owner == owner)
                and (session_id is None or r.session_id == session_id)
            ]
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return found[:limit]

    def put_run(self, run: Run, expect_states: Sequence[str] | None = None) -> bool:
        with self._lock:
            stored = self._runs.get(run.id)
            if stored is None or (expect_states is not None and stored.state not in expect_states):
                return False
            if stored.cancel_requested and not run.cancel_requested:
                run = dataclasses.replace(run, cancel_requested=True)
            self._runs[run.id] = run
            return True

    def active_runs(self, owner: str) -> list[Run]:
        with self._lock:
            found = [r for r in self._runs.values() if r.owner == owner and r.active]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def claim_run(self, worker: str, now: str) -> Run | None:
        with self._lock:
            queued = [r for r in self._runs.values() if r.state == QUEUED]
            if not queued:
                return None
            oldest = min(queued, key=lambda r: (r.created_at, r.id))
            run = oldest.moved(PREPARING, now, worker=worker, heartbeat_at=now)
            self._runs[run.id] = run
            return run

    def stale_runs(self, before: str) -> list[Run]:
        with self._lock:
            found = [
                r
                for r in self._runs.values()
                if r.state in ("preparing", "running") and (r.heartbeat_at or r.updated_at) < before
            ]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def waiting_runs(self, before: str) -> list[Run]:
        with self._lock:
            found = [
                r for r in self._runs.values() if r.state == "queued" and r.created_at < before
            ]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def iter_sessions(self) -> Iterator[Session]:
        with self._lock:
            sessions = [copy.deepcopy(s) for s in self._sessions.values()]
        yield from sessions

    def gc(self, now: str) -> tuple[int, list[str]]:
        with self._lock:
            before = len(self._messages)
            freed = self._collect(now)
            return before - len(self._messages), freed

    def message_ids(self) -> set[str]:
        """The id of every message held, reachable or not (what a test of gc looks at, as it
        would look at the rows of a database)."""
        with self._lock:
            return set(self._messages)

    def release_blobs(self, shas: Sequence[str], delete: Callable[[list[str]], None]) -> list[str]:
        with self._lock:
            referenced = self.referenced_blobs()
            doomed = [sha for sha in shas if sha not in referenced]
            delete(doomed)
            for k in [k for k in self._grants if k[1] in doomed]:
                del self._grants[k]
        return doomed

    def referenced_blobs(self) -> set[str]:
        with self._lock:
            found = {sha for sm in self._messages.values() for sha in sm.blobs}
            for session in self._sessions.values():
                found.update(git_blobs(session.git))
            for share in self._shares.values():
                if share.revoked_at is None:
                    found.update(git_blobs(share.git))
            return found
