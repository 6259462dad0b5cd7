"""A share publishes no secret that an attachment holds: the importers keep attached files as
base64 (`encoding: "base64"`), which the scan reads as the text it says. A secret in an
attached file, in a file's name, in a file moved to a blob, in a percent-encoded data: URL
and in an image block inside a tool output blocks a default share, is named where it is, and
after `--redact` is on no surface of the share or of a fork of it; a PNG is not flagged."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from baton import importers
from baton.render.document import EXPORT_FORMAT, EXPORT_VERSION
from tests.fixtures.servers import Live
from tests.importers.test_claude_code import Transcript, text
from tests.server.test_share_surfaces import World, planted, surfaces

S = {place: planted(place) for place in ("file", "blob file", "file name", "data url", "tool")}
BIG = 70 * 1024  # over the 64 KiB a part keeps inline


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def png(width: int = 16, height: int = 16) -> bytes:
    """A real PNG: noise, so that its bytes are as little like text as a photo's."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00" + bytes((x * 37 + y * 91 + x * y) % 256 for x in range(width * 3))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def message(role: str, *parts: dict[str, Any], second: int = 0) -> dict[str, Any]:
    return {"role": role, "parts": list(parts), "created_at": f"2026-12-01T00:00:{second:02d}Z"}


def document() -> dict[str, Any]:
    """A baton export as the importers write one, with secrets only in attachments."""
    padding = "".join(f"line {i}: nothing to see\n" for i in range(BIG // 24))
    image_block = {
        "type": "document",
        "source": {"type": "base64", "media_type": "text/plain", "data": b64(f"t={S['tool']}")},
    }
    messages = [
        message(
            "user",
            {"type": "text", "text": "deploy with these settings"},
            {
                "type": "file",
                "path": "deploy.env",
                "mime": "text/plain",
                "data": b64(f"OPENAI_API_KEY={S['file']}\nDEBUG=0\n"),
                "encoding": "base64",
            },
            {"type": "file", "path": "image-3.png", "mime": "image/png", "data": b64(png())}
            | {"encoding": "base64"},
            second=1,
        ),
        message("assistant", {"type": "text", "text": "done"}, second=2),
        message(
            "user",
            {
                "type": "file",
                "path": "config.yaml",
                "data": b64(padding + f"api_token: {S['blob file']}\n"),
                "encoding": "base64",
            },
            second=3,
        ),
        message(
            "user",
            {"type": "file", "path": f"keys/{S['file name']}.txt", "data": b64("hello\n")}
            | {"encoding": "base64"},
            second=4,
        ),
        message(
            "user",
            {
                "type": "file",
                "path": "note.txt",
                "data": f"key%3D{S['data url'][:5]}%{ord(S['data url'][5]):02X}"
                + S["data url"][6:],
                "encoding": "url",
            },
            second=5,
        ),
        message("assistant", {"type": "tool_call", "id": "c1", "name": "read"}, second=6),
        message(
            "tool",
            {"type": "tool_result", "tool_call_id": "c1", "output": [image_block]},
            second=7,
        ),
    ]
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "session": {"title": "attachments", "metadata": {}},
        "messages": messages,
    }


def encodings(secret: str) -> list[bytes]:
    """The secret's base64 at each of the three alignments, without the characters that
    depend on what is around it."""
    return [b64(b"\x00" * k + secret.encode())[4:-4].encode() for k in range(3)]


@pytest.fixture
def imported(live: Live) -> dict[str, Any]:
    with live.client(live.alice) as http:
        done = http.post("/api/sessions/import", content=orjson.dumps(document()))
    assert done.status_code == 201, done.text
    session: dict[str, Any] = done.json()["session"]
    return session


def test_a_secret_in_an_attachment_blocks_a_default_share_and_says_which_file(
    live: Live, imported: dict[str, Any]
) -> None:
    with live.client(live.alice) as http:
        refused = http.post(f"/api/sessions/{imported['id']}/shares", json={})
        listed = http.get("/api/shares").json()
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["message"] == (
        "this session holds 5 secret(s); nothing was shared. Remove them, or share with "
        "--redact (or --allow-secrets)"
    )
    wheres = sorted((f["where"], f["kind"], f["excerpt"]) for f in error["findings"])

    def excerpt(place: str) -> str:
        return f"{S[place][:4]}…{S[place][-2:]} (48 chars)"

    assert wheres == [
        ("message 1, file deploy.env", "OpenAI Token", excerpt("file")),
        ("message 3, file config.yaml", "OpenAI Token", excerpt("blob file")),
        ("message 4, file keys/[REDACTED:OpenAI Token].txt", "OpenAI Token", excerpt("file name")),
        ("message 5, file note.txt", "OpenAI Token", excerpt("data url")),
        ("message 7", "OpenAI Token", excerpt("tool")),
    ]
    assert listed == []


def test_no_surface_of_a_redacted_share_holds_an_attachment_secret(
    live: Live, imported: dict[str, Any]
) -> None:
    with live.client(live.alice) as http:
        made = http.post(f"/api/sessions/{imported['id']}/shares", json={"mode": "redact"})
        raw = http.get(f"/api/sessions/{imported['id']}/messages").json()["messages"]
    assert made.status_code == 201, made.text
    share = made.json()
    assert len(share["redacted"]) == 5
    own = {p["sha256"] for m in raw for p in m["parts"] if p["type"] == "blob_ref"}
    assert len(own) == 1  # config.yaml was moved to a blob
    published = surfaces(World(live, imported, share, own))
    for place, secret in S.items():
        pieces = [secret.encode(), secret[8:30].encode(), *encodings(secret)]
        leaks = [name for name, body in published.items() for p in pieces if p in body]
        assert leaks == [], place
    with live.client() as anyone:
        full = anyone.get(f"/api/shares/{share['id']}/messages", params={"full": "true"})
    parts = [p for m in full.json()["messages"] for p in m["parts"]]
    files = {p["path"]: p for p in parts if p["type"] == "file"}
    # a text file is published redacted; a clean one (the PNG) as it was
    assert base64.b64decode(files["deploy.env"]["data"]) == (
        b"OPENAI_API_KEY=[REDACTED:OpenAI Token]\nDEBUG=0\n"
    )
    assert base64.b64decode(files["image-3.png"]["data"]) == png()
    assert base64.b64decode(files["keys/[REDACTED:OpenAI Token].txt"]["data"]) == b"hello\n"
    assert files["note.txt"]["data"] == "key%3D%5BREDACTED%3AOpenAI%20Token%5D"
    # a file read back from a blob has lost its encoding: its bytes are withheld, and it says so
    assert files["config.yaml"] == {
        "type": "file",
        "path": "config.yaml",
        "withheld": "its content held 1 secret(s), so it is not shared",
    }
    withheld = "(its content held 1 secret(s), so it is not shared)"
    assert withheld in published["page, all"].decode()
    assert f"**File** `config.yaml` {withheld}" in published["fork export markdown"].decode()
    block = next(p for p in parts if p["type"] == "tool_result")["output"][0]
    assert base64.b64decode(block["source"]["data"]) == b"t=[REDACTED:OpenAI Token]"


def test_a_clean_image_from_claude_code_is_shared(live: Live, tmp_path: Path) -> None:
    """A Claude Code transcript with a pasted PNG: imported, and shared by default."""
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": b64(png(64, 64))},
    }
    transcript = Transcript().user("u1", None, [text("what is this?"), image])
    path = transcript.write(tmp_path / "s.jsonl")
    docs, _ = importers.documents(importers.read(path, "claude-code"))
    with live.client(live.alice) as http:
        done = http.post("/api/sessions/import", content=orjson.dumps(docs[0]))
        assert done.status_code == 201, done.text
        session_id = done.json()["session"]["id"]
        shared = http.post(f"/api/sessions/{session_id}/shares", json={})
        scan = http.get(f"/api/sessions/{session_id}/scan").json()
    assert shared.status_code == 201, shared.text
    assert shared.json()["redacted"] == []
    assert scan == {"findings": []}
    stored = live.service.messages(live.alice.id, session_id, hydrate=True)
    assert stored[0].parts[1]["data"] == image["source"]["data"]


