"""Integrity: re-hash every chain and check its blobs (verify), and delete what nothing
reaches (gc)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from baton.core.chain import verify_chain
from baton.core.errors import InvalidInput
from baton.core.models import JSON, Message
from baton.core.validation import hydrate_part
from baton.service import blobs
from baton.service.common import Ports, owned
from baton.store.base import Store

BLOB_GRACE_SECONDS = 3600.0


@dataclass
class VerifyReport:
    sessions: int = 0
    shares: int = 0
    messages: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> JSON:
        return {**dataclasses.asdict(self), "ok": self.ok}

    def check_chain(self, store: Store, name: str, head: str | None, count: int) -> list[Message]:
        """Read the chain ending at `head` and note what is wrong with it: unreadable, not
        `count` messages long, its head missing, a message that does not hash to its id or
        link to the one before. Returns what was read."""
        try:
            chain = store.chain(head) if head else []
        except Exception as exc:  # a damaged row reports, it does not stop the check
            self.problems.append(f"{name}: cannot be read ({type(exc).__name__}: {exc})")
            return []
        self.messages += len(chain)
        if len(chain) != count:
            self.problems.append(f"{name}: holds {len(chain)} messages, header says {count}")
        if head is not None and (not chain or chain[-1].id != head):
            self.problems.append(f"{name}: head {head} is missing")
        self.problems.extend(f"{name}: {p}" for p in verify_chain(chain))
        return chain


def verify(p: Ports, owner: str | None = None, session_id: str | None = None) -> VerifyReport:
    """Re-hash every chain (of one session, one owner, or the whole store)."""
    report = VerifyReport()
    sessions = (
        [owned(p, owner, session_id)]
        if owner and session_id
        else [s for s in p.store.iter_sessions() if owner is None or s.owner == owner]
    )
    heads: list[tuple[str, str | None, int]] = [
        (f"session {s.id}", s.head, s.message_count) for s in sessions
    ]
    report.sessions = len(sessions)
    if session_id is None:
        now = p.now()
        live = [s for s in p.store.list_shares(owner=owner) if s.state(now) == "live"]
        report.shares = len(live)
        heads += [(f"share {s.id}", s.head, s.message_count) for s in live]
    for name, head, count in heads:
        for message in report.check_chain(p.store, name, head, count):
            _check_blobs(p, report, name, message)
    return report


def _check_blobs(p: Ports, report: VerifyReport, name: str, message: Message) -> None:
    """Every blob a message references is there, and holds what its reference says."""
    for part in message.parts:
        if part.get("type") != "blob_ref":
            continue
        try:
            data = p.blobs.get(part["sha256"])
        except Exception as exc:  # a damaged blob reports, it does not stop
            report.problems.append(f"{name}: {exc}")
            continue
        if data is None:
            report.problems.append(f"{name}: blob {part['sha256']} of {message.id} is missing")
        elif "of" in part:
            try:
                hydrate_part(part, data)
            except InvalidInput as exc:
                report.problems.append(f"{name}: {exc} (message {message.id})")


def gc(p: Ports) -> JSON:
    """Delete what no session or live share reaches, and blob files nothing references."""
    deleted, freed = p.store.gc(p.now())
    gone = set(blobs.free(p, freed))
    # Files no message references (left by a crash between writing a blob and its
    # message): only old ones, as a young one may belong to an append in flight.
    cutoff = time.time() - BLOB_GRACE_SECONDS
    old = [sha for sha, mtime in p.blobs.list() if mtime < cutoff and sha not in gone]
    gone.update(blobs.free(p, old))
    return {"messages_deleted": deleted, "blobs_deleted": len(gone)}
