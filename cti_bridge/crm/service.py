"""CrmService: caller lookups that never hold up a call, with a cache and a circuit breaker."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

import httpx
import structlog

from cti_bridge.config import reveal
from cti_bridge.config.model import CrmConfig
from cti_bridge.crm.breaker import BreakerState, CircuitBreaker
from cti_bridge.crm.cache import CrmCache
from cti_bridge.crm.client import CrmClient, CrmError
from cti_bridge.tickets.crm import CrmLookup

log = structlog.get_logger(__name__)


def crm_headers(config: CrmConfig) -> dict[str, str]:
    """The request headers, secrets read now (at start-up, never at import or load).

    Raises:
        LookupError: a secret's variable is unset or its file unreadable.
        ValueError: a secret holds a line break (it would end the header).
    """
    headers: dict[str, str] = {}
    for name, header in config.headers.items():
        ref = header.secret()
        value = header.value if ref is None else header.prefix + reveal(ref).get_secret_value()
        assert value is not None
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError(f"crm.headers.{name}: the secret holds a line break")
        headers[name] = value
    return headers


@dataclass(slots=True)
class CrmStats:
    """Counts since start, for the log and the tests."""

    requests: int = 0  # sent to the CRM (redirects not counted apart)
    found: int = 0
    not_found: int = 0
    failed: int = 0  # errors, timeouts and unusable answers
    incomplete: int = 0  # answers with fields left out (wrong types)
    cache_hits: int = 0
    refused_open: int = 0  # not sent: the circuit was open
    refused_busy: int = 0  # not sent: `max_waiting` lookups were waiting already


class CrmService:
    """Looks numbers up in the CRM, at most `max_concurrent` at once.

    `lookup` never raises for the CRM's sake: it returns None when the CRM could not answer
    (the reason is logged once, with the number masked). A number asked for while its lookup
    is in flight waits for that one. Requests run as tasks of `run()`'s TaskGroup, so a caller
    that stops waiting does not cut a request short for the others, and stopping the daemon
    cancels them all. Use as `async with CrmService(...)` (the HTTP client) and run `run()`.
    """

    def __init__(
        self,
        config: CrmConfig,
        headers: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._timeout = config.timeout.total_seconds()
        self._client = CrmClient(config, headers, clock=wall_clock)
        self._cache = CrmCache(
            ttl=config.cache_ttl.total_seconds(),
            not_found_ttl=config.not_found_ttl.total_seconds(),
            size=config.cache_size,
            clock=clock,
        )
        breaker = config.circuit_breaker
        self.breaker = CircuitBreaker(breaker.failures, breaker.open_for.total_seconds(), clock)
        self._slots = asyncio.Semaphore(config.max_concurrent)
        self._in_flight: dict[str, asyncio.Task[CrmLookup | None]] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._numbers = itertools.count(1)
        self.stats = CrmStats()

    async def __aenter__(self) -> CrmService:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)

    async def run(self) -> None:
        """Own the lookups' tasks until cancelled (which cancels those in flight)."""
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                await asyncio.Future()
        finally:
            self._tasks = None
            self._in_flight.clear()

    def cached(self, phone: str) -> CrmLookup | None:
        """The answer for a number if one is kept (no request)."""
        hit = self._cache.get(phone)
        if hit is not None:
            self.stats.cache_hits += 1
        return hit

    async def lookup(self, phone: str) -> CrmLookup | None:
        """The CRM's answer for a number (E.164): kept, or asked for now; None if unavailable."""
        hit = self.cached(phone)
        if hit is not None:
            return hit
        task = self._in_flight.get(phone)
        if task is None:
            if self._tasks is None:
                raise RuntimeError("CrmService.run() is not running")
            if len(self._in_flight) >= self._config.max_waiting:
                self.stats.refused_busy += 1
                log.warning("crm.too_many_waiting", caller=phone, waiting=len(self._in_flight))
                return None
            task = self._tasks.create_task(self._ask(phone), name=f"crm-lookup-{next(self._numbers)}")
            self._in_flight[phone] = task
            task.add_done_callback(lambda _: self._in_flight.pop(phone, None))
        # Shielded: one waiter giving up (its call's task cancelled) leaves the request to the rest.
        return await asyncio.shield(task)

    async def _ask(self, phone: str) -> CrmLookup | None:
        async with self._slots:
            if not self.breaker.allow():
                # Counted, not logged: the opening was, and this would repeat it for every call.
                self.stats.refused_open += 1
                return None
            probing = self.breaker.state is BreakerState.HALF_OPEN
            if probing:
                log.info("crm.circuit_probe", caller=phone)
            self.stats.requests += 1
            started = time.monotonic()
            try:
                async with asyncio.timeout(self._timeout):
                    mapped = await self._client.fetch(phone)
            except (CrmError, httpx.HTTPError, TimeoutError) as exc:
                self._failed(phone, _reason(exc, self._timeout))
                return None
            except Exception as exc:  # a bug of ours must not reach the call path either
                log.exception("crm.lookup_crashed", caller=phone)
                self._failed(phone, f"internal error: {type(exc).__name__}")
                return None
        if self.breaker.succeeded() is not BreakerState.CLOSED:
            log.info("crm.circuit_closed")
        lookup = mapped.lookup
        if mapped.problems:
            self.stats.incomplete += 1
            log.warning("crm.answer_incomplete", caller=phone, problems=list(mapped.problems))
        if lookup.found:
            self.stats.found += 1
        else:
            self.stats.not_found += 1
        log.info(
            "crm.looked_up",
            caller=phone,
            found=lookup.found,
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        self._cache.put(lookup)
        return lookup

    def _failed(self, phone: str, reason: str) -> None:
        self.stats.failed += 1
        opened = self.breaker.failed()
        log.warning(
            "crm.lookup_failed",
            caller=phone,
            error=_without_number(reason, phone),
            failures_in_a_row=self.breaker.failures_in_a_row,
        )
        if opened:
            log.error(
                "crm.circuit_opened",
                failures_in_a_row=self.breaker.failures_in_a_row,
                open_for_seconds=self._config.circuit_breaker.open_for.total_seconds(),
                why="calls are not looked up until a probe gets an answer",
            )


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, CrmError):
        return str(exc)
    detail = str(exc) or type(exc).__name__
    return f"cannot reach the CRM: {detail}"


def _without_number(text: str, phone: str) -> str:
    """An httpx message may quote the URL, and so the number, in a form the log's mask misses."""
    digits = phone.removeprefix("+")
    for form in (f"%2B{digits}", f"%2b{digits}", phone, digits):
        text = text.replace(form, "<number>")
    return text
