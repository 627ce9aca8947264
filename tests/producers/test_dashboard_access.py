"""Who may see the dashboard: the token as a Bearer header, a cookie or ``?token=``; no token in later URLs."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from aiohttp import web

from photostream.warehouse import QueryResult
from producers import problems
from producers.dashboard import COOKIE, Dashboard

TOKEN = "s3cret-dashboard-token"  # noqa: S105 - a test token


class EmptyReader:
    """A warehouse with no rows yet."""

    async def query(self, sql, parameters=None):
        return QueryResult(columns=(), types=(), rows=())

    async def close(self):
        pass


@web.middleware
async def render_problems(request, handler):
    try:
        return await handler(request)
    except problems.ProblemError as error:
        return error.problem.response(error.headers)


@pytest.fixture
async def make_client(aiohttp_client):
    async def make(token: str | None = TOKEN):
        dashboard = Dashboard(EmptyReader(), "photostream", token=token)
        app = web.Application(middlewares=[render_problems])
        app.router.add_get("/dashboard", dashboard.page)
        app.router.add_get("/dashboard/data", dashboard.data_json)
        return await aiohttp_client(app)

    return make


async def test_the_page_opened_with_the_token_sets_a_strict_httponly_cookie_that_the_data_requests_carry(make_client):
    client = await make_client()
    assert (await client.get("/dashboard/data")).status == 404

    page = await client.get("/dashboard?token=" + TOKEN)
    assert page.status == 200
    header = page.headers["Set-Cookie"]
    assert TOKEN not in header  # the cookie proves the token was shown; it is not the token
    cookie = SimpleCookie(header)[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/dashboard"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    html = await page.text()
    assert "history.replaceState" in html  # the script takes the token out of the address bar
    assert 'query.set("token"' not in html  # and never puts it into the data requests' URLs

    # What the page's script does next: fetch the data with no token, the browser sending the cookie.
    data = await client.get("/dashboard/data?minutes=5")
    assert data.status == 200, await data.text()
    assert (await data.json())["minutes"] == 5
    assert (await client.get("/dashboard")).status == 200  # reloading the page needs no token either


async def test_a_wrong_token_or_cookie_sets_nothing_and_sees_nothing(make_client):
    client = await make_client()
    wrong = await client.get("/dashboard?token=wrong")
    assert wrong.status == 404
    assert "Set-Cookie" not in wrong.headers
    assert (await client.get("/dashboard/data", headers={"Cookie": f"{COOKIE}={TOKEN}"})).status == 404
    assert (await client.get("/dashboard/data", headers={"Cookie": f"{COOKIE}=0000"})).status == 404


async def test_bearer_header_and_query_token_still_work(make_client):
    client = await make_client()
    assert (await client.get("/dashboard/data", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
    assert (await client.get("/dashboard/data", headers={"Authorization": "Bearer wrong"})).status == 404
    assert (await client.get("/dashboard/data?token=" + TOKEN)).status == 200  # the documented contract


async def test_a_cookie_from_another_token_is_refused(make_client):
    first = await make_client()
    await first.get("/dashboard?token=" + TOKEN)
    [cookie] = [c for c in first.session.cookie_jar if c.key == COOKIE]
    rotated = await make_client(token="the-next-token")
    assert (await rotated.get("/dashboard/data", headers={"Cookie": f"{COOKIE}={cookie.value}"})).status == 404


async def test_without_a_token_loopback_sees_it_and_no_cookie_is_set(make_client):
    client = await make_client(token=None)
    page = await client.get("/dashboard?token=anything")
    assert page.status == 200
    assert "Set-Cookie" not in page.headers
