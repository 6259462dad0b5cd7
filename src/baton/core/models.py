"""The object model of DESIGN.md §1, as plain values. Storage keys are the store's business."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ROLES = frozenset({"user", "assistant", "system", "tool"})
PART_TYPES = frozenset({"text", "reasoning", "tool_call", "tool_result", "file", "blob_ref"})
STATUSES = frozenset({"active", "paused", "done", "archived"})
PLATFORMS = frozenset({"cli", "web", "api", "import"})
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
# Bounds of usage. One message may claim at most TOKENS_MAX tokens of each kind (exact as a
# JSON double) and COST_MAX dollars; larger values are refused. Totals saturate at
# TOTAL_TOKENS_MAX (the stores' 64-bit integers) and TOTAL_COST_MAX, never overflow.
TOKENS_MAX = 2**53
COST_MAX = 1_000_000.0
TOTAL_TOKENS_MAX = 2**63 - 1
TOTAL_COST_MAX = 1e15

JSON = dict[str, Any]

# A `file` part (or the blob_ref it becomes over 64 KiB) marked so keeps a file's content
# before an agent's turn wrote it, for /undo (baton.agent.undo): not the conversation.
BEFORE_TURN = "before_turn"


def kept_before(part: JSON) -> str | None:
    """For a part that keeps a file's content before a turn, what to show instead of that
    content; None for any other part."""
    if part.get(BEFORE_TURN) is not True:
        return None
    if part.get("existed") is False:
        return "did not exist before the turn (kept for /undo)"
    return "before the turn (kept for /undo)"


def utcnow() -> str:
    """Timestamps are ISO 8601 UTC with microseconds: fixed width, so they sort as text."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """UTC, microseconds, `Z`; the year always four digits (strftime drops the zeros of
    year 1). Raises OverflowError when the time is outside years 1-9999 in UTC."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def lifecycle(revoked_at: str | None, expires_at: str | None, now: str) -> str:
    """ "revoked", "expired" or "live": the one rule for shares and tokens."""
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "live"


@dataclass(frozen=True, slots=True)
class Totals:
    """Tokens and cost summed over a chain (kept per message, so any prefix is O(1))."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, usage: JSON | None) -> Totals:
        if not usage:
            return self
        cost = self.cost_usd + float(usage.get("cost_usd") or 0.0)
        return Totals(
            _tokens(self.input_tokens, usage.get("input_tokens")),
            _tokens(self.output_tokens, usage.get("output_tokens")),
            _tokens(self.cache_read_tokens, usage.get("cache_read_tokens")),
            _tokens(self.cache_write_tokens, usage.get("cache_write_tokens")),
            round(cost, 9) if cost <= TOTAL_COST_MAX else TOTAL_COST_MAX,  # inf too
        )

    def minus(self, other: Totals) -> Totals:
        """What these totals hold beyond `other` (an earlier prefix of the same chain), never
        below zero: a saturated total minus a prefix stays a bound, not a negative."""
        return Totals(
            max(self.input_tokens - other.input_tokens, 0),
            max(self.output_tokens - other.output_tokens, 0),
            max(self.cache_read_tokens - other.cache_read_tokens, 0),
            max(self.cache_write_tokens - other.cache_write_tokens, 0),
            max(round(self.cost_usd - other.cost_usd, 9), 0.0),
        )

    def to_dict(self) -> JSON:
        return dataclasses.asdict(self)


def _tokens(total: int, more: Any) -> int:
    return min(total + int(more or 0), TOTAL_TOKENS_MAX)


@dataclass(frozen=True, slots=True)
class Message:
    """One immutable entry of a conversation. `id` is the hash of everything else."""

    id: str
    parent: str | None
    role: str
    parts: list[JSON]
    created_at: str
    model: str | None = None
    usage: JSON | None = None

    def content(self) -> JSON:
        """The hashed form: every field but the id, None fields left out."""
        return message_content(
            self.parent, self.role, self.parts, self.created_at, self.model, self.usage
        )

    def to_dict(self) -> JSON:
        return {"id": self.id, **self.content()}


def message_content(
    parent: str | None,
    role: str,
    parts: list[JSON],
    created_at: str,
    model: str | None,
    usage: JSON | None,
) -> JSON:
    content: JSON = {"parent": parent, "role": role, "parts": parts, "created_at": created_at}
    if model is not None:
        content["model"] = model
    if usage is not None:
        content["usage"] = usage
    return content


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message with what the store derives from its chain when it is inserted."""

    message: Message
    depth: int  # position in its chain, 0 for the first message
    root: str  # id of the first message of the chain
    totals: Totals  # usage summed from the root up to and including this message
    findings: list[JSON]  # secret-scan findings in this message (not hashed)
    flagged: str | None  # nearest message at or before this one that has findings
    blobs: tuple[str, ...] = ()  # sha256 of every blob the message references

    # Its searchable text is `core.validation.message_text(message.parts)`, made by the
    # store when it inserts it, not held beside the parts of every message of a big import.


