"""The JSON export document (docs/export-format.md): what `baton sessions export` writes and
`baton sessions import` reads. EXPORT_FORMAT and EXPORT_VERSION are its one definition: the
importers, the client and the service's import check all use these."""

from __future__ import annotations

from baton.core.models import JSON, Message, Session

EXPORT_FORMAT = "baton-session"  # the document's "format"
EXPORT_VERSION = 1  # and its "version"


def export_document(session: Session, messages: list[Message], exported_at: str) -> JSON:
    """The versioned JSON export (docs/export-format.md). Message parts are hydrated."""
    header = session.to_dict()
    header.pop("owner")
    header.pop("version")
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": exported_at,
        "session": header,
        "messages": [m.to_dict() for m in messages],
    }
