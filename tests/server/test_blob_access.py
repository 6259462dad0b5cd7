"""No one reads what is not theirs (issue 12): a blob's hash is not a key to it. A message's
blob_ref, and a session's git patch or bundle, may name only a blob the writer holds: one it
uploaded, sent in full, or reaches through a session of its own (its own conversation, or a
fork of something it could read). Anything else is 422 with the same answer whether the blob
exists or not, and nothing is stored. And a retried append with an Idempotency-Key appends
once. Over HTTP, in process, on every store (memory, SQLite, PostgreSQL with S3)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from baton.client import Client
from baton.server import create_app
from baton.service import Service
from tests.fixtures.servers import SECRET, Person, person
from tests.helpers import text_message

BIG = "a secret design document " + "x" * 70_000
PATCH = b"diff --git a/app.py b/app.py\n+print('private')\n"


@dataclass
class Api:
    service: Service
    app: Any
    alice: Person
    bob: Person
    carol: Person

    def client(self, who: Person) -> TestClient:
        return TestClient(self.app, headers=who.headers)


@pytest.fixture
def api(service: Service) -> Iterator[Api]:
    app = create_app(service, secret=SECRET, login_rate=1000, share_rate=100_000)
    yield Api(
        service,
        app,
        person(service, "alice", "Alice Example"),
        person(service, "bob", "Bob Other"),
        person(service, "carol", "Carol Third"),
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def forged(sha256: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"type": "blob_ref", "sha256": sha256, "size": 10}]}


def refused(sha256: str, where: str = "message 1") -> dict[str, Any]:
    return {
        "error": {
            "code": "invalid_input",
            "message": f"{where}: blob {sha256} is not one of yours; send its content, or "
            f"upload it first (POST /api/blobs/{sha256})",
        }
    }


def git_refused(sha256: str, which: str = "patch") -> dict[str, Any]:
    return {
        "error": {
            "code": "invalid_input",
            "message": f"git.{which}: blob {sha256} is not one of yours; upload it first "
            f"(POST /api/blobs/{sha256})",
        }
    }


def alices_shared_work(api: Api) -> tuple[str, str, str, str]:
    """Alice's session with a big output (a blob) and a git patch, shared: (session, share,
    output sha, patch sha)."""
    with api.client(api.alice) as alice:
        assert alice.post(f"/api/blobs/{sha(PATCH)}", content=PATCH).status_code == 201
        git = {"remote": "https://example.com/a.git", "patch": {"sha256": sha(PATCH), "size": 9}}
        session = alice.post("/api/sessions", json={"title": "plans", "git": git})
        assert session.status_code == 201, session.text
        sid = session.json()["id"]
        appended = alice.post(
            f"/api/sessions/{sid}/messages", json={"messages": [text_message("tool", BIG)]}
        )
        assert appended.status_code == 201, appended.text
        [part] = appended.json()["appended"][0]["parts"]
        share = alice.post(f"/api/sessions/{sid}/shares", json={"mode": "allow"}).json()["id"]
    return sid, share, part["sha256"], sha(PATCH)


def test_a_hash_from_a_revoked_share_or_a_guess_reads_nothing(api: Api) -> None:
    sid, share, output, patch = alices_shared_work(api)
    guessed = sha(b"content that was never stored")
    with api.client(api.alice) as alice:
        assert alice.delete(f"/api/shares/{share}").status_code == 200
    with api.client(api.bob) as bob:
        mine = bob.post("/api/sessions", json={"title": "mine"}).json()
        path = f"/api/sessions/{mine['id']}/messages"
        answers = {}
        for target in (output, patch, guessed):
            got = bob.post(path, json={"messages": [forged(target)]})
            assert (got.status_code, got.json()) == (422, refused(target))
            answers[target] = got.text.replace(target, "<sha>")
        # existing and unknown content get the same answer: no probing
        assert answers[output] == answers[patch] == answers[guessed]
        # a forged reference behind a legitimate message is refused with the whole request
        two = [text_message("user", "hello"), forged(output)]
        got = bob.post(path, json={"messages": two})
        assert (got.status_code, got.json()) == (422, refused(output, "message 2"))
        # a git snapshot naming someone else's patch: on create, PATCH and import
        stolen = {"remote": "https://example.com/a.git", "patch": {"sha256": patch, "size": 9}}
        got = bob.patch(f"/api/sessions/{mine['id']}", json={"git": stolen})
        assert (got.status_code, got.json()) == (422, git_refused(patch))
        bundle = {"bundle": {"sha256": guessed, "size": 9, "commits": 1}}
        got = bob.patch(f"/api/sessions/{mine['id']}", json={"git": bundle})
        assert (got.status_code, got.json()) == (422, git_refused(guessed, "bundle"))
        got = bob.post("/api/sessions", json={"title": "stolen", "git": stolen})
        assert (got.status_code, got.json()) == (422, git_refused(patch))
        document = {
            "format": "baton-session",
            "version": 1,
            "session": {"title": "imported"},
            "messages": [{**forged(output), "created_at": "2026-01-01T00:00:00.000000Z"}],
        }
        got = bob.post("/api/sessions/import", content=orjson.dumps(document))
        assert (got.status_code, got.json()) == (422, refused(output))
        # nothing was stored: bob has the one empty session he made, and reads no blob
        assert [s["id"] for s in bob.get("/api/sessions").json()["sessions"]] == [mine["id"]]
        after = bob.get(f"/api/sessions/{mine['id']}").json()
        assert (after["version"], after["message_count"], after["git"]) == (1, 0, None)
        for target in (output, patch):
            got = bob.get(f"/api/blobs/{target}", params={"session": mine["id"]})
            assert got.status_code == 404
    # alice still reads hers
    with api.client(api.alice) as alice:
        got = alice.get(f"/api/blobs/{output}", params={"session": sid})
        assert got.content == BIG.encode()


def test_an_upload_then_a_reference_works(api: Api) -> None:
    data = b"an attachment bob has"
    with api.client(api.bob) as bob:
        mine = bob.post("/api/sessions", json={"title": "mine"}).json()
        assert bob.post(f"/api/blobs/{sha(data)}", content=data).status_code == 201
        got = bob.post(
            f"/api/sessions/{mine['id']}/messages", json={"messages": [forged(sha(data))]}
        )
        assert got.status_code == 201, got.text
        assert bob.get(f"/api/blobs/{sha(data)}", params={"session": mine["id"]}).content == data
        # the same for a git snapshot's patch
        assert bob.post(f"/api/blobs/{sha(PATCH)}", content=PATCH).status_code == 201
        git = {"patch": {"sha256": sha(PATCH), "size": len(PATCH)}}
        got = bob.patch(f"/api/sessions/{mine['id']}", json={"git": git})
        assert got.status_code == 200, got.text
        assert bob.get(f"/api/blobs/{sha(PATCH)}", params={"session": mine["id"]}).content == PATCH
        # content bob sent in full earlier is his to reference again, in another session
        other = bob.post("/api/sessions", json={"title": "other"}).json()
        sent = bob.post(
            f"/api/sessions/{mine['id']}/messages", json={"messages": [text_message("tool", BIG)]}
        ).json()["appended"][0]["parts"][0]
        again = {"role": "user", "parts": [sent]}
        got = bob.post(f"/api/sessions/{other['id']}/messages", json={"messages": [again]})
        assert got.status_code == 201, got.text
        assert got.json()["appended"][0]["parts"] == [sent]


def test_an_export_of_ones_own_session_imports_again(api: Api) -> None:
    sid, _, output, patch = alices_shared_work(api)
    with api.client(api.alice) as alice:
        exported = alice.get(f"/api/sessions/{sid}/export").content
        assert BIG in orjson.loads(exported)["messages"][0]["parts"][0]["text"]  # inline
        got = alice.post("/api/sessions/import", params={"fresh": True}, content=exported)
        assert got.status_code == 201, got.text
        copy = got.json()["session"]
        assert copy["git"]["patch"]["sha256"] == patch
        got = alice.get(f"/api/blobs/{output}", params={"session": copy["id"]})
        assert got.content == BIG.encode()
    # someone else given the file has the content, but not the patch it only names
    with api.client(api.bob) as bob:
        got = bob.post("/api/sessions/import", content=exported)
        assert (got.status_code, got.json()) == (422, git_refused(patch))


def test_a_fork_is_the_forkers_copy_and_outlives_the_share(api: Api) -> None:
    """A fork made while the share was live keeps its conversation and its blobs after the
    share is revoked (it is bob's copy, like its messages); carol, who only read the share,
    loses everything with it."""
    _, share, output, patch = alices_shared_work(api)
    with api.client(api.carol) as carol:
        assert carol.get(f"/api/blobs/{output}", params={"share": share}).content == BIG.encode()
    with api.client(api.bob) as bob:
        fork = bob.post(f"/api/shares/{share}/fork", json={})
        assert fork.status_code == 201, fork.text
        fid = fork.json()["id"]
        assert bob.get(f"/api/blobs/{output}", params={"session": fid}).content == BIG.encode()
        assert bob.get(f"/api/blobs/{patch}", params={"session": fid}).content == PATCH
    with api.client(api.alice) as alice:
        assert alice.delete(f"/api/shares/{share}").status_code == 200
    with api.client(api.bob) as bob:
        assert bob.get(f"/api/blobs/{output}", params={"session": fid}).content == BIG.encode()
        # and bob may reference what his fork holds, in his fork or another session
        got = bob.post(f"/api/sessions/{fid}/messages", json={"messages": [forged(output)]})
        assert got.status_code == 201, got.text
        git = {"patch": {"sha256": patch, "size": len(PATCH)}}
        other = bob.post("/api/sessions", json={"title": "other", "git": git})
        assert other.status_code == 201, other.text
        assert bob.post(f"/api/shares/{share}/fork", json={}).status_code == 410
    with api.client(api.carol) as carol:
        assert carol.get(f"/api/blobs/{output}", params={"share": share}).status_code == 410
        mine = carol.post("/api/sessions", json={"title": "mine"}).json()
        got = carol.post(
            f"/api/sessions/{mine['id']}/messages", json={"messages": [forged(output)]}
        )
        assert (got.status_code, got.json()) == (422, refused(output))


def test_a_fork_at_an_earlier_message_holds_only_the_blobs_before_it(api: Api) -> None:
    later = "a later secret " + "y" * 70_000
    with api.client(api.alice) as alice:
        sid = alice.post("/api/sessions", json={"title": "plans"}).json()["id"]
        first = alice.post(
            f"/api/sessions/{sid}/messages",
            json={"messages": [text_message("user", "start"), text_message("tool", later)]},
        ).json()["appended"]
        share = alice.post(f"/api/sessions/{sid}/shares", json={"mode": "allow"}).json()["id"]
    hidden = first[1]["parts"][0]["sha256"]
    with api.client(api.bob) as bob:
        fork = bob.post(f"/api/shares/{share}/fork", json={"at": first[0]["id"]}).json()
        got = bob.post(f"/api/sessions/{fork['id']}/messages", json={"messages": [forged(hidden)]})
        assert (got.status_code, got.json()) == (422, refused(hidden))


# idempotency keys


def test_a_retried_append_with_an_idempotency_key_appends_once(api: Api) -> None:
    with api.client(api.alice) as alice:
        sid = alice.post("/api/sessions", json={"title": "t"}).json()["id"]
        path = f"/api/sessions/{sid}/messages"
        body = {"messages": [text_message("user", "once")]}
        first = alice.post(path, json=body, headers={"Idempotency-Key": "turn-1"})
        again = alice.post(path, json=body, headers={"Idempotency-Key": "turn-1"})
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["etag"] == first.headers["etag"] == '"2"'
        assert alice.get(f"/api/sessions/{sid}").json()["message_count"] == 1
        # the same key with another body is refused, and changes nothing
        other = {"messages": [text_message("user", "something else")]}
        got = alice.post(path, json=other, headers={"Idempotency-Key": "turn-1"})
        assert (got.status_code, got.json()) == (
            422,
            {
                "error": {
                    "code": "invalid_input",
                    "message": "Idempotency-Key 'turn-1' was used for a different request to "
                    "this session; send a new key with a new request",
                }
            },
        )
        # a new key is a new request; without a key, a blind retry appends again
        assert alice.post(path, json=body, headers={"Idempotency-Key": "turn-2"}).status_code == 201
        assert alice.get(f"/api/sessions/{sid}").json()["message_count"] == 2
        bad = alice.post(path, json=body, headers={"Idempotency-Key": "a key with spaces"})
        assert bad.status_code == 422
        assert bad.json()["error"]["message"] == (
            "an Idempotency-Key is 1 to 255 printable ASCII characters"
        )
        assert alice.get(f"/api/sessions/{sid}").json()["message_count"] == 2
    # keys are per session: bob's session, same key, is another request
    with api.client(api.bob) as bob:
        theirs = bob.post("/api/sessions", json={"title": "t"}).json()["id"]
        got = bob.post(
            f"/api/sessions/{theirs}/messages", json=body, headers={"Idempotency-Key": "turn-1"}
        )
        assert got.status_code == 201
        # and another account's key does not open alice's session
        got = bob.post(path, json=body, headers={"Idempotency-Key": "turn-1"})
        assert got.status_code == 404


class DropsFirstAnswer(httpx.BaseTransport):
    """Delivers every request, but loses the answer to the first append: what a client sees
    when the connection drops after the server appended."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.appends: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.inner.handle_request(request)
        response = httpx.Response(answer.status_code, headers=answer.headers, content=answer.read())
        if request.method == "POST" and request.url.path.endswith("/messages"):
            self.appends.append(request.headers.get("Idempotency-Key"))
            if len(self.appends) == 1:
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def test_the_client_sends_a_lost_append_again_and_it_lands_once(api: Api) -> None:
    with api.client(api.alice) as http:
        transport = DropsFirstAnswer(http._transport)
        client = Client("http://testserver", api.alice.token)
        client.http = httpx.Client(
            base_url="http://testserver", headers=api.alice.headers, transport=transport
        )
        session = client.create("", title="t")
        result = client.append("", session.id, [text_message("user", "only once")])
        assert [m.parts for m in result.appended] == [[{"type": "text", "text": "only once"}]]
        assert result.session.message_count == 1
        key = transport.appends[0]
        assert key is not None and transport.appends == [key, key]
        assert api.service.get(api.alice.id, session.id).message_count == 1
        client.close()
