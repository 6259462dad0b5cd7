"""What the Recent Sessions page and a session page say about where a session came from and
what a search found in it: a fork grouped under its origin ("forked at #40, +12 messages"),
and the words a search matched, highlighted in a snippet of the title, task or a message."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from markupsafe import Markup

from baton.core.errors import BatonError
from baton.core.models import Session

if TYPE_CHECKING:
    from baton.service import Service

SNIPPET_CHARS = 160  # the text shown around a search's first match
SCAN_MESSAGES = 200  # the newest messages of a session a snippet is looked for in


@dataclass(frozen=True, slots=True)
class ForkPoint:
    """Where a fork left its origin: `at` its message #at, and `added` messages since."""

    at: int
    added: int
    session: str | None  # the origin: one's own session…
    share: str | None  # …or a share

    @property
    def text(self) -> str:
        return f"forked at #{self.at:,}" if self.at else "forked empty"

    @property
    def added_text(self) -> str:
        return f"+{self.added:,} message{'' if self.added == 1 else 's'}"


def fork_point(service: Service, session: Session) -> ForkPoint | None:
    """Where `session` was forked, or None for a session that is not a fork."""
    origin = session.forked_from
    if not origin:
        return None
    message = origin.get("message")
    try:
        at = service.after(session.head, message, f"session {session.id}") if message else 0
    except BatonError:  # the fork point is no longer on the chain: say only where it came from
        at = 0
    return ForkPoint(
        at, max(session.message_count - at, 0), origin.get("session"), origin.get("share")
    )


@dataclass(slots=True)
class Row:
    """A session of the listing, its fork point, the forks of it on the same page, and the
    snippet where a search matched it."""

    session: Session
    fork: ForkPoint | None = None
    forks: list[Row] = field(default_factory=list)
    snippet: Markup | None = None
    title: Markup | None = None  # the title with the words searched for highlighted


def rows(service: Service, owner: str, sessions: list[Session], query: str | None) -> list[Row]:
    """The listing's sessions in order, each fork listed under its origin when the origin is
    on the same page (else in its place, saying where it came from)."""
    every = [Row(s, fork_point(service, s)) for s in sessions]
    by_id = {r.session.id: r for r in every}
    top: list[Row] = []
    for row in every:
        origin = row.fork.session if row.fork else None
        parent = by_id.get(origin) if origin else None
        if parent is not None and parent is not row:
            parent.forks.append(row)
        else:
            top.append(row)
    if query:
        for row in every:
            row.snippet = snippet(service, owner, row.session, query)
            row.title = highlight(row.session.title, query, width=10_000)
    return top


def _terms(query: str) -> list[str]:
    return [t for t in re.findall(r"\w+", query.lower()) if t][:8]


def highlight(text: str, query: str, width: int = SNIPPET_CHARS) -> Markup | None:
    """`text` around the first word of `query` it holds, each query word in <mark>; None
    when it holds none."""
    terms = _terms(query)
    if not terms:
        return None
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    flat = " ".join(text.split())
    found = pattern.search(flat)
    if found is None:
        return None
    begin = max(found.start() - width // 3, 0)
    if begin:
        space = flat.find(" ", begin)
        begin = space + 1 if 0 <= space < found.start() else begin
    piece = flat[begin : begin + width]
    out = []
    last = 0
    for hit in pattern.finditer(piece):
        out.append(html.escape(piece[last : hit.start()]))
        out.append(f"<mark>{html.escape(hit.group())}</mark>")
        last = hit.end()
    out.append(html.escape(piece[last:]))
    prefix = "…" if begin else ""
    suffix = "…" if begin + width < len(flat) else ""
    return Markup(prefix + "".join(out) + suffix)


def snippet(service: Service, owner: str, session: Session, query: str) -> Markup | None:
    """Where `query` matched `session` beyond its title (which the listing highlights in
    place): its task, or the newest of its last SCAN_MESSAGES messages holding a word of it."""
    found = highlight(session.task or "", query)
    if found is not None:
        return found
    count = session.message_count
    start = max(count - SCAN_MESSAGES, 0)
    try:
        messages = service.messages(owner, session.id, start=start, limit=count - start)
    except BatonError:
        return None
    for message in reversed(messages):
        for part in message.parts:
            body = part.get("text") or part.get("output")
            if isinstance(body, str):
                found = highlight(body, query)
                if found is not None:
                    return found
    return None
