"""One typed Settings, parsed once: flag > environment (BATON_*) > config file > default.

This is the only module that reads baton's environment variables (tests/test_settings.py
checks it); everything else is given a Settings, or the parts of one it needs. A bad value
is a one-line InvalidInput (exit 2) when the settings are loaded, whatever the command."""

from __future__ import annotations

import dataclasses
import getpass
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baton.core.errors import InvalidInput

if TYPE_CHECKING:
    from baton.agent.setup import SetupCommand
    from baton.service import Service

CONFIG_FILE = "config.toml"
DEFAULT_URL = "http://127.0.0.1:8765"
PRICE_KEYS = ("input", "output", "cache_read", "cache_write")
PRICES_HINT = (
    'BATON_PRICES must be a JSON object like {"gpt-4o": {"input": 2.5, "output": 10, '
    '"cache_read": 1.25}} (USD per million tokens)'
)

# Each setting: its environment variable and its key in BATON_HOME/config.toml (None: it
# has none). The README's settings table names every one of these variables.
ENV = {
    "home": "BATON_HOME",
    "database_url": "BATON_DATABASE_URL",
    "blob_url": "BATON_BLOB_URL",
    "base_url": "BATON_URL",
    "synchronous": "BATON_SYNCHRONOUS",
    "user": "BATON_USER",
    "display_name": "BATON_DISPLAY_NAME",
    "host": "BATON_HOST",
    "port": "BATON_PORT",
    "workers": "BATON_WORKERS",
    "secret": "BATON_SECRET",
    "trusted_proxies": "BATON_TRUSTED_PROXIES",
    "token": "BATON_TOKEN",
    "model": "BATON_MODEL",
    "model_base_url": "BATON_BASE_URL",
    "api_key": "BATON_API_KEY",
    "prices": "BATON_PRICES",
    "context_window": "BATON_CONTEXT_WINDOW",
    "retries": "BATON_RETRIES",
    "retry_delay": "BATON_RETRY_DELAY",
    "retry_max_wait": "BATON_RETRY_MAX_WAIT",
    "command_timeout": "BATON_COMMAND_TIMEOUT",
    "sandbox": "BATON_SANDBOX",
    "network": "BATON_NETWORK",
    "sandbox_limits": "BATON_SANDBOX_LIMITS",
    "patch_cap": "BATON_PATCH_CAP",
    "file_cap": "BATON_FILE_CAP",
    "bundle_cap": "BATON_BUNDLE_CAP",
    "setup": "BATON_SETUP",
    "runners": "BATON_RUNNERS",
    "max_runs": "BATON_MAX_RUNS",
    "run_timeout": "BATON_RUN_TIMEOUT",
    "workspace_idle": "BATON_WORKSPACE_IDLE",
    "terminal": "BATON_TERMINAL",
    "sync_paths": "BATON_SYNC_PATHS",
}
FILE_KEYS = {name: name for name in ENV} | {
    "home": None,
    "base_url": "url",
    "model_base_url": "base_url",
}
DEBUG_ENV = "BATON_DEBUG"  # tracebacks instead of one-line errors; read by debug() alone


def debug(env: Mapping[str, str] | None = None) -> bool:
    """BATON_DEBUG: show the traceback of an unexpected error (read where Settings may not
    have loaded: the error may be in loading them)."""
    return bool((os.environ if env is None else env).get(DEBUG_ENV))


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
    # a valid handle (as Accounts.add checks): starts with a letter or digit, at most 39
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")[:39] or "me"


