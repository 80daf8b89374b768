"""The HTTP API and the browser pages: one FastAPI application served inside the daemon.

FastAPI over aiohttp: the request and response bodies are pydantic models like the rest of
the bridge (config, MQTT payloads), FastAPI turns those same models into the OpenAPI
document that integrators and schemathesis read, and uvicorn's `Server.serve()` is a plain
coroutine that runs as one more task of the daemon's TaskGroup, on its event loop.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from importlib import metadata, resources
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cti_bridge.store import StoreUnavailable
from cti_bridge.tickets import workflow as w
from cti_bridge.tickets.fields import FieldSpec
from cti_bridge.tickets.model import TicketStatus
from cti_bridge.web import accounts, tickets
from cti_bridge.web import resources as resource_routes
from cti_bridge.web import schemas as s
from cti_bridge.web.context import SESSION_COOKIE, Caller, Ctx, WebContext

STATIC = resources.files("cti_bridge.web") / "static"

_PAGES = {"/login": "login.html", "/agent": "agent.html", "/supervisor": "supervisor.html"}
# Every answer, error or not: no type guessing (a JSON error read as HTML), no framing by
# another site (clickjacking), no ticket URLs in the Referer sent to other sites.
_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
# Pages and their static files: nothing but this server's own scripts and styles.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self';"
        " script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "Cache-Control": "no-store",
}
# The API answers data, never a document to render: a response opened as a page runs nothing.
# Its answers carry tickets and callers' details, which no shared cache may keep.
_API_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
}
_DOCS_PATH = "/api/docs"  # Swagger UI loads its script from a CDN: not under the API's policy
# Browsers that reached us over HTTPS keep to it for a year (sent over HTTPS only, RFC 6797).
_HSTS = ("Strict-Transport-Security", "max-age=31536000")
# Request bodies: JSON bodies are small (a knowledge-base article of 100,000 characters is
# under 1 MiB even with every character escaped); uploads have their own, larger limit.
MAX_JSON_BODY = 1 << 20


class _SecurityHeaders:
    """Adds the headers above to every response, including those of the error middleware
    (it wraps the whole application, outside FastAPI's own middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = {**_COMMON_HEADERS}
        if not path.startswith("/api/"):
            extra |= _PAGE_HEADERS
        elif path != _DOCS_PATH:
            extra |= _API_HEADERS
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers.setdefault(name, value)
                if secure:
                    headers.setdefault(*_HSTS)
            await send(message)

        await self._app(scope, receive, send_with_headers)


class _Application(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        return _SecurityHeaders(super().build_middleware_stack())


def create_app(ctx: WebContext) -> FastAPI:
    app = _Application(
        title="cti-bridge",
        version=_version(),
        summary="Tickets, calls, recordings and KPIs of an Asterisk call centre.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        # Past it a request gets 413: refused at its Content-Length before any of it is
        # read, or as soon as a body without one (chunked) has sent more.
        max_body_size=MAX_JSON_BODY,
        # What _invalid_request answers, instead of FastAPI's default 422 body in the document.
        responses={422: {"model": s.InvalidRequest, "description": "The request does not fit the operation"}},
    )
    app.state.context = ctx
    app.include_router(accounts.router)
    app.include_router(tickets.router)
    app.include_router(resource_routes.router)
    app.add_api_route("/api/health", health, methods=["GET"], response_model=s.HealthOut, tags=["health"])
    app.add_api_route("/api/meta", meta, methods=["GET"], tags=["health"], summary="What the forms offer")
    app.add_api_route(
        "/api/events",
        events,
        methods=["GET"],
        tags=["live"],
        response_class=StreamingResponse,
        summary="Server-Sent Events: screen-pops, ticket notices, SLA notices, notifications",
    )
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    for path, name in _PAGES.items():
        app.add_api_route(path, _page(name), methods=["GET"], include_in_schema=False)
    app.add_api_route("/", _home, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


async def health(ctx: Ctx) -> s.HealthOut:
    """No sign-in needed: for load balancers and monitoring."""
    try:
        # Whether writes go through (a SELECT succeeds on a full disk and under another
        # process's write lock); asked beside the daemon's queued work, never behind it.
        store_ok = await ctx.store.database.check(time.time())
    except Exception:  # the point of a health check is to say so, not to fail
        store_ok = False
    pbxs = ctx.health.pbx_connected()
    mqtt = ctx.health.mqtt_connected()
    ok = store_ok and mqtt and all(pbxs.values())
    return s.HealthOut(
        status="ok" if ok else "degraded",
        store=store_ok,
        mqtt=mqtt,
        pbxs=pbxs,
        live_calls=len(ctx.health.live_calls()),
        version=_version(),
    )


async def meta(ctx: Ctx, who: Caller) -> dict[str, Any]:
    """Categories, priorities, fields, statuses and agents, for the pages' forms."""
    schema = ctx.workflow.schema
    return {
        "categories": [_node(n) for n in schema.categories.roots],
        "category_min_depth": schema.categories.min_depth,
        "priorities": [
            {
                "code": code,
                **next(
                    ({"zh": n.zh, "en": n.en} for n in schema.priorities.names if n.priority == code),
                    {"zh": code, "en": code},
                ),
            }
            for code in ("P1", "P2", "P3", "P4")
        ],
        "statuses": [str(x) for x in TicketStatus],
        "fields": [_field(spec) for spec in schema.specs.values()],
        "required_fields": {str(x): list(schema.required_for(x)) for x in TicketStatus},
        "commands": {str(x): list(w.allowed_commands(x)) for x in TicketStatus},
        "agents": [
            {"id": a.id, "name": a.name or a.id, "team": a.team}
            for a in ctx.config.agents
            if who.sees_agents is None or a.id in who.sees_agents
        ],
        "teams": [{"name": t.name, "label": t.label, "supervisor": t.supervisor} for t in ctx.config.teams],
        # Click-to-dial is offered to agents when a PBX may originate (pbxs[].originate).
        "can_dial": who.agent_id is not None and ctx.dialer is not None and ctx.dialer.enabled,
    }


async def events(request: Request, ctx: Ctx, who: Caller) -> StreamingResponse:
    return StreamingResponse(
        ctx.hub.stream(who),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _home(request: Request) -> RedirectResponse:
    """Pages find out who is signed in from /api/me; without a cookie, go straight to sign-in."""
    target = "/agent" if request.cookies.get(SESSION_COOKIE) else "/login"
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


def _page(name: str) -> Any:
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / name), media_type="text/html; charset=utf-8")

    page.__name__ = f"page_{name.split('.')[0]}"
    return page


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"where": ".".join(str(p) for p in error.get("loc", ())), "problem": error.get("msg", "")}
        for error in exc.errors()
    ]
    return JSONResponse(
        {"detail": "invalid request", "problems": problems}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A full disk or a lock held elsewhere: nothing was written, and the same request may
    succeed in a moment. A 503 with Retry-After says so; a 500 would say the request is wrong."""
    assert isinstance(exc, StoreUnavailable)
    return JSONResponse(
        {"detail": "store unavailable, retry", "reason": exc.reason},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


def _node(node: Any) -> dict[str, Any]:
    return {"key": node.key, "zh": node.zh, "en": node.en, "children": [_node(c) for c in node.children]}


def _field(spec: FieldSpec) -> dict[str, Any]:
    described = asdict(spec)
    described["type"] = str(spec.type)
    described["choices"] = list(spec.choices)
    return described


def _version() -> str:
    try:
        return metadata.version("cti-bridge")
    except metadata.PackageNotFoundError:
        return "unknown"
