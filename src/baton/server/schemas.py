"""The JSON shapes of the API, named by role (for OpenAPI and request parsing)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class TotalsPublic(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


class SessionPublic(BaseModel):
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
    metadata: dict[str, Any]
    git: dict[str, Any] | None
    platform: str
    forked_from: dict[str, Any] | None
    repo: str | None
    totals: TotalsPublic = Field(
        description="the whole chain's usage up to the head, a fork's inherited part included"
    )
    own: TotalsPublic = Field(
        description="what this session's own messages spent (totals less inherited); "
        "a sum over sessions of `own` counts each message once"
    )
    inherited: TotalsPublic = Field(
        description="what a fork inherited: the chain's totals at its fork point (zero "
        "for a session that is not a fork)"
    )


class SessionPage(BaseModel):
    sessions: list[SessionPublic]
    next_cursor: str | None


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, max_length=1000)
    task: str = Field("", max_length=65536)
    metadata: dict[str, Any] | None = None
    git: dict[str, Any] | None = None
    platform: Literal["cli", "web", "api", "import"] = "api"
    repo: str | None = Field(None, max_length=2000)


class SessionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, max_length=1000)
    task: str | None = Field(None, max_length=65536)
    status: Literal["active", "paused", "done", "archived"] | None = None
    metadata: dict[str, Any] | None = None
    git: dict[str, Any] | None = None


class MessagePublic(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    parent: str | None
    role: str
    parts: list[dict[str, Any]]
    created_at: str


class MessagePage(BaseModel):
    messages: list[MessagePublic]
    head: str | None
    next_after: str | None


def _part(kind: str | list[str], **required: Any) -> dict[str, Any]:
    kinds = [kind] if isinstance(kind, str) else kind
    return {
        "type": "object",
        "required": ["type", *required],
        "properties": {"type": {"enum": kinds}, **required},
    }


_TEXT = {"type": "string", "maxLength": 65536}
# What the server accepts as a message (core/validation.py is the rule; this is its outline,
# so that a client or a fuzzer sending schema-valid messages is not refused).
MESSAGE_IN: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["role", "parts"],
    "properties": {
        "role": {"enum": ["user", "assistant", "system", "tool"]},
        "parts": {
            "type": "array",
            "minItems": 1,
            "maxItems": 100,
            "items": {
                "oneOf": [
                    _part(["text", "reasoning"], text=_TEXT),
                    _part("tool_call", id=_TEXT, name=_TEXT),
                    _part("tool_result", tool_call_id=_TEXT, output=_TEXT),
                    _part("file", path=_TEXT),
                ]
            },
        },
        "created_at": {"type": "string", "format": "date-time"},
        "model": {"type": ["string", "null"], "maxLength": 200},
        "id": {},  # checked against the content when given
        "parent": {},
        "usage": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                **{
                    key: {"type": "integer", "minimum": 0, "maximum": 2**53}
                    for key in (
                        "input_tokens",
                        "output_tokens",
                        "cache_read_tokens",
                        "cache_write_tokens",
                    )
                },
                "cost_usd": {"type": "number", "minimum": 0, "maximum": 1_000_000},
            },
        },
    },
}


class AppendRequest(BaseModel):
    """`expected_head` absent: append at the current head. Present (null for an empty
    session): refuse with 409 if the head has moved."""

    model_config = ConfigDict(extra="forbid")
    expected_head: str | None = None
    messages: list[dict[str, Any]] = Field(
        min_length=1, max_length=10_000, json_schema_extra={"items": MESSAGE_IN}
    )


class AppendResult(BaseModel):
    session: SessionPublic
    appended: list[MessagePublic]  # the messages this call added (none on a retry)


class ForkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str | None = Field(None, max_length=200)


class ShareCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires: str | None = Field(None, max_length=20, examples=["7d"])
    mode: Literal["block", "redact", "allow"] = "block"
    code: bool = Field(True, description="false: publish no git patch and no git bundle")


class ShareBy(BaseModel):
    handle: str
    display_name: str


class SharePublic(BaseModel):
    """What anyone with the link sees."""

    id: str
    url: str
    command: str
    install: str
    shared_by: ShareBy
    head: str | None
    message_count: int
    title: str
    task: str
    metadata: dict[str, Any]
    git: dict[str, Any] | None
    created_at: str
    expires_at: str | None
    totals: TotalsPublic
    own: TotalsPublic = Field(description="what the shared session's own messages spent")
    inherited: TotalsPublic = Field(description="what it inherited, when it is a fork")
    published: str = Field(examples=["42 messages, 12 commits not on any remote"])
    withheld: list[str] = Field(description="what of the session's code is left out, and why")


class ShareByAccount(ShareBy):
    account: str


class ShareOwned(SharePublic):
    """What the owner sees of a share."""

    shared_by: ShareByAccount
    session_id: str
    state: Literal["live", "expired", "revoked"]
    revoked_at: str | None
    redacted: list[dict[str, Any]]


class Findings(BaseModel):
    findings: list[dict[str, Any]]


class ImportResult(BaseModel):
    session: SessionPublic
    created: bool
    messages: int


class VerifyResult(BaseModel):
    sessions: int
    shares: int
    messages: int
    problems: list[str]
    ok: bool


class AccountPublic(BaseModel):
    id: str
    handle: str
    display_name: str
    created_at: str


class TokenPublic(BaseModel):
    id: str
    name: str
    kind: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=100)


class TokenCreated(TokenPublic):
    token: str


class BlobStored(BaseModel):
    sha256: str
    size: int


class Health(BaseModel):
    ok: bool


# server runs (issue 15): repositories, environments, runs

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class RepoPublic(BaseModel):
    id: str
    name: str
    url: str = Field(description="the clone URL, credentials taken out")
    default_branch: str | None
    has_credentials: bool
    created_at: str


class RepoCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        max_length=2000,
        description="https://, ssh://, git://, file:// or an absolute path on the server; "
        "credentials in an https URL are taken out and kept sealed",
        examples=["https://github.com/team/widgets.git"],
    )
    name: str | None = Field(None, max_length=100, description="default: the URL's last part")
    credentials: str | None = Field(
        None, max_length=4096, description="USER:PASSWORD or a token; write-only"
    )
    default_branch: str | None = Field(None, max_length=200)


class SetupCommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str = Field(max_length=32768)
    timeout: float = Field(600.0, gt=0, le=86400, description="seconds")


class SetupCommandPublic(BaseModel):
    command: str
    timeout: float


class EnvironmentPublic(BaseModel):
    id: str
    name: str
    variables: dict[str, str]
    secrets: list[str] = Field(description="the names of its secrets; their values never leave")
    setup: list[SetupCommandPublic]
    network: bool = Field(description="whether the agent phase has the network (setup has)")
    model: str | None
    push: bool = Field(description="whether the session's branch is pushed back at the end")
    created_at: str
    updated_at: str


class EnvironmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=100, pattern=_NAME)
    variables: dict[str, str] = Field(default_factory=dict, max_length=100)
    secrets: dict[str, str] = Field(
        default_factory=dict, max_length=100, description="write-only: sealed at rest"
    )
    setup: list[str | SetupCommandIn] = Field(
        default_factory=list, max_length=20, description="ordered, at most 20"
    )
    network: bool = False
    model: str | None = Field(None, max_length=200)
    push: bool = False


class EnvironmentUpdate(BaseModel):
    """Only the fields given change (null leaves one as it is, but `model`: null is the
    server's default). `variables` and `secrets` merge into what is there: a name mapped to
    null is removed. `setup` replaces the list."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=100, pattern=_NAME)
    variables: dict[str, str | None] | None = Field(None, max_length=100)
    secrets: dict[str, str | None] | None = Field(None, max_length=100)
    setup: list[str | SetupCommandIn] | None = Field(None, max_length=20)
    network: bool | None = None
    model: str | None = Field(None, max_length=200)
    push: bool | None = None


class RunPublic(BaseModel):
    id: str
    session_id: str
    repo_id: str | None
    environment_id: str | None
    branch: str | None
    prompt: str
    model: str | None
    state: Literal["queued", "preparing", "running", "done", "failed", "stopped"]
    active: bool
    times: dict[str, str] = Field(description="when the run entered each state it went through")
    error: str | None
    cancel_requested: bool
    created_at: str
    updated_at: str


class RunCreate(BaseModel):
    """A new session on `repo`; or, with `session_id`, the next run of that session (its
    recorded repository, branch and environment unless given)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(max_length=65536)
    repo: str | None = Field(None, max_length=200, description="a repository's id or name")
    branch: str | None = Field(None, max_length=200)
    environment: str | None = Field(None, max_length=200, description="an id or a name")
    model: str | None = Field(None, max_length=200)
    session_id: str | None = Field(None, max_length=200)


class Deleted(BaseModel):
    deleted: str


class RunStarted(BaseModel):
    run: RunPublic
    session: SessionPublic
