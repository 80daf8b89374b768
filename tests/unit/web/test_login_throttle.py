"""The login throttle under attack: attempts sent at once, many addresses, and a restart."""

import asyncio

import httpx

from cti_bridge.config import Config
from cti_bridge.web.auth import LoginThrottle, client_address
from tests.unit.web.conftest import PASSWORD, bare_site, config_data, open_site

GUESSER = "203.0.113.7"
AGENT_DESK = "10.1.2.3"


def _from(site, address):
    """A client whose requests come from `address` (as uvicorn would report it)."""
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=site.app, client=(address, 40000)), base_url="http://testserver"
    )
    site.clients.push_async_callback(client.aclose)
    return client


async def _sign_in(client, password, username="a1"):
    return await client.post("/api/session", json={"username": username, "password": password})


async def test_sixty_guesses_sent_at_once_get_ten_password_checks(site):
    guesser = _from(site, GUESSER)
    answers = await asyncio.gather(*(_sign_in(guesser, f"guess {n}") for n in range(60)))

    # A 401 is a password that was checked (argon2), a 429 one refused before the check.
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * 10 + [429] * 50
    assert all(int(r.headers["retry-after"]) == 300 for r in answers if r.status_code == 429)


async def test_a_guesser_at_one_address_does_not_lock_the_agent_out_at_their_desk(site):
    guesser = _from(site, GUESSER)
    for n in range(10):
        assert (await _sign_in(guesser, f"guess {n}")).status_code == 401
    assert (await _sign_in(guesser, PASSWORD)).status_code == 429

    assert (await _sign_in(_from(site, AGENT_DESK), PASSWORD)).status_code == 200


async def test_guesses_from_many_addresses_are_capped_per_user_name(site):
    site.ctx.logins = LoginThrottle(per_address=2, per_user=6)
    for n in range(6):
        assert (await _sign_in(_from(site, f"198.51.100.{n}"), "guess")).status_code == 401

    # Every address is fresh, the name is not: for everyone, until the window has passed.
    assert (await _sign_in(_from(site, "198.51.100.99"), PASSWORD)).status_code == 429
    assert (await _sign_in(_from(site, AGENT_DESK), PASSWORD, username="a3")).status_code == 200
    site.clock.advance(300)
    assert (await _sign_in(_from(site, AGENT_DESK), PASSWORD)).status_code == 200


async def test_a_success_forgives_that_addresses_earlier_failures_only(site):
    site.ctx.logins = LoginThrottle(per_address=4, per_user=5)
    desk, guesser = _from(site, AGENT_DESK), _from(site, GUESSER)
    for _ in range(2):
        assert (await _sign_in(desk, "typo")).status_code == 401
        assert (await _sign_in(guesser, "guess")).status_code == 401
    assert (await _sign_in(desk, PASSWORD)).status_code == 200
    # The desk starts afresh (four more); the guesser's two still count towards the user's five.
    assert [(await _sign_in(desk, "typo")).status_code for _ in range(4)] == [401, 401, 401, 429]


async def test_a_restart_does_not_forget_the_throttle(tmp_path, endpoint_hits, password_hash):
    config = Config.model_validate(config_data(tmp_path))
    site = await open_site(tmp_path, endpoint_hits, password_hash, config)
    try:
        guesser = _from(site, GUESSER)
        for n in range(10):
            assert (await _sign_in(guesser, f"guess {n}")).status_code == 401
    finally:
        await site.close()

    restarted = await bare_site(config, endpoint_hits)  # the same store, a new application
    try:
        refused = await _sign_in(_from(restarted, GUESSER), PASSWORD)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) == 300
        restarted.clock.advance(300)
        assert (await _sign_in(_from(restarted, GUESSER), PASSWORD)).status_code == 200
    finally:
        await restarted.close()


def test_an_ipv6_client_counts_as_its_64_and_a_mapped_ipv4_as_itself():
    assert (
        client_address("2001:db8:1:2:aaaa::1")
        == client_address("2001:db8:1:2:bbbb::9")
        == "2001:db8:1:2::/64"
    )
    assert client_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_address(None) == "unknown"
