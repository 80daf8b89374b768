"""MQTT and AMI over TLS on the real parts, with certificates of a throwaway CA made here.

MQTT: Debian's mosquitto with only a TLS listener; the PBX side is the AMI replay server.
AMI: the sandbox Asterisk 22 with `tlsenable = yes` added to its manager.conf for the test.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import structlog
from pydantic import SecretStr

from cti_bridge.ami.client import AmiClient
from cti_bridge.ami.originate import AmiDialer
from cti_bridge.app import Daemon
from cti_bridge.config import Config
from tests.support.ami_replay import AmiReplayServer, events_of_capture
from tests.support.helpers import MqttInbox, until
from tests.support.sandbox import AsteriskSandbox
from tests.support.tls import CLIENT_KEY_PASSPHRASE, Pki, ami_over_tls, make_pki, tls_mosquitto

pytestmark = pytest.mark.integration

DIAL = Path(__file__).parents[1] / "fixtures" / "ami" / "dial_raw_passive_rx.ami"
FAST_RETRY = {"initial_delay": "0.2s", "max_delay": "0.5s"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "ca")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another CA: trusting it instead of the right one must fail."""
    return make_pki(tmp_path_factory.mktemp("stranger"), "stranger")


def replay_config(tmp_path: Path, pbx_port: int, mqtt: dict[str, Any]) -> Config:
    os.environ["TLS_AMI_SECRET"] = "replay-secret"
    return Config.model_validate(
        {
            "pbxs": [
                {
                    "name": "pbx1",
                    "port": pbx_port,
                    "username": "cti",
                    "secret": {"env": "TLS_AMI_SECRET"},
                    "inbound_contexts": ["test-context"],
                }
            ],
            "agents": [{"id": "agent1", "interfaces": ["Local/agent1@agents"]}],
            "phone": {"default_region": "US"},
            "mqtt": {"topic_prefix": "tls", "reconnect": FAST_RETRY, **mqtt},
            "store": {"url": f"sqlite:///{tmp_path}/tls.db"},
            "web": {"enabled": False},
            "transcription": {"enabled": False},
        }
    )


async def test_pops_published_over_tls_arrive(tmp_path, pki):
    async with (
        tls_mosquitto(pki) as broker,
        AmiReplayServer(events_of_capture(DIAL)) as pbx,
        MqttInbox(broker.port, "tls", tls=pki.trusting_context()) as inbox,
        Daemon(replay_config(tmp_path, pbx.port, {"port": broker.port, "tls": {"ca": str(pki.ca)}})),
    ):
        await until(lambda: inbox.events("tickets/")[-1:] == ["call_ended"], 15, "the call's notices")
    assert inbox.events("screenpop") == ["ringing", "answered"]
    assert inbox.topic("status")[:1] == ["online"]


async def test_a_client_certificate_the_broker_requires_is_presented(tmp_path, pki, caplog):
    os.environ["TLS_KEY_PASSPHRASE"] = CLIENT_KEY_PASSPHRASE
    tls = {
        "ca": str(pki.ca),
        "certificate": str(pki.client_certificate),
        "key": str(pki.client_key_encrypted),
        "key_password": {"env": "TLS_KEY_PASSPHRASE"},
    }
    subscriber = pki.trusting_context()
    subscriber.load_cert_chain(pki.client_certificate, pki.client_key)
    async with (
        tls_mosquitto(pki, require_certificate=True) as broker,
        AmiReplayServer(events_of_capture(DIAL)) as pbx,
        MqttInbox(broker.port, "tls", tls=subscriber) as inbox,
        Daemon(replay_config(tmp_path, pbx.port, {"port": broker.port, "tls": tls})),
    ):
        await until(lambda: inbox.events("tickets/")[-1:] == ["call_ended"], 15, "the call's notices")
        # The broker does insist: without a certificate, no session (over TLS 1.3 the refusal
        # comes after the handshake, so the client times out; paho logs why).
        caplog.set_level(logging.ERROR, logger="mqtt")
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, tls_context=pki.trusting_context(), timeout=2
            ):
                pass
    assert inbox.events("screenpop") == ["ringing", "answered"]
    assert any("certificate required" in r.getMessage() for r in caplog.records if r.name == "mqtt")


