"""The live stream: who may see which message, the hub's backlog, and the real SSE stream over TCP."""

import asyncio
import json
import time

import pytest

from cti_bridge.config.model import WebConfig
from cti_bridge.screenpop.outputs import OutboundMessage
from cti_bridge.screenpop.payload import ticket_message
from cti_bridge.store.users import User
from cti_bridge.web.auth import Principal, Teams
from cti_bridge.web.live import LiveHub, may_see
from cti_bridge.web.server import WebServer
from tests.unit.web.conftest import T0


def _principal(site, user_id, role="agent", agent_id=None):
    user = User(
        id=user_id,
        name="",
        role=role,
        agent_id=agent_id,
        language=None,
        disabled=False,
        created_at=T0,
        has_password=True,
    )
    return Principal.of(user, Teams.from_config(site.ctx.config), via="token")


async def _ticket_message(site, whose, suffix=""):
    ticket = await site.store.get_ticket(await site.store.ticket_id(site.ticket(whose)))
    message = ticket_message("updated", ticket, T0)
    return OutboundMessage(message.topic + suffix, message.payload)


def _pop(agent):
    return OutboundMessage(f"agents/{agent}/screenpop", json.dumps({"agent_id": agent}).encode())


@pytest.mark.parametrize(
    ("topic_of", "a1_sees"),
    [
        ("pop:a1", True),
        ("notifications:a1", True),
        ("pop:a3", False),  # a teammate's pops are theirs
        ("pop:a2", False),
        ("ticket:a1", True),
        ("ticket:a3", True),  # the team's tickets
        ("ticket:a2", False),
        ("ticket:nobody", False),
        ("sla:a3", True),
        ("sla:sup", False),
        ("status", True),
        ("agents", False),
        ("elsewhere/a1", False),
    ],
)
async def test_what_an_agent_may_see(site, topic_of, a1_sees):
    kind, _, whose = topic_of.partition(":")
    if kind == "pop":
        message = _pop(whose)
    elif kind == "notifications":
        message = OutboundMessage(f"agents/{whose}/notifications", b"{}")
    elif kind in ("ticket", "sla"):
        message = await _ticket_message(site, whose, "/sla" if kind == "sla" else "")
    else:
        message = OutboundMessage(topic_of, b"online")

    assert may_see(_principal(site, "a1", agent_id="a1"), message) is a1_sees
    assert may_see(_principal(site, "sup", role="supervisor"), message) is True
    assert may_see(_principal(site, "admin", role="admin"), message) is True


def test_an_agent_signed_in_under_another_name_gets_the_agents_and_their_own_topics(site):
    night = _principal(site, "a1.night", agent_id="a1")
    assert may_see(night, _pop("a1")) and may_see(night, _pop("a1.night"))
    assert not may_see(night, _pop("a3"))


async def test_the_hub_streams_what_each_may_see_and_tells_a_slow_page_it_lagged(site):
    hub = LiveHub()
    a1 = hub.stream(_principal(site, "a1", agent_id="a1"))
    assert await anext(a1) == "retry: 2000\n\n"
    assert await anext(a1) == 'event: hello\ndata: {"user": "a1"}\n\n'
    assert hub.subscribers == 1

    hub.publish(_pop("a2"))
    hub.publish(await _ticket_message(site, "a3"))
    hub.publish(await _ticket_message(site, "a1", "/sla"))
    kinds = [await anext(a1), await anext(a1)]
    assert [k.split("\n")[0] for k in kinds] == ["event: ticket", "event: sla"]
    data = json.loads(kinds[0].split("\n")[1].removeprefix("data: "))
    assert data["topic"] == f"tickets/{site.ticket('a3')}" and data["payload"]["ticket"]["assignee"] == "a3"

    for _ in range(300):  # more than a page may fall behind by
        hub.publish(_pop("a1"))
    assert hub.delivered == 2 + 256
    # Told at once (the page reloads from the API); what was kept still follows.
    assert await anext(a1) == "event: lagged\ndata: {}\n\n"
    assert (await anext(a1)).startswith("event: screenpop\n")
    hub.close()
    assert [rest async for rest in a1] == []
    assert hub.subscribers == 0


async def test_the_sse_stream_over_http_brings_a_pop_and_ends_when_the_server_stops(site):
    server = WebServer(site.app, WebConfig(port=0))
    serving = asyncio.create_task(server.run(), name="web-under-test")
    hub = site.ctx.hub
    try:
        client = site.as_user("a1", url=server.url)
        async with client.stream("GET", "/api/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-store"
            lines = response.aiter_lines()

            async def next_event():
                event = {}
                async for line in lines:
                    if not line:
                        if "event" in event:
                            return event
                        continue
                    field, _, value = line.partition(": ")
                    event[field] = value
                return None

            assert (await asyncio.wait_for(next_event(), 5))["event"] == "hello"
            hub.publish(_pop("a2"))  # not a1's: never arrives
            hub.publish(_pop("a1"))
            pop = await asyncio.wait_for(next_event(), 5)
            assert pop["event"] == "screenpop"
            assert json.loads(pop["data"]) == {"topic": "agents/a1/screenpop", "payload": {"agent_id": "a1"}}

            stopping = time.monotonic()
            hub.close()
            server.stop()
            assert await asyncio.wait_for(next_event(), 5) is None  # the stream ended
            await asyncio.wait_for(serving, 5)
            assert time.monotonic() - stopping < 2
    finally:
        hub.close()
        server.stop()
        await asyncio.wait_for(serving, 10)


async def test_every_message_reaches_the_page_as_one_line_of_json(site):
    hub = LiveHub()
    page = hub.stream(_principal(site, "sup", role="supervisor"))
    await anext(page), await anext(page)  # retry, hello
    for payload in (b"online", '{"event": "note", "text": "退款"}'.encode(), b'{"a":\n1}'):
        hub.publish(OutboundMessage("status", payload))
        event, data, blank, _ = (await anext(page)).split("\n")
        assert (event, blank) == ("event: status", "")
        assert json.loads(data.removeprefix("data: "))["topic"] == "status"
    hub.close()
