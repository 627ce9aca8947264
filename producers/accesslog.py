"""The gateway's access log, with no secrets in it.

aiohttp's own access log prints the request line as sent, query string included, so
``/dashboard?token=...`` would put the operators' token in every log that collects it.
This logger writes the same facts (client, request line, status, size, referer, agent,
duration) with the value of every secret-looking query parameter replaced by ``REDACTED``:
a name containing token, key, secret, password, auth, sig, credential or session, or a
value that looks like an API key (``psk_...``).
"""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from producers.keys import KEY_PREFIX

REDACTED = "REDACTED"
SECRET_NAME_PARTS = ("token", "key", "secret", "passw", "auth", "sig", "credential", "session")


def _secret(name: str, value: str) -> bool:
    lowered = unquote_plus(name).lower()
    return any(part in lowered for part in SECRET_NAME_PARTS) or unquote_plus(value).startswith(KEY_PREFIX)


def redact_target(target: str) -> str:
    """The request target (path and query, as sent) with secret parameter values replaced."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    params = []
    for param in query.split("&"):
        name, _, value = param.partition("=")
        params.append(f"{name}={REDACTED}" if _secret(name, value) else param)
    return f"{path}?{'&'.join(params)}"


class RedactingAccessLogger(AbstractAccessLogger):
    """aiohttp access logger that never writes query string secrets (see the module docstring)."""

    @property
    def enabled(self) -> bool:
        """Whether lines would be written at all (skips the work when INFO is off)."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write one line for a finished request."""
        version = request.version
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d "%s" "%s" %.3fs',
            request.remote or "-",
            request.method,
            redact_target(request.raw_path),
            version.major,
            version.minor,
            response.status,
            response.body_length,
            redact_target(request.headers.get("Referer", "-")),
            request.headers.get("User-Agent", "-"),
            time,
        )
