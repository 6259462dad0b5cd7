"""A load generator outside Python: wrk (Debian's package), one keep-alive connection per
thread, so the client is never the bottleneck a Python client is (httpx in this process tops
out near 2,000 requests/s)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

# Each wrk thread (one connection) gets its own path: one session each, so appends never race.
APPEND_LUA = """
local paths = {%s}
local counter = 0
local body = '{"messages": [{"role": "user", "parts": [{"type": "text", "text": "%s"}]}]}'
setup = function(thread)
  counter = counter + 1
  thread:set("path", paths[counter])
end
request = function()
  return wrk.format("POST", path, {["Authorization"] = "Bearer %s",
    ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. "\\n")
  end
end
"""
GET_LUA = """
response = function(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\\n")
  end
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def wrk(url: str, seconds: int, script: Path, connections: int) -> float:
    """Requests per second that wrk got from `url` with `script`, all answered as expected."""
    out = subprocess.run(
        ["wrk", "-t", str(connections), "-c", str(connections), "-d", f"{seconds}s",
         "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )  # fmt: skip
    if "unexpected status" in out.stderr or out.returncode != 0:
        raise RuntimeError(f"wrk: {out.stderr[:500]} {out.stdout[-500:]}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if not found:
        raise RuntimeError(f"wrk printed no rate: {out.stdout}")
    return float(found.group(1))


def append_script(root: Path, paths: list[str], token: str) -> Path:
    script = root / "append.lua"
    script.write_text(APPEND_LUA % (", ".join(f'"{p}"' for p in paths), "y" * 200, token))
    return script


def get_script(root: Path) -> Path:
    script = root / "get.lua"
    script.write_text(GET_LUA)
    return script