async def test_a_broker_signed_by_another_ca_is_refused_loudly_and_retried(tmp_path, pki, stranger):
    with structlog.testing.capture_logs() as logs:
        async with (
            tls_mosquitto(pki) as broker,
            AmiReplayServer(events_of_capture(DIAL)) as pbx,
        ):
            mqtt = {"port": broker.port, "tls": {"ca": str(stranger.ca)}}
            async with Daemon(replay_config(tmp_path, pbx.port, mqtt)) as daemon:
                refusals = _entries(logs, "mqtt.tls_verify_failed")
                await until(lambda: len(refusals()) >= 3, 15, "three refused connections")
                # Nothing crashed and nothing was lost: the ticket is made and its messages wait.
                assert daemon.publisher is not None and not daemon.publisher.connected.is_set()
                await until(lambda: daemon.publisher.pending >= 5, 10, "the pops to queue up")
                assert len(await daemon.store.list_tickets()) == 1
                runner = asyncio.create_task(daemon.wait(), name="tls-daemon-wait")
                await asyncio.sleep(0.5)
                assert not runner.done(), runner.result()
                runner.cancel()
    [first, *_] = refusals()
    assert first["error"].startswith("certificate verify failed: ")
    assert first["log_level"] == "error" and "mqtt.tls.ca" in first["hint"]


async def test_ami_over_tls_on_the_real_asterisk(tmp_path, pki, stranger, asterisk, ami_driver, mosquitto):
    os.environ["TLS_SANDBOX_AMI_SECRET"] = asterisk.ami_secret
    os.environ["TLS_SANDBOX_DIAL_SECRET"] = "sandbox-dial-secret"  # asterisk/sandbox/etc/manager.conf
    number, dialled = "+14155559901", "14155559902"
    async with ami_over_tls(asterisk, pki) as tls_port:
        config = Config.model_validate(
            {
                "pbxs": [
                    {
                        "name": "sandbox",
                        "port": tls_port,
                        "tls": {"ca": str(pki.ca)},
                        "username": asterisk.ami_username,
                        "secret": {"env": "TLS_SANDBOX_AMI_SECRET"},
                        "reconnect": FAST_RETRY,
                        "originate": {
                            "username": "cti-bridge-dial",
                            "secret": {"env": "TLS_SANDBOX_DIAL_SECRET"},
                            "context": "from-internal",
                        },
                    }
                ],
                "phone": {"default_region": "US"},
                "mqtt": {"port": mosquitto.port, "topic_prefix": "tls-ami"},
                "store": {"url": f"sqlite:///{tmp_path}/tls-ami.db"},
                "web": {"enabled": False},
                "transcription": {"enabled": False},
            }
        )
        async with Daemon(config) as daemon:
            await until(lambda: daemon.ami and daemon.ami[0].connected.is_set(), 15, "AMI over TLS")
            await ami_driver.originate("4000", number, "TLS Caller")
            tickets = await until(
                lambda: _tickets_of(daemon, number), 20, f"a ticket for the call from {number}"
            )
        assert len(tickets) == 1
        # Click-to-dial's own short session goes over TLS too: the PBX takes the Originate.
        pbx = config.pbxs[0]
        assert pbx.originate is not None
        dialer = AmiDialer(pbx, pbx.originate, SecretStr("sandbox-dial-secret"))
        await dialer.originate(
            device="Local/agent1@phones", exten=f"9{dialled}", caller_id='"Agent" <1001>', variables={}
        )
        await _refused_by_wrong_ca(asterisk, stranger, tls_port)
    await ami_driver.hangup_all()
    await asterisk.wait_idle()


async def _refused_by_wrong_ca(asterisk: AsteriskSandbox, stranger: Pki, tls_port: int) -> None:
    """An AMI client that trusts another CA never logs in, says why, and keeps retrying."""
    config = Config.model_validate(
        {
            "pbxs": [
                {
                    "name": "sandbox",
                    "port": tls_port,
                    "tls": {"ca": str(stranger.ca)},
                    "username": asterisk.ami_username,
                    "secret": {"env": "TLS_SANDBOX_AMI_SECRET"},
                    "reconnect": FAST_RETRY,
                }
            ],
        }
    )
    events: list[Any] = []
    client = AmiClient(config.pbxs[0], SecretStr(asterisk.ami_secret), events.append)
    with structlog.testing.capture_logs() as logs:
        runner = asyncio.create_task(client.run(), name="tls-ami-wrong-ca")
        try:
            await until(lambda: len(_entries(logs, "ami.disconnected")()) >= 3, 15, "three refusals")
            assert not runner.done()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await client.close()
    assert client.sessions == 0
    reason = _entries(logs, "ami.disconnected")()[0]["reason"]
    assert reason.startswith("SSLCertVerificationError") and "certificate verify failed" in reason


def _entries(logs: list[dict[str, Any]], event: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: [entry for entry in logs if entry.get("event") == event]


async def _tickets_of(daemon: Daemon, number: str) -> list[dict[str, Any]]:
    assert daemon.store is not None
    return [t for t in await daemon.store.list_tickets(limit=1000) if t["caller_number"] == number]
