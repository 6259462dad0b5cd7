"""The HTTP client: the contract (`baton.contract.Baton`) that Service implements locally, over a
baton server (remote mode)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from baton.contract import ANY_HEAD, AppendResult, ImportResult, VerifyReport
from baton.core import errors
from baton.core.errors import BatonError, InvalidInput
from baton.core.models import JSON, Account, Message, Page, Session, Share, Totals, utcnow
from baton.core.runs import Environment, Repo, Run
from baton.core.shares import share_id_from
from baton.render.document import EXPORT_FORMAT, EXPORT_VERSION

_ERRORS: dict[str, type[BatonError]] = {
    cls.code: cls
    for cls in (
        errors.InvalidInput,
        errors.NotFound,
        errors.Gone,
        errors.TooLarge,
        errors.Unauthorized,
        errors.Corrupt,
    )
}


EVENTS_READ_TIMEOUT = 60.0  # the server sends a comment every 15 s on an idle stream
EVENTS_RECONNECTS = 5  # failed connections in a row before `events` gives up
APPEND_ATTEMPTS = 3  # an append whose connection drops is sent again (same Idempotency-Key)


def raise_for(response: httpx.Response) -> None:
    """A server error as the same BatonError the service would have raised."""
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        raise BatonError(
            f"the server answered {response.status_code} {response.reason_phrase}"
        ) from None
    if code == "conflict":
        raise errors.Conflict(message, error.get("current_head"))
    if code == "version_mismatch":
        raise errors.VersionMismatch(message, int(error.get("current_version") or 0))
    if code == "secrets_found":
        raise errors.SecretsFound(message, list(error.get("findings") or []))
    if code == "live_shares":
        raise errors.LiveShares(message, list(error.get("share_ids") or []))
    if code == "rate_limited":
        raise errors.RateLimited(message, int(response.headers.get("retry-after") or 1))
    cls = _ERRORS.get(code, BatonError)
    exc = cls(message)
    exc.status = response.status_code
    raise exc


def session_from(data: JSON) -> Session:
    return Session(
        id=data["id"],
        owner=data["owner"],
        title=data["title"],
        task=data["task"],
        status=data["status"],
        head=data["head"],
        message_count=data["message_count"],
        created_at=data["created_at"],
        updated_at=data["updated_at"],
        version=data["version"],
        metadata=data["metadata"],
        git=data["git"],
        platform=data["platform"],
        forked_from=data["forked_from"],
        totals=Totals(**data["totals"]),
        repo=data["repo"],
        inherited=Totals(**(data.get("inherited") or {})),
    )


def share_from(data: JSON, owner: str = "") -> Share:
    return Share(
        id=data["id"],
        session_id=data.get("session_id", ""),
        owner=owner,
        shared_by=data["shared_by"],
        head=data["head"],
        message_count=data["message_count"],
        title=data["title"],
        task=data["task"],
        metadata=data["metadata"],
        git=data["git"],
        created_at=data["created_at"],
        expires_at=data["expires_at"],
        revoked_at=data.get("revoked_at"),
        redacted=data.get("redacted", []),
        totals=Totals(**data["totals"]),
        inherited=Totals(**(data.get("inherited") or {})),
    )


def message_from(data: JSON) -> Message:
    return Message(
        id=data["id"],
        parent=data["parent"],
        role=data["role"],
        parts=data["parts"],
        created_at=data["created_at"],
        model=data.get("model"),
        usage=data.get("usage"),
    )


def repo_from(data: JSON, owner: str) -> Repo:
    """A repository as the server shows it: its credentials stay there (b"" says it holds
    some)."""
    return Repo(
        id=data["id"],
        owner=owner,
        name=data["name"],
        url=data["url"],
        created_at=data["created_at"],
        default_branch=data["default_branch"],
        credentials=b"" if data["has_credentials"] else None,
    )


def environment_from(data: JSON, owner: str) -> Environment:
    """An environment as the server shows it: its secrets' names, never their values."""
    return Environment(
        id=data["id"],
        owner=owner,
        name=data["name"],
        created_at=data["created_at"],
        updated_at=data["updated_at"],
        variables=dict(data["variables"]),
        secret_names=tuple(data["secrets"]),
        setup=tuple(data["setup"]),
        network=data["network"],
        model=data["model"],
        push=data["push"],
    )


