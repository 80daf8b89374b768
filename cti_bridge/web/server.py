"""uvicorn, embedded: the web application served as a task of the daemon, on its event loop."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator

import structlog
import uvicorn
from fastapi import FastAPI

from cti_bridge.config.loader import reveal
from cti_bridge.config.model import WebConfig

log = structlog.get_logger(__name__)

_GRACE_SECONDS = 5.0  # requests in flight at stop get this long to finish
# TLS 1.2's forward-secret AEAD suites (Mozilla's "intermediate" profile); TLS 1.3 has only
# such suites. uvicorn's default, OpenSSL's "TLSv1", still offers CBC and SHA-1 ones.
_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
)


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
        scheme = "https" if config.tls is not None else "http"
        self.url = f"{scheme}://{f'[{host}]' if family == socket.AF_INET6 else host}:{self.port}"
        try:
            self._server = _EmbeddedServer(_uvicorn_config(app, config))
        except BaseException:
            self._socket.close()
            raise

    async def run(self) -> None:
        log.info("web.listening", url=self.url)
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            self._socket.close()

    def stop(self) -> None:
        self._server.should_exit = True


def _uvicorn_config(app: FastAPI, config: WebConfig) -> uvicorn.Config:
    """uvicorn's settings, loaded now: a certificate that cannot be used stops the start."""
    tls = config.tls
    settings = uvicorn.Config(
        app,
        log_config=None,  # the daemon's logging (structlog) stays as configured
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=_GRACE_SECONDS,
        server_header=False,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 unless told otherwise: then any
        # local process could pick the address the login throttle counts it by.
        proxy_headers=bool(config.forwarded_allow_ips),
        forwarded_allow_ips=list(config.forwarded_allow_ips) or None,
        ssl_certfile=tls.certificate if tls else None,
        ssl_keyfile=tls.key.file if tls else None,
        ssl_keyfile_password=reveal(tls.password).get_secret_value() if tls and tls.password else None,
        ssl_ciphers=_TLS12_CIPHERS,
    )
    try:
        settings.load()
    except (OSError, ssl.SSLError) as exc:
        assert tls is not None  # only TLS material is read from files here
        raise OSError(
            f"web.tls: cannot use certificate {tls.certificate} with key {tls.key.file}: {exc}"
        ) from None
    return settings
