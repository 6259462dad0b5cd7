"""Capture and restore of a git repository's state, by running the real `git`.

A capture records where the repository comes from (its remote and root commit), where it is
(branch, HEAD, upstream), the commits the remote does not have (a bundle) and the work tree's
changes against HEAD (a binary-safe patch, untracked files included). It never changes the
user's repository: git works on a temporary copy of the index and writes the objects it needs
into a temporary object directory that borrows the repository's own as an alternate, so the
index, the stash, the refs, the config, the work tree and `.git/objects` are left as they were.

A restore clones the repository (or adds a worktree to a local one), fetches the bundle,
checks out the captured HEAD on a new branch `baton/<session-id>` and applies the patch with
`git apply --index`: every captured change comes back *staged*, untracked files included.

Bundles and patches are blobs, stored and fetched through the callbacks the caller passes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from baton.core.errors import BatonError, InvalidInput, NotFound

VERSION = 1
PATCH_CAP = 5 * 1024 * 1024
BUNDLE_CAP = 50 * 1024 * 1024  # the unpushed commits (all of them, with no remote)
FILE_CAP = 1024 * 1024
OMITTED_LIMIT = 500  # entries listed one by one; the rest are counted in a last entry
NO_COMMITS = "the repository has no commits yet"
UNMERGED = "a merge was in progress: conflicted files are recorded as they are, with their markers"

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
# Variables that would point git at another repository, index or object store than ours.
_ENV_DROP = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
    "GIT_LITERAL_PATHSPECS",
    "GIT_GLOB_PATHSPECS",
    "GIT_NOGLOB_PATHSPECS",
    "GIT_ICASE_PATHSPECS",
    "GIT_INDEX_VERSION",
)
# Settings that keep git from doing work of its own (gc, maintenance) or from turning on
# features that write beside the index (a split index writes `sharedindex.*` into .git).
_QUIET_CONFIG = (
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
    "-c",
    "core.splitIndex=false",
    "-c",
    "advice.detachedHead=false",
)
# A patch `git apply` takes back whatever the user's diff settings are.
_DIFF_OPTIONS = (
    "--binary",
    "--full-index",
    "-M",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--submodule=short",
    "--no-relative",
)


# ---------------------------------------------------------------------------------------------
# Remote URLs


def scp_like(url: str) -> tuple[str, str, str] | None:
    """(user@, host, path) of `[user@]host:path`, git's short ssh form; None for anything
    else. As git does: a colon before any slash, and not a URL."""
    if "://" in url:
        return None
    colon = url.find(":")
    bracket = 0 if url.startswith("[") else url.find("@[") + 1 or -1
    if bracket >= 0 and url.find("]:", bracket) > bracket:  # [::1]:path, user@[host]:path
        colon = url.find("]:", bracket) + 1
    if colon <= 0:
        return None
    slash = url.find("/")
    if slash != -1 and slash < colon:
        return None
    head, path = url[:colon], url[colon + 1 :]
    user, _, host = head.rpartition("@")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (user + "@" if user else ""), host, path


def _is_local(url: str) -> bool:
    return "://" not in url and scp_like(url) is None


def _key(host: str, path: str) -> str:
    path = re.sub(r"/+", "/", path).strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")].rstrip("/")
    return f"{host.lower()}/{path}" if path else host.lower()


def normalize_remote(url: str) -> str:
    """One comparable key for the ways of writing a remote: `git@github.com:o/r.git`,
    `https://user:pw@github.com/o/r`, `ssh://git@github.com:22/o/r.git` and
    `git://github.com/o/r` are all `github.com/o/r` (lowercase host; no user, password,
    port, `.git` or trailing slash). Local paths become absolute; `file://` URLs stay as
    given."""
    url = url.strip()
    scp = scp_like(url)
    if scp is not None:
        return _key(scp[1], scp[2])
    if "://" not in url:
        return os.path.abspath(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # not a URL Python can read (a bad IPv6 host): compare it as written
        return url
    if parts.scheme.lower() == "file":
        return url
    return _key(host, parts.path)


def strip_credentials(url: str) -> str:
    """The URL to clone from, without what could be a secret: the password always, and for
    http(s) and other URLs the user too (a token is often passed as the user name). The
    user of an ssh URL (`git@`) is kept: it is needed to log in and is not a secret."""
    url = url.strip()
    if "://" not in url:
        return url  # a local path, or scp-like `user@host:path` (no password possible)
    scheme, rest = url.split("://", 1)
    authority, sep, tail = rest.partition("/")
    if "@" not in authority:
        return url
    userinfo, _, hostport = authority.rpartition("@")
    if "ssh" in scheme.lower():
        user = userinfo.split(":", 1)[0]
        hostport = f"{user}@{hostport}" if user else hostport
    return f"{scheme}://{hostport}{sep}{tail}"


# ---------------------------------------------------------------------------------------------
# Running git


class _Failed(Exception):
    def __init__(self, args: Sequence[str], returncode: int, stderr: bytes) -> None:
        super().__init__(args, returncode)
        self.args_ = list(args)
        self.returncode = returncode
        self.stderr = stderr.decode("utf-8", "replace")

    def line(self) -> str:
        for text in self.stderr.splitlines():
            text = text.strip()
            if text and not text.startswith("hint:"):
                return text
        return f"exit status {self.returncode}"

    def error(self, what: str | None = None) -> BatonError:
        return BatonError(f"{what or 'git ' + self.command()} failed: {self.line()}")

    def command(self) -> str:
        """The git command's name: the first argument that is not an option (nor a `-c`
        setting)."""
        args = iter(self.args_)
        for arg in args:
            if arg == "-c":
                next(args, None)
            elif not arg.startswith("-"):
                return arg
        return ""


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", LC_ALL="C", LANGUAGE="C")
    return env


class _Git:
    """git in one folder with one environment; `close` ends what was started and not
    finished (after a failure elsewhere)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.running: list[tuple[subprocess.Popen[bytes], list[str]]] = []

    def start(self, *args: str, literal: bool = False) -> subprocess.Popen[bytes]:
        env = self.env if not literal else {**self.env, "GIT_LITERAL_PATHSPECS": "1"}
        proc = subprocess.Popen(
            ["git", *_QUIET_CONFIG, *args],
            cwd=self.cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.running.append((proc, list(args)))
        return proc

    def finish(
        self, proc: subprocess.Popen[bytes], input: bytes | None = None, ok: tuple[int, ...] = (0,)
    ) -> bytes:
        out, err = proc.communicate(input if input is not None else b"")
        args = next((a for p, a in self.running if p is proc), [])
        self.running = [(p, a) for p, a in self.running if p is not proc]
        if proc.returncode not in ok:
            raise _Failed(args, proc.returncode, err)
        return out

    def close(self) -> None:
        for proc, _ in self.running:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        self.running = []

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        ok: tuple[int, ...] = (0,),
        literal: bool = False,
    ) -> bytes:
        return self.finish(self.start(*args, literal=literal), input, ok)

    def text(self, *args: str, ok: tuple[int, ...] = (0,)) -> str:
        return self.run(*args, ok=ok).decode("utf-8", "surrogateescape").strip()

    def ok(self, *args: str) -> bool:
        try:
            self.run(*args)
        except _Failed:
            return False
        return True


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _display(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


def _clean(text: str | None) -> str | None:
    """Text read with surrogateescape, made storable: bytes that are not UTF-8 as `\\xNN`."""
    return None if text is None else _display(text.encode("utf-8", "surrogateescape"))


# ---------------------------------------------------------------------------------------------
# Capture


@dataclass
class _Change:
    path: bytes
    staged: bool  # the index differs from HEAD (so leaving the file out takes a reset)
    unstaged: bool  # the work tree differs from the index (so it takes an add)
    untracked: bool = False
    unmerged: bool = False


def _parse_status(out: bytes) -> list[_Change]:
    """Entries of `git status --porcelain=v2 -z --no-renames`, one per path."""
    changes: dict[bytes, _Change] = {}
    tokens = out.split(b"\0")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        kind = token[:1]
        if kind == b"1":
            fields = token.split(b" ", 8)
            path, xy = fields[8], fields[1]
        elif kind == b"2":  # a rename, only when rename detection is on: two paths
            fields = token.split(b" ", 9)
            path, xy = fields[9], fields[1]
            orig = tokens[i]
            i += 1
            changes.setdefault(orig, _Change(orig, True, True))
        elif kind == b"u":
            path, xy = token.split(b" ", 10)[10], b"UU"
        elif kind == b"?":
            path, xy = token[2:], b"??"
        else:
            continue
        change = changes.setdefault(path, _Change(path, False, False, untracked=xy == b"??"))
        change.unmerged = change.unmerged or kind == b"u"
        change.staged = change.staged or xy[:1] not in (b".", b"?")
        change.unstaged = change.unstaged or xy[1:2] != b"."
    return list(changes.values())


def _parse_diff(out: bytes) -> tuple[list[list[bytes]], bytes]:
    """The paths of each file pair, and the patch, of `git diff -z --raw -p`."""
    pairs: list[list[bytes]] = []
    i = 0
    while i < len(out) and out[i : i + 1] == b":":
        end = out.index(b"\0", i)
        status = out[i:end].rsplit(b" ", 1)[1]
        count = 2 if status[:1] in (b"R", b"C") else 1
        paths = []
        i = end + 1
        for _ in range(count):
            end = out.index(b"\0", i)
            paths.append(out[i:end])
            i = end + 1
        pairs.append(paths)
    if out[i : i + 1] == b"\0":
        i += 1
    return pairs, out[i:]


def _segments(patch: bytes) -> list[bytes]:
    """The patch cut into one piece per file: every piece starts with `diff --git `, a line
    no patch body can hold (body lines start with ' ', '+', '-', '\\' or a base85 length)."""
    if not patch:
        return []
    starts = [0] + [m.start() + 1 for m in re.finditer(rb"\ndiff --git ", patch)]
    return [patch[a:b] for a, b in zip(starts, [*starts[1:], len(patch)], strict=True)]


def _remotes(config: bytes) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(remote name, url) in config order, and (insteadOf prefix, base) rewrites."""
    remotes: list[tuple[str, str]] = []
    rewrites: list[tuple[str, str]] = []
    for entry in config.split(b"\0"):
        if not entry:
            continue
        key_b, _, value_b = entry.partition(b"\n")
        key, value = key_b.decode("utf-8", "replace"), value_b.decode("utf-8", "replace")
        if key.startswith("remote.") and key.endswith(".url"):
            name = key[len("remote.") : -len(".url")]
            if name not in (n for n, _ in remotes):
                remotes.append((name, value))
        elif key.startswith("url.") and key.endswith(".insteadof"):
            rewrites.append((value, key[len("url.") : -len(".insteadof")]))
    return remotes, rewrites


def _rewrite(url: str, rewrites: list[tuple[str, str]]) -> str:
    best = max((r for r in rewrites if url.startswith(r[0])), key=lambda r: len(r[0]), default=None)
    return best[1] + url[len(best[0]) :] if best else url


def _omission(path: str, reason: str, size: int) -> dict[str, Any]:
    return {"path": path, "reason": reason, "size": size}


def _limit(omitted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    omitted.sort(key=lambda o: (o["path"], o["reason"]))
    if len(omitted) <= OMITTED_LIMIT:
        return omitted
    rest = omitted[OMITTED_LIMIT - 1 :]
    summary = _omission(
        f"… and {len(rest)} more files", "listed in part only", sum(o["size"] for o in rest)
    )
    return [*omitted[: OMITTED_LIMIT - 1], summary]


def state_of(git: dict[str, Any]) -> str:
    """The sha256 of a capture's content: everything but "root" (where the folder is) and
    "state" itself. Of the bundle only its commit count counts, since git may pack the same
    commits into different bytes from one run to the next."""
    content = {k: v for k, v in git.items() if k not in ("root", "state")}
    if isinstance(content.get("bundle"), dict):
        content["bundle"] = {"commits": content["bundle"].get("commits")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _sha256(text.encode("utf-8", "surrogatepass"))


def capture(
    repo: Path,
    put_blob: Callable[[bytes], str],
    *,
    patch_cap: int = PATCH_CAP,
    file_cap: int = FILE_CAP,
    bundle_cap: int = BUNDLE_CAP,
) -> dict[str, Any] | None:
    """The state of the git work tree `repo` is in, or None when it is in none (or git is
    not installed). Stores the bundle and the patch through `put_blob`, which returns the
    sha256 hex of what it stored. Changes nothing in the repository."""
    repo = Path(repo)
    if repo.is_file():
        repo = repo.parent
    if not repo.is_dir():
        return None
    env = _base_env()
    try:
        found = _Git(repo, env).run(
            "rev-parse",
            "--show-toplevel",
            "--absolute-git-dir",
            "--git-path",
            "objects",
            "--git-path",
            "index",
        )
    except FileNotFoundError:
        return None  # no git: nothing to capture
    except _Failed as failed:
        if "not a git repository" in failed.stderr or "work tree" in failed.stderr:
            return None
        raise failed.error() from None
    lines = found.decode("utf-8", "surrogateescape").splitlines()
    root, git_dir = Path(lines[0]), Path(lines[1])
    objects, index = (repo / lines[2]).resolve(), (repo / lines[3]).resolve()
    git = _Git(root, env)
    # A private index, started from the user's one (its stat data spares rehashing every
    # file), and a private object directory that reads the repository's objects.
    with tempfile.TemporaryDirectory(prefix="baton-git-") as scratch:
        scratch_index = Path(scratch) / "index"
        scratch_objects = Path(scratch) / "objects"
        scratch_objects.mkdir()
        if index.is_file():
            shutil.copy2(index, scratch_index)  # with its mtime: git's racy-entry check needs it
        private = _Git(
            root,
            {
                **env,
                "GIT_INDEX_FILE": str(scratch_index),
                "GIT_OBJECT_DIRECTORY": str(scratch_objects),
                "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects),
            },
        )
        try:
            return _capture(
                git, private, git_dir, Path(scratch), put_blob, patch_cap, file_cap, bundle_cap
            )
        except _Failed as failed:
            raise failed.error() from None
        finally:
            git.close()
            private.close()


def _capture(
    git: _Git,
    private: _Git,
    git_dir: Path,
    scratch: Path,
    put_blob: Callable[[bytes], str],
    patch_cap: int,
    file_cap: int,
    bundle_cap: int = BUNDLE_CAP,
) -> dict[str, Any]:
    branch, head = _head(git_dir)
    root = git.cwd
    if not (scratch / "index").exists():  # no index yet: start from HEAD's tree (if any)
        private.run("read-tree", "HEAD", ok=(0, 128))

    # Independent questions, asked at once: what changed in the work tree, the branch and
    # its upstream, the remotes, the root commit (then the commits the remote lacks).
    status = private.start(
        "status",
        "--porcelain=v2",
        "-z",
        "--untracked-files=all",
        "--no-renames",
        "--ignore-submodules=dirty",
    )
    refs = None
    if branch is not None:
        refs = git.start(
            "for-each-ref",
            "--format=%(refname)%00%(objectname)%00%(upstream)%00%(upstream:short)"
            "%00%(upstream:remotename)%00%(upstream:track,nobracket)",
            f"refs/heads/{branch}",
        )
    config = git.start("config", "-z", "--get-regexp", r"^(remote\..*\.url|url\..*\.insteadof)$")
    roots = git.start("rev-list", "--max-parents=0", "HEAD")

    upstream_ref = upstream = remote_name = None
    ahead: int | None = None
    for line in git.finish(refs).decode("utf-8", "surrogateescape").splitlines() if refs else []:
        ref, sha, up_ref, up_short, up_remote, track = line.split("\0")
        if ref != f"refs/heads/{branch}":
            continue
        head = sha
        if up_ref.startswith("refs/remotes/") and track != "gone":
            upstream_ref, upstream, remote_name = up_ref, up_short, up_remote
            found = re.search(r"ahead (\d+)", track)
            ahead = int(found.group(1)) if found else 0
    if branch is None and head is None:  # HEAD names something other than a branch
        head = git.text("rev-parse", "--verify", "-q", "HEAD", ok=(0, 1)) or None
    count = None
    if head and ahead is None:
        count = git.start("rev-list", "--count", head, "--not", "--remotes")
    remotes, rewrites = _remotes(git.finish(config, ok=(0, 1)))
    found_roots = git.finish(roots, ok=(0, 128)).split() if head else []
    root_commit = found_roots[-1].decode() if found_roots else None
    if count is not None:
        ahead = int(git.finish(count))
    changes = _parse_status(private.finish(status))

    bundle_proc = None
    bundle_file = scratch / "head.bundle"
    if head and ahead:
        exclude = [f"^{upstream_ref}"] if upstream_ref else ["--not", "--remotes"]
        bundle_proc = git.start("bundle", "create", "-q", str(bundle_file), "HEAD", *exclude)

    omitted: list[dict[str, Any]] = []
    patch: dict[str, Any] | None = None
    if head and changes:
        patch = _patch(private, root, head, changes, omitted, put_blob, patch_cap, file_cap)

    bundle = None
    if bundle_proc is not None:
        git.finish(bundle_proc)
        size = bundle_file.stat().st_size
        if size > bundle_cap:  # said, never silently dropped; restore then needs --from
            what = f"the bundle of {ahead} commit(s) not on {upstream or 'a remote'}"
            omitted.append(_omission(what, f"bundle over {bundle_cap} bytes", size))
        else:
            data = bundle_file.read_bytes()
            bundle = {"sha256": _store(put_blob, data), "size": len(data), "commits": ahead}

    if remote_name is None:
        names = [name for name, _ in remotes]
        remote_name = "origin" if "origin" in names else (names[0] if names else None)
    url = dict(remotes).get(remote_name) if remote_name else None
    if url is not None:
        url = _rewrite(url, rewrites)
        if _is_local(url):
            url = os.path.normpath(root / url)
    result: dict[str, Any] = {
        "version": VERSION,
        "root": _clean(str(root)),
        "remote": _clean(normalize_remote(url)) if url else None,
        "remote_url": _clean(strip_credentials(url)) if url else None,
        "root_commit": root_commit,
        "branch": _clean(branch),
        "detached": branch is None,
        "head": head,
        "upstream": _clean(upstream),
        "ahead": ahead or 0,
        "bundle": bundle,
        "patch": patch,
        "omitted": _limit(omitted),
        "dirty": bool(changes),
        "partial": NO_COMMITS
        if not head
        else UNMERGED
        if any(c.unmerged for c in changes)
        else None,
    }
    result["state"] = state_of(result)
    return result


def _head(git_dir: Path) -> tuple[str | None, str | None]:
    """(branch, sha of a detached HEAD) from the HEAD file; a branch's sha is looked up
    with its upstream."""
    text = (git_dir / "HEAD").read_text("utf-8", "surrogateescape").strip()
    if text.startswith("ref:"):
        ref = text[len("ref:") :].strip()
        return (ref[len("refs/heads/") :] if ref.startswith("refs/heads/") else None), None
    return None, text if _SHA.fullmatch(text) else None


def _store(put_blob: Callable[[bytes], str], data: bytes) -> str:
    digest = _sha256(data)
    stored = put_blob(data)
    if stored != digest:
        raise BatonError(f"the blob store returned {stored!r} for a blob whose sha256 is {digest}")
    return digest


def _patch(
    git: _Git,
    root: Path,
    head: str,
    changes: list[_Change],
    omitted: list[dict[str, Any]],
    put_blob: Callable[[bytes], str],
    patch_cap: int,
    file_cap: int,
) -> dict[str, Any] | None:
    """Stage the changes into the private index, leaving out files over `file_cap`, then
    diff it against HEAD; drop the biggest files while the patch is over `patch_cap`."""
    base = os.fsencode(root)
    add: list[bytes] = []
    reset: list[bytes] = []
    for change in changes:
        try:
            info = os.lstat(os.path.join(base, change.path))
        except FileNotFoundError:
            if change.unstaged:
                add.append(change.path)  # a deletion not staged yet
            continue
        if change.untracked and change.path.endswith(b"/"):
            omitted.append(_omission(_display(change.path), "a nested git repository", 0))
        elif not stat.S_ISDIR(info.st_mode) and info.st_size > file_cap:
            omitted.append(
                _omission(_display(change.path), f"file over {file_cap} bytes", info.st_size)
            )
            if change.staged:
                reset.append(change.path)
        elif change.unstaged:
            add.append(change.path)
    if add:
        _pathspecs(git, "add", "-A", paths=add)
    if reset:
        _pathspecs(git, "reset", "-q", head, paths=reset)

    over = f"patch over {patch_cap} bytes"
    for attempt in range(4):
        out = git.run("diff", "--cached", "-z", "--raw", "-p", *_DIFF_OPTIONS, head)
        pairs, data = _parse_diff(out)
        if len(data) <= patch_cap:
            break
        pieces = _segments(data)
        if len(pieces) != len(pairs):  # cannot tell the files apart: the whole patch goes
            omitted.append(_omission("(the work-tree patch)", over, len(data)))
            return None
        sized = sorted(zip(pairs, map(len, pieces), strict=True), key=lambda p: -p[1])
        if attempt == 3:  # dropping files did not shrink it as expected: give it up
            omitted.extend(_omission(_display(paths[-1]), over, size) for paths, size in sized)
            return None
        total, drop = len(data), []
        for paths, size in sized:
            if total <= patch_cap:
                break
            total -= size
            drop.append(paths)
            omitted.append(_omission(_display(paths[-1]), over, size))
        _pathspecs(git, "reset", "-q", head, paths=[p for paths in drop for p in paths])
    if not data:
        return None
    return {"sha256": _store(put_blob, data), "size": len(data), "files": len(pairs)}


def _pathspecs(git: _Git, *args: str, paths: list[bytes]) -> None:
    """`git <args>` on exactly these paths, given on stdin (no command-line limit)."""
    options = ("--pathspec-from-file=-", "--pathspec-file-nul")
    # A few paths: the threads that preload the whole index would cost more than they save.
    git.run("-c", "core.preloadIndex=false", *args, *options, input=b"\0".join(paths), literal=True)


# ---------------------------------------------------------------------------------------------
# Reading a bundle (what a share of it publishes), without git and without a repository

BUNDLE_SCAN_CAP = 256 * 1024 * 1024  # bytes of objects a bundle may unpack to for its scan
_PACK_TYPES = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}


def bundle_texts(data: bytes, cap: int = BUNDLE_SCAN_CAP) -> list[tuple[str, str]]:
    """Every text a bundle publishes, as (where, text), oldest commit first: each commit's
    message, and each file content and file name its commits add, named by the
    first commit that has it (`commit abc1234 (path)`). Read in memory from the pack itself,
    so no repository and no prerequisite commits are needed; a change stored as a delta
    against a file the bundle does not hold yields the bytes it inserts. Raises
    InvalidInput when the bundle cannot be read or unpacks to more than `cap` bytes."""
    try:
        return _bundle_texts(data, cap)
    except (IndexError, ValueError, KeyError, RecursionError, zlib.error) as exc:
        raise InvalidInput(f"the git bundle cannot be read ({exc})") from None


def _bundle_texts(data: bytes, cap: int) -> list[tuple[str, str]]:
    end = data.find(b"\n\n")
    header = data[: max(end, 0)].decode("utf-8", "replace").splitlines()
    if end < 0 or not header or header[0] not in ("# v2 git bundle", "# v3 git bundle"):
        raise ValueError("not a git bundle")
    algo = "sha256" if "@object-format=sha256" in header else "sha1"
    size = 32 if algo == "sha256" else 20
    pack = memoryview(data)[end + 2 :]
    if bytes(pack[:4]) != b"PACK":
        raise ValueError("no pack after the bundle header")
    count = int.from_bytes(pack[8:12], "big")
    objects: dict[bytes, tuple[str, bytes]] = {}  # sha -> (type, content)
    at: dict[int, tuple[str, bytes]] = {}  # pack offset -> (type, content)
    order: list[bytes] = []
    loose: list[list[bytes]] = []  # what deltas against objects outside the bundle insert
    budget, pos = cap, 12
    for _ in range(count):
        start = pos
        c = pack[pos]
        pos += 1
        kind, length, shift = (c >> 4) & 7, c & 15, 4
        while c & 0x80:
            c = pack[pos]
            pos += 1
            length |= (c & 0x7F) << shift
            shift += 7
        base: tuple[str, bytes] | None = None
        base_known = True
        if kind == 6:  # OFS_DELTA: its base is earlier in this pack
            c = pack[pos]
            pos += 1
            back = c & 0x7F
            while c & 0x80:
                c = pack[pos]
                pos += 1
                back = ((back + 1) << 7) | (c & 0x7F)
            base = at[start - back]
        elif kind == 7:  # REF_DELTA: its base is named, and may be outside the bundle
            ref = bytes(pack[pos : pos + size])
            pos += size
            base = objects.get(ref)
            base_known = base is not None
        elif kind not in _PACK_TYPES:
            raise ValueError(f"unknown object type {kind}")
        budget -= length
        if budget < 0:
            raise InvalidInput(f"the git bundle unpacks to more than {cap} bytes: too big to scan")
        body, pos = _inflate(pack, pos, length)
        if kind in (6, 7):
            if not base_known:
                loose.append(_inserted(body))
                continue
            assert base is not None
            content = _apply_delta(base[1], body, budget)
            if content is None:
                raise InvalidInput(
                    f"the git bundle unpacks to more than {cap} bytes: too big to scan"
                )
            budget -= len(content)
            entry = (base[0], content)
        else:
            entry = (_PACK_TYPES[kind], body)
        sha = hashlib.new(algo, f"{entry[0]} {len(entry[1])}\0".encode() + entry[1]).digest()
        objects[sha] = at[start] = entry
        order.append(sha)
    texts = [("refs", "\n".join(header[1:]))]
    return [*texts, *_texts(objects, order, loose, size)]


def _inflate(pack: memoryview, pos: int, length: int) -> tuple[bytes, int]:
    """The `length` bytes of the zlib stream at `pos`, and where the stream ends."""
    inflater = zlib.decompressobj()
    out: list[bytes] = []
    got = 0
    while not inflater.eof:
        chunk = pack[pos : pos + 65536]
        if not chunk:
            raise ValueError("the pack is truncated")
        piece = inflater.decompress(chunk, length - got + 1)
        got += len(piece)
        out.append(piece)
        if got > length or inflater.unconsumed_tail:
            raise ValueError("an object is longer than its header says")
        pos += len(chunk) - len(inflater.unused_data)
    return b"".join(out), pos


def _varint(delta: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        c = delta[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return value, i


def _apply_delta(base: bytes, delta: bytes, limit: int) -> bytes | None:
    """The object `delta` makes of `base`; None when it would be over `limit` bytes (a few
    bytes of delta can copy the base many times over)."""
    _, i = _varint(delta, 0)
    size, i = _varint(delta, i)
    if size > limit:
        return None
    out = bytearray()
    while i < len(delta):
        op = delta[i]
        i += 1
        if op & 0x80:
            offset = length = 0
            for bit in range(4):
                if op & (1 << bit):
                    offset |= delta[i] << (8 * bit)
                    i += 1
            for bit in range(3):
                if op & (0x10 << bit):
                    length |= delta[i] << (8 * bit)
                    i += 1
            out += base[offset : offset + (length or 0x10000)]
        elif op:
            out += delta[i : i + op]
            i += op
        else:
            raise ValueError("a delta has a zero opcode")
        if len(out) > size:
            raise ValueError("a delta makes more than its header says")
    return bytes(out)


def _inserted(delta: bytes) -> list[bytes]:
    """The runs of bytes a delta inserts (what it adds to a base it does not carry)."""
    _, i = _varint(delta, 0)
    _, i = _varint(delta, i)
    out: list[bytes] = []
    while i < len(delta):
        op = delta[i]
        i += 1
        if op & 0x80:
            i += bin(op & 0x7F).count("1")
        elif op:
            out.append(delta[i : i + op])
            i += op
        else:
            raise ValueError("a delta has a zero opcode")
    return out


def _texts(
    objects: dict[bytes, tuple[str, bytes]],
    order: list[bytes],
    loose: list[list[bytes]],
    size: int,
) -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    seen: set[bytes] = set()
    named: set[str] = set()

    def walk(tree: bytes, prefix: str, commit: str) -> None:
        if tree in seen or tree not in objects:
            return
        seen.add(tree)
        body, i = objects[tree][1], 0
        while i < len(body):
            space = body.index(b" ", i)
            nul = body.index(b"\0", space)
            mode, name = body[i:space], _display(body[space + 1 : nul])
            sha = body[nul + 1 : nul + 1 + size]
            i = nul + 1 + size
            path = f"{prefix}{name}"
            if path not in named:
                named.add(path)
                texts.append((f"commit {commit} (file name {path})", path))
            if mode == b"40000":
                walk(sha, path + "/", commit)
            elif mode != b"160000" and sha not in seen and sha in objects:
                seen.add(sha)
                texts.append((f"commit {commit} ({path})", _text(objects[sha][1])))

    # A pack lists commits newest first: walked oldest first, each file is named by the
    # first commit that has it.
    for sha in reversed([s for s in order if objects[s][0] in ("commit", "tag")]):
        kind, body = objects[sha]
        # The message: the header lines are object names, signatures and who made it.
        texts.append((f"{kind} {sha.hex()[:7]} (message)", _text(body.partition(b"\n\n")[2])))
        if kind == "commit" and body.startswith(b"tree "):
            walk(bytes.fromhex(body[5 : body.index(b"\n")].decode()), "", sha.hex()[:7])
    for sha in order:  # in a tree the bundle holds only as a change to one it lacks
        if sha not in seen and objects[sha][0] == "blob":
            name = _entry_name(loose, sha)
            where = f"blob {sha.hex()[:7]}" + (f" ({name})" if name else "")
            texts.append((where, _text(objects[sha][1])))
    texts.extend(
        ("a change to a file outside the bundle", _text(b"\n".join(runs))) for runs in loose if runs
    )
    return texts


def _entry_name(changes: list[list[bytes]], sha: bytes) -> str | None:
    """The file name a tree entry gives `sha` (`<mode> <name>\\0<sha>`), from the bytes
    that changes to trees outside the bundle insert; None when they do not hold the entry
    whole (a name that is partly copied from the old tree is not guessed at)."""
    for run in (run for runs in changes for run in runs):
        at = run.find(b"\0" + sha)
        if at > 0:
            before = run[max(0, at - 4096) : at]
            entry = re.search(rb"(?:100644|100755|120000) ([^\0]+)$", before)
            if entry:
                return _display(entry.group(1))
    return None


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Restore


@dataclass
class RestoreReport:
    path: str
    branch: str
    commit: str | None
    source: str
    bundle_applied: bool
    patch_applied: bool
    omitted: list[dict[str, Any]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)


def _blob(get_blob: Callable[[str], bytes | None], entry: Any, what: str) -> bytes | None:
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise InvalidInput(f"the session's git snapshot has a malformed {what} entry")
    digest = entry["sha256"]
    data = get_blob(digest)
    if data is None:
        raise NotFound(f"the session's git {what} (blob {digest}) is missing from the blob store")
    if _sha256(data) != digest:
        raise BatonError(f"the session's git {what} (blob {digest}) is damaged: its sha256 differs")
    return data


def _check_snapshot(git: Any, session_id: str) -> tuple[str, str]:
    if not isinstance(git, dict) or git.get("version") != VERSION:
        raise InvalidInput("the session has no git snapshot this version of baton can restore")
    head, root_commit = git.get("head"), git.get("root_commit")
    if head is None:
        raise InvalidInput(
            "the session's git snapshot has no commit to restore (the repository had none yet)"
        )
    if not (isinstance(head, str) and _SHA.fullmatch(head)):
        raise InvalidInput("the session's git snapshot has a malformed head commit")
    if not (isinstance(root_commit, str) and _SHA.fullmatch(root_commit)):
        raise InvalidInput("the session's git snapshot has a malformed root commit")
    if not _SESSION_ID.fullmatch(session_id):
        raise InvalidInput(f"{session_id!r} cannot name a branch: use the session's id")
    return head, root_commit


def _root_commit(git: _Git) -> str | None:
    for where in ("HEAD", "--all"):
        try:
            out = git.run("rev-list", "--max-parents=0", where).split()
        except _Failed:
            continue
        if out:
            return out[-1].decode()
    return None


def restore(
    git: dict[str, Any],
    get_blob: Callable[[str], bytes | None],
    dest: Path,
    *,
    session_id: str,
    source: str | None = None,
    current_repo: Path | None = None,
) -> RestoreReport:
    """Bring back the captured state in the new folder `dest`, on the new branch
    `baton/<session_id>`, without touching any existing checkout. The repository comes from
    `source` (a path or URL) when given, else from `current_repo` (as a new worktree of it)
    when that repository holds the session's root commit, else from the recorded remote.
    The captured changes come back staged (`git apply --index`), untracked files included.
    On failure, what the restore made is removed."""
    head, root_commit = _check_snapshot(git, session_id)
    dest = Path(dest).absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"{dest} already exists and is not an empty folder: pick a new folder")
    bundle = _blob(get_blob, git.get("bundle"), "bundle")
    patch = _blob(get_blob, git.get("patch"), "patch")
    run = _Restore(dest, _base_env(), f"baton/{session_id}")
    try:
        origin = run.obtain(git.get("remote_url"), source, current_repo, root_commit)
        run.check(origin, root_commit)
        if bundle is not None:
            run.fetch_bundle(bundle, head)
        elif not run.repo.ok("cat-file", "-e", f"{head}^{{commit}}"):
            why = git.get("bundle_dropped") or (
                "it was shared without code" if git.get("no_code") else None
            )
            raise BatonError(
                f"commit {head} is not in {origin} and the session recorded no bundle"
                f"{f' ({why})' if why else ''}: restore from a repository that has it "
                "(--from PATH_OR_URL)"
            )
        run.checkout(head)
        if patch is not None:
            try:
                run.repo.run("apply", "--index", "--binary", "--whitespace=nowarn", input=patch)
            except _Failed as failed:
                raise failed.error("applying the session's work-tree patch") from None
            files = git["patch"].get("files")
            files = f"{files} file{'' if files == 1 else 's'}"
            run.steps.append(f"applied the work-tree patch ({files}; the changes are staged)")
    except BaseException as error:
        run.undo()
        if isinstance(error, _Failed):
            raise error.error() from None
        if isinstance(error, FileNotFoundError) and error.filename == "git":
            raise BatonError("git is not installed (or not on PATH)") from None
        raise
    omitted = [dict(o) for o in git.get("omitted") or [] if isinstance(o, dict)]
    for entry in omitted:
        run.steps.append(f"not in the snapshot: {entry.get('path')} ({entry.get('reason')})")
    return RestoreReport(
        path=str(dest),
        branch=run.branch,
        commit=head,
        source=origin,
        bundle_applied=bundle is not None,
        patch_applied=patch is not None,
        omitted=omitted,
        steps=run.steps,
    )


class _Restore:
    """The steps of one restore, and how to take them back."""

    def __init__(self, dest: Path, env: dict[str, str], branch: str) -> None:
        self.dest = dest
        self.env = env
        self.branch = branch
        self.existed = dest.exists()
        self.created = next(p for p in (dest, *dest.parents) if p.parent.exists())
        self.repo = _Git(dest, env)
        self.local: _Git | None = None  # the repository `dest` is a worktree of
        self.branched = False
        self.steps: list[str] = []

    def obtain(
        self, remote_url: Any, source: str | None, current_repo: Path | None, root_commit: str
    ) -> str:
        """Clone or add a worktree into `dest`; returns what it came from."""
        if source is None and current_repo is not None and Path(current_repo).is_dir():
            local = _Git(Path(current_repo).absolute(), self.env)
            if local.ok("cat-file", "-e", f"{root_commit}^{{commit}}"):
                top = local.text("rev-parse", "--show-toplevel", ok=(0, 128)) or str(current_repo)
                self.local = local
                local.run("worktree", "add", "-q", "--detach", "--no-checkout", str(self.dest))
                self.steps.append(f"added a worktree of {top} at {self.dest}")
                return top
            self.steps.append(f"{current_repo} is not the session's repository")
        if source is None:
            if not isinstance(remote_url, str) or not remote_url:
                raise InvalidInput(
                    "the session's repository has no remote to clone from: pass --from PATH_OR_URL"
                )
            source = remote_url
        elif _is_local(source) and Path(source).exists():
            source = str(Path(source).absolute())
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            _Git(self.dest.parent, self.env).run(
                "clone", "-q", "--no-checkout", "--", source, str(self.dest)
            )
        except _Failed as failed:
            raise failed.error(f"git clone {source}") from None
        self.steps.append(f"cloned {source} into {self.dest}")
        return source

    def check(self, origin: str, root_commit: str) -> None:
        if not self.repo.ok("cat-file", "-e", f"{root_commit}^{{commit}}"):
            theirs = _root_commit(self.repo)
            what = f"its root commit is {theirs}" if theirs else "it has no commits"
            raise InvalidInput(
                f"{origin} is a different repository: {what}, the session's is {root_commit}"
            )
        if self.repo.ok("rev-parse", "--verify", "-q", f"refs/heads/{self.branch}"):
            raise InvalidInput(
                f"branch {self.branch} already exists in {origin}: delete it, or restore "
                "into another session"
            )

    def fetch_bundle(self, bundle: bytes, head: str) -> None:
        with tempfile.TemporaryDirectory(prefix="baton-git-") as scratch:
            path = Path(scratch) / "head.bundle"
            path.write_bytes(bundle)
            try:
                self.repo.run(
                    "fetch", "-q", "--no-tags", "--no-write-fetch-head", str(path), "HEAD"
                )
            except _Failed as failed:
                raise failed.error("fetching the session's bundle") from None
        if not self.repo.ok("cat-file", "-e", f"{head}^{{commit}}"):
            raise BatonError(f"the session's bundle does not hold its head commit {head}")
        self.steps.append("fetched the commits that were not on the remote from the bundle")

    def checkout(self, head: str) -> None:
        self.repo.run("checkout", "-q", "-b", self.branch, head)
        self.branched = True
        self.steps.append(f"checked out {head[:12]} on the new branch {self.branch}")

    def undo(self) -> None:
        """Remove the worktree (and its branch) or the clone; leave an empty `dest` that was
        there before as it was."""
        if self.local is not None:
            for args in (
                ("worktree", "remove", "--force", str(self.dest)),
                ("branch", "-D", self.branch) if self.branched else (),
                ("worktree", "prune"),
            ):
                if args:
                    self.local.ok(*args)
        if self.existed:
            if self.dest.is_dir():
                for child in self.dest.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            else:
                self.dest.mkdir(parents=True, exist_ok=True)
        else:
            shutil.rmtree(self.created, ignore_errors=True)
