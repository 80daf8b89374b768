"""Protective headers on every answer: pages, static files, data, and every kind of error."""

import httpx

from cti_bridge.web.app import MAX_JSON_BODY
from tests.unit.web.conftest import PASSWORD

_EVERYWHERE = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def _protected(response: httpx.Response) -> None:
    for name, value in _EVERYWHERE.items():
        assert response.headers.get(name) == value, (response.request.url, response.status_code, name)
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy, (response.request.url, policy)
    assert "strict-transport-security" not in response.headers  # plain HTTP: HSTS is for HTTPS only


async def test_every_kind_of_answer_gets_the_protective_headers(site):
    anonymous, agent = site.client(), site.as_user("a1")
    answers = {
        200: await agent.get("/api/me"),
        201: await site.as_user("sup").post("/api/kb/articles", json={"title": "t", "body": "b"}),
        303: await anonymous.get("/"),
        401: await anonymous.get("/api/tickets"),
        403: await agent.get("/api/users"),
        404: await agent.get("/api/tickets/T-999999"),
        405: await agent.put("/api/me"),
        413: await agent.patch("/api/me", content=b"{" + b" " * MAX_JSON_BODY + b"}"),
        422: await agent.get("/api/calls", params={"limit": "many"}),
    }
    for n in range(10):
        answers[401] = await anonymous.post("/api/session", json={"username": "a2", "password": f"no {n}"})
    answers[429] = await anonymous.post("/api/session", json={"username": "a2", "password": PASSWORD})
    for status, response in answers.items():
        assert response.status_code == status, (status, response.text)
        _protected(response)
        assert response.headers["cache-control"] == "no-store"

    for path in ("/login", "/agent", "/static/app.css", "/static/favicon.svg", "/static/nothing-here.js"):
        page = await anonymous.get(path)
        _protected(page)
        assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_a_server_error_gets_them_too(site):
    await site.store.close()  # every query fails now: the handler raises
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=site.app, raise_app_exceptions=False), base_url="http://testserver"
    )
    site.clients.push_async_callback(client.aclose)
    failed = await client.get("/api/tickets", headers={"Authorization": f"Bearer {site.tokens['a1']}"})
    assert failed.status_code == 500
    _protected(failed)


async def test_an_answer_over_https_tells_the_browser_to_keep_to_https(site):
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=site.app), base_url="https://testserver")
    site.clients.push_async_callback(client.aclose)
    answer = await client.get("/api/health")
    assert answer.headers["strict-transport-security"] == "max-age=31536000"