@dataclass(slots=True)
class Session:
    id: str
    owner: str
    title: str
    task: str
    status: str
    head: str | None
    message_count: int
    created_at: str
    updated_at: str
    version: int
    metadata: JSON = field(default_factory=dict)
    git: JSON | None = None
    platform: str = "cli"
    forked_from: JSON | None = None
    # `totals`: the whole chain's usage, up to the head (what a fork inherited included);
    # `inherited`: the chain's totals at the fork point (zero unless forked); what the
    # session's own messages spent is `own`, the difference.
    totals: Totals = field(default_factory=Totals)
    repo: str | None = None
    title_auto: bool = True  # the title follows the first user prompt until renamed
    inherited: Totals = field(default_factory=Totals)

    @property
    def own(self) -> Totals:
        """What this session's own messages spent: the chain's totals less the inherited."""
        return self.totals.minus(self.inherited)

    def to_dict(self) -> JSON:
        return {
            "id": self.id,
            "owner": self.owner,
            "title": self.title,
            "task": self.task,
            "status": self.status,
            "head": self.head,
            "message_count": self.message_count,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
            "metadata": self.metadata,
            "git": self.git,
            "platform": self.platform,
            "forked_from": self.forked_from,
            "repo": self.repo,
            "totals": self.totals.to_dict(),
            "own": self.own.to_dict(),
            "inherited": self.inherited.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing of sessions, and the cursor of the next one (None: the last)."""

    sessions: list[Session]
    next_cursor: str | None


@dataclass(slots=True)
class Share:
    id: str
    session_id: str
    owner: str
    shared_by: JSON  # {"account", "handle", "display_name"} at share time
    head: str | None
    message_count: int
    title: str
    task: str
    metadata: JSON
    git: JSON | None
    created_at: str
    expires_at: str | None = None
    revoked_at: str | None = None
    redacted: list[JSON] = field(default_factory=list)  # what --redact replaced
    totals: Totals = field(default_factory=Totals)
    inherited: Totals = field(default_factory=Totals)  # the session's, when it is a fork

    @property
    def own(self) -> Totals:
        return self.totals.minus(self.inherited)

    def state(self, now: str) -> str:
        return lifecycle(self.revoked_at, self.expires_at, now)

    @property
    def published(self) -> str:
        return published(self.message_count, self.git)

    @property
    def withheld(self) -> list[str]:
        return withheld(self.git)

    def to_dict(self) -> JSON:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "shared_by": self.shared_by,
            "head": self.head,
            "message_count": self.message_count,
            "title": self.title,
            "task": self.task,
            "metadata": self.metadata,
            "git": self.git,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "redacted": self.redacted,
            "totals": self.totals.to_dict(),
            "own": self.own.to_dict(),
            "inherited": self.inherited.to_dict(),
        }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def published(message_count: int, git: JSON | None) -> str:
    """What a share publishes, in words: `42 messages, 12 commits not on any remote,
    uncommitted changes (3 files)`, or `42 messages, no code`."""
    items = [_count(message_count, "message")]
    if not git or git.get("no_code"):
        return ", ".join([*items, "no code"])
    bundle, patch = git.get("bundle"), git.get("patch")
    if isinstance(bundle, dict):
        where = git.get("upstream") or "any remote"
        items.append(f"{_count(int(bundle.get('commits') or 0), 'commit')} not on {where}")
    if isinstance(patch, dict):
        files = patch.get("files")
        items.append(
            f"uncommitted changes ({_count(files, 'file')})" if files else "uncommitted changes"
        )
    if not isinstance(bundle, dict) and not isinstance(patch, dict):
        head = git.get("head")
        items.append(
            f"commit {head[:7]} only, no code changes" if isinstance(head, str) else "no code"
        )
    return ", ".join(items)


def withheld(git: JSON | None) -> list[str]:
    """What a share leaves out of the session's code, and why."""
    notes = [git[k] for k in ("bundle_dropped", "patch_dropped") if git and git.get(k)]
    return [str(n) for n in notes]


@dataclass(slots=True)
class Account:
    id: str
    handle: str
    display_name: str
    created_at: str

    def to_dict(self) -> JSON:
        return {
            "id": self.id,
            "handle": self.handle,
            "display_name": self.display_name,
            "created_at": self.created_at,
        }


@dataclass(slots=True)
class Login:
    """A web login (the session cookie names it). `id` is the SHA-256 of the secret in the
    cookie; `token_id` is the API token it was made with (None: a password or a login link).
    Logout, a password change or revoking the token deletes it."""

    id: str
    account_id: str
    token_id: str | None
    created_at: str
    expires_at: str


@dataclass(slots=True)
class Token:
    """An API token or a one-time login code. Only the SHA-256 of its secret is kept."""

    id: str
    account_id: str
    name: str
    kind: str  # "api" or "login" (one use, short-lived)
    token_hash: str
    created_at: str
    expires_at: str | None = None
    revoked_at: str | None = None
    last_used_at: str | None = None

    def state(self, now: str) -> str:
        return lifecycle(self.revoked_at, self.expires_at, now)

    def to_dict(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
        }
