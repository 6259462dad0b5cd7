"""The JSON API (moved: being split into routers)."""

from baton.server.api.sessions import build_router, export_download

__all__ = ["build_router", "export_download"]
