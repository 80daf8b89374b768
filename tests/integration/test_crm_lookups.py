"""CrmService against a real HTTP server on loopback: answers fast, slow, wrong and not at all.

The server (tests/support/crm_server.py) is a real HTTP/1.1 listener that each test scripts.
The breaker and the cache run on an injected clock, so opening periods and TTLs need no waiting;
timeouts are real.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog

from cti_bridge.config.model import CrmConfig, LoggingConfig
from cti_bridge.crm.breaker import BreakerState
from cti_bridge.crm.service import CrmService, crm_headers
from cti_bridge.logs import configure_logging
from tests.support.crm_server import NOT_FOUND, Answer, CrmServer, crm_section, customer
from tests.support.helpers import until

pytestmark = pytest.mark.integration

FANG = "+8613800138000"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("TEST_CRM_TOKEN", "t0k3n-secret")


@pytest.fixture
async def server() -> AsyncIterator[CrmServer]:
    async with CrmServer() as running:
        yield running


@pytest.fixture
def logs() -> Any:
    """The daemon's own JSON log lines (masking on), as dicts."""
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json", level="debug"), stream=stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        structlog.reset_defaults()


@asynccontextmanager
async def service(
    server: CrmServer, clock: Clock | None = None, **overrides: Any
) -> AsyncIterator[CrmService]:
    config = CrmConfig.model_validate(crm_section(server, **overrides))
    async with CrmService(config, crm_headers(config), clock=clock or Clock()) as crm:
        task = asyncio.create_task(crm.run(), name="crm-under-test")
        await asyncio.sleep(0)
        try:
            yield crm
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def number(n: int) -> str:
    return f"+1415556{n:04d}"


# -- answers ----------------------------------------------------------------------------------


async def test_a_found_caller_is_read_with_the_number_encoded_and_the_token_sent(server):
    server.answer(
        FANG,
        Answer(
            body=customer(
                "王芳",
                company="华东物流",
                level="Gold",
                id=42,
                orders=[{"no": "SO-1", "amount": 99.5, "item": "路由器"}],
            )
        ),
    )
    async with service(server) as crm:
        lookup = await crm.lookup(FANG)
    assert lookup is not None and lookup.found and lookup.phone == FANG
    profile = lookup.profile
    assert (profile.name, profile.company, profile.tier, profile.vip, profile.external_id) == (
        "王芳",
        "华东物流",
        "Gold",
        True,  # a vip_tiers tier
        "42",
    )
    assert [(o.id, o.total, o.summary) for o in profile.orders] == [("SO-1", "99.5", "路由器")]
    [request] = server.requests
    assert request.target == "/api/customers?phone=%2B8613800138000"
    assert request.headers["authorization"] == "Bearer t0k3n-secret"
    assert request.headers["accept"] == "application/json"
    assert crm.stats.found == 1 and crm.breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    "answer", [NOT_FOUND, Answer(body={"data": []}), Answer(body={"data": None}), Answer(body={"total": 0})]
)
async def test_not_found_answers_are_answers(server, answer):
    server.answer(FANG, answer)
    async with service(server) as crm:
        lookup = await crm.lookup(FANG)
        assert lookup is not None and not lookup.found
        assert crm.stats.not_found == 1 and crm.stats.failed == 0 and crm.breaker.failures_in_a_row == 0


_HUGE = {"data": [{"fullName": "x" * 3_000_000}]}


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (Answer(500, {"error": "boom"}), "the CRM answered HTTP 500 Internal Server Error"),
        (Answer(403, {"error": "no"}), "the CRM answered HTTP 403"),
        (Answer(body=b'{"data": [{"fullName": "Wang'), "an answer that is not JSON"),
        (Answer(body=b""), "an answer that is not JSON"),
        (Answer(body=b"\xff\xfe\xfa"), "an answer that is not JSON"),
        (Answer(body=b'{"data": NaN}'), "an answer that is not JSON (NaN is not a JSON value)"),
        (Answer(body=b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
        (Answer(body={"data": "Wang"}), "the record at data is text, not an object"),
        (Answer(body={"data": [7]}), "the record at data is a number, not an object"),
        (Answer(body=_HUGE), f"an answer of {len(json.dumps(_HUGE))} bytes, over crm.max_response_bytes"),
        (Answer(body=_HUGE, chunked=True), "an answer longer than crm.max_response_bytes (1048576)"),
        (
            Answer(302, headers={"Location": "http://crm.elsewhere.example/steal"}),
            "the CRM redirected to http://crm.elsewhere.example: refused",
        ),
        (Answer(302), "the CRM answered HTTP 302 without a Location"),
    ],
)
async def test_unusable_answers_are_no_data_and_logged_once_with_the_number_masked(server, logs, answer, why):
    server.answer(FANG, answer)
    async with service(server) as crm:
        assert await crm.lookup(FANG) is None
        assert crm.stats.failed == 1 and crm.breaker.failures_in_a_row == 1
    [failure] = [line for line in logs() if line["event"] == "crm.lookup_failed"]
    assert why in failure["error"], failure
    assert failure["level"] == "warning" and failure["caller"] == "+861*******000"
    text = json.dumps(logs(), ensure_ascii=False)
    assert "8613800138000" not in text and "t0k3n" not in text


