"""Errors a user can cause. Each maps to one HTTP status and one CLI exit code."""

from __future__ import annotations


class BatonError(Exception):
    """Base of every error meant for a user: a one-line message, never a traceback."""

    code = "error"
    status = 400
    exit_code = 1

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(BatonError):
    code = "invalid_input"
    status = 422
    exit_code = 2


class NotFound(BatonError):
    code = "not_found"
    status = 404


class Conflict(BatonError):
    """The head moved: `current_head` names where it is now."""

    code = "conflict"
    status = 409

    def __init__(self, message: str, current_head: str | None) -> None:
        super().__init__(message, current_head=current_head)
        self.current_head = current_head


class VersionMismatch(BatonError):
    code = "version_mismatch"
    status = 412

    def __init__(self, message: str, current_version: int) -> None:
        super().__init__(message, current_version=current_version)
        self.current_version = current_version


class Gone(BatonError):
    """A share that was revoked or has expired."""

    code = "gone"
    status = 410


class TooLarge(BatonError):
    code = "too_large"
    status = 413


class SecretsFound(BatonError):
    """A share was refused because its content holds secrets."""

    code = "secrets_found"
    status = 422

    def __init__(self, message: str, findings: list[dict[str, object]]) -> None:
        super().__init__(message, findings=findings)
        self.findings = findings


class LiveShares(BatonError):
    """A delete was refused because live shares still expose the session."""

    code = "live_shares"
    status = 409

    def __init__(self, message: str, share_ids: list[str]) -> None:
        super().__init__(message, share_ids=share_ids)
        self.share_ids = share_ids


class Corrupt(BatonError):
    code = "corrupt"
    status = 500


class Unauthorized(BatonError):
    """No credentials, or ones that are not (or no longer) valid."""

    code = "unauthorized"
    status = 401


class RateLimited(BatonError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class Busy(BatonError):
    """Another writer holds the store for longer than this caller waits: try again."""

    code = "busy"
    status = 503
