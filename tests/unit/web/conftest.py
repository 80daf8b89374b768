"""The HTTP API on the real parts: a SQLite store on tmp_path seeded with a small call centre,
the real FastAPI application, and httpx clients that reach it through ASGI, as each user.

The call centre: agents a1 and a3 in team t1 (supervised by `sup`), agent a2 in team t2, a
supervisor `sup` and an admin `admin`, each with an API token and the same password, and a
ticket for each of them. Every response a client gets is noted (method, path template) so
test_openapi_coverage.py can tell an endpoint that no test exercises.
"""

from __future__ import annotations

import contextlib
import json
import re
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cti_bridge.calls.model import Call
from cti_bridge.config import Config
from cti_bridge.screenpop.outputs import Fanout, OutboundMessage
from cti_bridge.store import Store
from cti_bridge.store import users as user_store
from cti_bridge.store.store import CustomerRow
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.workflow import Assign, Workflow
from cti_bridge.web.app import create_app
from cti_bridge.web.auth import Teams, digest, hash_password, new_token
from cti_bridge.web.context import CSRF_HEADER, WebContext
from cti_bridge.web.live import LiveHub
from tests.support.helpers import inbound_call, new_ticket

T0 = 1_800_000_000.0  # the site's clock starts here (2027-01-15, Asia/Shanghai)
PASSWORD = "correct horse battery"
CUSTOMER_PHONE = "+8613800000001"
OTHER_CUSTOMER_PHONE = "+8613900000002"
LOGIN_CATEGORY = "技术故障/网络问题/登录异常"


