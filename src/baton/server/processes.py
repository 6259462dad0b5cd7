"""Listening and worker processes for `baton serve`.

The listening socket is made here, not by uvicorn: one whose protocol is IPPROTO_TCP, so that
asyncio turns Nagle's algorithm off on every accepted connection (on a socket made with
protocol 0 it does not, and each small response then waits ~40 ms for a delayed ACK).
With `--workers N` the parent binds it once and N spawned processes serve it; each builds its
own app from the parent's Settings (sent as JSON through the spawn pipe, with the secret and
the address the parent settled on), and one that dies is started again."""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baton.config import Settings

LOG = {"log_level": "warning", "access_log": False}


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        from baton.core.errors import InvalidInput

        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    return sock


def config(app: Any) -> Any:
    """uvicorn's settings for `app`. Its proxy headers stay off: uvicorn would believe any
    X-Forwarded-For from loopback; the app believes only BATON_TRUSTED_PROXIES."""
    import uvicorn

    return uvicorn.Config(app, proxy_headers=False, **LOG)  # type: ignore[arg-type]


def server(config: Any) -> Any:
    """uvicorn's server, which first ends the app's open event streams when it stops: a
    graceful shutdown waits for every response to end, and those would not."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            state = getattr(self.config.app, "state", None)
            close_streams = getattr(state, "close_streams", None)
            if close_streams is not None:
                close_streams()
            await super().shutdown(sockets)

    return Server(config)


def serve(app: Any, sock: socket.socket) -> None:
    """Serve `app` on `sock` in this process until SIGINT or SIGTERM."""
    server(config(app)).run(sockets=[sock])


def _worker(sock: socket.socket, settings_json: str) -> None:
    from baton.config import Settings, build_service
    from baton.runs.queue import attach
    from baton.server import create_app

    settings = Settings.from_json(settings_json)
    if settings.secret is None:  # the parent settles on one before it starts any worker
        raise ValueError("a worker needs the cookie-signing secret")
    service = attach(build_service(settings), settings)
    app = create_app(
        service,
        secret=settings.secret,
        secure_cookies=service.base_url.startswith("https"),
        trusted_proxies=settings.trusted_proxies,
    )
    serve(app, sock)


def supervise(sock: socket.socket, settings: Settings) -> None:
    """Run `settings.workers` processes on `sock`, each given `settings`; start again any that
    dies; stop them all on SIGINT or SIGTERM."""
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start() -> Any:
        process = context.Process(target=_worker, args=(sock, config_json), daemon=False)
        process.start()
        return process

    config_json = settings.to_json()
    processes = [start() for _ in range(settings.workers)]
    try:
        while not stopping:
            time.sleep(0.2)
            for i, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    print(
                        f"baton: worker {process.pid} exited ({process.exitcode}); starting another",
                        file=sys.stderr,
                    )
                    processes[i] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + 15
        for process in processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        sock.close()
