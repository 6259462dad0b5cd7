"""A wheel of the running baton, built from its package folder, so a server can hand out
itself (`pipx install SERVER/install/baton-VERSION-py3-none-any.whl`): the PyPI name `baton`
belongs to another project.

Only the package's own files go in (its .py, templates, static files; no __pycache__, no
.pyc), plus the .dist-info the wheel spec asks for: METADATA from the installed distribution
(its version and dependencies, extras' markers included), WHEEL, entry_points.txt and RECORD
with sha256 hashes. It reads the folder, not the distribution's RECORD, so an editable install
gives the same wheel."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import threading
import zipfile
from pathlib import Path

import baton

NAME = "baton"
ENTRY_POINTS = "[console_scripts]\nbaton = baton.cli.main:main\n"
_STAMP = (1980, 1, 1, 0, 0, 0)  # the same files give the same bytes
_lock = threading.Lock()
_built: tuple[str, bytes] | None = None


def version() -> str:
    try:
        return importlib.metadata.version(NAME)
    except importlib.metadata.PackageNotFoundError:
        return baton.__version__


def filename() -> str:
    return f"{NAME}-{version().replace('-', '_')}-py3-none-any.whl"


def install_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/install/{filename()}"


def install_command(base_url: str) -> str:
    return f"pipx install {install_url(base_url)}"


def wheel() -> tuple[str, bytes]:
    """The wheel's file name and bytes, built once per process."""
    global _built
    with _lock:
        if _built is None:
            _built = filename(), build(Path(baton.__file__).parent)
        return _built


def _files(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if not path.is_file() or any(p == "__pycache__" or p.startswith(".") for p in parts):
            continue
        if path.suffix in {".pyc", ".pyo"} or path.name.endswith("~"):
            continue
        found.append(path)
    return found


def metadata() -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {NAME}", f"Version: {version()}"]
    try:
        meta = importlib.metadata.metadata(NAME)
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "\n".join(lines) + "\n"
    for field in ("Summary", "Requires-Python"):
        if field in meta:
            lines.append(f"{field}: {meta[field]}")
    lines += [f"Provides-Extra: {e}" for e in meta.get_all("Provides-Extra") or []]
    lines += [f"Requires-Dist: {r}" for r in meta.get_all("Requires-Dist") or []]
    return "\n".join(lines) + "\n"


def _hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build(folder: Path) -> bytes:
    info = f"{NAME}-{version().replace('-', '_')}.dist-info"
    entries: list[tuple[str, bytes]] = [
        (f"{NAME}/{p.relative_to(folder).as_posix()}", p.read_bytes()) for p in _files(folder)
    ]
    entries += [
        (f"{info}/METADATA", metadata().encode()),
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: baton\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        (f"{info}/entry_points.txt", ENTRY_POINTS.encode()),
    ]
    record = "".join(f"{name},{_hash(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            member = zipfile.ZipInfo(name, _STAMP)
            member.external_attr = 0o644 << 16
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, data)
    return out.getvalue()
