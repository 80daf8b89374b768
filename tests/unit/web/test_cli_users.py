"""`cti-bridge users ...` on a real store file, and the API honouring what it did."""

import asyncio
import io
import json
import sys

import pytest

from cti_bridge.cli import main
from cti_bridge.config import Config
from tests.unit.web.conftest import bare_site, config_data


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "cti-bridge.yaml"
    # A file may not say port 0 (a random port); `users` never listens, so any real port does.
    data = config_data(tmp_path, web={"port": 8080})
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture
async def cli(config_file, capsys, monkeypatch):
    """Runs `cti-bridge users ...` (in a thread: it runs its own event loop) with `stdin` typed in;
    returns the exit code, standard output and standard error."""

    async def run(*args, stdin=""):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = await asyncio.to_thread(main, ["users", *args, "-c", str(config_file)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
async def site_on_the_file(config_file, endpoint_hits):
    config = Config.model_validate_json(config_file.read_text(encoding="utf-8"))
    site = await bare_site(config, endpoint_hits)
    yield site
    await site.close()


async def test_users_added_by_the_cli_sign_in_and_their_tokens_work(cli, site_on_the_file):
    site = site_on_the_file
    assert await cli(
        "add", "a1", "--role", "agent", "--name", "Agent One", "--password-stdin", stdin="night shift 1\n"
    ) == (
        0,
        "added agent a1 (agent a1)\n",
        "",
    )
    assert (await cli("add", "boss", "--role", "admin", "--language", "zh", "--no-password"))[:2] == (
        0,
        "added admin boss\n",
    )
    code, _, err = await cli("add", "a9", "--role", "agent", "--password-stdin", stdin="long enough\n")
    assert code == 1 and "agent 'a9' is not in" in err
    code, _, err = await cli("add", "a1", "--role", "agent", "--password-stdin", stdin="long enough\n")
    assert code == 1 and err == "cti-bridge: user 'a1' exists\n"
    code, _, err = await cli("add", "a2", "--role", "agent", "--password-stdin", stdin="short\n")
    assert code == 1 and err == "cti-bridge: a password needs at least 8 characters\n"
    code, _, err = await cli("add", "a2", "--role", "agent")  # no terminal to ask on
    assert code == 1 and "--password-stdin" in err

    code, out, _ = await cli("list")
    assert code == 0
    assert out.splitlines() == [
        f"{'a1':<20} {'agent':<10} agent=a1 Agent One",
        f"{'boss':<20} {'admin':<10} " + "  [no password]",
    ]

    code, token, _ = await cli("token", "a1", "--label", "crm-sync")
    token = token.strip()
    assert code == 0 and token.startswith("ctb_")
    by_token = site.client({"Authorization": f"Bearer {token}"})
    me = (await by_token.get("/api/me")).json()
    assert (me["user"]["id"], me["user"]["name"], me["team"]) == ("a1", "Agent One", "t1")
    browser = await site.signed_in("a1", "night shift 1")
    assert (
        await site.client().post("/api/session", json={"username": "boss", "password": "x"})
    ).status_code == 401
    code, _, err = await cli("token", "nobody", "--label", "x")
    assert code == 1 and err == "cti-bridge: no user 'nobody'\n"

    # A new password signs a1 out and replaces the old one.
    assert (await cli("password", "a1", "--password-stdin", stdin="day shift 22\n"))[0] == 0
    assert (await browser.get("/api/me")).status_code == 401
    old = await site.client().post("/api/session", json={"username": "a1", "password": "night shift 1"})
    assert old.status_code == 401
    await site.signed_in("a1", "day shift 22")

    code, out, _ = await cli("tokens")
    [line] = out.splitlines()
    token_id = line.split()[0]
    assert line.split()[1:4] == ["a1", "crm-sync", "live"]
    assert await cli("revoke", token_id) == (0, "", "")
    assert (await by_token.get("/api/me")).status_code == 401
    assert (await cli("tokens"))[1].split()[3] == "revoked"
    assert (await cli("revoke", "999"))[0] == 1

    assert (await cli("disable", "a1"))[0] == 0
    disabled = await site.client().post("/api/session", json={"username": "a1", "password": "day shift 22"})
    assert disabled.status_code == 401
    assert "[disabled]" in (await cli("list"))[1]
    assert (await cli("enable", "a1"))[0] == 0
    await site.signed_in("a1", "day shift 22")