@dataclass(frozen=True)
class Price:
    """USD per million tokens of one model; None: not given (cache prices fall back to
    input's)."""

    input: float | None = None
    output: float | None = None
    cache_read: float | None = None
    cache_write: float | None = None

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Settings:
    """Every setting of baton, typed and checked (Settings.load). Passed down to what needs
    it; `baton serve --workers N` hands it to each worker (to_json / from_json)."""

    home: Path
    database_url: str
    blob_url: str
    base_url: str  # the address people use: share links and login links start with it
    synchronous: str
    user: str
    display_name: str
    url_given: bool = False  # base_url was set (flag, env or file), not the default
    # `baton serve`
    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = 1
    secret: str | None = None  # signs web cookies; required to listen beyond loopback
    # peers (IPs or CIDRs) whose X-Forwarded-For is believed: the reverse proxies in front
    trusted_proxies: tuple[str, ...] = ()
    token: str | None = None  # `baton login`'s token when --token is not given
    # the agent's model endpoint (any OpenAI-compatible chat-completions API)
    model: str | None = None
    model_base_url: str | None = None
    api_key: str | None = None
    prices: Mapping[str, Price] = field(default_factory=dict)  # added to the built-in table
    context_window: int = 128_000
    retries: int = 6
    retry_delay: float = 1.0
    retry_max_wait: float = 60.0
    command_timeout: float | None = None  # None: the tools' default
    sandbox: bool = True  # the agent's commands run confined (bubblewrap)
    network: bool = False  # the sandbox lets commands use the network
    # baton.sandbox.Policy fields -> limit (None: no limit); only the ones given
    sandbox_limits: Mapping[str, int | None] = field(default_factory=dict)
    # git snapshots: what is left out by size (bytes)
    patch_cap: int = 5 * 1024 * 1024
    file_cap: int = 1024 * 1024
    bundle_cap: int = 50 * 1024 * 1024
    # commands a new workspace runs before the first turn (baton.agent.setup)
    setup: tuple[SetupCommand, ...] = ()
    # server runs (baton.runs): runners `baton serve` starts on the embedded store, active
    # runs an account may have at once, a run's wall time and how long an idle workspace is
    # kept (seconds)
    runners: int = 1
    max_runs: int = 2
    run_timeout: float = 3600.0
    workspace_idle: float = 3600.0
    # the terminal `baton open-handler` asks in (a command line, e.g. "gnome-terminal --")
    terminal: str | None = None
    # `baton sync`: session files or folders followed besides the tools' own places
    sync_paths: tuple[str, ...] = ()

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Parse and check every setting once. `flags` are the command-line values (None:
        not given), by field name."""
        env = os.environ if env is None else env
        flags = {k: v for k, v in flags.items() if v is not None and v != ""}
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

        def raw(name: str) -> Any:
            """The value given for a setting (flag, env, file), or None."""
            if name in flags:
                return flags[name]
            if env.get(ENV[name]):
                return env[ENV[name]]
            key = FILE_KEYS[name]
            return file_values.get(key) if key is not None else None

        def text(name: str, default: str) -> str:
            value = raw(name)
            return default if value is None or value == "" else str(value)

        def optional(name: str) -> str | None:
            return text(name, "") or None

        def number(name: str, default: Any, kind: Callable[[Any], Any] = float) -> Any:
            value = raw(name)
            if value is None or value == "":
                return default
            try:
                if isinstance(value, bool):
                    raise ValueError
                result = kind(value)
            except (TypeError, ValueError):
                raise InvalidInput(f"{ENV[name]} must be a number, got {value!r}") from None
            if result < 0:
                raise InvalidInput(f"{ENV[name]} must not be negative")
            return result

        synchronous = text("synchronous", "FULL").upper()
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise InvalidInput("BATON_SYNCHRONOUS must be FULL, EXTRA or NORMAL")
        user = text("user", _local_handle())
        port = number("port", 8765, _integer)
        if port > 65535:
            raise InvalidInput(f"BATON_PORT must be a port number (0-65535), got {port}")
        workers = number("workers", 1, _integer)
        if not 1 <= workers <= 64:
            raise InvalidInput(f"BATON_WORKERS must be 1 to 64, got {workers}")
        command_timeout = number("command_timeout", None)
        sandbox_limits: dict[str, int | None] = {}
        limits = raw("sandbox_limits")
        if limits is not None and limits != "":
            from baton.sandbox import parse_limits

            sandbox_limits = parse_limits(limits)
        setup: tuple[SetupCommand, ...] = ()
        if raw("setup") not in (None, "", []):
            from baton.agent.setup import parse_commands

            setup = parse_commands(_setup_value(raw("setup")), _where("setup", flags, env))
        return cls(
            home=home,
            database_url=text("database_url", f"sqlite://{home / 'baton.db'}"),
            blob_url=text("blob_url", f"file://{home / 'blobs'}"),
            base_url=text("base_url", DEFAULT_URL),
            url_given=raw("base_url") not in (None, ""),
            synchronous=synchronous,
            user=user,
            display_name=text("display_name", user),
            host=text("host", "127.0.0.1"),
            port=port,
            workers=workers,
            secret=optional("secret"),
            trusted_proxies=_proxies(text("trusted_proxies", "")),
            token=optional("token"),
            model=optional("model"),
            model_base_url=optional("model_base_url"),
            api_key=optional("api_key") or env.get("OPENAI_API_KEY") or None,
            prices=parse_prices(raw("prices")),
            context_window=number("context_window", 128_000, _integer),
            retries=number("retries", 6, _integer),
            retry_delay=number("retry_delay", 1.0),
            retry_max_wait=number("retry_max_wait", 60.0),
            command_timeout=command_timeout,
            sandbox=_switch("sandbox", raw("sandbox"), True),
            network=_switch("network", raw("network"), False),
            sandbox_limits=sandbox_limits,
            patch_cap=_cap("patch_cap", raw("patch_cap"), cls.patch_cap),
            file_cap=_cap("file_cap", raw("file_cap"), cls.file_cap),
            bundle_cap=_cap("bundle_cap", raw("bundle_cap"), cls.bundle_cap),
            setup=setup,
            runners=number("runners", 1, _integer),
            max_runs=number("max_runs", 2, _integer),
            run_timeout=number("run_timeout", 3600.0),
            workspace_idle=number("workspace_idle", 3600.0),
            terminal=optional("terminal"),
            sync_paths=_paths(raw("sync_paths")),
        )

    def replace(self, **changes: Any) -> Settings:
        """These settings with some changed (flags given after loading; None: not given)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_json(self) -> str:
        """All of it as JSON, for a worker process (Settings.from_json gives it back)."""
        data = dataclasses.asdict(self)
        data["home"] = str(self.home)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        data["home"] = Path(data["home"])
        data["trusted_proxies"] = tuple(data["trusted_proxies"])
        data["sync_paths"] = tuple(data.get("sync_paths", ()))
        data["prices"] = {k: Price(**v) for k, v in data["prices"].items()}
        if data.get("setup"):
            from baton.agent.setup import SetupCommand

            data["setup"] = tuple(SetupCommand(**c) for c in data["setup"])
        else:
            data["setup"] = ()
        return cls(**data)


def _setup_value(value: Any) -> Any:
    """BATON_SETUP is a JSON list (or table) of commands, or one command as plain text."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise InvalidInput(
                'BATON_SETUP must be a command or a JSON list like ["pip install -e ."]'
            ) from None
    return value


def _where(name: str, flags: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """Where a setting's value came from, for its error messages."""
    if name in flags:
        return f"--{name}"
    return ENV[name] if env.get(ENV[name]) else CONFIG_FILE


def _integer(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError
    return int(value)


def _switch(name: str, value: Any, default: bool) -> bool:
    """sandbox (on/off) and network (true/false): a yes or a no."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        if name == "sandbox":
            raise InvalidInput(f"sandbox must be on or off, got {value!r}")
        raise InvalidInput(f"{name} must be true or false, got {value!r}")
    return word in ("true", "yes", "on", "1")


def _cap(name: str, value: Any, default: int) -> int:
    """BATON_PATCH_CAP, BATON_FILE_CAP, BATON_BUNDLE_CAP: bytes (negative counts as 0)."""
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool):
            raise ValueError
        return max(0, int(value))
    except ValueError:
        raise InvalidInput(f"{ENV[name]} must be a number of bytes") from None


def parse_prices(value: Any) -> dict[str, Price]:
    """BATON_PRICES (JSON) or the [prices] table of the config file: model -> Price."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InvalidInput(PRICES_HINT) from None
    if not isinstance(value, Mapping):
        raise InvalidInput(PRICES_HINT)
    prices: dict[str, Price] = {}
    for model, entry in value.items():
        if not isinstance(entry, Mapping) or not entry:
            raise InvalidInput(PRICES_HINT)
        row: dict[str, float] = {}
        for key, number in entry.items():
            if key not in PRICE_KEYS or isinstance(number, bool):
                raise InvalidInput(
                    f"{PRICES_HINT}; {model}.{key} is not one of {', '.join(PRICE_KEYS)}"
                )
            if not isinstance(number, int | float) or number < 0:
                raise InvalidInput(f"{PRICES_HINT}; {model}.{key} must be a number >= 0")
            row[key] = float(number)
        prices[str(model)] = Price(**row)
    return prices


def _paths(value: Any) -> tuple[str, ...]:
    """BATON_SYNC_PATHS: paths separated by the platform's separator (`:`), or a list in
    the config file."""
    if value is None or value == "":
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v)
    if isinstance(value, str):
        return tuple(v for v in value.split(os.pathsep) if v)
    raise InvalidInput("sync_paths must be a list of paths (BATON_SYNC_PATHS: separated by :)")


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


