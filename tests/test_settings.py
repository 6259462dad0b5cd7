"""One typed Settings, parsed once (DESIGN: flag > env > config file > default): its types,
its one-line errors, that every field is in the README's settings table, that no module but
baton.config reads a BATON_* variable, and that `baton serve --workers N` hands its settings
to the worker processes instead of putting them in the environment."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import httpx
import pytest

from baton import gitstate
from baton.config import DEBUG_ENV, ENV, FILE_KEYS, Price, Settings
from baton.core.errors import InvalidInput
from tests.fixtures.servers import start_serve, stop
from tests.helpers import run_baton

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "baton"
DERIVED = {"url_given"}  # computed by load, not a setting of its own


def settings_table() -> str:
    """The rows of the README's settings table."""
    readme = (ROOT / "README.md").read_text("utf-8")
    start = readme.index("| setting | env | config.toml | default |")
    return readme[start : readme.index("\n\n", start)]


def test_every_setting_has_a_variable_and_is_in_the_readme_table() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)} - DERIVED
    assert fields == set(ENV), "a Settings field without its BATON_* variable (config.ENV)"
    table = settings_table()
    documented = set(re.findall(r"`(BATON_[A-Z_]+)`", table))
    missing = {ENV[name] for name in fields} - documented
    assert not missing, f"settings missing from the README's settings table: {sorted(missing)}"
    assert DEBUG_ENV in documented
    keys = {key for name, key in FILE_KEYS.items() if key is not None and name != "prices"}
    undocumented = {key for key in keys if f"`{key}`" not in table}
    assert not undocumented, f"config.toml keys missing from the table: {sorted(undocumented)}"
    assert "`[prices.MODEL]` table" in table


def baton_env_reads(source: str) -> list[str]:
    """The BATON_* variables a module reads: os.environ[...], os.environ.get/pop(...),
    os.getenv(...), or click's envvar=..."""
    found = []

    def named(node: ast.AST | None) -> str | None:
        """A BATON_* name, or "<computed>" for a name not written out (which could be one)."""
        if isinstance(node, ast.Constant):
            is_baton = isinstance(node.value, str) and node.value.startswith("BATON_")
            return node.value if is_baton else None
        return "<computed>"

    def is_environ(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
            isinstance(node, ast.Name) and node.id == "environ"
        )

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            name = named(node.slice)
        elif isinstance(node, ast.Call):
            func = node.func
            name = None
            reads = (
                isinstance(func, ast.Attribute)
                and (is_environ(func.value) or func.attr in ("getenv", "getenvb"))
            ) or (isinstance(func, ast.Name) and func.id == "getenv")
            if reads:
                name = named(node.args[0]) if node.args else None
            for keyword in node.keywords:
                if keyword.arg == "envvar":
                    name = name or named(keyword.value) or "envvar"
        else:
            continue
        if name:
            found.append(name)
    return found


def test_the_checker_sees_every_way_of_reading_the_environment() -> None:
    source = (
        "import os\nfrom os import environ, getenv\n"
        "a = os.environ['BATON_A']\nb = os.environ.get('BATON_B')\nc = os.getenv('BATON_C')\n"
        "d = environ.get('BATON_D', '')\ne = getenv('BATON_E')\n"
        "f = click.option('--f', envvar='BATON_F')\ng = os.environ.get('HOME')\n"
        "def cap(name):\n    return os.environ.get(name)\n"
    )
    assert baton_env_reads(source) == [
        "BATON_A",
        "BATON_B",
        "BATON_C",
        "BATON_D",
        "BATON_E",
        "BATON_F",
        "<computed>",
    ]


def test_no_module_but_config_reads_baton_variables() -> None:
    readers = {
        str(path.relative_to(SRC)): reads
        for path in sorted(SRC.rglob("*.py"))
        if path != SRC / "config.py" and (reads := baton_env_reads(path.read_text("utf-8")))
    }
    assert readers == {}
    assert "os.environ.update" not in "".join(p.read_text("utf-8") for p in SRC.rglob("*.py"))


def test_values_are_typed_from_the_environment_and_the_config_file(tmp_path: Path) -> None:
    env = {
        "BATON_PORT": "9000",
        "BATON_WORKERS": "3",
        "BATON_RETRIES": "2",
        "BATON_RETRY_DELAY": "0.5",
        "BATON_CONTEXT_WINDOW": "32000",
        "BATON_COMMAND_TIMEOUT": "30",
        "BATON_SANDBOX": "off",
        "BATON_NETWORK": "yes",
        "BATON_PATCH_CAP": "-5",
        "BATON_PRICES": '{"m": {"input": 1, "output": 2}}',
        "BATON_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16",
    }
    s = Settings.load(env, home=str(tmp_path))
    assert (s.port, s.workers, s.retries, s.retry_delay, s.context_window) == (
        9000,
        3,
        2,
        0.5,
        32000,
    )
    assert (s.command_timeout, s.sandbox, s.network, s.patch_cap) == (30.0, False, True, 0)
    assert s.prices == {"m": Price(input=1.0, output=2.0)}
    assert s.trusted_proxies == ("10.0.0.5/32", "10.1.0.0/16")
    assert (s.url_given, s.base_url) == (False, "http://127.0.0.1:8765")
    (tmp_path / "config.toml").write_text(
        'url = "https://b.example"\nretries = 0\nnetwork = false\nport = 81\n'
        'trusted_proxies = "10.0.0.1"\n'
    )
    f = Settings.load({"BATON_NETWORK": "true"}, home=str(tmp_path))
    # a 0 in the file is a 0 (not the default); the environment beats the file
    assert (f.retries, f.network, f.port, f.base_url, f.url_given) == (
        0,
        True,
        81,
        "https://b.example",
        True,
    )
    assert Settings.load({"BATON_PORT": "82"}, home=str(tmp_path), port=83).port == 83
    defaults = Settings.load({}, home=str(tmp_path / "none"))
    assert (defaults.patch_cap, defaults.file_cap, defaults.bundle_cap) == (
        gitstate.PATCH_CAP,
        gitstate.FILE_CAP,
        gitstate.BUNDLE_CAP,
    )
    assert (defaults.retries, defaults.retry_max_wait, defaults.command_timeout) == (6, 60.0, None)


