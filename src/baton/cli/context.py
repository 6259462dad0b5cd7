"""What every command is given: the settings, the login of remote mode, and the service (local,
or the client of a server). Built on first use, so `baton --version` loads none of it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from baton.client import Client
    from baton.config import Settings
    from baton.contract import Baton, Cloud
    from baton.service import Service

    # Both sides implement the one contract: mypy checks each against it here.
    _SERVICE_IS_A_BATON: type[Baton] = Service
    _CLIENT_IS_A_BATON: type[Baton] = Client
    _SERVICE_IS_A_CLOUD: type[Cloud] = Service
    _CLIENT_IS_A_CLOUD: type[Cloud] = Client

LOGIN_FILE = "login.json"


def load_login(home: Path) -> dict[str, Any] | None:
    """The server this CLI is logged in to (`baton login` wrote it), or None."""
    path = home / LOGIN_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        from baton.core.errors import InvalidInput

        raise InvalidInput(f"{path} is damaged: run `baton logout`, then log in again") from None
    if not isinstance(data, dict) or not {"url", "token", "account"} <= data.keys():
        from baton.core.errors import InvalidInput

        raise InvalidInput(f"{path} is damaged: run `baton logout`, then log in again")
    return data


def save_login(home: Path, data: dict[str, Any]) -> Path:
    """Written with mode 0600 from the start (the token is a password), then renamed."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOGIN_FILE
    tmp = home / f".{LOGIN_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


class Context:
    """What every command needs, built on first use."""

    def __init__(self, home: str | None) -> None:
        self._home = home
        self._service: Baton | None = None
        self._owner: str | None = None
        self._local: Service | None = None
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """Loaded (and checked) once, on first use."""
        if self._settings is None:
            from baton.config import Settings

            self._settings = Settings.load(home=self._home)
        return self._settings

    def configure(self, **flags: Any) -> Settings:
        """The settings with a command's own flags on top (None: not given); call it before
        the service is built, which is built from them."""
        self._settings = self.settings.replace(**flags)
        return self.settings

    @property
    def remote(self) -> dict[str, Any] | None:
        """The server this CLI is logged in to (`baton login`), if any."""
        return load_login(self.settings.home)

    @property
    def local(self) -> Service:
        """The service over the embedded store in BATON_HOME, logged in or not: for what only
        the local store has (its accounts and tokens, its raw store, `baton serve`)."""
        if self._local is None:
            from baton.config import build_service
            from baton.runs.queue import attach

            self._local = attach(build_service(self.settings), self.settings)
        return self._local

    @property
    def service(self) -> Baton:
        """The local service, or after `baton login` the client of that server."""
        if self._service is None:
            remote = self.remote
            if remote is not None:
                from baton.client import Client

                self._service = Client(remote["url"], remote["token"])
                self._owner = str(remote["account"]["id"])
            else:
                self._service = self.local
        return self._service

    @property
    def client(self) -> Client:
        """The client of the server this CLI is logged in to: for what only a server has (its
        view of the account, `me`, and the tokens it holds). Remote mode only."""
        from baton.client import Client

        service = self.service
        if not isinstance(service, Client):
            from baton.core.errors import InvalidInput

            raise InvalidInput("not logged in: run `baton login URL` first")
        return service

    @property
    def owner(self) -> str:
        """The account commands act as (remote mode: the one logged in)."""
        if self._owner is None and self.service is self._local:
            settings = self.settings
            self._owner = self.local.account(settings.user, settings.display_name).id
        return str(self._owner)


pass_ctx = click.make_pass_decorator(Context)
