"""Remote mode as a user drives it: `baton serve`, `login`, the same commands against the
server with the same output, `logout`, forks from a share URL, users and tokens."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.servers import Served, start_serve, stop
from tests.helpers import run_baton, run_json


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = start_serve(tmp_path / "server-home")
    yield running
    stop(running)


def shape(value: Any) -> Any:
    """The keys and types of a JSON value, without what differs between two runs."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


def script(home: Path) -> dict[str, Any]:
    """The same commands, run against whatever `home` is set up for."""
    out: dict[str, Any] = {}
    session = run_json("sessions", "new", "--title", "Remote or not", home=home)
    sid = session["id"]
    out["new"] = session
    out["append"] = run_json(
        "sessions", "append", sid, "--role", "user", "--text", "hello walrus", home=home
    )
    # a retried append with the same --idempotency-key appends once and answers the same
    retry = ("sessions", "append", sid, "--role", "user", "--text", "once")
    first = run_json(*retry, "--idempotency-key", "cli-1", home=home)
    again = run_json(*retry, "--idempotency-key", "cli-1", home=home)
    out["retry"] = (again == first, again["message_count"], len(again["appended"]))
    clash = run_baton(
        "sessions", "append", sid, "--role", "user", "--text", "other", "--idempotency-key",
        "cli-1", home=home,
    )  # fmt: skip
    out["clash"] = (clash.returncode, clash.stderr)
    out["show"] = run_json("sessions", "show", sid, home=home)
    out["list"] = run_json("sessions", "list", "-q", "walrus", home=home)
    share = run_json("share", sid, "--expires", "7d", home=home)
    out["share"] = share
    out["shares"] = run_json("shares", home=home)
    out["fork"] = run_json("fork", share["id"], home=home)
    out["unshare"] = run_json("unshare", share["id"], home=home)
    table = run_baton("sessions", "list", home=home)
    out["table"] = table.stdout.splitlines()[1]  # the header row
    gone = run_baton("fork", share["id"], home=home)
    out["gone"] = (gone.returncode, gone.stderr)
    out["rename"] = run_json("sessions", "rename", sid, "Renamed", home=home)["title"]
    return out


@pytest.mark.slow
def test_every_command_works_against_the_server_with_the_same_output(
    served: Served, tmp_path: Path
) -> None:
    local = script(tmp_path / "local-home")
    client_home = tmp_path / "client-home"
    login = run_baton("login", served.url, "--token", served.token, home=client_home)
    assert login.returncode == 0, login.stderr
    assert login.stdout == f"logged in to {served.url} as owner (owner)\n"
    saved = client_home / "login.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    remote = script(client_home)
    for key in ("new", "append", "show", "list", "share", "shares", "fork", "unshare"):
        assert shape(remote[key]) == shape(local[key]), key
    assert remote["table"] == local["table"]
    assert remote["gone"][0] == local["gone"][0] == 1
    assert re.sub(r"share \S+", "share X", remote["gone"][1]) == re.sub(
        r"share \S+", "share X", local["gone"][1]
    )
    assert remote["rename"] == local["rename"] == "Renamed"
    assert remote["retry"] == local["retry"] == (True, 2, 1)
    assert (
        remote["clash"]
        == local["clash"]
        == (
            2,
            "error: Idempotency-Key 'cli-1' was used for a different request to this session; "
            "send a new key with a new request\n",
        )
    )
    # what was made remotely lives on the server, not in the client's home
    assert not (client_home / "baton.db").exists()
    on_server = run_json("sessions", "list", home=served.home, env={"BATON_USER": "owner"})
    assert {s["title"] for s in on_server} == {"Renamed", "Remote or not"}
    assert remote["share"]["url"].startswith(served.url + "/share/")
    whoami = run_json("whoami", home=client_home)
    assert (whoami["handle"], whoami["server"]) == ("owner", served.url)
    assert run_baton("logout", home=client_home).stdout == "logged out\n"
    assert run_json("sessions", "list", home=client_home) == []
    assert "local store" in run_baton("whoami", home=client_home).stdout


