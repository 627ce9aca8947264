"""The gateway's access log writes no query string secrets."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from producers.accesslog import RedactingAccessLogger, redact_target


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/healthz", "/healthz"),
        ("/dashboard/data?minutes=5", "/dashboard/data?minutes=5"),
        ("/dashboard?token=s3cret", "/dashboard?token=REDACTED"),
        ("/dashboard/data?minutes=5&token=s3cret&x=1", "/dashboard/data?minutes=5&token=REDACTED&x=1"),
        ("/x?api_key=a&API-KEY=b&access_token=c", "/x?api_key=REDACTED&API-KEY=REDACTED&access_token=REDACTED"),
        ("/x?password=d&session=e", "/x?password=REDACTED&session=REDACTED"),
        ("/x?X-Amz-Signature=abc&X-Amz-Credential=def", "/x?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED"),
        ("/x?%74oken=s3cret", "/x?%74oken=REDACTED"),  # a percent-encoded name is still a token
        ("/x?k=psk_abcdef", "/x?k=REDACTED"),  # an API key under any name
        ("/x?token", "/x?token=REDACTED"),
        ("/x?", "/x?"),
    ],
)  # fmt: skip
def test_secret_parameters_are_redacted(target, expected):
    assert redact_target(target) == expected


async def test_the_logger_writes_the_request_line_without_the_secret(aiohttp_client, caplog):
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/dashboard", ok)
    server = TestServer(app)
    await server.start_server(access_log_class=RedactingAccessLogger)  # the runner's options, as in run_app
    client = await aiohttp_client(server)
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        response = await client.get(
            "/dashboard?minutes=5&token=s3cret-value", headers={"Referer": "http://h/dashboard?token=s3cret-value"}
        )
        assert response.status == 200
    lines = [record.getMessage() for record in caplog.records if record.name == "aiohttp.access"]
    assert len(lines) == 1, lines
    assert '"GET /dashboard?minutes=5&token=REDACTED HTTP/1.1" 200' in lines[0]
    assert "s3cret-value" not in caplog.text
