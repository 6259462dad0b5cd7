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
