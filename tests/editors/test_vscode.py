"""The VS Code extension (editors/vscode): its type check, its tests (Node's test runner against
a stub of the `vscode` API, with a stand-in baton CLI), and the `.vsix` that `vsce package`
builds. `.ci/run` installs its npm dependencies (`npm ci`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.services import unavailable

EXTENSION = Path(__file__).resolve().parents[2] / "editors" / "vscode"


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
def test_the_extension_type_checks_and_its_tests_pass() -> None:
    checked = npm("run", "typecheck")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = npm("test")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "# fail 0" in tested.stdout
    assert "# pass 19" in tested.stdout


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
