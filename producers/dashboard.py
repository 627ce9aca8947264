"""The pipeline's dashboard: one page of charts, and the JSON it refreshes from, read from ClickHouse.

Served by the gateway at ``/dashboard`` (page) and ``/dashboard/data`` (JSON, the last hour by
default). It shows every photographer's numbers, so it is for operators: with
``GATEWAY_DASHBOARD_TOKEN`` set the token is required, as a Bearer header, the cookie below,
or ``?token=``; without one, only clients on the loopback interface may see it.

A page opened with a valid ``?token=`` answers with an HttpOnly, SameSite=Strict cookie
(``photostream_dashboard``) and takes the token out of the address bar, so the page's own
data requests carry the cookie rather than the token in a URL. The cookie holds an HMAC of
the token, not the token. (A redirect would do the same, but a SameSite=Strict cookie is not
sent on a redirect that began on another site, e.g. a link in a chat: the page would 404.)
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from importlib import resources
from typing import Any

from aiohttp import web

from photostream.http import bearer_token
from photostream.warehouse import Reader, WarehouseError, jsonable
from producers import problems

PAGE = resources.files("producers").joinpath("static/dashboard.html")
COOKIE = "photostream_dashboard"


class Dashboard:
    """Builds the dashboard's data from the pipeline's views."""

    def __init__(self, reader: Reader, database: str, *, token: str | None = None, retry_after: int = 5) -> None:
        """Read through ``reader`` (not owned: its owner closes it) from ``database``; ``token`` guards access.

        ``retry_after``: seconds of ``Retry-After`` when the store does not answer (``GATEWAY_RETRY_AFTER_SECONDS``).
        """
        self._reader = reader
        self._token = token
        # The cookie proves the token was shown without being the token.
        self._cookie = hmac.new((token or "").encode(), b"photostream dashboard cookie", hashlib.sha256).hexdigest()
        self._retry_after = retry_after
        # Read once: the page never changes while the process runs, and handlers stay off the disk.
        self._page = PAGE.read_text(encoding="utf-8")
        db = database
        window = "minute >= toStartOfMinute(now() - toIntervalMinute({minutes:UInt32}))"
        self.queries = {
            "throughput": (
                "SELECT minute, photographer_id, images, failures, bytes_in, bytes_out, p50_ms, p95_ms "  # noqa: S608
                f"FROM {db}.throughput_per_minute WHERE {window} ORDER BY minute, photographer_id"
            ),
            "latency": (
                "SELECT minute, images, gateway_p50_ms, queue_p50_ms, processing_p50_ms, storage_p50_ms, "  # noqa: S608
                "gateway_p95_ms, queue_p95_ms, processing_p95_ms, storage_p95_ms, "
                f"end_to_end_p50_ms, end_to_end_p95_ms, end_to_end_p99_ms FROM {db}.stage_latency_per_minute "
                f"WHERE {window} ORDER BY minute"
            ),
            "failures": f"SELECT stage, reason, failures FROM {db}.failures_by_reason ORDER BY failures DESC",  # noqa: S608
            "cameras": (
                "SELECT concat(camera_make, ' ', ifNull(camera_model, '')) AS camera, sum(images) AS images "  # noqa: S608
                f"FROM {db}.cameras GROUP BY camera ORDER BY images DESC LIMIT 10"
            ),
        }

    async def data(self, minutes: int = 60) -> dict[str, Any]:
        """Every chart's rows for the last ``minutes`` (failures and cameras are all-time)."""
        out: dict[str, Any] = {"minutes": minutes}
        for name, sql in self.queries.items():
            result = await self._reader.query(sql, {"minutes": minutes})
            out[name] = [{k: jsonable(v) for k, v in row.items()} for row in result.dicts()]
        return out

    def allowed(self, request: web.Request) -> bool:
        """Whether the request may see the dashboard (see the module docstring)."""
        if self._token:
            if (given := bearer_token(request)) is not None:
                return hmac.compare_digest(given.encode(), self._token.encode())
            if hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), self._cookie.encode()):
                return True
            return self._query_token_valid(request)
        try:
            return ipaddress.ip_address(request.remote or "").is_loopback
        except ValueError:
            return False

    def _query_token_valid(self, request: web.Request) -> bool:
        return bool(self._token) and hmac.compare_digest(
            request.query.get("token", "").encode(), (self._token or "").encode()
        )

    async def page(self, request: web.Request) -> web.Response:
        """The HTML page; it fetches ``data`` itself and redraws every few seconds."""
        self._guard(request)
        # no-referrer: the address may still hold ?token= until the page's script removes it.
        response = web.Response(
            text=self._page,
            content_type="text/html",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )
        if self._query_token_valid(request):
            response.set_cookie(
                COOKIE, self._cookie, path="/dashboard", httponly=True, samesite="Strict", secure=request.secure
            )
        return response

    async def data_json(self, request: web.Request) -> web.Response:
        """The charts' data as JSON."""
        self._guard(request)
        try:
            minutes = min(max(int(request.query.get("minutes", "60")), 1), 24 * 60)
        except ValueError:
            raise problems.bad_request("minutes must be a whole number") from None
        try:
            return web.json_response(await self.data(minutes), headers={"Cache-Control": "no-store"})
        except WarehouseError as error:
            raise problems.unavailable(f"the analytics store does not answer: {error}", self._retry_after) from error

    def _guard(self, request: web.Request) -> None:
        if not self.allowed(request):
            # As for another photographer's upload: nothing tells an outsider the page exists.
            raise problems.not_found("no such page")
