"""schemathesis against the API served by the real uvicorn server, as every role.

Every operation of the OpenAPI document but the live stream (it never ends) gets generated
requests, valid and invalid, on a store seeded with tickets, as each of: nobody (no
credentials), an agent (API token), a supervisor (session cookie and its CSRF token) and an
admin (API token). Checked for every answer: no 5xx; a documented status's body conforms to
its schema; and the role boundary (schemathesis_roles.py): a role never gets a 2xx answer
from an operation that is not for it, as the table below says (README, "Roles"). That the
routes declare the same guards (Caller, Supervisor, Admin) is checked too, so a new route
has to be placed in the table. Real ticket numbers and ids are mixed into the generated ones
so the requests reach past the 404s into the handlers.
"""

import asyncio
import json
import os
import re
import sys
import typing
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from cti_bridge.config.model import WebConfig
from cti_bridge.store import users as user_store
from cti_bridge.web.auth import digest, new_token
from cti_bridge.web.context import CSRF_HEADER, SESSION_COOKIE, Admin, Caller, Supervisor
from cti_bridge.web.server import WebServer
from tests.unit.web.conftest import PASSWORD, T0

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
HOOKS = Path(__file__).with_name("schemathesis_roles.py")
_RUN_SECONDS = 150  # a run takes 5-25 s; this only keeps a hung one from hanging the suite
# Run on their own and last: the admin's token and account are among the ids they are fed,
# and signing out ends the supervisor's session.
_SELF_HARM = r"^/api/(tokens|users)/\{|^/api/session$"
_LIVE_STREAM = "/api/events"
# Generated requests per operation: the admin reaches every handler; the other roles are
# mostly about where they are stopped, which takes fewer (and keeps the CI time down).
_EXAMPLES = {"admin": 40, "supervisor": 10, "agent": 10, "anonymous": 5}
# Nobody is refused before any parameter is looked at: the coverage phase's boundary values
# would only meet the same 401.
_PHASES = {"anonymous": "examples,fuzzing"}
_CHECKS = "not_a_server_error,response_schema_conformance,role_boundary"
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


# Who may use what; every other operation is for anybody signed in.
_PUBLIC = {"GET /api/health", "POST /api/session"}
_SUPERVISORS = {"POST /api/kb/articles", "PATCH /api/kb/articles/{article_id}", "GET /api/reports/kpi"}
_ADMINS = {
    "GET /api/users",
    "POST /api/users",
    "PATCH /api/users/{user_id}",
    "GET /api/tokens",
    "POST /api/users/{user_id}/tokens",
    "DELETE /api/tokens/{token_id}",
}


def roles_of(operation: str) -> list[str]:
    if operation in _PUBLIC:
        return ["anonymous", "agent", "supervisor", "admin"]
    if operation in _ADMINS:
        return ["admin"]
    if operation in _SUPERVISORS:
        return ["supervisor", "admin"]
    return ["agent", "supervisor", "admin"]


def declared_roles(app) -> dict[str, list[str]]:
    """The roles each operation ("METHOD /path") is for, from the guards its route declares."""
    guards = {typing.get_args(kind)[1].dependency: kind for kind in (Caller, Supervisor, Admin)}

    def guard(dependant) -> object | None:
        found = [guards[d.call] for d in dependant.dependencies if d.call in guards]
        found += [g for d in dependant.dependencies if (g := guard(d)) is not None]
        # The narrowest wins: Admin needs Caller, Supervisor needs Caller.
        return next((kind for kind in (Admin, Supervisor, Caller) if kind in found), None)

    roles = {
        None: ["anonymous", "agent", "supervisor", "admin"],
        Caller: ["agent", "supervisor", "admin"],
        Supervisor: ["supervisor", "admin"],
        Admin: ["admin"],
    }
    return {
        f"{method} {route.path}": roles[guard(route.dependant)]
        for route in _api_routes(app.routes)
        if route.include_in_schema
        for method in route.methods
    }


def _api_routes(routes):
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # FastAPI 0.165 keeps an included router as one route (its paths are the router's,
        # create_app includes them without a prefix).
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(included.routes)