SERVING = "serving.json"  # in BATON_HOME while `baton serve` runs: its address and process


@contextmanager
def serving(home: Path, url: str) -> Iterator[None]:
    """Say, while this block runs, that this process serves `home` at `url`: links the CLI
    prints (`baton share`) then name that address, whatever port the server chose."""
    import signal
    import threading

    marker = home / SERVING
    part = home / f".{SERVING}.{os.getpid()}"
    part.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    os.replace(part, marker)
    before = None
    if threading.current_thread() is threading.main_thread():
        # the server re-raises the SIGTERM that stopped it: end here, through `finally`
        before = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    except _Terminated:
        pass
    else:
        return
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)
        with suppress(OSError, ValueError):
            if json.loads(marker.read_text()).get("pid") == os.getpid():
                marker.unlink()
    signal.raise_signal(signal.SIGTERM)  # ended by it, as a supervisor expects


class _Terminated(BaseException):
    pass


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def serving_url(home: Path) -> str | None:
    """The address of the `baton serve` running on `home`, if one is."""
    try:
        found = json.loads((home / SERVING).read_text())
        pid, url = int(found["pid"]), str(found["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # it stopped without saying so (kill -9)
    except PermissionError:
        pass  # alive, another user's
    return url


def build_service(settings: Settings, env: Mapping[str, str] | None = None) -> Service:
    """The local service over the configured store (imports kept out of start-up)."""
    from baton.runs.events import open_events
    from baton.scanning import SecretScanner
    from baton.sealing import local_secret
    from baton.service import Service
    from baton.store import open_blobs, open_store

    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database_url, synchronous=settings.synchronous)
    return Service(
        store,
        open_blobs(settings.blob_url),
        scanner=SecretScanner(os.environ if env is None else env),
        base_url=settings.base_url
        if settings.url_given
        else serving_url(settings.home) or settings.base_url,
        events=open_events(settings.database_url),
        # the server secret, read (or made, as `baton serve` does) only when a secret is sealed
        secret=lambda: settings.secret or local_secret(settings.home),
        max_runs=settings.max_runs,
        private_roots=(settings.home,),
    )
