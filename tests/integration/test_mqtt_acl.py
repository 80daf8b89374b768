"""The sample mosquitto ACL (docs/mosquitto/acl.conf) on Debian's mosquitto: each agent's screen
reads only its own topics, while the daemon, signed in as cti-bridge, publishes a real call."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import aiomqtt
import pytest

from cti_bridge.app import Daemon
from cti_bridge.config import Config
from tests.support.ami_replay import AmiReplayServer, events_of_capture
from tests.support.helpers import until
from tests.support.sandbox import Mosquitto

pytestmark = pytest.mark.integration

ACL = Path(__file__).parents[2] / "docs" / "mosquitto" / "acl.conf"
DIAL = Path(__file__).parents[1] / "fixtures" / "ami" / "dial_raw_passive_rx.ami"  # rings agent1
USERS = ("cti-bridge", "wallboard", "agent1", "agent2")


def password_file(folder: Path) -> Path:
    path = folder / "passwords"
    path.touch()
    for user in USERS:
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, f"{user}-pw"], check=True)
    return path


class Subscriber:
    """Everything one user's subscription to cti/# brings, by topic."""

    def __init__(self, port: int, user: str) -> None:
        self.port, self.user = port, user
        self.topics: list[str] = []
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client(
            "127.0.0.1", self.port, username=self.user, password=f"{self.user}-pw"
        ) as c:
            await c.subscribe("cti/#", qos=1)
            self.ready.set()
            async for message in c.messages:
                self.topics.append(str(message.topic))


async def test_each_agent_reads_only_their_own_topics(tmp_path):
    extra = f"allow_anonymous false\npassword_file {password_file(tmp_path)}\nacl_file {ACL}\nuser root\n"
    os.environ["ACL_AMI_SECRET"] = "replay-secret"
    async with Mosquitto(extra_config=extra) as broker, AmiReplayServer(events_of_capture(DIAL)) as pbx:
        subscribers = {user: Subscriber(broker.port, user) for user in ("wallboard", "agent1", "agent2")}
        tasks = [asyncio.create_task(s.run(), name=f"acl-{u}") for u, s in subscribers.items()]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subscribers.values())), 10)
            config = Config.model_validate(
                {
                    "pbxs": [
                        {
                            "name": "pbx1",
                            "port": pbx.port,
                            "username": "cti",
                            "secret": {"env": "ACL_AMI_SECRET"},
                            "inbound_contexts": ["test-context"],
                        }
                    ],
                    "agents": [
                        {"id": "agent1", "interfaces": ["Local/agent1@agents"]},
                        {"id": "agent2", "interfaces": ["Local/agent2@agents"]},
                    ],
                    "phone": {"default_region": "US"},
                    "mqtt": {
                        "port": broker.port,
                        "username": "cti-bridge",
                        "password": {"env": "ACL_MQTT_PASSWORD"},
                    },
                    "store": {"url": f"sqlite:///{tmp_path}/acl.db"},
                    "web": {"enabled": False},
                    "transcription": {"enabled": False},
                }
            )
            os.environ["ACL_MQTT_PASSWORD"] = "cti-bridge-pw"
            async with Daemon(config):
                wallboard = subscribers["wallboard"]
                await until(
                    lambda: (
                        any(t.startswith("cti/tickets/") for t in wallboard.topics)
                        and "cti/agents/agent1/screenpop" in wallboard.topics
                    ),
                    15,
                    "the call's pops and notices on the wallboard",
                )
                # An agent's screen may write nothing, not even into another agent's topic.
                async with aiomqtt.Client(
                    "127.0.0.1", broker.port, username="agent1", password="agent1-pw"
                ) as c:
                    await c.publish("cti/agents/agent2/screenpop", b'{"forged": true}', qos=1)
                    await c.publish("cti/status", b"offline", qos=1)
                await asyncio.sleep(0.5)  # what would be delivered is by now
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    agent1, agent2 = subscribers["agent1"].topics, subscribers["agent2"].topics
    assert "cti/agents/agent1/screenpop" in agent1 and "cti/status" in agent1
    assert all(t == "cti/status" or t.startswith("cti/agents/agent1/") for t in agent1), agent1
    # The call never rang agent2, and agent1's forgery was dropped.
    assert set(agent2) == {"cti/status"}, agent2
    assert "cti/agents/agent2/screenpop" not in wallboard.topics
