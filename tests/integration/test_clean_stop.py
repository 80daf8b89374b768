"""A signal stops `cti-bridge run` in order (issue #11 item 7): the real CLI process, the real
PBX and broker, calls in progress. Exit 0, no traceback, `offline` retained, nothing lost."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import aiomqtt
import pytest

from cti_bridge.store import Store
from cti_bridge.tickets.model import TicketNumbering
from tests.support.helpers import MqttInbox, until
from tests.support.sandbox import AmiDriver, AsteriskSandbox, Mosquitto

pytestmark = pytest.mark.integration

_numbers = itertools.count(1)


async def _retained_status(port: int, prefix: str) -> str:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"{prefix}/status", qos=1)
        async for message in client.messages:
            return message.payload.decode()
    raise AssertionError("no status")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_during_calls_stops_the_daemon_cleanly(
    signum: signal.Signals,
    asterisk: AsteriskSandbox,
    mosquitto: Mosquitto,
    ami_driver: AmiDriver,
    tmp_path: Path,
) -> None:
    prefix = f"stop-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "cti.db"
    config = {
        "pbxs": [
            {
                "name": "sandbox",
                "port": asterisk.ami_port,
                "username": asterisk.ami_username,
                "secret": {"env": "SANDBOX_AMI_SECRET"},
                "recording_paths": [
                    {"pbx": "/var/spool/asterisk/monitor", "local": str(asterisk.monitor_dir)}
                ],
            }
        ],
        "agents": [{"id": f"agent{n}", "interfaces": [f"Local/agent{n}@agents"]} for n in (1, 2, 3)],
        "phone": {"default_region": "US"},
        "mqtt": {"port": mosquitto.port, "topic_prefix": prefix},
        "store": {"url": f"sqlite:///{db}"},
        "web": {"enabled": False},
        "logging": {"format": "json"},
    }
    path = tmp_path / "cti-bridge.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    env = {**os.environ, "SANDBOX_AMI_SECRET": asterisk.ami_secret, "PYTHONASYNCIODEBUG": "0"}
    async with MqttInbox(mosquitto.port, prefix) as inbox:
        daemon = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cti_bridge",
            "run",
            "-c",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            await until(lambda: "online" in inbox.topic("status"), 30, "the daemon online")
            phones = [f"+1415555{next(_numbers) + 8000 + 100 * signum:04d}" for _ in range(3)]
            for phone in phones:
                await ami_driver.originate("4004", phone, "Long Call")  # ~15 s with agent3
            await until(
                lambda: all(("answered" in [b["event"] for _, b, _ in inbox.pops_for(p)]) for p in phones),
                30,
                "every call answered",
            )
            daemon.send_signal(signum)
            out, err = await asyncio.wait_for(daemon.communicate(), 30)
        finally:
            if daemon.returncode is None:
                daemon.kill()
                await daemon.wait()
    text = (out + err).decode(errors="replace")
    assert daemon.returncode == 0, text[-3000:]
    assert "Traceback" not in text and "CancelledError" not in text, text[-3000:]
    assert "daemon.stopped" in text
    assert await asyncio.wait_for(_retained_status(mosquitto.port, prefix), 10) == "offline"
    store = await Store.open(f"sqlite:///{db}", TicketNumbering("T-", 6))
    try:
        for phone in phones:
            [ticket] = [t for t in await store.list_tickets(limit=100) if t["caller_number"] == phone]
            detail = await store.ticket_detail(ticket["number"])
            assert detail["calls"][0]["agent_id"] == "agent3", "the answer was written before the exit"
    finally:
        await store.close()
    await ami_driver.hangup_all()
    await asterisk.wait_idle(20)
