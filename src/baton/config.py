"""One Settings object: flag > environment (BATON_*) > config file > default."""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.core.errors import InvalidInput

CONFIG_FILE = "config.toml"


def default_home(env: Mapping[str, str]) -> Path:
    """The data folder: BATON_HOME (made absolute), else the platform's user data dir."""
    if env.get("BATON_HOME"):
        return Path(env["BATON_HOME"]).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_data_dir("baton", appauthor=False))


def _local_handle() -> str:
    try:
        name = getpass.getuser()
    except Exception:
        name = "me"
    return re.sub(r"[^a-z0-9_-]", "", name.lower()) or "me"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    blob_url: str
    base_url: str
    synchronous: str
    user: str
    display_name: str
    secret: str | None = None  # signs web cookies; required to listen beyond loopback
    # peers (IPs or CIDRs) whose X-Forwarded-For is believed: the reverse proxies in front
    trusted_proxies: tuple[str, ...] = ()
    # the agent's model endpoint (any OpenAI-compatible chat-completions API)
    model: str | None = None
    model_base_url: str | None = None
    api_key: str | None = None
    prices: Any = None  # {"model": {"input", "output", "cache_read", "cache_write"}} USD/Mtok
    context_window: str | None = None
    retries: str | None = None
    retry_delay: str | None = None
    retry_max_wait: str | None = None
    command_timeout: str | None = None
    sandbox: str | None = None  # "on" (default) or "off": how the agent's commands run
    network: str | None = None  # "true": the sandbox lets commands use the network
    sandbox_limits: Any = None  # {cpu, memory, processes, output}, see baton.sandbox

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        env = os.environ if env is None else env
        home = (
            Path(flags["home"]).expanduser().absolute() if flags.get("home") else default_home(env)
        )
        file_values: dict[str, Any] = {}
        path = home / CONFIG_FILE
        if path.exists():
            try:
                file_values = tomllib.loads(path.read_text("utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise InvalidInput(f"{path} is not valid TOML: {exc}") from None

        def pick(name: str, default: str) -> str:
            value = flags.get(name) or env.get(f"BATON_{name.upper()}") or file_values.get(name)
            return str(value) if value else default

        synchronous = pick("synchronous", "FULL").upper()
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise InvalidInput("BATON_SYNCHRONOUS must be FULL, EXTRA or NORMAL")
        user = pick("user", _local_handle())
        return cls(
            home=home,
            database_url=pick("database_url", f"sqlite://{home / 'baton.db'}"),
            blob_url=pick("blob_url", f"file://{home / 'blobs'}"),
            base_url=pick("url", "http://127.0.0.1:8765"),
            synchronous=synchronous,
            user=user,
            display_name=pick("display_name", user),
            secret=pick("secret", "") or None,
            trusted_proxies=_proxies(pick("trusted_proxies", "")),
            model=pick("model", "") or None,
            model_base_url=pick("base_url", "") or None,
            api_key=pick("api_key", "") or env.get("OPENAI_API_KEY") or None,
            prices=env.get("BATON_PRICES") or file_values.get("prices"),
            context_window=pick("context_window", "") or None,
            retries=pick("retries", "") or None,
            retry_delay=pick("retry_delay", "") or None,
            retry_max_wait=pick("retry_max_wait", "") or None,
            command_timeout=pick("command_timeout", "") or None,
            sandbox=pick("sandbox", "") or None,
            network=pick("network", "") or None,
            sandbox_limits=env.get("BATON_SANDBOX_LIMITS") or file_values.get("sandbox_limits"),
        )


def _proxies(value: str) -> tuple[str, ...]:
    """BATON_TRUSTED_PROXIES: a comma-separated list of IP addresses or CIDRs."""
    found = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise InvalidInput(
                f"BATON_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR "
                "(use e.g. 10.0.0.5,10.1.0.0/16)"
            ) from None
    return tuple(found)


def build_service(settings: Settings, env: Mapping[str, str] | None = None) -> Any:
    """The local service over the configured store (imports kept out of start-up)."""
    from baton.scanning import SecretScanner
    from baton.service import Service
    from baton.store import open_blobs, open_store

    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database_url, synchronous=settings.synchronous)
    return Service(
        store,
        open_blobs(settings.blob_url),
        scanner=SecretScanner(os.environ if env is None else env),
        base_url=settings.base_url,
    )
