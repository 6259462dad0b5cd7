"""What every command is given: the settings, the login of remote mode, and the service (local,
or the client of a server). Built on first use, so `baton --version` loads none of it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

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
        self._service: Any = None
        self._owner: Any = None
        self._local: Any = None

    @property
    def settings(self) -> Any:
        from baton.config import Settings

        return Settings.load(home=self._home)

    @property
    def remote(self) -> dict[str, Any] | None:
        """The server this CLI is logged in to (`baton login`), if any."""
        return load_login(self.settings.home)

    @property
    def local(self) -> Any:
        """The service over the embedded store in BATON_HOME, logged in or not."""
        if self._local is None:
            from baton.config import build_service

            self._local = build_service(self.settings)
        return self._local

    @property
    def service(self) -> Any:
        """The local service, or after `baton login` the client of that server."""
        if self._service is None:
            remote = self.remote
            if remote is not None:
                from baton.client import Client

                self._service = Client(remote["url"], remote["token"])
                self._owner = remote["account"]["id"]
            else:
                self._service = self.local
        return self._service

    @property
    def owner(self) -> str:
        service = self.service
        if self._owner is None:
            settings = self.settings
            self._owner = service.account(settings.user, settings.display_name).id
        return str(self._owner)


pass_ctx = click.make_pass_decorator(Context)