async def _credentials(site, role) -> list[str]:
    """The CLI's --header options that make its requests as `role`."""
    if role == "anonymous":
        return []
    if role == "supervisor":
        browser = await site.signed_in("sup", PASSWORD)
        session = browser.cookies[SESSION_COOKIE]
        return ["--header", f"Cookie: {SESSION_COOKIE}={session}", "--header", _csrf_header(browser)]
    user = {"agent": "a1", "admin": "admin"}[role]
    token = new_token()
    await user_store.add_token(
        site.store.database, user, label="schemathesis", token_hash=digest(token), at=T0
    )
    return ["--header", f"Authorization: Bearer {token}"]


def _csrf_header(browser) -> str:
    return f"{CSRF_HEADER}: {browser.headers[CSRF_HEADER]}"


async def _schemathesis(url, role, config, report, roles_file, headers, *selection):
    run = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{url}/api/openapi.json",
        "--checks",
        _CHECKS,
        *headers,
        "--phases",
        _PHASES.get(role, "examples,coverage,fuzzing"),
        "--max-examples",
        str(_EXAMPLES[role]),
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
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": str(HOOKS),
            "CTI_SCHEMATHESIS_ROLE": role,
            "CTI_SCHEMATHESIS_ROLES": str(roles_file),
        },
    )
    output, _ = await asyncio.wait_for(run.communicate(), _RUN_SECONDS)
    return run.returncode, output.decode(errors="replace")


async def test_the_routes_guard_what_the_table_says(site):
    declared = declared_roles(site.app)
    assert declared == {operation: roles_of(operation) for operation in declared}


@pytest.mark.parametrize("role", ["anonymous", "agent", "supervisor", "admin"])
async def test_no_generated_request_gets_a_server_error_or_past_its_role(site, tmp_path, role):
    roles = {operation: roles_of(operation) for operation in declared_roles(site.app)}
    roles_file = tmp_path / "roles.json"
    roles_file.write_text(json.dumps(roles), encoding="utf-8")
    operations = [op for op in roles if op.split(" ", 1)[1] != _LIVE_STREAM]
    self_harm = [op for op in operations if re.search(_SELF_HARM, op.split(" ", 1)[1])]
    config = tmp_path / "schemathesis.toml"
    numbers = ", ".join(f'"{n}"' for n in site.seeded.tickets.values())
    config.write_text(_CONFIG.format(tickets=numbers), encoding="utf-8")
    await site.store.kb_add_article(title="登录异常", body="重置密码。", actor="sup", at=T0)
    headers = await _credentials(site, role)
    server = WebServer(site.app, WebConfig(port=0))
    serving = asyncio.create_task(server.run(), name="web-under-schemathesis")
    try:
        code, output = await _schemathesis(
            server.url,
            role,
            config,
            tmp_path / "report",
            roles_file,
            headers,
            "--exclude-path",
            _LIVE_STREAM,
            "--exclude-path-regex",
            _SELF_HARM,
        )
        assert code == 0, output
        assert f"{len(operations) - len(self_harm)} passed" in output, output
        if role != "anonymous":  # signed in all along: every operation was reached, not just refused
            who = site.client(dict(h.split(": ", 1) for h in headers[1::2]))
            assert (await who.get("/api/me")).status_code == 200

        code, output = await _schemathesis(
            server.url,
            role,
            config,
            tmp_path / "report-2",
            roles_file,
            headers,
            "--include-path-regex",
            _SELF_HARM,
        )
        assert code == 0, output
        assert f"{len(self_harm)} passed" in output, output
    finally:
        site.ctx.hub.close()
        server.stop()
        await serving


async def test_the_documented_422_is_the_answer_an_invalid_request_gets(site):
    documented = site.app.openapi()["paths"]["/api/calls"]["get"]["responses"]["422"]
    assert documented["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InvalidRequest"
    }
    answer = await site.as_user("a1").get("/api/calls", params={"limit": 0})
    assert answer.status_code == 422
    assert answer.json() == {
        "detail": "invalid request",
        "problems": [{"where": "query.limit", "problem": "Input should be greater than or equal to 1"}],
    }
