"""`/install/baton-VERSION-py3-none-any.whl`: the running baton as a wheel, for the share
page's install line. Public and cacheable: it holds only the package's own files."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from baton import wheel
from baton.core.errors import NotFound

router = APIRouter(include_in_schema=False)


@router.api_route("/install", methods=["GET", "HEAD"])
def latest() -> Response:
    """Where this server's wheel is (a client on another version asks before printing it)."""
    return RedirectResponse(f"/install/{wheel.filename()}", 307)


@router.api_route("/install/{name}", methods=["GET", "HEAD"])
def download(request: Request, name: str) -> Response:
    if name != wheel.filename():
        raise NotFound(f"no {name} here; this server hands out {wheel.filename()}")
    filename, data = wheel.wheel()
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {
        "Cache-Control": "public, max-age=3600",
        "ETag": etag,
        "Content-Disposition": f'attachment; filename="{filename}"',
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, 200, headers, media_type="application/octet-stream")
