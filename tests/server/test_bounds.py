"""Inputs at and past the edges (huge usage, times before year 1, far expiries, huge positions,
NUL in a search, blobs that are not what their reference says) get a one-line 422 or a clean
answer over every store, never a 500; totals saturate instead of overflowing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from baton.core.errors import InvalidInput
from baton.core.models import TOTAL_TOKENS_MAX
from baton.server import create_app
from baton.service import Service
from tests.fixtures.servers import SECRET, Live, ThreadServer, person
from tests.helpers import text_message

NOT_UTF8 = b"\xff\xfe not text"


@dataclass
class Api:
    http: httpx.Client
    service: Service

    def session(self, *messages: dict[str, object]) -> str:
        sid = str(self.http.post("/api/sessions", json={"title": "edges"}).json()["id"])
        if messages:
            self.append(sid, *messages).raise_for_status()
        return sid

    def append(self, sid: str, *messages: dict[str, object]) -> httpx.Response:
        return self.http.post(f"/api/sessions/{sid}/messages", json={"messages": list(messages)})


@pytest.fixture
def api(service: Service) -> Iterator[Api]:
    """The app over the backend-parametrised service (memory, SQLite, PostgreSQL + S3)."""
    alice = person(service, "edgar", "Edgar")
    app = create_app(service, secret=SECRET, login_rate=1000, share_rate=100_000)
    with ThreadServer(app) as url, httpx.Client(base_url=url, headers=alice.headers) as http:
        service.base_url = url
        yield Api(http, service)


def refused(response: httpx.Response, message: str) -> None:
    assert (response.status_code, response.json()) == (
        422,
        {"error": {"code": "invalid_input", "message": message}},
    )


def used(text: str, **usage: float) -> dict[str, object]:
    return text_message("assistant", text, usage=usage)


def test_usage_beyond_its_bounds_is_refused_and_changes_nothing(api: Api) -> None:
    sid = api.session(used("fine", input_tokens=2**53, cost_usd=1_000_000))
    before = api.http.get(f"/api/sessions/{sid}").json()
    refused(
        api.append(sid, used("a", input_tokens=2**63 - 1)),
        "message 1: usage.input_tokens 9223372036854775807 is over the limit of 2^53",
    )
    refused(
        api.append(sid, used("b", cost_usd=1e308)),
        "message 1: usage.cost_usd 1e+308 is over the limit of 1,000,000",
    )
    assert api.http.get(f"/api/sessions/{sid}").json() == before
    assert before["totals"] == {
        "input_tokens": 2**53,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 1_000_000.0,
    }


def test_token_totals_saturate_instead_of_overflowing_also_in_forks(api: Api) -> None:
    # 1025 messages of 2^53 tokens each would sum to 2^63 + 2^53: one past the stores' integers.
    sid = api.session(*[used(f"turn {i}", input_tokens=2**53) for i in range(1025)])
    assert api.http.get(f"/api/sessions/{sid}").json()["totals"]["input_tokens"] == TOTAL_TOKENS_MAX
    later = api.append(sid, used("later", input_tokens=5, output_tokens=7))
    assert later.status_code == 201
    assert later.json()["session"]["totals"]["input_tokens"] == TOTAL_TOKENS_MAX
    assert later.json()["session"]["totals"]["output_tokens"] == 7
    fork = api.http.post(f"/api/sessions/{sid}/fork", json={}).json()["id"]
    after_fork = api.append(fork, used("in the fork", input_tokens=1))
    assert after_fork.status_code == 201
    assert after_fork.json()["session"]["totals"]["input_tokens"] == TOTAL_TOKENS_MAX


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"], ids=["min", "max"]
)
def test_a_created_at_outside_the_years_1_to_9999_in_utc_is_refused(api: Api, when: str) -> None:
    sid = api.session()
    refused(
        api.append(sid, text_message("user", "x", created_at=when)),
        f"message 1: created_at {when!r} is out of range",
    )


def test_the_earliest_time_keeps_four_digits_of_year(api: Api) -> None:
    sid = api.session(text_message("user", "x", created_at="0001-01-01T00:00:00Z"))
    messages = api.http.get(f"/api/sessions/{sid}/messages").json()["messages"]
    assert messages[0]["created_at"] == "0001-01-01T00:00:00.000000Z"
    assert api.http.get(f"/api/sessions/{sid}/export").status_code == 200


def test_an_expiry_too_far_ahead_is_refused(api: Api) -> None:
    sid = api.session(text_message("user", "x"))
    response = api.http.post(f"/api/sessions/{sid}/shares", json={"expires": "1000000w"})
    refused(response, "expiry '1000000w' is too far ahead; at most 36500d")
    refused(
        api.http.post(f"/api/sessions/{sid}/shares", json={"expires": "9999999999999999m"}),
        "expiry '9999999999999999m' is too far ahead; at most 36500d",
    )
    assert api.http.get("/api/shares").json() == []


@pytest.mark.parametrize("start", [2**63 - 1, 2**63, 2**80])
def test_a_start_past_any_chain_is_an_empty_page(api: Api, start: int) -> None:
    sid = api.session(text_message("user", "x"))
    head = api.http.get(f"/api/sessions/{sid}").json()["head"]
    page = api.http.get(f"/api/sessions/{sid}/messages", params={"start": start})
    assert (page.status_code, page.json()) == (
        200,
        {"messages": [], "head": head, "next_after": None},
    )
    share = api.http.post(f"/api/sessions/{sid}/shares", json={}).json()["id"]
    shared = api.http.get(f"/api/shares/{share}/messages", params={"start": start})
    assert (shared.status_code, shared.json()["messages"]) == (200, [])
    assert api.http.get(f"/sessions/{sid}", params={"start": start}).status_code == 200


@pytest.mark.parametrize("name", ["q", "repo"])
def test_a_nul_in_the_listing_parameters_is_refused(api: Api, name: str) -> None:
    api.session(text_message("user", "x"))
    response = api.http.get("/api/sessions", params={name: "a\x00b"})
    refused(response, "the URL holds a NUL character (%00)")
    # The same rule for the CLI, which calls the service directly.
    owner = api.service.accounts.find("edgar").id
    with pytest.raises(InvalidInput, match=r"^q and repo must not contain NUL characters$"):
        api.service.list(owner, **{"query" if name == "q" else "repo": "a\x00b"})


@pytest.mark.parametrize(
    "path",
    [
        "/api/sessions/ses_%00",
        "/api/sessions/{sid}/messages?after=m_%00",
        "/api/shares?session=ses_%00",
        "/api/shares/abc%00",
        "/api/shares/abc%00/messages",
        "/sessions/ses_%00",
        "/share/abc%00",
    ],
)
def test_a_nul_anywhere_in_the_url_is_refused(api: Api, path: str) -> None:
    sid = api.session(text_message("user", "x"))
    response = api.http.get(path.format(sid=sid))
    refused(response, "the URL holds a NUL character (%00)")


def test_a_blob_that_is_not_what_its_reference_says_stays_a_reference(api: Api) -> None:
    sha = hashlib.sha256(NOT_UTF8).hexdigest()
    assert api.http.post(f"/api/blobs/{sha}", content=NOT_UTF8).status_code == 201
    ref = {
        "type": "blob_ref",
        "of": "text",
        "field": "text",
        "sha256": sha,
        "size": len(NOT_UTF8),
        "encoding": "utf-8",
        "preview": "not text",
    }
    sid = api.session({"role": "user", "parts": [ref]})
    page = api.http.get(f"/api/sessions/{sid}/messages", params={"full": "true"})
    assert page.status_code == 200
    assert page.json()["messages"][0]["parts"] == [ref]
    for fmt in ("json", "markdown", "html", "opencode"):
        exported = api.http.get(f"/api/sessions/{sid}/export", params={"format": fmt})
        assert exported.status_code == 200, fmt
    share = api.http.post(f"/api/sessions/{sid}/shares", json={}).json()["id"]
    shared = api.http.get(f"/api/shares/{share}/messages", params={"full": "true"})
    assert (shared.status_code, shared.json()["messages"][0]["parts"]) == (200, [ref])
    assert api.http.get(f"/share/{share}").status_code == 200
    head = page.json()["head"]
    report = api.http.get(f"/api/sessions/{sid}/verify").json()
    assert (report["ok"], report["problems"]) == (
        False,
        [f"session {sid}: blob {sha} is not UTF-8 text as its blob_ref says (message {head})"],
    )


def test_a_405_lists_every_method_of_the_path(live: Live) -> None:
    with live.client(live.alice) as http:
        sid = http.post("/api/sessions", json={}).json()["id"]
        cases = {
            "/api/sessions": "GET, POST",
            f"/api/sessions/{sid}": "DELETE, GET, PATCH",
            f"/api/sessions/{sid}/messages": "GET, POST",
            "/api/tokens": "GET, POST",
            f"/api/blobs/{'0' * 64}": "GET, POST",
        }
        for path, allowed in cases.items():
            response = http.request("PUT", path)
            assert (response.status_code, response.headers["Allow"]) == (405, allowed), path
            assert response.json() == {
                "error": {"code": "http_error", "message": "method not allowed"}
            }


@pytest.mark.parametrize("path", ["/api/tokens", "/api/sessions", "/api/sessions/{sid}/shares"])
def test_a_body_that_does_not_parse_is_a_422(live: Live, path: str) -> None:
    with live.client(live.alice) as http:
        sid = http.post("/api/sessions", json={}).json()["id"]
        headers = {"Content-Type": "application/json"}
        response = http.post(path.format(sid=sid), content=b"\xff&", headers=headers)
        assert (response.status_code, response.json()) == (
            422,
            {"error": {"code": "invalid_input", "message": "the request body could not be parsed"}},
        )
