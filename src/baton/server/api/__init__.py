"""The JSON API of DESIGN.md §5 under /api: one module-level router per part, put together
here as `router`. Every route checks ownership: a session or share that is not the caller's
answers 404, exactly like one that does not exist. What routes need (the service, the caller,
the rate limits) they get from baton.server.deps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from baton.server import schemas
from baton.server.api import accounts, blobs, events, runs, sessions, shares
from baton.server.api.replies import reply

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorBody, "description": text}
    for status, text in [
        (401, "No valid credentials"),
        (404, "Unknown, or not yours"),
        (413, "Too large"),
        (422, "Bad input"),
        (429, "Rate limited"),
    ]
}

router = APIRouter(prefix="/api", responses=ERRORS)


@router.get("/health", response_model=schemas.Health, tags=["server"])
def health() -> Response:
    return reply({"ok": True})


# In this order: it is the order of the OpenAPI document's paths.
router.include_router(accounts.router)
router.include_router(sessions.router)
router.include_router(events.router)
router.include_router(shares.router)
router.include_router(blobs.router)
router.include_router(runs.router)

__all__ = ["ERRORS", "router"]
