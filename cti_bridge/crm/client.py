"""The HTTP side of a CRM lookup: one connection-reusing httpx client, answers read with care.

Every way an answer can be unusable (an error status, a redirect to another host, a body over
`crm.max_response_bytes`, text that is not JSON, a record of the wrong shape) raises CrmError
with a message fit for the log: it names no phone number and no header.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from types import TracebackType

import httpx

from cti_bridge.config.model import CrmConfig
from cti_bridge.crm.mapping import CrmAnswerError, MappedAnswer, read_answer
from cti_bridge.tickets.crm import CrmLookup

_MAX_REDIRECTS = 3
_PARSE_ON_LOOP = 64 * 1024  # bytes of JSON decoded on the event loop; a longer answer in a thread
_DEFAULT_HEADERS = {"Accept": "application/json", "User-Agent": "cti-bridge"}


class CrmError(Exception):
    """The CRM gave no usable answer; the message says why."""


class CrmClient:
    """GETs `crm.url` for a number; `async with` opens and closes its connection pool."""

    def __init__(
        self, config: CrmConfig, headers: Mapping[str, str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._config = config
        self._clock = clock
        self._not_found = frozenset(config.not_found_status)
        merged = httpx.Headers(_DEFAULT_HEADERS)
        merged.update(headers)  # by name, case ignored: the config's Accept replaces ours
        self._client = httpx.AsyncClient(
            headers=merged,
            timeout=httpx.Timeout(config.timeout.total_seconds()),
            # Followed by hand, and only within the CRM's own origin: the request carries its
            # credentials, which must not go to whatever host an answer names.
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=config.max_concurrent, max_keepalive_connections=config.max_concurrent
            ),
        )

    async def __aenter__(self) -> CrmClient:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)

    async def fetch(self, phone: str) -> MappedAnswer:
        """Look a number (E.164) up.

        Raises:
            CrmError: no usable answer (see the module's docstring).
            httpx.HTTPError: the CRM could not be reached or stopped answering.
        """
        url = httpx.URL(self._config.url_for(phone))
        origin = _origin(url)
        for _ in range(_MAX_REDIRECTS + 1):
            async with self._client.stream("GET", url) as response:
                status = response.status_code
                if 300 <= status < 400 and status != 304:
                    url = _redirect_target(response, url, origin)
                    continue
                if status in self._not_found:
                    return MappedAnswer(CrmLookup(phone=phone, profile=None, fetched_at=self._clock()), ())
                if status != 200:
                    raise CrmError(f"the CRM answered HTTP {status} {response.reason_phrase}".rstrip())
                body = await self._read(response)
            if len(body) > _PARSE_ON_LOOP:  # a megabyte of JSON takes the loop for milliseconds
                return await asyncio.to_thread(self._map, body, phone)
            return self._map(body, phone)
        raise CrmError(f"more than {_MAX_REDIRECTS} redirects")

    async def _read(self, response: httpx.Response) -> bytes:
        cap = self._config.max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise CrmError(f"an answer of {int(declared)} bytes, over crm.max_response_bytes ({cap})")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > cap:  # stop reading: the rest is never downloaded
                raise CrmError(f"an answer longer than crm.max_response_bytes ({cap})")
        return bytes(body)

    def _map(self, body: bytes, phone: str) -> MappedAnswer:
        try:
            answer = json.loads(body, parse_constant=_no_constant)
        except RecursionError:
            raise CrmError("an answer nested too deeply to read") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN
            raise CrmError(f"an answer that is not JSON ({exc})") from None
        try:
            return read_answer(self._config, answer, phone=phone, fetched_at=self._clock())
        except CrmAnswerError as exc:
            raise CrmError(str(exc)) from None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _redirect_target(
    response: httpx.Response, url: httpx.URL, origin: tuple[str, str, int | None]
) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise CrmError(f"the CRM answered HTTP {response.status_code} without a Location")
    try:
        target = url.join(location)
    except httpx.InvalidURL:
        raise CrmError(f"the CRM redirected to an invalid URL (HTTP {response.status_code})") from None
    if _origin(target) != origin:
        raise CrmError(
            f"the CRM redirected to {target.scheme}://{target.host}: refused, only redirects within "
            f"{origin[0]}://{origin[1]} are followed (the request carries the CRM's credentials)"
        )
    return target


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")