def test_a_secret_in_a_claude_code_image_block_is_found(live: Live, tmp_path: Path) -> None:
    """An attachment Claude Code saw as an image but that holds text (a pasted .env)."""
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": b64(f"K={S['file']}")},
    }
    path = Transcript().user("u1", None, [text("see"), image]).write(tmp_path / "s.jsonl")
    docs, _ = importers.documents(importers.read(path, "claude-code"))
    with live.client(live.alice) as http:
        session_id = http.post("/api/sessions/import", content=orjson.dumps(docs[0])).json()[
            "session"
        ]["id"]
        refused = http.post(f"/api/sessions/{session_id}/shares", json={})
    assert refused.status_code == 422
    assert [f["where"] for f in refused.json()["error"]["findings"]] == [
        "message 1, file image-2.png"
    ]


def test_an_appended_file_moved_to_a_blob_is_scanned_as_what_it_says(live: Live) -> None:
    """Appended (not imported): the part is moved to a blob before it is recorded, and the
    blob's base64 is read as the text it encodes."""
    padding = "".join(f"line {i}\n" for i in range(BIG // 8))
    part = {
        "type": "file",
        "path": "big.env",
        "data": b64(padding + f"TOKEN={S['blob file']}\n"),
        "encoding": "base64",
    }
    with live.client(live.alice) as http:
        session_id = http.post("/api/sessions", json={"title": "t"}).json()["id"]
        appended = http.post(
            f"/api/sessions/{session_id}/messages",
            json={"messages": [message("user", part, second=1)]},
        )
        assert appended.status_code == 201, appended.text
        assert appended.json()["appended"][0]["parts"][0]["type"] == "blob_ref"
        refused = http.post(f"/api/sessions/{session_id}/shares", json={})
    assert refused.status_code == 422
    assert [f["where"] for f in refused.json()["error"]["findings"]] == ["message 1, file big.env"]


# the one-time rescan: messages recorded under older scanner rules


def as_scanned_by_rules_1(live: Live) -> None:
    """The store as baton left it before it read attachments: no message flagged."""
    store = live.service.store
    everything = store.messages_in_order(None, 1000)
    store.set_findings([(sm.message.id, [], None) for sm in everything])
    store.set_scan_rules(1)


def test_the_first_share_rescans_what_older_rules_scanned_once(
    live: Live, imported: dict[str, Any]
) -> None:
    as_scanned_by_rules_1(live)
    store = live.service.store
    with live.client(live.alice) as http:
        # a message appended after the upgrade, on top of the unflagged ones
        appended = http.post(
            f"/api/sessions/{imported['id']}/messages",
            json={"messages": [message("user", {"type": "text", "text": "thanks"}, second=8)]},
        )
        assert appended.status_code == 201, appended.text
        assert store.flagged(imported["head"]) == []
        refused = http.post(f"/api/sessions/{imported['id']}/shares", json={})
        assert refused.status_code == 422
        assert [f["where"] for f in refused.json()["error"]["findings"]] == [
            "message 1, file deploy.env",
            "message 3, file config.yaml",
            "message 4, file keys/[REDACTED:OpenAI Token].txt",
            "message 5, file note.txt",
            "message 7",
        ]
        assert store.scan_rules() == 2
        head = appended.json()["session"]["head"]
        assert [sm.depth for sm in store.flagged(head)] == [0, 2, 3, 4, 6]
        # done once: with the rules up to date, a share reads only flagged messages again
        everything = store.messages_in_order(None, 1000)
        store.set_findings([(sm.message.id, [], None) for sm in everything])
        again = http.get(f"/api/sessions/{imported['id']}/scan").json()
    assert again == {"findings": []}
    assert store.scan_rules() == 2


def test_the_rescan_names_the_shares_published_before_it(
    live: Live, imported: dict[str, Any]
) -> None:
    """A share made while the rules could not read attachments published their secrets:
    the rescan says which (revoking is the owner's call)."""
    from baton.service import findings

    store = live.service.store
    findings.settle(live.service)  # scanned as imports are, before the rules read attachments:
    everything = store.messages_in_order(None, 1000)
    store.set_findings([(sm.message.id, [], None) for sm in everything])  # nothing found
    with live.client(live.alice) as http:
        made = http.post(f"/api/sessions/{imported['id']}/shares", json={})
        assert made.status_code == 201, made.text
        gone = http.post(f"/api/sessions/{imported['id']}/shares", json={}).json()["id"]
        assert http.delete(f"/api/shares/{gone}").status_code == 200
    store.set_scan_rules(1)
    report = live.service.rescan()
    assert report == {
        "rules": 2,
        "was": 1,
        "rescanned": 7,
        "flagged": 5,
        "exposed_shares": [made.json()["id"]],
    }
    assert live.service.rescan()["rescanned"] == 0


def test_a_client_says_the_rescan_runs_where_the_data_is() -> None:
    from baton.client import Client
    from baton.core.errors import InvalidInput

    with pytest.raises(InvalidInput) as raised:
        Client("https://baton.example.com", "baton_x").rescan()
    assert raised.value.message == (
        "the rescan runs where the data is: run `baton sessions verify --rescan` on the server "
        "(https://baton.example.com), or its first share there runs it"
    )
