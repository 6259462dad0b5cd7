"""A child process for the reliability tests: appends messages and prints each one it had
acknowledged, so the parent knows exactly what was promised.

    python -m tests.appender HOME SESSION_ID COUNT LABEL [GO_FILE]

With GO_FILE, it prints "ready" and waits for that file to exist before its first append, so
that several appenders start at the same moment.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from baton.config import Settings, build_service
from baton.core.errors import Conflict


def main() -> None:
    home, session_id, count, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    service = build_service(Settings.load(home=home))
    owner = service.account("alice").id
    conflicts = 0
    if len(sys.argv) > 5:
        print("ready", flush=True)
        while not Path(sys.argv[5]).exists():
            time.sleep(0.001)
    for i in range(count):
        message = {"role": "user", "parts": [{"type": "text", "text": f"{label} {i} " + "x" * 300}]}
        while True:
            head = service.get(owner, session_id).head
            try:
                result = service.append(owner, session_id, [message], expected_head=head)
                break
            except Conflict:
                conflicts += 1  # someone else moved the head: read it again and retry
        print(f"ack {result.appended[0].id}", flush=True)
    print(f"conflicts {conflicts}", flush=True)


if __name__ == "__main__":
    main()