def config_data(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """The config of the test call centre, as YAML would give it; `sections` replace its parts."""
    data: dict[str, Any] = {
        "pbxs": [{"name": "main", "username": "cti", "secret": {"env": "UNSET_IN_TESTS"}}],
        "store": {"url": f"sqlite:///{tmp_path}/web.db", "attachments": str(tmp_path / "attachments")},
        "agents": [
            {"id": "a1", "name": "Agent One", "extension": "1001", "team": "t1"},
            {"id": "a3", "name": "Agent Three", "extension": "1003", "team": "t1"},
            {"id": "a2", "name": "Agent Two", "extension": "1002", "team": "t2"},
        ],
        "teams": [{"name": "t1", "label": "一线", "supervisor": "sup"}, {"name": "t2"}],
        "tickets": {
            "categories": {
                "tree": [
                    {
                        "key": "technical",
                        "zh": "技术故障",
                        "en": "Technical fault",
                        "children": [
                            {
                                "key": "network",
                                "zh": "网络问题",
                                "en": "Network",
                                "children": [{"key": "login", "zh": "登录异常", "en": "Login failure"}],
                            }
                        ],
                    }
                ]
            },
            "fields": [{"name": "affected_users", "type": "integer", "min": 1}],
            "required_fields": {
                "in_progress": ["category"],
                "resolved": ["category", "resolution"],
                "closed": ["category", "resolution"],
            },
        },
        # A short first-response target on the 24x7 clock: tickets nobody answered breach it.
        # The calendar only gives reports their time zone.
        "sla": {
            "calendar": {"timezone": "Asia/Shanghai", "hours": {"mon-fri": ["09:00-18:00"]}},
            "clock": "always",
            "targets": {"P3": {"first_response": "10m"}},
        },
        "web": {"port": 0},
    }
    data.update(sections)
    return data


class Clock:
    """The site's time: tests move it instead of waiting."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sent:
    """The MQTT edge: what the API published, in order."""

    def __init__(self) -> None:
        self.messages: list[OutboundMessage] = []

    def publish(self, message: OutboundMessage) -> None:
        self.messages.append(message)

    def events(self, number: str) -> list[str]:
        return [json.loads(m.payload)["event"] for m in self.messages if m.topic == f"tickets/{number}"]


class EndpointHits:
    """(method, OpenAPI path) of every successful response any test's client received."""

    def __init__(self) -> None:
        self.hits: set[tuple[str, str]] = set()

    def recorder(self, app: FastAPI) -> Callable[[httpx.Response], Any]:
        # Paths without parameters first: /api/calls/live is not /api/calls/{something}.
        templates = sorted(app.openapi()["paths"].items(), key=lambda item: "{" in item[0])
        patterns = [
            (re.compile(re.sub(r"\{[^}/]+\}", "[^/]+", path)), {m.upper() for m in methods})
            for path, methods in templates
        ]

        async def record(response: httpx.Response) -> None:
            if response.status_code >= 400:
                return
            path, method = response.request.url.path, response.request.method
            for (template, _), (pattern, methods) in zip(templates, patterns, strict=True):
                if method in methods and pattern.fullmatch(path):
                    self.hits.add((method, template))
                    return

        return record


@pytest.fixture(scope="session")
def endpoint_hits() -> EndpointHits:
    return EndpointHits()


_HERE = Path(__file__).parent
_DESELECTED = pytest.StashKey[list[pytest.Item]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "after_all_web_tests: runs last, and only when every test of tests/unit/web runs"
    )
    config.stash[_DESELECTED] = []


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash[_DESELECTED].extend(items)


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what they will
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that read what every other test of this folder did run last, and only when the
    whole folder runs: with a part of it they would only report what that part left out."""
    last = [item for item in items if item.get_closest_marker("after_all_web_tests")]
    if not last:
        return
    ours = [item for item in items if _HERE in item.path.parents]
    whole = {item.path.name for item in ours} == {path.name for path in _HERE.glob("test_*.py")} and not any(
        _HERE in item.path.parents for item in config.stash[_DESELECTED]
    )
    items[:] = [item for item in items if item not in last] + (last if whole else [])
    if not whole:
        config.hook.pytest_deselected(items=last)


@dataclass(kw_only=True)
class Seeded:
    """What the seed made: ticket numbers by whose they are, recordings, files."""

    tickets: dict[str, str] = field(default_factory=dict)
    recordings: dict[str, int] = field(default_factory=dict)
    attachments: dict[str, int] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)
    wav: bytes = b""


@dataclass(kw_only=True)
class Site:
    """The application on a seeded store, and clients for it."""

    ctx: WebContext
    app: FastAPI
    clock: Clock
    sent: Sent
    seeded: Seeded
    tokens: dict[str, str]
    hits: EndpointHits
    clients: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def store(self) -> Store:
        return self.ctx.store

    def ticket(self, whose: str) -> str:
        return self.seeded.tickets[whose]

    def client(self, headers: dict[str, str] | None = None, *, url: str | None = None) -> httpx.AsyncClient:
        """A client without credentials (unless `headers` carry some): to the application
        through ASGI, or over TCP to a server serving it at `url`."""
        client = httpx.AsyncClient(
            transport=None if url else httpx.ASGITransport(app=self.app),
            base_url=url or "http://testserver",
            headers=headers,
            event_hooks={"response": [self.hits.recorder(self.app)]},
        )
        self.clients.push_async_callback(client.aclose)
        return client

    def as_user(self, user: str, *, url: str | None = None) -> httpx.AsyncClient:
        """A client with `user`'s API token."""
        return self.client({"Authorization": f"Bearer {self.tokens[user]}"}, url=url)

    async def signed_in(self, user: str, password: str = PASSWORD) -> httpx.AsyncClient:
        """A browser: signed in with a session cookie, sending the CSRF token with changes."""
        client = self.client()
        response = await client.post("/api/session", json={"username": user, "password": password})
        assert response.status_code == 200, response.text
        client.headers[CSRF_HEADER] = response.json()["csrf_token"]
        return client

    async def close(self) -> None:
        await self.clients.aclose()
        await self.store.close()


@pytest.fixture(scope="session")
async def password_hash() -> str:
    """One argon2id hash for every test user: hashing is slow by design."""
    return await hash_password(PASSWORD)


async def bare_site(config: Config, hits: EndpointHits) -> Site:
    """The application on the config's store, as it is (nothing seeded)."""
    store = await Store.open(config.store.url, TicketNumbering())
    hub, sent, clock = LiveHub(), Sent(), Clock(T0)
    assert config.store.attachments is not None
    ctx = WebContext(
        config=config,
        store=store,
        hub=hub,
        publisher=Fanout(sent, hub),
        workflow=Workflow.from_config(config),
        teams=Teams.from_config(config),
        attachments_folder=config.store.attachments,
        clock=clock,
    )
    return Site(ctx=ctx, app=create_app(ctx), clock=clock, sent=sent, seeded=Seeded(), tokens={}, hits=hits)


async def open_site(
    tmp_path: Path, hits: EndpointHits, password_hash: str, config: Config | None = None
) -> Site:
    """The application on a freshly seeded store under `tmp_path`."""
    site = await bare_site(config or Config.model_validate(config_data(tmp_path)), hits)
    site.tokens = await _add_users(site.store, password_hash)
    site.seeded = await seed(site.store, site.ctx, tmp_path)
    return site


@pytest.fixture
async def site(tmp_path: Path, endpoint_hits: EndpointHits, password_hash: str) -> AsyncIterator[Site]:
    opened = await open_site(tmp_path, endpoint_hits, password_hash)
    try:
        yield opened
    finally:
        await opened.close()


async def _add_users(store: Store, password_hash: str) -> dict[str, str]:
    db = store.database
    roles: dict[str, user_store.Role] = {
        "a1": "agent",
        "a2": "agent",
        "a3": "agent",
        "sup": "supervisor",
        "admin": "admin",
    }
    tokens = {}
    for user, role in roles.items():
        await user_store.add_user(
            db,
            user,
            role=role,
            name=user.upper(),
            agent_id=user if role == "agent" else None,
            password_hash=password_hash,
            at=T0 - 86400,
        )
        tokens[user] = new_token()
        await user_store.add_token(db, user, label="tests", token_hash=digest(tokens[user]), at=T0 - 86400)
    return tokens


def write_wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A real mono 16-bit WAV file of a rising tone; returns its bytes."""
    frames = bytes((i * 7) % 256 for i in range(int(seconds * rate) * 2))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path.read_bytes()


async def seed(store: Store, ctx: WebContext, tmp_path: Path) -> Seeded:
    """A ticket for each user, and one whose call only rang a1, and one nobody has."""
    seeded = Seeded()
    await store.import_customers(
        [
            CustomerRow(name="王小明", phones=(CUSTOMER_PHONE,), vip=True),
            CustomerRow(name="Li Lei", phones=(OTHER_CUSTOMER_PHONE,)),
        ],
        T0 - 86400,
    )
    for name, phone in (("wang", CUSTOMER_PHONE), ("li", OTHER_CUSTOMER_PHONE)):
        customer = await store.customer_by_phone(phone)
        assert customer is not None
        seeded.customers[name] = customer.id

    async def answered(whose: str, linkedid: str, *, customer: str | None = None, **fields: Any) -> Call:
        phone = {"wang": CUSTOMER_PHONE, "li": OTHER_CUSTOMER_PHONE}.get(customer or "")
        started = T0 - 3600
        call = inbound_call(linkedid, caller_number=phone, started_at=started)
        ticket, _ = await store.create_ticket_for_call(
            new_ticket(
                caller_number=phone, customer_id=seeded.customers[customer] if customer else None, **fields
            ),
            call,
            phone,
            started,
        )
        seeded.tickets[whose] = ticket.number
        answered_call = inbound_call(
            linkedid,
            caller_number=phone,
            started_at=started,
            answered_at=started + 10,
            agent_id=whose,
            rang_agents=(whose,),
        )
        await store.record_answer(answered_call, whose, started + 10)
        return answered_call

    call = await answered(
        "a1",
        "L1",
        customer="wang",
        subject="无法登录 APP",
        description="客户无法登录，提示密码错误，需要重置密码",
    )
    seeded.recordings["a1"], seeded.wav = await _transcribed_recording(store, call, tmp_path, "a1")
    call = await answered("a2", "L2", customer="li", subject="账单疑问", description="费用异议")
    seeded.recordings["a2"], _ = await _transcribed_recording(store, call, tmp_path, "a2")
    source = tmp_path / "a2-contract.pdf"
    source.write_bytes(b"%PDF-1.4 a2's contract\n" * 50)
    added = await store.attach(
        seeded.tickets["a2"], source, folder=ctx.attachments_folder, actor="a2", at=T0 - 3000
    )
    seeded.attachments["a2"] = added.id
    await answered("a3", "L3", subject="网速慢")

    for whose, linkedid, rang in (("rang_a1", "L4", ("a1",)), ("nobody", "L5", ("a2",))):
        call = inbound_call(linkedid, started_at=T0 - 3600, rang_agents=rang)
        ticket, _ = await store.create_ticket_for_call(new_ticket(), call, None, T0 - 3600)
        await store.record_rang(call)
        seeded.tickets[whose] = ticket.number
    for whose, linkedid in (("sup", "L6"), ("admin", "L7")):
        ticket, _ = await store.create_ticket_for_call(
            new_ticket(subject=f"escalated to {whose}"),
            inbound_call(linkedid, started_at=T0 - 3600),
            None,
            T0 - 3600,
        )
        await store.apply_command(
            ticket.number, Assign(assignee=whose), workflow=ctx.workflow, actor="sup", at=T0 - 3500
        )
        seeded.tickets[whose] = ticket.number
    return seeded


async def _transcribed_recording(store: Store, call: Call, tmp_path: Path, name: str) -> tuple[int, bytes]:
    """A linked recording of `call` with its WAV file on disk and a finished transcript."""
    path = tmp_path / "recordings" / f"{name}.wav"
    path.parent.mkdir(exist_ok=True)
    audio = write_wav(path)
    recording_id = await store.add_recording(call, f"/spool/{name}.wav", str(path), T0 - 3000)
    assert recording_id is not None
    await store.link_recording(
        recording_id,
        status="linked",
        size_bytes=len(audio),
        duration_seconds=0.5,
        error=None,
        language="en",
        at=T0 - 2990,
    )
    job = await store.claim_job("tests", T0 - 2980, 600)
    assert job is not None and job.recording_id == recording_id
    words = [{"word": "hello", "start": 0.0, "end": 0.2, "conf": 1.0}]
    done = await store.complete_job(
        job,
        "tests",
        {"text": f"hello from {name}", "words": words, "duration_seconds": 0.5, "elapsed_seconds": 0.1},
        T0 - 2970,
    )
    assert done
    return recording_id, audio
