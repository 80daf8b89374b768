"""uvicorn, embedded: the web application served as a task of the daemon, on its event loop."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import structlog
import uvicorn
from fastapi import FastAPI

from cti_bridge.config.model import WebConfig

log = structlog.get_logger(__name__)

_GRACE_SECONDS = 5.0  # requests in flight at stop get this long to finish


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The daemon owns SIGINT/SIGTERM and stops the server itself; uvicorn's own handlers
        # would swallow the signal and raise it again once the server is down.
        yield


class WebServer:
    """Listens as soon as it is made (so `url` is known, also for port 0); `run` serves."""

    def __init__(self, app: FastAPI, config: WebConfig) -> None:
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        # IPPROTO_TCP said outright: asyncio sets TCP_NODELAY only on sockets that say it, and
        # without it every response after a connection's first waits ~40 ms on a delayed ACK.
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((config.host, config.port))
        except OSError as exc:
            self._socket.close()
            raise OSError(f"web: cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
        self._socket.listen(128)
        self._socket.setblocking(False)
        host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if family == socket.AF_INET6 else host}:{self.port}"
        self._server = _EmbeddedServer(
            uvicorn.Config(
                app,
                log_config=None,  # the daemon's logging (structlog) stays as configured
                access_log=False,
                lifespan="off",
                ws="none",
                timeout_graceful_shutdown=_GRACE_SECONDS,
                server_header=False,
            )
        )

    async def run(self) -> None:
        log.info("web.listening", url=self.url)
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            self._socket.close()

    def stop(self) -> None:
        self._server.should_exit = True