async def test_fields_of_the_wrong_type_leave_the_rest_and_are_logged(server, logs):
    server.answer(FANG, Answer(body=customer({"first": "Fang"}, company="华东物流", vip="perhaps")))
    async with service(server) as crm:
        lookup = await crm.lookup(FANG)
    assert lookup is not None and lookup.profile.company == "华东物流" and lookup.profile.name is None
    assert crm.stats.incomplete == 1 and crm.stats.failed == 0
    [line] = [line for line in logs() if line["event"] == "crm.answer_incomplete"]
    assert line["problems"] == [
        "name: an object at fullName, where text was expected",
        "vip: text at vip, where true or false was expected",
    ]


async def test_a_redirect_within_the_crm_is_followed(server):
    moved = f"/api/v2/customers?phone=%2B{FANG[1:]}"
    server.answer(FANG, Answer(301, headers={"Location": moved}), Answer(body=customer("Moved")))
    async with service(server) as crm:
        lookup = await crm.lookup(FANG)
    assert lookup is not None and lookup.profile.name == "Moved"
    assert [r.path for r in server.requests] == ["/api/customers", "/api/v2/customers"]


async def test_endless_redirects_are_cut(server):
    server.answer(FANG, Answer(302, headers={"Location": "/api/customers?phone=%2B8613800138000"}))
    async with service(server) as crm:
        assert await crm.lookup(FANG) is None
    assert len(server.requests) == 4  # the request and three redirects


# -- time ---------------------------------------------------------------------------------------


async def test_a_slow_crm_times_out_and_the_lookup_returns_at_the_timeout(server, logs):
    server.answer(FANG, Answer(body=customer("Late"), delay=5))
    async with service(server, timeout="0.5s") as crm:
        started = time.monotonic()
        assert await crm.lookup(FANG) is None
        elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 1.5, elapsed
    [failure] = [line for line in logs() if line["event"] == "crm.lookup_failed"]
    assert failure["error"] == "no answer within 0.5s"


async def test_an_answer_dripping_in_is_cut_at_the_timeout_too(server):
    # Each chunk comes well within the timeout: only a deadline on the whole request stops it.
    server.answer(FANG, Answer(body=customer("x" * 4000), chunked=True, chunk=200, drip=0.1))
    async with service(server, timeout="0.5s") as crm:
        started = time.monotonic()
        assert await crm.lookup(FANG) is None
        assert time.monotonic() - started < 1.5


async def test_a_crm_that_goes_away_and_comes_back(server, logs):
    server.answer(number(1), Answer(body=customer("Before")))
    server.answer(number(2), Answer(body=customer("After")))
    async with service(server) as crm:
        assert (await crm.lookup(number(1))).profile.name == "Before"
        await server.stop()
        assert await crm.lookup(number(2)) is None
        await server.start()
        assert (await crm.lookup(number(2))).profile.name == "After"
    [failure] = [line for line in logs() if line["event"] == "crm.lookup_failed"]
    assert failure["error"].startswith("cannot reach the CRM"), failure


# -- circuit breaker --------------------------------------------------------------------------


async def test_the_breaker_opens_after_n_failures_and_sends_nothing_until_half_open(server, logs):
    clock = Clock()
    for n in (1, 2, 3):
        server.answer(number(n), Answer(500))
    server.answer(number(9), Answer(body=customer("Good")))
    async with service(server, clock) as crm:
        for n in (1, 2, 3):
            assert await crm.lookup(number(n)) is None
        assert crm.breaker.state is BreakerState.OPEN
        sent = len(server.requests)
        for _ in range(5):  # open: calls are not looked up, and the CRM gets nothing
            assert await crm.lookup(number(9)) is None
        assert len(server.requests) == sent == 3 and crm.stats.refused_open == 5
        clock.now += 29.9
        assert await crm.lookup(number(9)) is None and len(server.requests) == 3
        clock.now += 0.1  # half-open: one probe goes out, its answer closes the circuit
        assert (await crm.lookup(number(9))).profile.name == "Good"
        assert crm.breaker.state is BreakerState.CLOSED and len(server.requests) == 4
        assert (await crm.lookup(number(1))) is None  # closed again: requests go out
        assert len(server.requests) == 5
    events = [line["event"] for line in logs() if line["event"].startswith("crm.circuit")]
    assert events == ["crm.circuit_opened", "crm.circuit_probe", "crm.circuit_closed"]
    assert [line["event"] for line in logs()].count(
        "crm.lookup_failed"
    ) == 4  # one per failure, none per refusal


