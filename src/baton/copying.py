"""Copying a whole store into another (`baton copy`): accounts with their password hashes,
tokens, repositories, environments, sessions with their server runs, shares, messages and
blobs, exactly as they are stored.

Repositories and environments keep their ids, so their sealed parts (repository credentials,
environment secrets: AES-GCM bound to the id, under a key derived from the server secret)
open in the target only for servers with the same BATON_SECRET; otherwise they are to be set
again there. Runs are a server's history: they are copied as they ended; a run still queued
or under way in the source is copied as failed (COPIED_ACTIVE), so that the target neither
executes it a second time nor holds its session busy.

Everything goes through the Store and BlobStore interfaces, so any pair of backends works
(SQLite to PostgreSQL + S3 and back). Each session and each share is one create in the
target, made after the blobs it references: an interrupted copy leaves only whole objects,
the target never names a blob it lacks, and running the copy again carries on where it
stopped (what the target already holds is skipped, never written twice)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from baton.contract import VerifyReport
from baton.core.errors import Conflict, Corrupt, InvalidInput
from baton.core.models import JSON, Session, Share, StoredMessage, utcnow
from baton.core.runs import FAILED, Environment, Repo
from baton.scanning import SecretScanner
from baton.store import open_blobs, open_store
from baton.store.base import BlobStore, Store, git_blobs, safe_url

Progress = Callable[[int, int], None]
DB_FILE = "baton.db"
BLOB_FOLDER = "blobs"
COPIED_ACTIVE = (
    "the store was copied while this run was {state}: it did not run here (continue the "
    "session to go on)"
)
ALL_RUNS = 1_000_000  # a session's runs, all of them


def _quiet(done: int, total: int) -> None:
    """A progress callback that shows nothing."""


@dataclass(frozen=True)
class Location:
    """One side of a copy: the URL of its rows and the URL of its blobs (None: not given and
    not derivable, an error once the store URL is known to be a valid one)."""

    store_url: str
    blob_url: str | None
    blobs_flag: str  # the option that names the blobs, for the error message

    def describe(self) -> str:
        return safe_url(self.store_url)


def locate(value: str, blobs: str | None, blobs_flag: str) -> Location:
    """What `--from`/`--to` name. A plain path is a data folder (BATON_HOME: baton.db and
    blobs/ in it); a sqlite URL keeps its blobs beside the database; `memory://` its blobs in
    memory; any other URL needs its blob store named by `blobs_flag`."""
    value = value.strip()
    if not value:
        raise InvalidInput("a store is an empty string: give a folder or a store URL")
    if "://" not in value:
        folder = Path(value).expanduser().resolve()
        return Location(
            f"sqlite://{folder / DB_FILE}", blobs or f"file://{folder / BLOB_FOLDER}", blobs_flag
        )
    scheme = urlparse(value).scheme
    if scheme == "sqlite":
        path = value[len("sqlite://") :]
        if path in ("", ":memory:"):
            raise InvalidInput("a sqlite URL needs a file: sqlite:///PATH/baton.db")
        db = Path(path).expanduser().resolve()
        return Location(f"sqlite://{db}", blobs or f"file://{db.parent / BLOB_FOLDER}", blobs_flag)
    if scheme == "memory":
        return Location(value, blobs or "memory://", blobs_flag)
    return Location(value, blobs, blobs_flag)


def _sqlite_path(location: Location) -> Path | None:
    if urlparse(location.store_url).scheme != "sqlite":
        return None
    return Path(location.store_url[len("sqlite://") :])


def same_store(a: Location, b: Location) -> bool:
    path_a, path_b = _sqlite_path(a), _sqlite_path(b)
    if path_a is not None and path_b is not None:
        if path_a.exists() and path_b.exists():
            return path_a.samefile(path_b)
        return path_a == path_b
    if urlparse(a.store_url).scheme == "memory":
        return False  # every memory:// is a store of its own
    return a.store_url.rstrip("/") == b.store_url.rstrip("/")


def open_location(location: Location, *, must_exist: bool) -> tuple[Store, BlobStore]:
    """The store and blob store of a location. A source must exist: opening a SQLite file
    that is not there would make an empty store where the user meant to read one."""
    path = _sqlite_path(location)
    if must_exist and path is not None and not path.exists():
        raise InvalidInput(f"no baton store at {path} (there is no {path.name} there)")
    # A blob URL that is wrong fails before a new store is made for nothing; an unknown
    # store scheme is refused by open_store, in one line, before a missing blob URL is.
    blobs = open_blobs(location.blob_url) if location.blob_url is not None else None
    store = open_store(location.store_url)
    if blobs is None:
        store.close()
        scheme = urlparse(location.store_url).scheme
        raise InvalidInput(
            f"{location.blobs_flag} is needed with a {scheme}:// store: name its blob store "
            "(file:///PATH or s3://BUCKET?endpoint=URL)"
        )
    return store, blobs


@contextmanager
def opened(
    source: Location, target: Location
) -> Iterator[tuple[Store, BlobStore, Store, BlobStore]]:
    """Both sides of a copy, open (and closed after); copying a store onto itself is refused."""
    if same_store(source, target):
        raise InvalidInput(
            f"the source and the target are the same store ({source.describe()}); "
            "copy to another one"
        )
    src, src_blobs = open_location(source, must_exist=True)
    try:
        dst, dst_blobs = open_location(target, must_exist=False)
        try:
            yield src, src_blobs, dst, dst_blobs
        finally:
            dst.close()
    finally:
        src.close()


SKIPPABLE = ("accounts", "tokens", "repos", "environments", "sessions", "runs", "shares", "blobs")


def _skips() -> dict[str, int]:
    return dict.fromkeys(SKIPPABLE, 0)


@dataclass
class CopyReport:
    """What a copy did. The counts are what it wrote; `skipped` is what the target already
    held (a re-run after an interruption skips what the first run finished)."""

    accounts: int = 0
    tokens: int = 0
    repos: int = 0
    environments: int = 0
    sessions: int = 0
    runs: int = 0
    shares: int = 0
    messages: int = 0
    blobs: int = 0
    skipped: dict[str, int] = field(default_factory=_skips)
    # revoked or expired shares whose messages the source no longer holds (see `_Copier.share`)
    headless_shares: list[str] = field(default_factory=list)
    # blobs the source names but its blob store does not hold: the copy names them too
    missing_blobs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verified: VerifyReport | None = None

    def to_dict(self) -> JSON:
        out = dataclasses.asdict(self)
        out["verified"] = self.verified.to_dict() if self.verified else None
        return out


class _Copier:
    def __init__(
        self, source: Store, source_blobs: BlobStore, target: Store, target_blobs: BlobStore
    ) -> None:
        self.source, self.source_blobs = source, source_blobs
        self.target, self.target_blobs = target, target_blobs
        self.report = CopyReport()
        self.now = utcnow()
        self.sealed = 0  # repositories and environments copied with sealed credentials/secrets
        self._blobs_done: set[str] = set()  # in the target now (written or found there)

    def warn(self, line: str) -> None:
        self.report.warnings.append(line)

    def accounts(self) -> None:
        """Accounts first (sessions and tokens name them), each with its password hash and
        its tokens (hashes only; a token made for the source works against the target)."""
        report = self.report
        for account in self.source.list_accounts():
            present = self.target.get_account(account.id)
            if present is None:
                clash = self.target.find_account(account.handle)
                if clash is not None:
                    raise Conflict(
                        f"the target has another account named {account.handle} ({clash.id}); "
                        "copy into an empty store",
                        None,
                    )
                self.target.add_account(account)
                report.accounts += 1
            else:
                report.skipped["accounts"] += 1
                if present != account:
                    self.warn(f"account {account.handle} differs in the target; left as it is")
            password = self.source.password_hash(account.id)
            if password is not None:
                there = self.target.password_hash(account.id)
                if there is None:  # also an account a run stopped between its two writes
                    self.target.set_password(account.id, password)
                elif there != password:
                    self.warn(
                        f"account {account.handle} has another password in the target; "
                        "left as it is"
                    )
            for token in reversed(self.source.list_tokens(account.id)):  # oldest first
                if self.target.find_token(token.token_hash) is not None:
                    report.skipped["tokens"] += 1
                    continue
                self.target.add_token(token)
                report.tokens += 1
            self.repos_and_environments(account.id)
        if self.sealed:
            self.warn(
                f"{self.sealed} repositories and environments hold sealed credentials or "
                "secrets: they open only where BATON_SECRET is the source's (else set them "
                "again in the target)"
            )

    def repos_and_environments(self, owner: str) -> None:
        """The owner's repositories and environments, with the same ids (their sealed
        credentials and secrets open where BATON_SECRET is the same). One whose name the
        owner has for another one in the target is left out, with a warning."""
        source, target = self.source, self.target
        names = {r.name: r.id for r in target.list_repos(owner)}
        for repo in source.list_repos(owner):
            if self._new("repos", repo, target.get_repo(repo.id), names):
                target.add_repo(repo)
                self.sealed += repo.credentials is not None
        names = {e.name: e.id for e in target.list_environments(owner)}
        for env in source.list_environments(owner):
            if self._new("environments", env, target.get_environment(env.id), names):
                target.add_environment(env)
                self.sealed += env.secrets is not None

    def _new(
        self, kind: str, item: Repo | Environment, present: object, names: dict[str, str]
    ) -> bool:
        """Whether `item` is to be added to the target (counted as copied), else why not."""
        what = "repository" if kind == "repos" else "environment"
        if present is not None:
            self.report.skipped[kind] += 1
            if present != item:
                self.warn(f"{what} {item.id} differs in the target; left as it is there")
            return False
        if item.name in names:
            self.warn(
                f"{what} {item.name} ({item.id}) was not copied: the target has another one "
                f"of that name ({names[item.name]})"
            )
            return False
        setattr(self.report, kind, getattr(self.report, kind) + 1)
        return True

    def runs(self, session: Session) -> None:
        """The session's runs, oldest first, as they ended; one still active in the source
        as failed (it did not run here). Copied for a session the target had already too:
        a copy interrupted between a session and its runs carries on."""
        runs = self.source.list_runs(session_id=session.id, limit=ALL_RUNS)
        for run in reversed(runs):
            if self.target.get_run(run.id) is not None:
                self.report.skipped["runs"] += 1
                continue
            if run.active:
                error = COPIED_ACTIVE.format(state=run.state)
                run = run.moved(FAILED, self.now, error=error)
            self.target.add_run(run)
            self.report.runs += 1

    def blobs(self, shas: Iterable[str], *, required: bool = True) -> None:
        """Put every blob in `shas` into the target unless it is there already (the source
        blob is not read then). A blob the source lacks is reported when `required`."""
        for sha in shas:
            if sha in self._blobs_done:
                continue
            if self.target_blobs.get(sha) is not None:
                self.report.skipped["blobs"] += 1
                self._blobs_done.add(sha)
                continue
            data = self.source_blobs.get(sha)
            if data is None:
                if required and sha not in self.report.missing_blobs:
                    self.report.missing_blobs.append(sha)
                    self.warn(
                        f"blob {sha} is referenced but missing from the source blob store; "
                        "the copy references it too"
                    )
                continue
            self.target_blobs.put(sha, data)
            self.report.blobs += 1
            self._blobs_done.add(sha)

    def missing(self, head: str | None) -> list[StoredMessage] | None:
        """The messages of the chain ending at `head` that the target lacks, in chain order
        (a fork's shared prefix is there already, and is not written again). None when the
        source does not hold the whole chain."""
        if head is None:
            return []
        chain = self.source.chain(head)
        if not chain or chain[-1].id != head:
            return None
        ids = [m.id for m in chain]
        have = self.target.get_messages(ids)
        need = [i for i in ids if i not in have]
        found = self.source.get_messages(need)
        if len(found) != len(need):
            return None
        return [found[i] for i in need]

    def _message_blobs(self, messages: list[StoredMessage]) -> list[str]:
        return sorted({sha for sm in messages for sha in sm.blobs})

    def session(self, session: Session) -> None:
        present = self.target.get_session(session.id)
        if present is not None:
            self.report.skipped["sessions"] += 1
            if present != session:
                self.warn(f"session {session.id} differs in the target; left as it is there")
            return
        messages = self.missing(session.head)
        if messages is None:
            raise Corrupt(
                f"session {session.id}: its messages are incomplete in the source; "
                "run `baton sessions verify` there"
            )
        self.blobs([*self._message_blobs(messages), *git_blobs(session.git)])
        self.target.create_session(session, messages)
        self.report.sessions += 1
        self.report.messages += len(messages)

    def share(self, share: Share) -> None:
        """A share as it is. A revoked or expired share can outlive its messages (gc keeps
        what a session or a live share reaches), and no store takes a share whose head it
        lacks: such a share is copied without its head, keeping every other field, so its
        link still answers 410 (gone) rather than 404 and the owner still sees it listed."""
        state = share.state(self.now)
        present = self.target.get_share(share.id)
        if present is not None:
            self.report.skipped["shares"] += 1
            headless = dataclasses.replace(share, head=None)
            if present != share and not (state != "live" and present == headless):
                self.warn(f"share {share.id} differs in the target; left as it is there")
            return
        messages = self.missing(share.head)
        if messages is None:
            if state == "live":
                raise Corrupt(
                    f"share {share.id}: its messages are incomplete in the source; "
                    "run `baton sessions verify` there"
                )
            self.warn(
                f"share {share.id} is {state} and its messages are gone from the source; "
                "copied without them (it still answers 410)"
            )
            self.report.headless_shares.append(share.id)
            share, messages = dataclasses.replace(share, head=None), []
        self.blobs(self._message_blobs(messages))
        # a revoked share's git blobs may have been freed in the source already
        self.blobs(git_blobs(share.git), required=share.revoked_at is None)
        self.target.create_share(share, messages)
        self.report.shares += 1
        self.report.messages += len(messages)


def _settle(store: Store, blobs: BlobStore) -> None:
    """Scan what imports left unscanned in `store` (with this process's environment)."""
    if store.count_unscanned():
        from baton.service import Service, findings

        findings.settle(Service(store, blobs, scanner=SecretScanner(os.environ)))


def copy_store(
    source: Store,
    source_blobs: BlobStore,
    target: Store,
    target_blobs: BlobStore,
    *,
    progress: Progress = _quiet,
) -> CopyReport:
    """Copy everything in `source` into `target`: accounts and tokens, their repositories
    and environments, then every session (and its runs), then every share, each with the
    blobs and messages it needs. `progress(done, total)` is
    called after each session and share."""
    # The copies are no better scanned for secrets than the originals (service.findings.rescan),
    # and no worse: what an import left unscanned is scanned first, as before a share.
    _settle(source, source_blobs)
    was, now = source.scan_rules(), target.scan_rules()
    if was is not None and (now is None or was < now):
        target.set_scan_rules(was)
    copier = _Copier(source, source_blobs, target, target_blobs)
    copier.accounts()
    sessions = list(source.iter_sessions())
    shares = sorted(source.list_shares(), key=lambda s: (s.created_at, s.id))  # oldest first
    total = len(sessions) + len(shares)
    progress(0, total)
    for done, session in enumerate(sessions, 1):
        copier.session(session)
        copier.runs(session)
        progress(done, total)
    for done, share in enumerate(shares, len(sessions) + 1):
        copier.share(share)
        progress(done, total)
    return copier.report


def verify_store(
    store: Store,
    blobs: BlobStore | None = None,
    *,
    missing_ok: Iterable[str] = (),
    progress: Progress = _quiet,
) -> VerifyReport:
    """Re-hash every chain of every session and share, check each holds as many messages as
    its header says, and (with `blobs`) that every referenced blob is stored, except those in
    `missing_ok`. A revoked or expired share whose head is gone is not checked: it never
    answers, and gc may collect its messages."""
    report = VerifyReport()
    now = utcnow()
    sessions = list(store.iter_sessions())
    shares = store.list_shares()
    total = len(sessions) + len(shares)
    progress(0, total)

    for done, session in enumerate(sessions, 1):
        report.sessions += 1
        report.check_chain(store, f"session {session.id}", session.head, session.message_count)
        progress(done, total)
    for done, share in enumerate(shares, len(sessions) + 1):
        if share.state(now) == "live" or (share.head and store.get_messages([share.head])):
            report.shares += 1
            report.check_chain(store, f"share {share.id}", share.head, share.message_count)
        progress(done, total)
    if blobs is not None:
        stored = {sha for sha, _ in blobs.list()}
        for sha in sorted(store.referenced_blobs() - stored - set(missing_ok)):
            report.problems.append(f"blob {sha} is referenced but not stored")
    return report


def copy(source: Location, target: Location, *, progress: Progress = _quiet) -> CopyReport:
    """Open both sides, copy, then verify the whole target (`report.verified`)."""
    with opened(source, target) as (src, src_blobs, dst, dst_blobs):
        report = copy_store(src, src_blobs, dst, dst_blobs, progress=progress)
        report.verified = verify_store(dst, dst_blobs, missing_ok=report.missing_blobs)
    return report
