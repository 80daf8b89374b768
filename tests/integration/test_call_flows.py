"""Every call flow of a real call centre in the ticket (issue #11), on the sandbox Asterisk 22:
outbound and callback calls, blind / redirect / attended transfers, ring-no-answer, a caller
hanging up while an agent's phone rings, another site's UserEvent names, a PBX crash.

One daemon runs for the module; calls are told apart by their numbers, unique per test.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from cti_bridge.app import Daemon
from cti_bridge.config import Config
from cti_bridge.store import users
from cti_bridge.web.auth import digest, new_token
from tests.support.helpers import MqttInbox, until
from tests.support.sandbox import AmiDriver, AsteriskSandbox, Mosquitto

pytestmark = pytest.mark.integration

_numbers = itertools.count(1)
# The click-to-dial account of asterisk/sandbox/etc/manager.conf: write = originate, nothing else.
DIAL_USER, DIAL_SECRET = "cti-bridge-dial", "sandbox-dial-secret"


def number() -> str:
    """A fresh number that [pstn-out] answers (555-01xx numbers are fictional)."""
    return f"+1415555{next(_numbers) + 7000:04d}"


def busy_number() -> str:
    """A fresh number that [pstn-out] answers busy."""
    return f"+1415556{next(_numbers) + 7000:04d}"


@dataclass
class Flows:
    daemon: Daemon
    inbox: MqttInbox
    config: Config
    tokens: dict[str, str]

    async def api(self, agent: str, method: str, path: str, body: Any = None) -> httpx.Response:
        assert self.daemon.web_url is not None
        async with httpx.AsyncClient(base_url=self.daemon.web_url) as client:
            return await client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {self.tokens[agent]}"}
            )

    @property
    def store(self) -> Any:
        assert self.daemon.store is not None
        return self.daemon.store

    async def tickets_of(self, phone: str) -> list[dict[str, Any]]:
        rows = [t for t in await self.store.list_tickets(limit=1000) if t["caller_number"] == phone]
        return [await self.store.ticket_detail(row["number"]) for row in rows]

    async def ended(self, phone: str, calls: int = 1, timeout: float = 60) -> dict[str, Any]:
        """The number's one ticket once `calls` of its calls have ended."""

        async def ready() -> dict[str, Any] | None:
            tickets = await self.tickets_of(phone)
            if len(tickets) != 1:
                return None
            ended = [c for c in tickets[0]["calls"] if c["ended_at"] is not None]
            return tickets[0] if len(ended) >= calls else None

        return await until(ready, timeout, f"{calls} ended call(s) on {phone}'s ticket")

    def pops(self, phone: str) -> list[tuple[str, str, str | None]]:
        """(agent, event, reason) of the pops about calls with `phone`."""
        return [(agent, body["event"], body.get("reason")) for agent, body, _ in self.inbox.pops_for(phone)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def flows(
    asterisk: AsteriskSandbox, mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Flows]:
    prefix = f"flows-{uuid.uuid4().hex[:8]}"
    db = tmp_path_factory.mktemp("flows") / "cti.db"
    os.environ["SANDBOX_AMI_SECRET"] = asterisk.ami_secret
    os.environ["SANDBOX_DIAL_SECRET"] = DIAL_SECRET
    config = Config.model_validate(
        {
            "pbxs": [
                {
                    "name": "sandbox",
                    "port": asterisk.ami_port,
                    "username": asterisk.ami_username,
                    "secret": {"env": "SANDBOX_AMI_SECRET"},
                    "ping_interval": "2s",
                    "reconnect": {"initial_delay": "0.2s", "max_delay": "1s"},
                    "inbound_contexts": ["from-pstn"],
                    "originate": {
                        "username": DIAL_USER,
                        "secret": {"env": "SANDBOX_DIAL_SECRET"},
                        "context": "from-internal",
                        "dial_prefix": "9",
                    },
                    "recording_paths": [
                        {"pbx": "/var/spool/asterisk/monitor", "local": str(asterisk.monitor_dir)}
                    ],
                }
            ],
            "agents": [
                {
                    "id": f"agent{n}",
                    "name": f"Agent {n}",
                    "interfaces": [f"Local/agent{n}@agents", f"Local/agent{n}@phones"],
                    "phone": f"Local/agent{n}@phones",
                }
                for n in (1, 2, 3, 4, 5, 9)
            ],
            "phone": {"default_region": "US"},
            "tickets": {"reuse_open_ticket_within": "1h"},
            # Another site's dialplan conventions ([from-pstn] 4008, [survey-other]).
            "user_events": {
                "survey": [{"event": "survey", "score": "rating", "call": None}],
                "ivr": [{"event": "ivrchoice", "menu": "Menu_Name", "choice": "key"}],
                "fields": [
                    {"event": "OrderInfo", "fields": {"order_number": "OrderNo", "product_model": "Product"}}
                ],
            },
            "mqtt": {"port": mosquitto.port, "topic_prefix": prefix},
            "store": {"url": f"sqlite:///{db}"},
            "web": {"port": 0},
        }
    )
    async with MqttInbox(mosquitto.port, prefix) as inbox, Daemon(config) as daemon:
        await asyncio.wait_for(daemon.ami[0].connected.wait(), 10)
        assert daemon.store is not None
        tokens = {}
        for agent in ("agent1", "agent2"):
            await users.add_user(
                daemon.store.database, agent, role="agent", agent_id=agent, password_hash=None, at=time.time()
            )
            token = new_token()
            await users.add_token(
                daemon.store.database, agent, label="tests", token_hash=digest(token), at=time.time()
            )
            tokens[agent] = token
        yield Flows(daemon, inbox, config, tokens)


async def _talking_to_agent4(driver: AmiDriver, phone: str, name: str) -> dict[str, Any]:
    """Call [from-pstn] 4006 (queue billing); agent4's AgentConnect once both are bridged."""
    start = len(driver.log.events)
    await driver.originate("4006", phone, name)
    connected = await _connected(driver, start, "billing", "agent4")
    await _bridged(driver, start, connected["DestChannel"])
    return connected


async def _connected(driver: AmiDriver, start: int, queue: str, agent: str) -> dict[str, Any]:
    return await driver.log.wait_for(
        lambda e: (
            e.get("Event") == "AgentConnect" and e.get("Queue") == queue and agent in e.get("Interface", "")
        ),
        20,
        start,
    )


async def _bridged(driver: AmiDriver, start: int, channel: str) -> None:
    await driver.log.wait_for(
        lambda e: e.get("Event") == "BridgeEnter" and e.get("Channel") == channel, 10, start
    )


# -- outbound and callbacks ---------------------------------------------------------------


async def test_an_agents_outbound_call_gets_an_outbound_ticket_and_pops(flows, ami_driver):
    phone = number()
    await ami_driver.originate_from_agent("Local/agent1@phones", phone, "Agent One")
    await until(lambda: ("agent1", "answered", None) in flows.pops(phone), 20, "answered pop")
    await ami_driver.hangup_all()
    ticket = await flows.ended(phone)
    [call] = ticket["calls"]
    assert call["direction"] == "outbound" and call["outcome"] == "answered"
    assert call["agent_id"] == "agent1" and call["caller_number"] == phone
    assert ticket["assignee"] == "agent1" and ticket["subject"].startswith("Outbound call to")
    assert [e for _, e, _ in flows.pops(phone)][:2] == ["dialing", "answered"]
    assert {agent for agent, _, _ in flows.pops(phone)} == {"agent1"}

    async def linked() -> list[dict[str, Any]]:
        detail = await flows.store.ticket_detail(ticket["number"])
        return [r for r in detail["recordings"] if r["status"] == "linked"]

    [recording] = await until(linked, 30, "the outbound call's recording linked")
    assert recording["duration_seconds"] > 0.5


async def test_a_callback_call_closes_the_callback_tickets_loop(flows, ami_driver):
    phone = number()
    await ami_driver.originate("4003", phone, "Impatient", caller_exten="hangup-after-3")
    missed = await flows.ended(phone)
    assert missed["callback_reason"] == "abandoned"
    await ami_driver.originate_from_agent("Local/agent2@phones", phone, "Agent Two")
    await until(lambda: ("agent2", "answered", None) in flows.pops(phone), 20, "answered callback")
    await ami_driver.hangup_all()
    ticket = await flows.ended(phone, calls=2)
    assert ticket["number"] == missed["number"], "the callback attached to the callback ticket"
    [made] = [e for e in ticket["history"] if e["kind"] == "callback_made"]
    assert made["data"]["answered"] is True and made["data"]["agent"] == "agent2"
    assert made["data"]["after_seconds"] > 0
    assert ticket["callback_made_at"] is not None
    assert [c["direction"] for c in ticket["calls"]] == ["inbound", "outbound"]


async def test_an_unanswered_callback_is_recorded_as_made_and_not_answered(flows, ami_driver):
    phone = busy_number()
    await ami_driver.originate("4003", phone, "Busy Later", caller_exten="hangup-after-3")
    missed = await flows.ended(phone)
    await ami_driver.originate_from_agent("Local/agent1@phones", phone, "Agent One")
    ticket = await flows.ended(phone, calls=2)
    assert ticket["number"] == missed["number"]
    [made] = [e for e in ticket["history"] if e["kind"] == "callback_made"]
    assert made["data"]["answered"] is False and made["data"]["outcome"] == "no_answer"
    await ami_driver.hangup_all()


# -- transfers ---------------------------------------------------------------------------


async def _transferred_ticket(flows: Flows, phone: str) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        [ticket] = await flows.tickets_of(phone) or [None]
        if ticket is None or ticket["assignee"] != "agent5":
            return None
        return ticket

    return await until(ready, 30, f"{phone}'s ticket handed to agent5")


def _transfer_events(ticket: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["data"] for e in ticket["history"] if e["kind"] == "transferred"]


async def test_blind_transfer_moves_the_ticket_to_the_agent_who_takes_the_caller(flows, ami_driver):
    phone = number()
    connected = await _talking_to_agent4(ami_driver, phone, "Blind Caller")
    response = await ami_driver.send(
        {
            "Action": "BlindTransfer",
            "Channel": connected["DestChannel"],
            "Context": "transfer-targets",
            "Exten": "escalation",
        }
    )
    assert response.get("Response") == "Success", dict(response)
    ticket = await _transferred_ticket(flows, phone)
    [transfer] = _transfer_events(ticket)
    assert (transfer["kind"], transfer["from"], transfer["queue"]) == ("blind", "agent4", "escalation")
    assert ticket["queue"] == "escalation"
    [handed] = [e for e in ticket["history"] if e["kind"] == "assigned" and e["data"].get("from") == "agent4"]
    assert handed["data"]["to"] == "agent5"
    pops = flows.pops(phone)
    assert ("agent4", "cancelled", "transferred") in pops and ("agent5", "answered", None) in pops
    # agent5's pop says where the caller comes from.
    [taken] = [b for a, b, _ in flows.inbox.pops_for(phone) if a == "agent5" and b["event"] == "answered"]
    assert [(t["kind"], t["from_agent"], t["to_agent"]) for t in taken["transfers"]] == [
        ("blind", "agent4", "agent5")
    ]
    await ami_driver.hangup_all()
    ended = await flows.ended(phone)
    [call] = ended["calls"]
    assert call["transfers"] == 1 and call["agent_id"] == "agent5"
    note = await until(
        lambda: [
            b
            for t, b, _ in flows.inbox.messages
            if t == "agents/agent4/notifications" and b["kind"] == "ticket_transferred"
        ],
        10,
        "agent4 told the ticket left them",
    )
    assert note[0]["ticket_number"] == ticket["number"]


async def test_redirect_to_another_queue_is_a_transfer(flows, ami_driver):
    phone = number()
    connected = await _talking_to_agent4(ami_driver, phone, "Redirected")
    response = await ami_driver.send(
        {
            "Action": "Redirect",
            "Channel": connected["Channel"],
            "Context": "transfer-targets",
            "Exten": "escalation",
            "Priority": "1",
        }
    )
    assert response.get("Response") == "Success", dict(response)
    ticket = await _transferred_ticket(flows, phone)
    [transfer] = _transfer_events(ticket)
    assert (transfer["kind"], transfer["from"], transfer["queue"]) == ("redirect", "agent4", "escalation")
    await ami_driver.hangup_all()


async def test_attended_transfer_hands_the_caller_to_the_consulted_agent(flows, ami_driver):
    phone = number()
    connected = await _talking_to_agent4(ami_driver, phone, "Attended")
    start = len(ami_driver.log.events)
    # Async false: panoramisk 1.4 fails on the "successfully queued" response otherwise.
    response = await ami_driver.send(
        {
            "Action": "Atxfer",
            "Channel": connected["DestChannel"],
            "Context": "transfer-targets",
            "Exten": "5005",
            "Async": "false",
        }
    )
    assert response.get("Response") == "Success", dict(response)
    await ami_driver.log.wait_for(
        lambda e: (
            e.get("Event") == "DialEnd"
            and "agent5" in e.get("DestChannel", "")
            and e.get("DialStatus") == "ANSWER"
        ),
        20,
        start,
    )
    # The consultation is up; the transferring agent hangs up, which completes the transfer.
    await ami_driver.send({"Action": "Hangup", "Channel": connected["DestChannel"]})
    ticket = await _transferred_ticket(flows, phone)
    [transfer] = _transfer_events(ticket)
    assert (transfer["kind"], transfer["from"], transfer["to"]) == ("attended", "agent4", "agent5")
    await ami_driver.hangup_all()
    ended = await flows.ended(phone)
    assert ended["calls"][0]["agent_id"] == "agent5"


# -- ringing -------------------------------------------------------------------------------


async def test_ring_no_answer_withdraws_the_pop_from_that_agent(flows, ami_driver):
    phone = number()
    await ami_driver.originate("4007", phone, "Triage")
    await until(lambda: ("agent4", "answered", None) in flows.pops(phone), 30, "agent4 answers after agent9")
    pops = flows.pops(phone)
    assert pops.index(("agent9", "ringing", None)) < pops.index(("agent9", "cancelled", "no_answer"))
    assert not [p for p in pops if p[0] == "agent9" and p[1] == "answered"]
    await ami_driver.hangup_all()
    ticket = await flows.ended(phone)
    assert ticket["assignee"] == "agent4"


# -- another site's dialplan conventions ---------------------------------------------------


async def test_other_user_event_names_fill_the_survey_ivr_and_fields(flows, ami_driver):
    phone = number()
    await ami_driver.originate("4008", phone, "Other Site", caller_exten="rate4")

    async def scored() -> dict[str, Any] | None:
        [ticket] = await flows.tickets_of(phone) or [None]
        return ticket if ticket is not None and ticket["csat"] else None

    ticket = await until(scored, 40, "the survey's score on the ticket")
    assert [s["score"] for s in ticket["csat"]] == [4]
    # The survey ran after the agent left: the score is the call's, and its agent's.
    agent = ticket["calls"][0]["agent_id"]
    assert agent in {"agent1", "agent2"}
    [scored] = [e for e in ticket["history"] if e["kind"] == "csat"]
    assert scored["data"]["agent"] == agent
    assert ticket["fields"]["ivr_path"] == "service: 2"
    assert ticket["fields"]["order_number"] == "A-77812" and ticket["fields"]["product_model"] == "XR-200"
    # What the dialplan reported is found by search, the IVR path too.
    for words in ("A-77812", "service: 2"):
        assert ticket["number"] in [hit.number for hit in await flows.store.search(words)], words


# -- a PBX crash -----------------------------------------------------------------------------


async def test_a_call_cut_by_an_asterisk_crash_is_closed_once_as_interrupted(flows, ami_driver, asterisk):
    phone = number()
    await ami_driver.originate("4004", phone, "Cut Off")  # ~15 s talking to agent3
    await until(lambda: ("agent3", "answered", None) in flows.pops(phone), 20, "agent3 answers")
    await asyncio.sleep(1.0)
    killed_at = time.time()
    sessions = flows.daemon.ami[0].sessions
    await asterisk.kill()
    await asyncio.sleep(2.0)  # an outage the talk time must not count
    await asterisk.start()
    try:
        await until(lambda: flows.daemon.ami[0].sessions > sessions, 30, "reconnect after the crash")
        ticket = await flows.ended(phone, timeout=30)
        [call] = ticket["calls"]
        assert call["outcome"] == "interrupted"
        assert 0 < call["talk_seconds"] < killed_at - call["answered_at"] + 0.5
        await asyncio.sleep(1.0)  # a second end would have come by now
        ends = [n for n in flows.inbox.topic(f"tickets/{ticket['number']}") if n["event"] == "call_ended"]
        assert len(ends) == 1 and ends[0]["data"]["outcome"] == "interrupted"
        assert ends[0]["data"]["agent_id"] == "agent3"
    finally:
        await ami_driver.wait_logged_in(30)


# -- click-to-dial ---------------------------------------------------------------------------


async def test_click_to_dial_rings_the_agent_then_the_customer_and_joins_the_ticket(flows, ami_driver):
    first, other = number(), number()
    await ami_driver.originate("4001", first, "Asks For A Call")  # agent1 answers: their ticket
    ticket = await flows.ended(first)
    assert ticket["assignee"] == "agent1"
    # Dialled from that ticket, to another of the customer's numbers: the call joins the ticket
    # it was placed from (its CTI_TICKET variable), not the other number's.
    answer = await flows.api("agent1", "POST", f"/api/tickets/{ticket['number']}/dial", {"phone": other})
    assert answer.status_code == 202, answer.text
    assert answer.json()["device"] == "Local/agent1@phones" and answer.json()["ticket"] == ticket["number"]
    await until(lambda: ("agent1", "answered", None) in flows.pops(other), 20, "the customer answers")
    await ami_driver.hangup_all()
    detail = await flows.ended(first, calls=2)
    dialled = detail["calls"][1]
    assert (dialled["direction"], dialled["placed_by"], dialled["caller_number"]) == (
        "outbound",
        "agent1",
        other,
    )
    assert dialled["outcome"] == "answered" and dialled["agent_id"] == "agent1"
    assert await flows.tickets_of(other) == []


async def test_click_to_dial_refuses_what_it_cannot_do(flows, ami_driver):
    ghost = await flows.api("agent1", "POST", "/api/tickets/T-999999/dial", {})
    assert ghost.status_code == 404
    bad = await flows.api("agent1", "POST", "/api/customers/999999/dial", {"phone": "+14155550000"})
    assert bad.status_code == 404
    phone = number()
    await ami_driver.originate("4001", phone, "Bad Number Later")
    ticket = await flows.ended(phone)
    junk = await flows.api("agent1", "POST", f"/api/tickets/{ticket['number']}/dial", {"phone": "12"})
    assert junk.status_code == 409 and "can be dialled" in junk.json()["detail"]
    # Another agent's ticket is not theirs to call from.
    theirs = await flows.api("agent2", "POST", f"/api/tickets/{ticket['number']}/dial", {})
    assert theirs.status_code == 404


async def test_the_dialling_account_can_only_originate(asterisk):
    dialling = AmiDriver(asterisk.ami_host, asterisk.ami_port, DIAL_USER, DIAL_SECRET)
    await dialling.connect()
    try:
        for action in (
            {"Action": "Hangup", "Channel": "/.*/"},
            {"Action": "Command", "Command": "core show uptime"},
        ):
            response = await dialling.send(action)
            assert (response.get("Response"), response.get("Message")) == ("Error", "Permission denied")
        await asyncio.sleep(0.5)
        assert [e.get("Event") for e in dialling.log.events] == [], "it reads no events"
    finally:
        await dialling.close()


# -- agent states ----------------------------------------------------------------------------


async def test_paused_and_logged_out_agents_get_no_callbacks(flows, ami_driver):

    def state_of(agent: str) -> str | None:
        bodies = flows.inbox.topic(f"agents/{agent}/state")
        return bodies[-1]["status"] if bodies else None

    # agent3 logs in to support and pauses for lunch; everyone else but agent5 pauses everywhere.
    await ami_driver.send_first(
        {
            "Action": "QueueAdd",
            "Queue": "support",
            "Interface": "Local/agent3@agents",
            "MemberName": "Agent Three",
        }
    )
    paused = ["agent1", "agent2", "agent3", "agent4", "agent9"]
    try:
        for agent in paused:
            await ami_driver.send_first(
                {
                    "Action": "QueuePause",
                    "Interface": f"Local/{agent}@agents",
                    "Paused": "true",
                    "Reason": "lunch",
                }
            )
        await until(lambda: all(state_of(a) == "paused" for a in paused), 10, "the pauses seen")
        lunch = flows.inbox.topic("agents/agent3/state")[-1]
        assert lunch["queues"] == [{"queue": "support", "paused": True, "reason": "lunch"}]
        live = (await flows.api("agent1", "GET", "/api/calls/live")).json()
        states = {a["agent_id"]: a["status"] for a in live["agents"]}
        assert states.get("agent1") == "paused"  # an agent sees their team's: here, their own
        phone = number()
        await ami_driver.originate("4003", phone, "Nobody Free", caller_exten="hangup-after-3")
        ticket = await until(lambda: _assigned(flows, phone), 30, "the abandoned call's callback dispatched")
        assert ticket["assignee"] == "agent5", ticket["history"]
    finally:
        for agent in paused:
            await ami_driver.send_first(
                {"Action": "QueuePause", "Interface": f"Local/{agent}@agents", "Paused": "false"}
            )
        await ami_driver.send_first(
            {"Action": "QueueRemove", "Queue": "support", "Interface": "Local/agent3@agents"}
        )
    await until(lambda: state_of("agent3") == "logged_out", 10, "agent3 logged out")
    await until(lambda: state_of("agent1") == "logged_in", 10, "agent1 back")


async def _assigned(flows: Flows, phone: str) -> dict[str, Any] | None:
    tickets = await flows.tickets_of(phone)
    if len(tickets) != 1 or not tickets[0]["assignee"]:
        return None
    return tickets[0]
