"""Peak memory and time of importing, exporting and showing one big session, each as a process
of its own, beside the floor of the import (a process that does what the machine needs at least
to read, store and hash the same bytes; also timed inside this process) and beside opencode and
Kilo importing the same file; and what the import leaves for later: the first search (which
indexes its messages) and the first share (which scans them for secrets).

Peak RSS is the process's `ru_maxrss`, read by a small parent that runs it alone
(`resource.getrusage(RUSAGE_CHILDREN)` counts only the children it waited for). Run it alone:
`python -m bench.memory [--quick] [--json]`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from bench.imports import KILO_OFFLINE, OFFLINE, export_file, kilo_binary, opencode_binary, tool_env
from bench.timing import baton_env

Record = Callable[..., None]
PEAK_MB = 150  # issue 18: import, export and show of 10,000 messages within this

_PEAK = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "done = subprocess.run(sys.argv[2:], cwd=sys.argv[1], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.PIPE)\n"
    "took = time.perf_counter() - start\n"
    "if done.returncode: sys.exit(done.stderr.decode()[-800:])\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, took)\n"
)


def peak(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of `command` run as a process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(cwd), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode:
        raise RuntimeError(f"{command[:4]} failed: {done.stderr.strip()[-800:]}")
    kilobytes, seconds = done.stdout.split()
    return int(kilobytes) / 1024, float(seconds)


# The floor of an import, as a process of its own like the import: parse the file with orjson,
# store its messages with one executemany into an empty SQLite table, hash the same bytes.
_FLOOR = (
    "import hashlib, sqlite3, sys, orjson\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "doc = orjson.loads(data)\n"
    "rows = [(i, orjson.dumps(m)) for i, m in enumerate(doc['messages'])]\n"
    "conn = sqlite3.connect(sys.argv[2])\n"
    "conn.execute('CREATE TABLE messages (n INTEGER PRIMARY KEY, body BLOB)')\n"
    "with conn:\n"
    "    conn.executemany('INSERT INTO messages VALUES (?, ?)', rows)\n"
    "conn.close()\n"
    "hashlib.sha256(data).hexdigest()\n"
)


def floor_inside(path: Path, root: Path) -> float:
    """Seconds of `_FLOOR`'s work timed inside this process: no start, no exit (freeing
    what it parsed happens after the clock stops)."""
    database = root / "floor.db"
    database.unlink(missing_ok=True)
    start = time.perf_counter()
    data = path.read_bytes()
    doc = orjson.loads(data)
    rows = [(i, orjson.dumps(m)) for i, m in enumerate(doc["messages"])]
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE messages (n INTEGER PRIMARY KEY, body BLOB)")
    with conn:
        conn.executemany("INSERT INTO messages VALUES (?, ?)", rows)
    conn.close()
    hashlib.sha256(data).hexdigest()
    took = time.perf_counter() - start
    database.unlink()
    return took


def floor(path: Path, root: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of the import's floor (`_FLOOR`), run as a process."""
    database = root / "floor.db"
    database.unlink(missing_ok=True)
    measured = peak(
        [sys.executable, "-c", _FLOOR, str(path), str(database)], dict(os.environ), root
    )
    database.unlink()
    return measured


def _a_word(path: Path) -> str:
    """A word of the export's last message, to search for."""
    from baton.core.redaction import strings_in

    last = orjson.loads(path.read_bytes())["messages"][-1]
    words = [w for text in strings_in(last) for w in text.split() if w.isalpha() and len(w) > 4]
    return words[-1] if words else "message"