def test_login_refuses_a_bad_token_or_server_and_saves_nothing(
    served: Served, tmp_path: Path
) -> None:
    home = tmp_path / "client"
    bad = run_baton("login", served.url, "--token", "baton_wrong", home=home)
    assert bad.returncode == 1
    assert bad.stderr == "error: this token is not valid (revoked, expired or mistyped)\n"
    nowhere = run_baton("login", "http://127.0.0.1:9", "--token", "x", home=home)
    assert nowhere.returncode == 1 and nowhere.stderr.startswith("error: cannot reach")
    assert "Traceback" not in nowhere.stderr
    assert run_baton("login", "ftp://host", "--token", "x", home=home).returncode == 2
    assert not (home / "login.json").exists()


def test_a_revoked_token_ends_remote_mode_with_one_line(served: Served, tmp_path: Path) -> None:
    home = tmp_path / "client"
    token = run_json(
        "tokens", "create", "--name", "laptop", home=served.home, env={"BATON_USER": "owner"}
    )
    assert run_baton("login", served.url, "--token", token["token"], home=home).returncode == 0
    listed = run_json("tokens", "list", home=home)
    assert {t["name"] for t in listed} == {"first start", "laptop"}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    revoked = run_json("tokens", "revoke", token["id"], home=home)
    assert revoked["revoked_at"] is not None
    after = run_baton("sessions", "list", home=home)
    assert after.returncode == 1
    assert after.stderr == "error: this token is not valid (revoked, expired or mistyped)\n"


@pytest.mark.slow
def test_fork_a_share_url_from_another_server_into_the_local_store(
    served: Served, tmp_path: Path
) -> None:
    owner = {"BATON_USER": "owner"}
    sid = run_json("sessions", "new", "--title", "Shared walrus", home=served.home, env=owner)["id"]
    for text in ("first", "second", "third"):
        run_json(
            "sessions", "append", sid, "--role", "user", "--text", text, home=served.home, env=owner
        )
    share = run_json("share", sid, home=served.home, env=owner)
    url = f"{served.url}/share/{share['id']}"
    home = tmp_path / "elsewhere"
    forked = run_json("fork", url, home=home)
    assert forked["title"] == "Shared walrus" and forked["message_count"] == 3
    assert forked["forked_from"]["share"] == share["id"]
    shown = run_json("sessions", "show", forked["id"], home=home)
    assert [m["parts"][0]["text"] for m in shown["messages"]] == ["first", "second", "third"]
    assert shown["head"] == share["head"]  # the same content-addressed ids
    again = run_json("fork", url, home=home)
    assert again["id"] != forked["id"]  # a fork is a new session each time
    # `baton --fork` does the same, and a share id alone resolves in the local store
    top = run_baton("--fork", url, home=home)
    assert top.returncode == 0 and top.stdout.startswith("ses_")
    at = run_json("fork", url, "--at", shown["messages"][0]["id"], home=home)
    assert at["message_count"] == 1
    run_json("unshare", share["id"], home=served.home, env=owner)
    gone = run_baton("fork", url, home=home)
    assert gone.returncode == 1 and gone.stderr == f"error: share {share['id']} was revoked\n"