def run_from(data: JSON, owner: str) -> Run:
    return Run(
        id=data["id"],
        owner=owner,
        session_id=data["session_id"],
        repo_id=data["repo_id"],
        environment_id=data["environment_id"],
        branch=data["branch"],
        prompt=data["prompt"],
        state=data["state"],
        created_at=data["created_at"],
        updated_at=data["updated_at"],
        model=data["model"],
        times=dict(data["times"]),
        error=data["error"],
        cancel_requested=data["cancel_requested"],
    )


def _connect(url: str, token: str | None, timeout: float) -> httpx.Client:
    headers = {"User-Agent": "baton-cli"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)


class Client:
    """A logged-in connection to a baton server. `owner` arguments are accepted for the
    Service interface and ignored: the server knows who the token belongs to."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.base_url = self.url
        self.http = _connect(self.url, token, timeout)
        self._install: str | None = None

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise BatonError(f"cannot reach {self.url}: {exc}") from None
        raise_for(response)
        return response

    def now(self) -> str:
        return utcnow()

    def share_url(self, share_id: str) -> str:
        return f"{self.url}/share/{share_id}"

    def install_url(self) -> str:
        """The server's own wheel: its version may not be this client's."""
        from baton import wheel

        if self._install is None:
            try:
                where = self.http.request("HEAD", "/install").headers.get("location", "")
            except httpx.HTTPError:
                where = ""
            ours = where.startswith("/install/")
            self._install = f"{self.url}{where}" if ours else wheel.install_url(self.url)
        return self._install

    # accounts
    def me(self) -> Account:
        data = self.call("GET", "/api/me").json()
        return Account(data["id"], data["handle"], data["display_name"], data["created_at"])

    def tokens(self) -> list[JSON]:
        return list(self.call("GET", "/api/tokens").json())

    def create_token(self, name: str = "") -> JSON:
        return dict(self.call("POST", "/api/tokens", json={"name": name}).json())

    def revoke_token(self, token_id: str) -> JSON:
        return dict(self.call("DELETE", f"/api/tokens/{token_id}").json())

    # sessions
    def create(
        self,
        owner: str,
        *,
        title: str | None = None,
        task: str = "",
        metadata: JSON | None = None,
        git: JSON | None = None,
        platform: str = "cli",
        repo: str | None = None,
    ) -> Session:
        body = {"title": title, "task": task, "metadata": metadata, "git": git}
        body.update(platform=platform, repo=repo)
        return session_from(self.call("POST", "/api/sessions", json=body).json())

    def get(self, owner: str, session_id: str) -> Session:
        return session_from(self.call("GET", f"/api/sessions/{session_id}").json())

    def messages(
        self,
        owner: str,
        session_id: str,
        *,
        start: int = 0,
        limit: int | None = None,
        hydrate: bool = False,
    ) -> list[Message]:
        return self._pages(f"/api/sessions/{session_id}/messages", start, limit, hydrate)

    def _pages(self, path: str, start: int, limit: int | None, hydrate: bool) -> list[Message]:
        out: list[Message] = []
        params: dict[str, Any] = {"start": start, "full": hydrate}
        while limit is None or len(out) < limit:
            params["limit"] = 1000 if limit is None else min(1000, limit - len(out))
            page = self.call("GET", path, params=params).json()
            out += [message_from(m) for m in page["messages"]]
            if not page["next_after"]:
                break
            params.pop("start", None)
            params["after"] = page["next_after"]
        return out

    def append(
        self,
        owner: str,
        session_id: str,
        messages: Sequence[Any],
        expected_head: Any = ANY_HEAD,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append over HTTP. The request carries an Idempotency-Key (`idempotency_key`, or a
        new one), so it is sent again on a dropped connection without appending twice."""
        import uuid

        body: JSON = {"messages": list(messages)}
        if expected_head is not ANY_HEAD:
            body["expected_head"] = expected_head
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        path = f"/api/sessions/{session_id}/messages"
        for attempt in range(APPEND_ATTEMPTS):
            try:
                response = self.http.request("POST", path, json=body, headers=headers)
                break
            except httpx.TransportError as exc:
                if attempt + 1 == APPEND_ATTEMPTS:
                    raise BatonError(f"cannot reach {self.url}: {exc}") from None
        raise_for(response)
        data = response.json()
        return AppendResult(
            session_from(data["session"]), [message_from(m) for m in data["appended"]]
        )

    def update(
        self,
        owner: str,
        session_id: str,
        *,
        expected_version: int | None = None,
        title: str | None = None,
        task: str | None = None,
        status: str | None = None,
        metadata: JSON | None = None,
        git: JSON | None = None,
    ) -> Session:
        headers = {} if expected_version is None else {"If-Match": f'"{expected_version}"'}
        changes = {"title": title, "task": task, "status": status, "metadata": metadata, "git": git}
        body = {k: v for k, v in changes.items() if v is not None}
        data = self.call("PATCH", f"/api/sessions/{session_id}", json=body, headers=headers)
        return session_from(data.json())

    def rename(self, owner: str, session_id: str, title: str) -> Session:
        return self.update(owner, session_id, title=title)

    def delete(self, owner: str, session_id: str, *, revoke_shares: bool = False) -> list[str]:
        params = {"revoke_shares": revoke_shares}
        data = self.call("DELETE", f"/api/sessions/{session_id}", params=params).json()
        return list(data["revoked_shares"])

    # blobs and git snapshots
    def put_blob(self, sha256: str, data: bytes, owner: str | None = None) -> None:
        """Upload a blob (the server checks that `data` hashes to `sha256`)."""
        headers = {"Content-Type": "application/octet-stream"}
        self.call("POST", f"/api/blobs/{sha256}", content=data, headers=headers)

    def blob(
        self,
        owner: str | None,
        sha256: str,
        *,
        session_id: str | None = None,
        share_id: str | None = None,
    ) -> bytes:
        params = {"session": session_id} if session_id else {"share": share_id}
        return self.call("GET", f"/api/blobs/{sha256}", params=params).content

    def snapshot(self, owner: str, session_id: str, git: JSON) -> tuple[Session, bool]:
        session = self.get(owner, session_id)
        current = session.git or {}
        if current.get("state") is not None and current.get("state") == git.get("state"):
            return session, False
        return self.update(owner, session_id, git=git), True

    # sharing
    def scan_session(self, owner: str, session_id: str, *, code: bool = True) -> list[JSON]:
        params = {} if code else {"code": "false"}
        found = self.call("GET", f"/api/sessions/{session_id}/scan", params=params).json()
        return list(found["findings"])

    def share(
        self,
        owner: str,
        session_id: str,
        *,
        expires: str | None = None,
        mode: str = "block",
        code: bool = True,
    ) -> Share:
        body = {"expires": expires, "mode": mode, "code": code}
        data = self.call("POST", f"/api/sessions/{session_id}/shares", json=body).json()
        return share_from(data, owner)

    def revoke(self, owner: str, share_id: str) -> Share:
        return share_from(self.call("DELETE", f"/api/shares/{share_id}").json(), owner)

    def shares(self, owner: str, session_id: str | None = None) -> list[Share]:
        params = {"session": session_id} if session_id else {}
        return [share_from(s, owner) for s in self.call("GET", "/api/shares", params=params).json()]

    def public_share(self, share_id: str) -> Share:
        return share_from(self.call("GET", f"/api/shares/{share_id}").json())

    def share_messages(
        self, share_id: str, *, start: int = 0, limit: int | None = None, hydrate: bool = False
    ) -> list[Message]:
        return self._pages(f"/api/shares/{share_id}/messages", start, limit, hydrate)

    def fork(
        self, owner: str, source: str, *, at: str | None = None, platform: str = "cli"
    ) -> Session:
        source = share_id_from(source)
        kind = "sessions" if source.startswith("ses_") else "shares"
        data = self.call("POST", f"/api/{kind}/{source}/fork", json={"at": at}).json()
        return session_from(data)

    # export and import
    def export(self, owner: str, session_id: str, fmt: str = "json") -> str | JSON:
        from baton.render import FORMATS

        fmt = "markdown" if fmt == "md" else fmt
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown export format {fmt!r}: use {', '.join(FORMATS)}")
        response = self.call("GET", f"/api/sessions/{session_id}/export", params={"format": fmt})
        return response.text if fmt in ("markdown", "html") else dict(response.json())

    def import_document(
        self,
        owner: str,
        data: bytes | str | JSON,
        progress: Callable[[int, int], None] | None = None,
        *,
        fresh: bool = False,
    ) -> ImportResult:
        import orjson

        if not isinstance(data, bytes | str):
            # messages read one at a time (a big file) are all sent; their header is
            # complete once they are read
            messages = list(data["messages"])
            data = {**data, "messages": messages}
        body = data if isinstance(data, bytes | str) else orjson.dumps(data)
        headers = {"Content-Type": "application/json"}
        params = {"fresh": "true"} if fresh else {}
        found = self.call(
            "POST", "/api/sessions/import", content=body, headers=headers, params=params
        ).json()
        return ImportResult(session_from(found["session"]), found["created"], found["messages"])

    def verify(self, owner: str | None = None, session_id: str | None = None) -> VerifyReport:
        path = f"/api/sessions/{session_id}/verify" if session_id else "/api/verify"
        data = self.call("GET", path).json()
        return VerifyReport(data["sessions"], data["shares"], data["messages"], data["problems"])

    def gc(self) -> JSON:
        raise InvalidInput(f"gc runs where the data is: run `baton gc` on the server ({self.url})")

    # live
    def events(
        self, session_id: str, after: int = 0, *, follow: bool = True
    ) -> Iterator[ServerEvent]:
        """The session's events (GET /api/sessions/{id}/events): its messages after position
        `after`, then, with `follow`, new messages, its run's states and streamed text as they
        happen. A dropped connection is opened again from the last message received (the
        server replays what was missed); an error (404, 401) is raised."""
        last = after
        failures = 0
        timeout = httpx.Timeout(10.0, read=EVENTS_READ_TIMEOUT)
        while True:
            headers = {"Last-Event-ID": str(last)}
            params = {"follow": "true" if follow else "false"}
            path = f"/api/sessions/{session_id}/events"
            try:
                with self.http.stream(
                    "GET", path, params=params, headers=headers, timeout=timeout
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise_for(response)
                    for event in parse_events(response.iter_lines()):
                        failures = 0
                        if event.id is not None:
                            last = event.id
                        yield event
            except httpx.HTTPError as exc:
                failures += 1
                if failures > EVENTS_RECONNECTS:
                    raise BatonError(f"cannot reach {self.url}: {exc}") from None
                time.sleep(min(0.5 * failures, 5.0))
                continue
            if not follow:
                return

    # server runs (contract.Cloud)
    def repos(self, owner: str) -> list[Repo]:
        return [repo_from(r, owner) for r in self.call("GET", "/api/repos").json()]

    def add_repo(
        self,
        owner: str,
        url: str,
        *,
        name: str | None = None,
        credentials: str | None = None,
        default_branch: str | None = None,
    ) -> Repo:
        body = {
            "url": url,
            "name": name,
            "credentials": credentials,
            "default_branch": default_branch,
        }
        data = self.call("POST", "/api/repos", json=body).json()
        return repo_from(data, owner)

    def remove_repo(self, owner: str, repo: str) -> None:
        self.call("DELETE", f"/api/repos/{quote(repo, safe='')}")

    def environments(self, owner: str) -> list[Environment]:
        return [environment_from(e, owner) for e in self.call("GET", "/api/environments").json()]

    def add_environment(
        self,
        owner: str,
        name: str,
        *,
        variables: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        setup: Sequence[JSON | str] = (),
        network: bool = False,
        model: str | None = None,
        push: bool = False,
    ) -> Environment:
        body = {
            "name": name,
            "variables": variables or {},
            "secrets": secrets or {},
            "setup": list(setup),
            "network": network,
            "model": model,
            "push": push,
        }
        return environment_from(self.call("POST", "/api/environments", json=body).json(), owner)

    def change_environment(self, owner: str, environment: str, changes: JSON) -> Environment:
        path = f"/api/environments/{quote(environment, safe='')}"
        return environment_from(self.call("PATCH", path, json=changes).json(), owner)

    def remove_environment(self, owner: str, environment: str) -> None:
        self.call("DELETE", f"/api/environments/{quote(environment, safe='')}")

    def start_run(
        self,
        owner: str,
        prompt: str,
        *,
        repo: str | None = None,
        branch: str | None = None,
        environment: str | None = None,
        model: str | None = None,
        session_id: str | None = None,
    ) -> tuple[Run, Session]:
        body = {
            "prompt": prompt,
            "repo": repo,
            "branch": branch,
            "environment": environment,
            "model": model,
            "session_id": session_id,
        }
        data = self.call("POST", "/api/runs", json=body).json()
        return run_from(data["run"], owner), session_from(data["session"])

    def run(self, owner: str, run_id: str) -> Run:
        return run_from(self.call("GET", f"/api/runs/{quote(run_id, safe='')}").json(), owner)

    def runs(self, owner: str, *, session_id: str | None = None, limit: int = 50) -> list[Run]:
        params: dict[str, Any] = {"limit": limit}
        if session_id is not None:
            params["session"] = session_id
        return [run_from(r, owner) for r in self.call("GET", "/api/runs", params=params).json()]

    def cancel_run(self, owner: str, run_id: str) -> Run:
        data = self.call("POST", f"/api/runs/{quote(run_id, safe='')}/cancel").json()
        return run_from(data, owner)

    def rescan(self, progress: Callable[[int, int], None] | None = None) -> JSON:
        raise InvalidInput(
            "the rescan runs where the data is: run `baton sessions verify --rescan` on the "
            f"server ({self.url}), or its first share there runs it"
        )

    def list(
        self,
        owner: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        repo: str | None = None,
        query: str | None = None,
    ) -> Page:
        params = {"limit": limit, "cursor": cursor, "status": status, "repo": repo, "q": query}
        params = {k: v for k, v in params.items() if v is not None}
        data = self.call("GET", "/api/sessions", params=params).json()
        return Page([session_from(s) for s in data["sessions"]], data["next_cursor"])


@dataclass(frozen=True)
class ServerEvent:
    """One Server-Sent Event: its name (message, run, delta, reset), its JSON data, and for a
    message its position (the event id)."""

    event: str
    data: Any
    id: int | None = None


def parse_events(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """Server-Sent Events from the lines of a stream (comments and retry hints skipped)."""
    name, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                value = orjson.loads("\n".join(data))
                yield ServerEvent(name, value, event_id)
            name, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id" and value.isdigit():
            event_id = int(value)


def anonymous(url: str, timeout: float = 60.0) -> Client:
    """A client without credentials for the server a (share) URL points at."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"{url!r} is not a share URL (https://host/share/ID)")
    return Client(f"{parts.scheme}://{parts.netloc}", None, timeout=timeout)


def share_document(url: str, timeout: float = 60.0) -> tuple[JSON, dict[str, bytes]]:
    """A public share on any baton server, as a baton export document (for a fork into
    another store), and the blobs it references that the document does not carry in full:
    the git patch and bundle, and any `blob_ref` that is not a moved-out payload. Message ids
    are re-checked when it is imported."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"{url!r} is not a share URL (https://host/share/ID)")
    share_id = share_id_from(url)
    with _connect(f"{parts.scheme}://{parts.netloc}", None, timeout) as http:
        remote = Client.__new__(Client)
        remote.url = remote.base_url = f"{parts.scheme}://{parts.netloc}"
        remote.http = http
        share = remote.public_share(share_id)
        messages = remote.share_messages(share_id, hydrate=True)
        shas = [
            entry["sha256"]
            for entry in ((share.git or {}).get(key) for key in ("patch", "bundle"))
            if isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
        ]
        for message in messages:
            for part in message.parts:
                if part.get("type") == "blob_ref" and isinstance(part.get("sha256"), str):
                    shas.append(part["sha256"])
        blobs = {sha: remote.blob(None, sha, share_id=share_id) for sha in dict.fromkeys(shas)}
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "session": {
            "title": share.title,
            "task": share.task,
            "metadata": share.metadata,
            "git": share.git,
            "forked_from": {"share": share_id, "url": url, "message": share.head},
        },
        "messages": [m.to_dict() for m in messages],
    }, blobs