def run(root: Path, quick: bool, record: Record) -> None:
    count = 200 if quick else 10_000
    work = root / "memory"
    work.mkdir(parents=True, exist_ok=True)
    print(f"exporting a {count}-message session for the memory figures…", file=sys.stderr)
    path = export_file(work, count)
    size = path.stat().st_size / 1e6
    baton = [sys.executable, "-m", "baton"]
    runs = 1 if quick else 3
    floors = [floor(path, work) for _ in range(runs)]
    floor_s, floor_rss = min(t for _, t in floors), max(r for r, _ in floors)
    inside_s = min(floor_inside(path, work) for _ in range(runs))
    subprocess.run([*baton, "--version"], env=baton_env(work), capture_output=True, check=True)
    with tempfile.TemporaryDirectory(dir=work) as homes:
        # as the floor, the best of `runs` imports, each into an empty data folder; the
        # figures after them read the last
        measured = [
            peak(
                [*baton, "sessions", "import", str(path), "--json"],
                baton_env(Path(homes, str(i))),
                work,
            )
            for i in range(runs)
        ]
        rss, took = max(r for r, _ in measured), min(t for _, t in measured)
        env = baton_env(Path(homes, str(runs - 1)))
        imported = orjson.loads(
            subprocess.run(
                [*baton, "sessions", "list", "--json"], env=env, capture_output=True, check=True
            ).stdout
        )[0]["id"]
        record(
            f"import a {count:,}-message opencode export ({size:.1f} MB): peak RSS",
            f"{rss:.0f} MB",
            rss / PEAK_MB,
            f"≤ {PEAK_MB} MB",
            rss <= PEAK_MB,
            "the `baton sessions import` process, from start to exit",
        )
        record(
            f"import a {count:,}-message opencode export: time vs its floor",
            f"{took:.2f} s vs {floor_s:.2f} s",
            took / floor_s,
            "≤ 2× the floor",
            took <= 2 * floor_s,
            "floor: a process that parses the file with orjson, stores its messages with one "
            "executemany into an empty SQLite table and hashes the bytes (best of the same "
            f"number of runs; it holds the whole file: {floor_rss:.0f} MB); the import also "
            "converts opencode's format, checks and hashes every message and links them",
        )
        record(
            f"import a {count:,}-message opencode export: time vs its floor timed inside "
            "one Python process",
            f"{took:.2f} s vs {inside_s:.2f} s",
            took / inside_s,
            "≤ 2×",
            took <= 2 * inside_s,
            "the same floor without a process's start and exit (its freeing of the parsed "
            "file falls after the clock); the import is still a process of its own",
        )
        # What the import leaves for later, paid once by the first search and the first share.
        word = _a_word(path)
        for what, args, note in (
            (
                "the first search after the import",
                ["sessions", "list", "--query", word, "--json"],
                "indexes the imported messages for full-text search (FTS5), then searches",
            ),
            ("a search after that", ["sessions", "list", "--query", word, "--json"], ""),
            (
                "the first share after the import",
                ["share", imported, "--redact", "--json"],
                "scans the imported messages for secrets (in worker processes), then shares",
            ),
        ):
            _, took_then = peak([*baton, *args], env, work)
            record(
                f"{what}: time",
                f"{took_then:.2f} s",
                took_then / floor_s,
                "none (reported)",
                True,
                note,
            )
        for what, args in (
            ("export --format json", ["sessions", "export", imported, "--format", "json"]),
            ("show --json", ["sessions", "show", imported, "--json"]),
        ):
            rss, took = peak([*baton, *args], env, work)
            record(
                f"`baton sessions {what}` of {count:,} messages: peak RSS",
                f"{rss:.0f} MB ({took:.2f} s)",
                rss / PEAK_MB,
                f"≤ {PEAK_MB} MB",
                rss <= PEAK_MB,
            )
    for tool, binary, offline in (
        ("opencode", opencode_binary(), OFFLINE),
        ("kilo", kilo_binary(), KILO_OFFLINE),
    ):
        if binary is None:
            print(f"  (no {tool} CLI: its memory figure is skipped)", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(dir=work) as home:
            env = tool_env(home, offline)
            Path(home, "project").mkdir()
            rss, took = peak([str(binary), "import", str(path)], env, Path(home, "project"))
            record(
                f"`{tool} import` of the same {count:,}-message file: peak RSS (for comparison)",
                f"{rss:.0f} MB ({took:.2f} s)",
                rss / PEAK_MB,
                f"none ({tool}'s figure)",
                True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures: list[dict[str, object]] = []

    def record(
        name: str, measured: str, ratio: float, target: str, ok: bool, note: str = ""
    ) -> None:
        figures.append(
            {"figure": name, "measured": measured, "ratio": round(ratio, 3), "target": target}
            | {"pass": ok, "note": note}
        )
        print(f"  {name}: {measured} ({'ok' if ok else 'over'})", file=sys.stderr)

    with tempfile.TemporaryDirectory() as root:
        run(Path(root), args.quick, record)
    if args.json:
        print(orjson.dumps({"figures": figures}, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