async def test_a_failed_probe_opens_the_circuit_again_and_only_one_probe_goes_out(server):
    clock = Clock()
    server.default = Answer(500, delay=0.2)
    async with service(server, clock, circuit_breaker={"failures": 1, "open_for": "10s"}) as crm:
        assert await crm.lookup(number(1)) is None
        clock.now += 10
        results = await asyncio.gather(*(crm.lookup(number(n)) for n in range(2, 7)))
        assert results == [None] * 5
        assert len(server.requests) == 2  # the first failure, then one probe for five calls
        assert crm.breaker.state is BreakerState.OPEN and crm.breaker.opened == 2


# -- cache, sharing, limits ---------------------------------------------------------------------


async def test_the_cache_spares_a_second_request_within_its_ttl(server):
    clock = Clock()
    server.answer(FANG, Answer(body=customer("王芳")))
    server.answer(number(1), NOT_FOUND)
    async with service(server, clock, cache_ttl="10m", not_found_ttl="1m") as crm:
        first = await crm.lookup(FANG)
        assert await crm.lookup(FANG) == first and crm.cached(FANG) == first
        assert len(server.asked(FANG)) == 1 and crm.stats.cache_hits == 2
        await crm.lookup(number(1))
        clock.now += 61  # the unknown number is asked again, the known one is still kept
        await crm.lookup(number(1))
        await crm.lookup(FANG)
        assert len(server.asked(number(1))) == 2 and len(server.asked(FANG)) == 1
        clock.now += 540
        await crm.lookup(FANG)
        assert len(server.asked(FANG)) == 2


async def test_failures_are_not_cached(server):
    server.answer(FANG, Answer(500))
    async with service(server) as crm:
        assert await crm.lookup(FANG) is None and crm.cached(FANG) is None
        server.answer(FANG, Answer(body=customer("Now")))
        assert (await crm.lookup(FANG)).profile.name == "Now"


async def test_one_request_serves_every_call_from_a_number_at_once(server):
    server.answer(FANG, Answer(body=customer("王芳"), delay=0.3))
    async with service(server) as crm:
        results = await asyncio.gather(*(crm.lookup(FANG) for _ in range(5)))
    assert {r.profile.name for r in results} == {"王芳"} and len(server.requests) == 1


async def test_a_waiter_giving_up_does_not_cut_the_request_short_for_the_others(server):
    server.answer(FANG, Answer(body=customer("王芳"), delay=0.3))
    async with service(server) as crm:
        impatient = asyncio.create_task(crm.lookup(FANG))
        patient = asyncio.create_task(crm.lookup(FANG))
        await asyncio.sleep(0.05)
        impatient.cancel()
        assert (await patient).profile.name == "王芳"
    assert len(server.requests) == 1


async def test_at_most_max_concurrent_requests_and_connections_are_reused(server):
    for n in range(8):
        server.answer(number(n), Answer(body=customer(f"C{n}"), delay=0.2))
    async with service(server, max_concurrent=2) as crm:
        results = await asyncio.gather(*(crm.lookup(number(n)) for n in range(8)))
        assert [r.profile.name for r in results] == [f"C{n}" for n in range(8)]
        starts = sorted(r.at for r in server.requests)
        ends = sorted(at for times in server.answered.values() for at in times)
        in_flight = max(sum(1 for s in starts if s <= t) - sum(1 for e in ends if e < t) for t in starts)
        assert in_flight <= 2
        for n in range(8, 18):
            server.answer(number(n), Answer(body=customer(f"C{n}")))
            await crm.lookup(number(n))
    assert server.connections <= 2, server.connections  # 18 requests on the pool's connections


async def test_beyond_max_waiting_a_call_is_not_looked_up(server, logs):
    server.default = Answer(body=customer("slow"), delay=0.3)
    async with service(server, max_concurrent=1, max_waiting=2) as crm:
        results = await asyncio.gather(*(crm.lookup(number(n)) for n in range(3)))
    assert [r is None for r in results] == [False, False, True] and crm.stats.refused_busy == 1
    assert [line["caller"] for line in logs() if line["event"] == "crm.too_many_waiting"] == ["+141*****002"]


async def test_stopping_cancels_the_requests_in_flight_at_once(server):
    config = CrmConfig.model_validate(crm_section(server, timeout="30s"))
    server.default = Answer(body=customer("never"), delay=20)
    async with CrmService(config, crm_headers(config)) as crm:
        run = asyncio.create_task(crm.run(), name="crm-under-test")
        await asyncio.sleep(0)
        waiting = asyncio.create_task(crm.lookup(FANG))
        await until(lambda: server.requests, 5, "the request")
        started = time.monotonic()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert time.monotonic() - started < 1


async def test_a_configured_header_replaces_ours_whatever_its_case(server):
    server.answer(FANG, Answer(body=customer("x")))
    async with service(server, headers={"accept": "application/vnd.crm.v2+json", "X-Site": "sh-01"}) as crm:
        await crm.lookup(FANG)
    [request] = server.requests
    assert request.headers["accept"] == "application/vnd.crm.v2+json" and request.headers["x-site"] == "sh-01"
    assert "authorization" not in request.headers  # the section's headers are the config's only
