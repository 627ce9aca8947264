"""HTTP pieces every server of the project shares: Bearer tokens and RFC 9457 problem bodies."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

# Relative type URIs (RFC 9457 allows them), resolved against the server that answered.
PROBLEM_TYPE_BASE = "/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

_BEARER = re.compile(r"^Bearer\s+(\S+)\s*$", re.IGNORECASE)


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when there is none."""
    match = _BEARER.match(request.headers.get("Authorization", ""))
    return match.group(1) if match else None


def problem_body(code: str, status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem: the standard members, our stable ``code`` and any extensions."""
    return {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem_response(
    code: str, status: int, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    """The problem as an ``application/problem+json`` response."""
    return web.Response(
        status=status,
        body=json.dumps(problem_body(code, status, title, detail, **extra)).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )
