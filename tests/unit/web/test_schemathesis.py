"""schemathesis against the API served by the real uvicorn server: no request makes it fail.

Every operation of the OpenAPI document but the live stream (it never ends) gets generated
requests, valid and invalid, as an admin, on a store seeded with tickets; the check is that
none gets a 5xx answer. Real ticket numbers and ids are mixed into the generated ones so the
requests reach past the 404s into the handlers.
"""

import asyncio
import sys
from pathlib import Path

from cti_bridge.config.model import WebConfig
from cti_bridge.store import users as user_store
from cti_bridge.web.auth import digest, new_token
from cti_bridge.web.server import WebServer
from tests.unit.web.conftest import T0

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
_RUN_SECONDS = 120  # a run takes ~25 s; this only keeps a hung one from hanging the suite
# Run on their own and last: the admin's token and account are among the ids they are fed.
_SELF_HARM = r"^/api/(tokens|users)/\{"
_CONFIG = """
[dictionaries]
tickets = {{ values = [{tickets}] }}
ids = {{ values = [1, 2, 3] }}
users = {{ values = ["a1", "a2", "a3", "sup"] }}

[parameters]
"path.number" = {{ dictionary = "tickets", probability = 0.7 }}
"path.recording_id" = {{ dictionary = "ids", probability = 0.5 }}
"path.attachment_id" = {{ dictionary = "ids", probability = 0.5 }}
"path.customer_id" = {{ dictionary = "ids", probability = 0.5 }}
"path.article_id" = {{ dictionary = "ids", probability = 0.5 }}
"path.token_id" = {{ dictionary = "ids", probability = 0.5 }}
"path.user_id" = {{ dictionary = "users", probability = 0.5 }}
"""


async def _schemathesis(url, token, config, report, *selection):
    run = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{url}/api/openapi.json",
        "--checks",
        "not_a_server_error",
        "--header",
        f"Authorization: Bearer {token}",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "40",
        "--seed",
        "20270115",
        "--generation-database",
        "none",
        "--no-color",
        "--report-dir",
        str(report),
        *selection,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=report.parent,
    )
    output, _ = await asyncio.wait_for(run.communicate(), _RUN_SECONDS)
    return run.returncode, output.decode(errors="replace")


async def test_no_generated_request_gets_a_server_error(site, tmp_path):
    token = new_token()
    await user_store.add_token(
        site.store.database, "admin", label="schemathesis", token_hash=digest(token), at=T0
    )
    config = tmp_path / "schemathesis.toml"
    numbers = ", ".join(f'"{n}"' for n in site.seeded.tickets.values())
    config.write_text(_CONFIG.format(tickets=numbers), encoding="utf-8")
    await site.store.kb_add_article(title="登录异常", body="重置密码。", actor="sup", at=T0)
    server = WebServer(site.app, WebConfig(port=0))
    serving = asyncio.create_task(server.run(), name="web-under-schemathesis")
    try:
        code, output = await _schemathesis(
            server.url,
            token,
            config,
            tmp_path / "report",
            "--exclude-path",
            "/api/events",
            "--exclude-path-regex",
            _SELF_HARM,
        )
        assert code == 0, output
        assert "33 passed" in output, output  # every operation but the live stream and the self-harming ones
        # The admin was signed in all along: every operation was reached, not just refused.
        assert (await site.client({"Authorization": f"Bearer {token}"}).get("/api/me")).status_code == 200

        code, output = await _schemathesis(
            server.url, token, config, tmp_path / "report-2", "--include-path-regex", _SELF_HARM
        )
        assert code == 0, output
        assert "3 passed" in output, output
    finally:
        site.ctx.hub.close()
        server.stop()
        await serving
