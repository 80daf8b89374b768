"""/api/session, /api/me, /api/users, /api/tokens: signing in, and who may do what."""

from __future__ import annotations

import math
import secrets
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from cti_bridge.store import users as user_store
from cti_bridge.store.users import UserError
from cti_bridge.web import schemas as s
from cti_bridge.web.auth import Principal, digest, hash_password, new_session_id, new_token, password_matches
from cti_bridge.web.context import SESSION_COOKIE, Admin, Caller, Ctx, RowId, WebContext, unauthorized

router = APIRouter(prefix="/api", tags=["accounts"])


def _me(who: Principal) -> s.Me:
    return s.Me(
        user=s.UserOut.of(who.user),
        team=who.team,
        sees_agents=sorted(who.sees_agents) if who.sees_agents is not None else None,
        csrf_token=who.csrf_token,
    )


@router.post(
    "/session",
    response_model=s.Me,
    summary="Sign in: sets the session cookie",
    responses={
        401: {"description": "Wrong user name or password."},
        429: {"description": "Too many failed sign-ins for this user (from this address): see Retry-After."},
    },
)
async def sign_in(body: s.Login, request: Request, response: Response, ctx: Ctx) -> s.Me:
    db = ctx.store.database
    now = ctx.clock()
    address = request.client.host if request.client else None
    # Counted as a failure before the check, and forgiven if it succeeds: attempts sent at
    # once are all counted before any is checked.
    wait = await ctx.logins.admit(db, body.username, address, now)
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed sign-ins for this user: try again later",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    found = await user_store.password_hash(db, body.username)
    # Checked even for an unknown name (against a dummy hash): the answer takes as long.
    if not await password_matches(found[1] if found else None, body.password) or found is None:
        raise unauthorized("wrong user name or password")
    await ctx.logins.succeeded(db, body.username, address)
    user = found[0]
    session_id, csrf = new_session_id(), secrets.token_urlsafe(24)
    lifetime = ctx.config.web.session_lifetime.total_seconds()
    await user_store.open_session(
        db, user.id, id_hash=digest(session_id), csrf_token=csrf, at=now, expires_at=now + lifetime
    )
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(lifetime),
        httponly=True,  # page scripts never need it: they send the CSRF token instead
        samesite="strict",  # another site's links and forms arrive without it
        secure=secure_cookie(ctx, request),
        path="/",
    )
    return _me(Principal.of(user, ctx.teams, via="session", csrf_token=csrf))


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT, summary="Sign out")
async def sign_out(request: Request, response: Response, ctx: Ctx, who: Caller) -> None:
    if who.via != "session":
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "an API token has no session: revoke the token")
    await user_store.close_session(ctx.store.database, digest(request.cookies[SESSION_COOKIE]))
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=secure_cookie(ctx, request)
    )


def secure_cookie(ctx: WebContext, request: Request) -> bool:
    """Whether the session cookie is sent over HTTPS only: it is when the browser came in over
    HTTPS (served so, or through a trusted proxy that says so), or the site is https."""
    web = ctx.config.web
    public = web.public_url is not None and web.public_url.startswith("https://")
    return web.secure_cookies or public or request.url.scheme == "https"


@router.get("/me", response_model=s.Me)
async def me(who: Caller) -> s.Me:
    return _me(who)


@router.patch("/me", response_model=s.Me, summary="Own name and language")
async def update_me(body: s.MeUpdate, ctx: Ctx, who: Caller) -> s.Me:
    user = await user_store.update_user(
        ctx.store.database, who.user.id, name=body.name, language=body.language
    )
    return _me(Principal.of(user, ctx.teams, via=who.via, csrf_token=who.csrf_token))


# -- administration ------------------------------------------------------------------------


@router.get("/users", response_model=list[s.UserOut])
async def list_users(ctx: Ctx, who: Admin) -> list[s.UserOut]:
    return [s.UserOut.of(u) for u in await user_store.users(ctx.store.database)]


@router.post("/users", response_model=s.UserOut, status_code=status.HTTP_201_CREATED)
async def add_user(body: s.NewUser, ctx: Ctx, who: Admin) -> s.UserOut:
    agent_id = check_agent(ctx, body.role, body.agent_id or (body.id if body.role == "agent" else None))
    try:
        user = await user_store.add_user(
            ctx.store.database,
            body.id,
            role=body.role,
            name=body.name,
            agent_id=agent_id,
            language=body.language,
            password_hash=await hash_password(body.password) if body.password else None,
            at=ctx.clock(),
        )
    except UserError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return s.UserOut.of(user)


@router.patch("/users/{user_id}", response_model=s.UserOut)
async def update_user(user_id: str, body: s.UserUpdate, ctx: Ctx, who: Admin) -> s.UserOut:
    existing = await user_store.user(ctx.store.database, user_id)
    if existing is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id!r}")
    role = body.role or existing.role
    if body.role is not None or body.agent_id is not None:
        check_agent(ctx, role, body.agent_id or existing.agent_id or (user_id if role == "agent" else None))
    user = await user_store.update_user(
        ctx.store.database,
        user_id,
        name=body.name,
        role=body.role,
        agent_id=body.agent_id,
        language=body.language,
        password_hash=await hash_password(body.password) if body.password else None,
        disabled=body.disabled,
    )
    return s.UserOut.of(user)


@router.get("/tokens", response_model=list[s.TokenOut])
async def list_tokens(
    ctx: Ctx, who: Admin, user: Annotated[str | None, Query(max_length=64)] = None
) -> list[s.TokenOut]:
    return [s.TokenOut.of(t) for t in await user_store.tokens(ctx.store.database, user)]


@router.post("/users/{user_id}/tokens", response_model=s.IssuedToken, status_code=status.HTTP_201_CREATED)
async def issue_token(user_id: str, body: s.NewToken, ctx: Ctx, who: Admin) -> s.IssuedToken:
    token = new_token()
    try:
        issued = await user_store.add_token(
            ctx.store.database, user_id, label=body.label, token_hash=digest(token), at=ctx.clock()
        )
    except UserError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id!r}") from None
    return s.IssuedToken(**s.TokenOut.of(issued).model_dump(), token=token)


@router.delete("/tokens/{token_id}", response_model=s.TokenOut)
async def revoke_token(token_id: RowId, ctx: Ctx, who: Admin) -> s.TokenOut:
    try:
        return s.TokenOut.of(await user_store.revoke_token(ctx.store.database, token_id, at=ctx.clock()))
    except UserError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id}") from None


def check_agent(ctx: WebContext, role: str, agent_id: str | None) -> str | None:
    """An agent user stands for one of the config's agents: their calls and tickets."""
    if role != "agent":
        return agent_id
    known = {a.id for a in ctx.config.agents}
    if agent_id not in known:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"agent {agent_id!r} is not in the config's agents ({', '.join(sorted(known)) or 'none'})",
        )
    return agent_id
