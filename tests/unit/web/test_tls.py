"""HTTPS served by the daemon itself, and the Secure cookie behind an HTTPS proxy.

The certificates come from a throwaway CA made for each test (trustme); the server is the real
uvicorn one, on a free port of 127.0.0.1.
"""

import asyncio
import contextlib
import ssl
from http.cookies import SimpleCookie

import httpx
import pytest
import trustme
import yaml
from cryptography.hazmat.primitives import serialization

from cti_bridge.config import Config, ConfigError, load_config
from cti_bridge.config.model import WebConfig
from cti_bridge.web.context import SESSION_COOKIE
from cti_bridge.web.server import WebServer
from tests.unit.web.conftest import PASSWORD, config_data, open_site


@pytest.fixture
def ca():
    return trustme.CA()


@pytest.fixture
def certificate(ca, tmp_path):
    """The server's certificate (for 127.0.0.1) and key as PEM files."""
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    return cert, key


def _client(ca, url):
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return httpx.AsyncClient(base_url=url, verify=context)


@contextlib.asynccontextmanager
async def _serving(app, web):
    server = WebServer(app, web)
    task = asyncio.create_task(server.run(), name="web-over-tls")
    try:
        yield server
    finally:
        server.stop()
        await task


def _cookie(response):
    cookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    return cookie[SESSION_COOKIE]


async def test_the_pages_are_served_over_https_with_a_secure_cookie(site, ca, certificate):
    cert, key = certificate
    web = WebConfig.model_validate({"port": 0, "tls": {"certificate": str(cert), "key": {"file": str(key)}}})
    async with _serving(site.app, web) as server, _client(ca, server.url) as client:
        assert server.url.startswith("https://127.0.0.1:")
        health = await client.get("/api/health")
        assert health.status_code == 200
        assert health.headers["strict-transport-security"] == "max-age=31536000"
        signed_in = await client.post("/api/session", json={"username": "a1", "password": PASSWORD})
        assert signed_in.status_code == 200
        assert _cookie(signed_in)["secure"] is True  # web.secure_cookies is not set
        assert (await client.get("/agent")).status_code == 200

        # Plain HTTP to the TLS port gets no answer.
        plain = server.url.replace("https://", "http://")
        async with httpx.AsyncClient(base_url=plain) as cleartext:
            with pytest.raises(httpx.TransportError):
                await cleartext.get("/api/health")


async def test_an_encrypted_key_opens_with_its_password_from_the_environment(
    site, ca, certificate, tmp_path, monkeypatch
):
    cert, key = certificate
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret passphrase"),
        )
    )
    monkeypatch.setenv("CTI_TEST_TLS_PASSWORD", "s3cret passphrase")
    tls = {"certificate": str(cert), "key": str(locked), "password": {"env": "CTI_TEST_TLS_PASSWORD"}}
    web = WebConfig.model_validate({"port": 0, "tls": tls})
    async with _serving(site.app, web) as server, _client(ca, server.url) as client:
        assert (await client.get("/api/health")).status_code == 200

    monkeypatch.setenv("CTI_TEST_TLS_PASSWORD", "wrong")
    with pytest.raises(OSError, match=r"^web.tls: cannot use certificate .*server.pem with key .*locked.key"):
        WebServer(site.app, WebConfig.model_validate({"port": 0, "tls": tls}))


async def test_a_missing_certificate_is_named_when_the_server_is_made(site, tmp_path, certificate):
    _, key = certificate
    tls = {"certificate": str(tmp_path / "nope.pem"), "key": str(key)}
    with pytest.raises(OSError, match=r"nope.pem"):
        WebServer(site.app, WebConfig.model_validate({"port": 0, "tls": tls}))


def test_a_tls_key_comes_from_a_file_only():
    with pytest.raises(ValueError, match="a TLS key is read from a file"):
        WebConfig.model_validate({"tls": {"certificate": "/etc/cti/cert.pem", "key": {"env": "KEY"}}})


async def test_behind_an_https_proxy_the_cookie_is_secure(tmp_path, endpoint_hits, password_hash):
    web = {"port": 0, "public_url": "https://cti.example.com/"}
    config = Config.model_validate(config_data(tmp_path, web=web))
    site = await open_site(tmp_path, endpoint_hits, password_hash, config)
    try:
        signed_in = await site.client().post("/api/session", json={"username": "a1", "password": PASSWORD})
        assert _cookie(signed_in)["secure"] is True
    finally:
        await site.close()


async def test_forwarded_headers_count_only_from_a_trusted_proxy(site):
    guesses = [{"X-Forwarded-For": f"198.51.100.{n}", "X-Forwarded-Proto": "https"} for n in range(11)]

    # Untrusted (the default): the guesser cannot pick the address it is counted by.
    async with _serving(site.app, WebConfig(port=0)) as server, httpx.AsyncClient(base_url=server.url) as c:
        answers = [
            await c.post("/api/session", json={"username": "a1", "password": "guess"}, headers=headers)
            for headers in guesses
        ]
        assert [r.status_code for r in answers] == [401] * 10 + [429]
        assert "strict-transport-security" not in answers[0].headers

    # A proxy on this host that is trusted: its X-Forwarded-For is the client, its scheme counts.
    trusted = WebConfig(port=0, forwarded_allow_ips=["127.0.0.1"])
    async with _serving(site.app, trusted) as server, httpx.AsyncClient(base_url=server.url) as c:
        answer = await c.post(
            "/api/session",
            json={"username": "a1", "password": PASSWORD},
            headers={"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Proto": "https"},
        )
        assert answer.status_code == 200, answer.text
        assert _cookie(answer)["secure"] is True


def test_check_config_names_an_unreadable_key_passphrase(tmp_path, monkeypatch):
    monkeypatch.delenv("CTI_TEST_UNSET_TLS_PASSWORD", raising=False)
    web = {"tls": {"certificate": "/etc/cti/cert.pem", "key": "/etc/cti/key.pem"}}
    web["tls"]["password"] = {"env": "CTI_TEST_UNSET_TLS_PASSWORD"}
    data = config_data(tmp_path, web=web)
    data["pbxs"][0]["secret"] = {"file": str(tmp_path / "pbx-secret")}
    (tmp_path / "pbx-secret").write_text("s3cret\n", encoding="utf-8")
    path = tmp_path / "cti-bridge.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert problem.key == "web.tls.password" and problem.line is not None
    assert "CTI_TEST_UNSET_TLS_PASSWORD is not set" in problem.message
