"""The VS Code extension (editors/vscode): its type check, its tests (Node's test runner against
a stub of the `vscode` API, with a stand-in baton CLI), and the `.vsix` that `vsce package`
builds. `.ci/run` installs its npm dependencies (`npm ci`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.servers import start_serve, stop
from tests.fixtures.services import unavailable
from tests.helpers import run_json

EXTENSION = Path(__file__).resolve().parents[2] / "editors" / "vscode"


def build_tests(out: Path) -> None:
    """The tests bundled with the stub as `vscode` (as `npm test` does), into a folder of this
    test's own: pytest-xdist may run the tests of this file side by side."""
    tests = sorted(str(p.relative_to(EXTENSION)) for p in (EXTENSION / "test").glob("*.test.ts"))
    built = npm(
        "exec", "--", "esbuild", *tests, "--bundle", "--platform=node", "--format=cjs",
        "--target=node18", "--alias:vscode=./test/vscode.ts", f"--outdir={out}",
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr


def npm(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("npm") is None:
        unavailable("no npm: the extension's tests need Node.js 20+")
    if not (EXTENSION / "node_modules" / ".bin" / "esbuild").exists():
        unavailable(
            "the extension's dependencies are not installed: npm ci --prefix editors/vscode"
        )
    return subprocess.run(
        ["npm", *args], cwd=EXTENSION, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_the_extension_type_checks_and_its_tests_pass(tmp_path: Path) -> None:
    checked = npm("run", "typecheck")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    build_tests(tmp_path / "out")
    tested = subprocess.run(
        ["node", "--test", str(tmp_path / "out")],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "# fail 0" in tested.stdout
    assert "# pass 19" in tested.stdout  # and the real-CLI test skips: see below


@pytest.mark.slow
def test_vsce_packages_the_extension(tmp_path: Path) -> None:
    vsix = tmp_path / "baton.vsix"
    packed = npm(
        "exec", "--", "vsce", "package", "--no-dependencies", "--allow-missing-repository",
        "--out", str(vsix),
    )  # fmt: skip
    assert packed.returncode == 0, packed.stdout + packed.stderr
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
        bundle = archive.read("extension/out/extension.js").decode()
    assert {"extension/out/extension.js", "extension/package.json", "extension/readme.md"} <= names
    assert not any(
        n.startswith(("extension/src/", "extension/test/", "extension/node_modules/"))
        for n in names
    )
    assert manifest["name"] == "baton" and manifest["publisher"] == "baton"  # baton.baton
    assert "onUri" in manifest["activationEvents"]
    assert 'require("vscode")' in bundle  # the editor's API, not bundled
    assert "telemetry" not in bundle.lower()


@pytest.mark.slow
def test_the_extension_forks_a_share_with_the_real_cli(dirty_repo: Path, tmp_path: Path) -> None:
    """The extension's link flow, view, status bar and Share, driven through the stub editor
    API but running the real `baton` against a real `baton serve`."""
    build_tests(tmp_path / "out")
    served = start_serve(tmp_path / "server-home")
    try:
        owner = {"BATON_USER": "owner"}
        sid = run_json(
            "sessions", "new", "--repo", str(dirty_repo), "--title", "Fix login",
            home=served.home, env=owner,
        )["id"]  # fmt: skip
        run_json(
            "sessions", "append", sid, "--role", "user", "--text", "why?",
            home=served.home, env=owner,
        )  # fmt: skip
        share = run_json("share", sid, home=served.home, env=owner)
        cli = tmp_path / "bin" / "baton"
        cli.parent.mkdir()
        cli.write_text(f'#!/bin/sh\nexec {sys.executable} -m baton "$@"\n')
        cli.chmod(0o755)
        env = {
            **os.environ,
            "BATON_HOME": str(tmp_path / "editor-home"),
            "BATON_E2E_CLI": str(cli),
            "BATON_E2E_SHARE": f"{served.url}/share/{share['id']}",
            "BATON_E2E_TARGET": str(tmp_path / "forks" / "fix-login"),
        }
        ran = subprocess.run(
            ["node", "--test", str(tmp_path / "out" / "real-cli.test.js")],
            cwd=EXTENSION,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "# pass 1" in ran.stdout and "# skipped 0" in ran.stdout
    finally:
        stop(served)
