"""Run every figure and print a table (or JSON). `python -m bench --quick` for a short run."""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from baton.core import ids
from baton.core.models import Session, utcnow
from baton.scanning import SecretScanner
from baton.service import Service
from baton.store.blobs import LocalBlobStore
from baton.store.sqlite import SQLiteStore
from bench import events, git, imports, memory, pages, runs, scaleout, secrets, server
from bench.data import messages
from bench.timing import baton_env, median_time, paired_medians

GROUPS: dict[str, Callable[[Path, bool, Callable[..., None]], None]] = {
    "server": server.run,
    "pages": pages.run,
    "events": events.run,
    "git": git.run,
    "runs": runs.run,
    "imports": imports.run,
    "memory": memory.run,
    "scaleout": scaleout.run,
    "secrets": lambda root, quick, record: secrets.run(quick, record),
}


class Bench:
    def __init__(self, root: Path, quick: bool) -> None:
        self.root = root
        self.quick = quick
        self.big = 500 if quick else 10_000
        self.small = 10
        self.many = 1_000 if quick else 100_000
        self.forks = 50 if quick else 200  # forks measured for the bytes one adds
        self.service = self._service("main")
        self.owner = self.service.account("bench").id
        self.figures: list[dict[str, Any]] = []

    def _service(self, name: str, synchronous: str = "FULL") -> Service:
        folder = self.root / name
        return Service(
            SQLiteStore(folder / "baton.db", synchronous),
            LocalBlobStore(folder / "blobs"),
            scanner=SecretScanner({}),
        )

    def record(
        self, name: str, measured: str, ratio: float, target: str, ok: bool, note: str = ""
    ) -> None:
        self.figures.append(
            {
                "figure": name,
                "measured": measured,
                "ratio": round(ratio, 3),
                "target": target,
                "pass": ok,
                "note": note,
            }
        )
        print(f"  {name}: {ratio:.2f}x ({measured})", file=sys.stderr)

    def session_with(self, count: int) -> str:
        session = self.service.create(self.owner, title=f"{count} messages")
        batch = messages(count, seed=count)
        for start in range(0, count, 500):
            self.service.append(self.owner, session.id, batch[start : start + 500])
        return session.id

    def run(self, only: set[str] | None = None) -> None:
        if only is None or "sessions" in only:
            began = time.perf_counter()
            print(f"building sessions of {self.small} and {self.big} messages…", file=sys.stderr)
            small = self.session_with(self.small)
            big = self.session_with(self.big)
            self.append(small, big)
            self.load(big)
            self.fork_and_share(small, big)
            self.listing()
            self.startup()
            print(f"  (sessions: {time.perf_counter() - began:.1f} s)", file=sys.stderr)
        for name, group in GROUPS.items():
            if only is None or name in only:
                began = time.perf_counter()
                group(self.root, self.quick, self.record)
                took = time.perf_counter() - began
                print(f"  ({name}: {took:.1f} s)", file=sys.stderr)

    def append(self, small: str, big: str) -> None:
        prompt = [{"role": "user", "parts": [{"type": "text", "text": "x" * 200}]}]

        def one(sid: str) -> Callable[[], Any]:
            def go() -> None:
                head = self.service.get(self.owner, sid).head
                self.service.append(self.owner, sid, prompt, expected_head=head)

            return go

        repeat = 10 if self.quick else 100
        t_small, t_big = paired_medians(one(small), one(big), repeat, 3)
        self.record(
            f"append at {self.big} vs {self.small} messages",
            f"{t_big * 1e3:.2f} ms vs {t_small * 1e3:.2f} ms",
            t_big / t_small,
            "≤ 1.3×",
            t_big / t_small <= 1.3,
        )

    def load(self, big: str) -> None:
        loaded = self.service.messages(self.owner, big)
        data = orjson.dumps([m.to_dict() for m in loaded])
        path = self.root / "session.json"
        path.write_bytes(data)
        repeat = 3 if self.quick else 5
        t_load = median_time(lambda: self.service.messages(self.owner, big), repeat)
        t_json = median_time(lambda: orjson.loads(path.read_bytes()), repeat)
        self.record(
            f"load {len(loaded)} messages ({len(data) / 1e6:.1f} MB) vs orjson.loads of the same",
            f"{t_load * 1e3:.0f} ms vs {t_json * 1e3:.0f} ms",
            t_load / t_json,
            "≤ 2×",
            t_load / t_json <= 2,
        )

    def fork_and_share(self, small: str, big: str) -> None:
        repeat = 10 if self.quick else 200
        forks = dict(
            zip(
                (small, big),
                paired_medians(
                    lambda: self.service.fork(self.owner, small),
                    lambda: self.service.fork(self.owner, big),
                    repeat,
                ),
                strict=True,
            )
        )
        shares = dict(
            zip(
                (small, big),
                paired_medians(
                    lambda: self.service.share(self.owner, small),
                    lambda: self.service.share(self.owner, big),
                    repeat,
                ),
                strict=True,
            )
        )
        ratio = forks[big] / forks[small]
        self.record(
            f"fork at {self.big} vs {self.small} messages",
            f"{forks[big] * 1e3:.2f} ms vs {forks[small] * 1e3:.2f} ms",
            ratio,
            "≤ 1.5×",
            ratio <= 1.5,
        )
        ratio = shares[big] / shares[small]
        self.record(
            f"share at {self.big} vs {self.small} messages",
            f"{shares[big] * 1e3:.2f} ms vs {shares[small] * 1e3:.2f} ms",
            ratio,
            "≤ 1.5×",
            ratio <= 1.5,
        )
        per_fork = self._bytes_per_fork(big)
        self.record(
            f"database bytes added by one fork of a {self.big}-message session",
            f"{per_fork:.0f} bytes",
            per_fork / 4096,
            "< 4 KiB (ratio < 1)",
            per_fork < 4096,
            f"growth of page_count × page_size over {self.forks} forks, after a WAL checkpoint",
        )

    def _bytes_per_fork(self, big: str) -> float:
        db = self.root / "main" / "baton.db"

        def size() -> int:
            conn = sqlite3.connect(db)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            page = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.close()
            return int((pages - free) * page)

        before = size()
        for _ in range(self.forks):
            self.service.fork(self.owner, big)
        return (size() - before) / self.forks

    def listing(self) -> None:
        few = self._service("list-few")
        many = self._service("list-many", synchronous="OFF")
        print(f"creating {self.many} sessions…", file=sys.stderr)
        for service, count in ((few, 100), (many, self.many)):
            owner = service.account("bench").id
            now = utcnow()
            for i in range(count):
                service.store.create_session(
                    Session(
                        id=ids.new_session_id(),
                        owner=owner,
                        title=f"session {i}",
                        task="",
                        status="active",
                        head=None,
                        message_count=0,
                        created_at=now,
                        updated_at=f"2026-01-01T00:00:00.{i:06d}Z" if count <= 999_999 else now,
                        version=1,
                    )
                )
        repeat = 20 if self.quick else 200
        few_owner, many_owner = few.account("bench").id, many.account("bench").id
        t_few, t_many = paired_medians(
            lambda: few.list(few_owner, limit=50),
            lambda: many.list(many_owner, limit=50),
            repeat,
            5,
        )
        times = {"few": t_few, "many": t_many}
        ratio = times["many"] / times["few"]
        self.record(
            f"list 50 most recent of {self.many} vs of 100 sessions",
            f"{times['many'] * 1e3:.2f} ms vs {times['few'] * 1e3:.2f} ms",
            ratio,
            "≤ 1.5×",
            ratio <= 1.5,
        )

    def startup(self) -> None:
        env = baton_env(self.root / "cli")

        def run(*args: str) -> Callable[[], Any]:
            return lambda: subprocess.run(
                [sys.executable, "-m", "baton", *args], env=env, capture_output=True, check=True
            )

        repeat = 1 if self.quick else 5
        base = median_time(
            lambda: subprocess.run([sys.executable, "-c", "pass"], capture_output=True), repeat
        )
        version = median_time(run("--version"), repeat)
        listing = median_time(run("sessions", "list"), repeat)
        self.record(
            "`baton --version` vs a bare `python -c pass`",
            f"{version * 1e3:.0f} ms vs {base * 1e3:.0f} ms (opencode: 630 ms)",
            version / base,
            "info",
            True,
        )
        self.record(
            "`baton sessions list` vs a bare `python -c pass`",
            f"{listing * 1e3:.0f} ms vs {base * 1e3:.0f} ms (opencode: 1,210 ms)",
            listing / base,
            "info",
            True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a short check")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--only",
        metavar="GROUP,…",
        help="run only these groups of figures: sessions (the store's), " + ", ".join(GROUPS),
    )
    args = parser.parse_args()
    only = None if args.only is None else set(args.only.split(","))
    if only is not None and only - {"sessions", *GROUPS}:
        parser.error(f"unknown group: {', '.join(sorted(only - {'sessions', *GROUPS}))}")
    root = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    try:
        bench = Bench(root, args.quick)
        bench.run(only)
    finally:
        began = time.perf_counter()
        shutil.rmtree(root, ignore_errors=True)
        print(f"  (cleaning up: {time.perf_counter() - began:.1f} s)", file=sys.stderr)
    result = {"quick": args.quick, "python": sys.version.split()[0], "figures": bench.figures}
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="baton benchmarks" + (" (quick)" if args.quick else ""))
    for column in ("figure", "measured", "ratio", "target", "result"):
        table.add_column(column)
    for f in bench.figures:
        verdict = "info" if f["target"] == "info" else ("pass" if f["pass"] else "MISS")
        table.add_row(f["figure"], f["measured"], f"{f['ratio']:.2f}×", f["target"], verdict)
    Console().print(table)


if __name__ == "__main__":
    main()