def test_settings_go_to_a_worker_as_json_and_come_back_equal(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[prices.m]\ninput = 1.5\n[sandbox_limits]\ncpu = 60\nmemory = 'none'\n"
    )
    s = Settings.load(
        {"BATON_TRUSTED_PROXIES": "10.0.0.0/8", "BATON_SECRET": "x" * 40}, home=str(tmp_path)
    )
    assert s.sandbox_limits == {"cpu_seconds": 60, "memory_bytes": None}
    assert Settings.from_json(s.to_json()) == s


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BATON_RETRIES": "lots"}, "BATON_RETRIES must be a number, got 'lots'"),
        ({"BATON_RETRY_DELAY": "-1"}, "BATON_RETRY_DELAY must not be negative"),
        ({"BATON_CONTEXT_WINDOW": "1.5"}, "BATON_CONTEXT_WINDOW must be a number, got '1.5'"),
        ({"BATON_PORT": "99999"}, "BATON_PORT must be a port number (0-65535), got 99999"),
        ({"BATON_WORKERS": "0"}, "BATON_WORKERS must be 1 to 64, got 0"),
        ({"BATON_PATCH_CAP": "big"}, "BATON_PATCH_CAP must be a number of bytes"),
        ({"BATON_NETWORK": "sometimes"}, "network must be true or false, got 'sometimes'"),
        (
            {"BATON_PRICES": "[1]"},
            'BATON_PRICES must be a JSON object like {"gpt-4o": {"input": 2.5, "output": 10, '
            '"cache_read": 1.25}} (USD per million tokens)',
        ),
        (
            {"BATON_TRUSTED_PROXIES": "proxy"},
            "BATON_TRUSTED_PROXIES: 'proxy' is not an IP address or CIDR "
            "(use e.g. 10.0.0.5,10.1.0.0/16)",
        ),
    ],
)
def test_a_bad_value_is_one_line_exit_2_for_any_command(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.load(env, home=str(tmp_path))
    assert caught.value.message == message
    done = run_baton("sessions", "list", home=tmp_path / "home", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {message}\n")


def test_serve_flags_beat_the_environment_and_bad_ones_change_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = run_baton("serve", "--port", "70000", home=home, env={"BATON_PORT": "1"})
    assert done.returncode == 2 and "'--port': 70000 is not in the range" in done.stderr
    done = run_baton("serve", home=home, env={"BATON_PORT": "x"})
    assert (done.returncode, done.stderr) == (2, "error: BATON_PORT must be a number, got 'x'\n")
    done = run_baton("serve", "--host", "0.0.0.0", home=home, env={"BATON_HOST": "127.0.0.1"})
    assert done.returncode == 2
    assert done.stderr.startswith("error: refusing to listen on 0.0.0.0 without a secret")
    assert not home.exists()


def test_workers_get_their_settings_from_the_parent_not_the_environment(tmp_path: Path) -> None:
    """Two workers over SQLite: each builds its app from the parent's Settings (the secret
    the parent made, the address it listens on); neither has them in its environment."""
    served = start_serve(tmp_path / "home", "--workers", "2")
    try:
        assert "2 workers" in served.output
        workers = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _parent(p) == served.process.pid
        ]
        assert len(workers) == 2, served.output
        for pid in workers:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            names = {item.split(b"=", 1)[0] for item in environ}
            assert not names & {b"BATON_SECRET", b"BATON_URL"}, pid
        auth = {"Authorization": f"Bearer {served.token}"}
        for _ in range(6):  # new connections each time: both workers answer some
            with httpx.Client(base_url=served.url, headers=auth, timeout=30) as http:
                session = http.post("/api/sessions", json={"title": "w", "platform": "api"})
                assert session.status_code == 201, session.text
                share = http.post(f"/api/sessions/{session.json()['id']}/shares", json={})
                assert share.status_code == 201, share.text
                assert share.json()["url"].startswith(served.url + "/share/")
    finally:
        stop(served)


def _parent(proc: Path) -> int | None:
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1]) if b"spawn_main" in cmdline else None
