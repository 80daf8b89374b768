"""What every request handler needs (store, config, live hub), and who is asking.

Handlers take `Ctx` and `Caller` (or `Supervisor`, `Admin`) as parameters; FastAPI resolves
them per request. Authentication is a bearer token (integrations) or the session cookie
(browser pages); a change made through the cookie also needs the session's CSRF token in
the X-CSRF-Token header, which another site's page cannot read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from cti_bridge.calls.model import Call
from cti_bridge.calls.presence import AgentState
from cti_bridge.click_to_dial import ClickToDial
from cti_bridge.config import Config
from cti_bridge.screenpop.outputs import Publisher
from cti_bridge.store import Store
from cti_bridge.store import users as user_store
from cti_bridge.store.browse import Scope
from cti_bridge.tickets.sla import SlaPolicy
from cti_bridge.tickets.workflow import Workflow
from cti_bridge.web.auth import LoginThrottle, Principal, Teams, digest, same_secret
from cti_bridge.web.live import LiveHub

SESSION_COOKIE = "cti_session"
CSRF_HEADER = "X-CSRF-Token"
# SQLite integers are 64-bit: a larger id names no row, and must get a 422 rather than make
# the driver raise OverflowError (a 500).
ROW_ID_MAX = 2**63 - 1
RowId = Annotated[int, PathParam(ge=1, le=ROW_ID_MAX)]
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Health:
    """Live facts about the daemon's connections, read when /api/health is asked."""

    mqtt_connected: Callable[[], bool] = lambda: False
    pbx_connected: Callable[[], dict[str, bool]] = dict
    live_calls: Callable[[], Sequence[Call]] = tuple
    agent_states: Callable[[], Sequence[AgentState]] = tuple


@dataclass(slots=True, kw_only=True)
class WebContext:
    config: Config
    store: Store
    hub: LiveHub
    publisher: Publisher  # ticket notices from the API go out like the call path's (MQTT + pages)
    workflow: Workflow
    teams: Teams
    attachments_folder: Path
    health: Health = field(default_factory=Health)
    logins: LoginThrottle = field(default_factory=LoginThrottle)
    dialer: ClickToDial | None = None  # None: click-to-dial is not configured
    clock: Callable[[], float] = time.time
    sla_policy: SlaPolicy = field(init=False)  # the config's, made once

    def __post_init__(self) -> None:
        self.sla_policy = SlaPolicy.from_config(self.config)


def context(request: Request) -> WebContext:
    return request.app.state.context


Ctx = Annotated[WebContext, Depends(context)]

# Declared so the OpenAPI document names both ways in; checked by `caller` below.
_bearer = HTTPBearer(auto_error=False, description="An API token: `cti-bridge users token USER`.")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="Set by POST /api/session.")


def unauthorized(detail: str = "sign in, or send an API token") -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def caller(
    request: Request,
    ctx: Ctx,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    db = ctx.store.database
    now = ctx.clock()
    if bearer is not None:
        user = await user_store.token_user(db, digest(bearer.credentials), at=now)
        if user is None:
            raise unauthorized("unknown or revoked API token")
        return Principal.of(user, ctx.teams, via="token")
    if cookie:
        session = await user_store.session(db, digest(cookie), at=now)
        if session is None:
            raise unauthorized("session expired: sign in again")
        if request.method not in _SAFE_METHODS and not same_secret(
            request.headers.get(CSRF_HEADER, ""), session.csrf_token
        ):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing or wrong {CSRF_HEADER} header")
        return Principal.of(session.user, ctx.teams, via="session", csrf_token=session.csrf_token)
    raise unauthorized()


Caller = Annotated[Principal, Depends(caller)]


def _supervisor(principal: Caller) -> Principal:
    if not principal.is_supervisor:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "supervisors and admins only")
    return principal


def _admin(principal: Caller) -> Principal:
    if principal.user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admins only")
    return principal


Supervisor = Annotated[Principal, Depends(_supervisor)]
Admin = Annotated[Principal, Depends(_admin)]


def scope_of(principal: Principal) -> Scope:
    return Scope(principal.sees_agents, principal.agent_id)


def not_found(what: str) -> HTTPException:
    """Also what a user gets for something that exists but is not theirs to see: a 403 would
    tell them it exists."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}, or not yours to see")