def test_serve_refuses_a_public_address_without_a_secret(tmp_path: Path) -> None:
    result = run_baton("serve", "--host", "0.0.0.0", "--port", "0", home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: refusing to listen on 0.0.0.0 without a secret")
    short = run_baton(
        "serve", "--host", "0.0.0.0", "--port", "0", home=tmp_path, env={"BATON_SECRET": "short"}
    )
    assert short.returncode == 2 and "32+" in short.stderr


def test_first_start_prints_the_login_link_and_token_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = start_serve(home)
    stop(first)
    assert first.token.startswith("baton_") and "/login?code=" in first.login_link
    again = start_serve(home)
    stop(again)
    assert "API token" not in again.output and again.output.startswith("baton serving")
    secret = home / "server-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_users_and_tokens_on_the_local_store(tmp_path: Path) -> None:
    added = run_json("users", "add", "ada", "--display-name", "Ada L", home=tmp_path)
    assert added["handle"] == "ada" and added["token"].startswith("baton_")
    twice = run_baton("users", "add", "ada", home=tmp_path)
    assert twice.returncode == 1 and twice.stderr == "error: an account ada exists already\n"
    assert run_baton("users", "add", "Bad Handle!", home=tmp_path).returncode == 2
    assert [u["handle"] for u in run_json("users", "list", home=tmp_path)] == ["ada"]
    made = run_json("tokens", "create", "--user", "ada", "--name", "ci", home=tmp_path)
    listed = run_json("tokens", "list", "--user", "ada", home=tmp_path)
    assert [(t["name"], t["state"]) for t in listed] == [("ci", "live"), ("first token", "live")]
    run_json("tokens", "revoke", made["id"], "--user", "ada", home=tmp_path)
    listed = run_json("tokens", "list", "--user", "ada", home=tmp_path)
    assert [(t["name"], t["state"]) for t in listed] == [("ci", "revoked"), ("first token", "live")]
    short = run_baton("users", "passwd", "ada", "--password", "short", home=tmp_path)
    assert (
        short.returncode == 2 and short.stderr == "error: a password needs at least 8 characters\n"
    )
    assert (
        run_baton(
            "users", "passwd", "ada", "--password", "long enough pw", home=tmp_path
        ).returncode
        == 0
    )
    assert os.path.exists(tmp_path / "baton.db")


def test_the_context_hands_out_the_local_service_or_the_client_by_mode(
    served: Served, tmp_path: Path
) -> None:
    """`service` is the one contract in both modes; `local` is the Service of the home folder,
    `client` the Client of the server logged in to, refused in one line without a login."""
    from baton.cli.context import Context
    from baton.client import Client
    from baton.core.errors import InvalidInput
    from baton.service import Service

    home = tmp_path / "home"
    local = Context(str(home))
    assert isinstance(local.service, Service) and local.service is local.local
    with pytest.raises(InvalidInput, match=r"^not logged in: run `baton login URL` first$"):
        _ = local.client
    assert run_baton("login", served.url, "--token", served.token, home=home).returncode == 0
    remote = Context(str(home))
    assert isinstance(remote.service, Client) and remote.client is remote.service
    assert remote.owner == remote.client.me().id
    remote.client.close()
    local.local.store.close()


def test_imports_read_as_they_go_land_on_the_server(served: Served, tmp_path: Path) -> None:
    """An opencode export and a baton export, both read a message at a time, imported
    after `baton login`: on the server, whole."""
    samples = Path(__file__).resolve().parent.parent / "importers" / "samples"
    local = tmp_path / "local"
    sid = run_json("sessions", "new", "--title", "Exported here", home=local)["id"]
    for i in range(3):
        run_json("sessions", "append", sid, "--role", "user", "--text", f"note {i}", home=local)
    export = tmp_path / "export.json"
    done = run_baton("sessions", "export", sid, "--format", "json", "-o", str(export), home=local)
    assert done.returncode == 0, done.stderr
    client = tmp_path / "client"
    assert run_baton("login", served.url, "--token", served.token, home=client).returncode == 0
    opencode = run_json(
        "sessions", "import", str(samples / "opencode" / "export.json"), home=client
    )
    [made] = opencode["sessions"]
    assert made["created"] and made["messages"] == 20
    baton = run_json("sessions", "import", str(export), home=client)
    assert (baton["created"], baton["messages_imported"]) == (True, 3)
    on_server = run_json("sessions", "list", home=served.home, env={"BATON_USER": "owner"})
    assert {s["title"] for s in on_server} >= {"Exported here", made["title"]}
    shown = run_json("sessions", "show", made["id"], home=client)
    assert shown["metadata"]["source"]["tool"] == "opencode" and len(shown["messages"]) == 20
