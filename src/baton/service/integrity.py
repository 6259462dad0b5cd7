"""Integrity: re-hash every chain and check its blobs (verify), and delete what nothing
reaches (gc)."""

from __future__ import annotations

import time

from baton.contract import VerifyReport
from baton.core.errors import InvalidInput
from baton.core.models import JSON, Message
from baton.core.validation import hydrate_part
from baton.service import blobs
from baton.service.common import Ports, owned

BLOB_GRACE_SECONDS = 3600.0


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
