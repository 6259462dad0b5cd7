"""Importing another agent's session: baton vs the real opencode CLI, on the same file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import orjson

from baton.core.models import format_time, parse_time
from baton.render.opencode import export_opencode
from baton.scanning import SecretScanner
from baton.service import Service
from baton.store.blobs import LocalBlobStore
from baton.store.sqlite import SQLiteStore
from bench.data import messages
from bench.timing import baton_env, paired_medians

Record = Callable[..., None]
OFFLINE = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    "OPENCODE_DISABLE_TERMINAL_TITLE": "1",
}


KILO_OFFLINE = {
    **{k.replace("OPENCODE_", "KILO_"): v for k, v in OFFLINE.items()},
    "KILO_DISABLE_SESSION_INGEST": "1",
    "KILO_DISABLE_PRESENCE": "1",
    "KILO_DISABLE_CODEBASE_INDEXING": "1",
    "KILO_TELEMETRY_LEVEL": "off",
}


def tool_env(home: str, offline: dict[str, str]) -> dict[str, str]:
    """What opencode or Kilo runs with: a fresh home of its own, offline."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "XDG_CONFIG_HOME": f"{home}/.config",
        "XDG_DATA_HOME": f"{home}/.local/share",
        "XDG_CACHE_HOME": f"{home}/.cache",
        "XDG_STATE_HOME": f"{home}/.local/state",
        **offline,
    }


def kilo_binary() -> Path | None:
    """The real Kilo CLI: $BATON_KILO, under $BATON_NPM_PREFIX (.ci/run), or on PATH."""
    prefix = os.environ.get("BATON_NPM_PREFIX") or str(Path(".ci/node").resolve())
    for candidate in (
        os.environ.get("BATON_KILO"),
        str(Path(prefix) / "node_modules/@kilocode/cli-linux-x64/bin/kilo"),
        shutil.which("kilo"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def opencode_binary() -> Path | None:
    """The real opencode: $BATON_OPENCODE, under $BATON_NPM_PREFIX (.ci/run), or on PATH."""
    candidates = [os.environ.get("BATON_OPENCODE")]
    prefix = os.environ.get("BATON_NPM_PREFIX") or str(Path(".ci/node").resolve())
    candidates += [
        str(p) for p in sorted(Path(prefix).glob("node_modules/opencode-*/bin/opencode"))
    ]
    candidates.append(shutil.which("opencode"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def export_file(root: Path, count: int) -> Path:
    """A synthetic coding session of `count` messages, exported in opencode's format."""
    service = Service(
        SQLiteStore(root / "source" / "baton.db", "NORMAL"),
        LocalBlobStore(root / "source" / "blobs"),
        scanner=SecretScanner({}),
    )
    owner = service.account("bench").id
    session = service.create(owner, title=f"{count} messages")
    batch = messages(count, seed=count)
    start = parse_time("2026-11-01T09:00:00.000000Z")
    from datetime import timedelta

    for i, message in enumerate(batch):
        message["created_at"] = format_time(start + timedelta(seconds=i))
    for first in range(0, count, 1000):
        service.append(owner, session.id, batch[first : first + 1000])
    full = service.messages(owner, session.id, hydrate=True)
    path = root / f"opencode-{count}.json"
    path.write_bytes(orjson.dumps(export_opencode(service.get(owner, session.id), full)))
    service.close()
    return path


def run(root: Path, quick: bool, record: Record) -> None:
    binary = opencode_binary()
    if binary is None:
        print("  (no opencode CLI: the import comparison is skipped)", file=sys.stderr)
        return
    count = 1_000 if quick else 10_000
    print(f"exporting a {count}-message session for opencode…", file=sys.stderr)
    path = export_file(root / "imports", count)

    def baton() -> None:
        with tempfile.TemporaryDirectory(dir=root) as home:
            done = subprocess.run(
                [sys.executable, "-m", "baton", "sessions", "import", str(path), "--json"],
                env=baton_env(home),
                capture_output=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-500:]
            summary = orjson.loads(done.stdout)
            assert summary["sessions"][0]["messages"] >= count

    def opencode() -> None:
        with tempfile.TemporaryDirectory(dir=root) as home:
            env = tool_env(home, OFFLINE)
            Path(home, "project").mkdir()
            done = subprocess.run(
                [str(binary), "import", str(path)],
                cwd=Path(home, "project"),
                env=env,
                capture_output=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-500:]

    repeat = 1 if quick else 3
    t_opencode, t_baton = paired_medians(opencode, baton, repeat, warmup=0 if quick else 1)
    ratio = t_opencode / t_baton
    size = path.stat().st_size / 1e6
    record(
        f"import a {count:,}-message opencode export ({size:.1f} MB): opencode import vs baton",
        f"{t_opencode:.2f} s vs {t_baton:.2f} s",
        ratio,
        "≥ 3× faster",
        ratio >= 3,
        "both as processes on the same file, fresh data folders; baton checks every id, scans "
        "every message for secrets (on every core) and indexes it for search",
    )
