"""The server hands out itself: `/install/baton-VERSION-py3-none-any.whl` is a wheel of the
running baton (PyPI's `baton` is another project), and the share page's install line points
at it."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from importlib.metadata import metadata, version
from pathlib import Path

import baton
from tests.fixtures.servers import IN_PROCESS, Live

VERSION = version("baton")
NAME = f"baton-{VERSION}-py3-none-any.whl"
INFO = f"baton-{VERSION}.dist-info"
URL = f"{IN_PROCESS}/install/{NAME}"


def download(live: Live) -> bytes:
    with live.client() as anonymous:
        got = anonymous.get(f"/install/{NAME}")
    assert got.status_code == 200, got.text
    assert got.headers["cache-control"] == "public, max-age=3600"
    assert got.headers["content-disposition"] == f'attachment; filename="{NAME}"'
    assert got.headers["content-type"] == "application/octet-stream"
    return got.content


def test_the_wheel_installs_and_runs(live: Live, tmp_path: Path) -> None:
    wheel = tmp_path / NAME
    wheel.write_bytes(download(live))
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    installed = subprocess.run(
        [*pip, "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    script = (target / "bin" / "baton").read_text()
    assert "from baton.cli.main import main" in script
    code = (
        "import sys, baton; print(baton.__file__); sys.argv = ['baton', '--version']; "
        "from baton.cli.main import main; main()"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(target)},  # the dependencies: the test venv's
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"{target / 'baton' / '__init__.py'}\nbaton, version {VERSION}\n"


def test_the_wheel_holds_the_package_and_its_metadata(live: Live) -> None:
    archive = zipfile.ZipFile(io.BytesIO(download(live)))
    names = archive.namelist()
    package = Path(baton.__file__).parent
    own = sorted(
        f"baton/{p.relative_to(package).as_posix()}"
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    info = [f"{INFO}/{n}" for n in ("METADATA", "WHEEL", "entry_points.txt", "RECORD")]
    assert names == own + info
    for needed in (
        "baton/__init__.py",
        "baton/cli/main.py",
        "baton/server/templates/share.html",
        "baton/server/static/page.js",
        "baton/render/style.css",
    ):
        assert needed in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "tests/" in n]
    # the package's own bytes
    assert archive.read("baton/cli/main.py") == (package / "cli" / "main.py").read_bytes()

    meta = archive.read(f"{INFO}/METADATA").decode()
    lines = meta.splitlines()
    installed = metadata("baton")
    assert lines[:3] == ["Metadata-Version: 2.1", "Name: baton", f"Version: {VERSION}"]
    assert f"Requires-Python: {installed['Requires-Python']}" in lines
    requires = [line.removeprefix("Requires-Dist: ") for line in lines if "Requires-Dist" in line]
    assert requires == installed.get_all("Requires-Dist")
    assert "click>=8.1" in requires and "fastapi>=0.115" in requires
    assert "obstore>=0.6; extra == 's3'" in requires  # extras keep their markers
    assert {line for line in lines if line.startswith("Provides-Extra")} >= {
        "Provides-Extra: postgres",
        "Provides-Extra: s3",
    }
    assert archive.read(f"{INFO}/WHEEL").decode() == (
        "Wheel-Version: 1.0\nGenerator: baton\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    assert archive.read(f"{INFO}/entry_points.txt").decode() == (
        "[console_scripts]\nbaton = baton.cli.main:main\n"
    )

    record = list(csv.reader(archive.read(f"{INFO}/RECORD").decode().splitlines()))
    assert [row[0] for row in record] == names
    assert record[-1] == [f"{INFO}/RECORD", "", ""]
    for path, digest, size in record[:-1]:
        data = archive.read(path)
        hashed = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert (digest, size) == (f"sha256={hashed}", str(len(data))), path


def test_one_wheel_per_server_and_only_its_name(live: Live) -> None:
    first = download(live)
    with live.client() as anonymous:
        again = anonymous.get(f"/install/{NAME}")
        assert again.content == first  # built once
        etag = again.headers["etag"]
        assert anonymous.get(f"/install/{NAME}", headers={"If-None-Match": etag}).status_code == 304
        assert anonymous.head(f"/install/{NAME}").status_code == 200
        where = anonymous.get("/install")
        assert (where.status_code, where.headers["location"]) == (307, f"/install/{NAME}")
        other = anonymous.get("/install/baton-0.0.1-py3-none-any.whl")  # a page: not /api
        assert other.status_code == 404
        assert f"no baton-0.0.1-py3-none-any.whl here; this server hands out {NAME}" in other.text


def test_the_share_page_and_api_give_the_install_line(live: Live) -> None:
    service = live.service
    session = service.create(live.alice.id, title="Fix the login bug")
    share = service.share(live.alice.id, session.id)
    with live.client() as anonymous:
        page = anonymous.get(f"/share/{share.id}").text
        public = anonymous.get(f"/api/shares/{share.id}").json()
    assert f'id="install-command" readonly value="pipx install {URL}"' in page
    assert 'data-copy="install-command"' in page
    assert "pipx install baton " not in page and "pipx install baton<" not in page
    assert public["install"] == f"pipx install {URL}"
    assert public["command"] == f"baton --fork {IN_PROCESS}/share/{share.id}"
