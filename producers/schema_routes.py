"""The event schemas subscribers read with, served by the gateway: a schema store by fingerprint.

A single-object encoded event names its writer schema only by its CRC-64-AVRO fingerprint. A
subscriber that meets a fingerprint it has no copy of (the producer is newer than its copy of
the ``.avsc`` files) fetches ``GET /v1/schemas/{fingerprint}`` and reads the event with schema
resolution into its own, older schema: the subscribed events are kept compatible both ways
(``schemas.history``). ``GET /v1/schemas`` lists every subscribable topic with its event and
every published version. Schemas are the public contract and hold no photographer's data, so
neither route asks for a key.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

from aiohttp import web

from producers import problems
from schemas.catalog import PACKAGE, load_catalog, parse_schema_text
from schemas.history import published_versions
from schemas.topics import EVENT_BY_TOPIC, SUBSCRIBABLE_TOPICS

_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
# A fingerprint names one schema text forever, so a client or a proxy may keep it.
_IMMUTABLE = "public, max-age=31536000, immutable"


@functools.cache
def _listing() -> tuple[dict[str, Any], ...]:
    """The subscribable topics and their versions: the shipped files never change while the gateway runs."""
    versions = published_versions(resources.files(PACKAGE))
    catalog = load_catalog()
    listing = []
    for topic in SUBSCRIBABLE_TOPICS:
        event = EVENT_BY_TOPIC[topic]
        current = catalog.current[event.schema_name()]
        listing.append(
            {
                "topic": topic,
                "event": current.name,
                "fingerprint": current.fingerprint.hex(),
                "versions": [
                    {"version": entry.number, "fingerprint": parse_schema_text(entry.data.decode()).fingerprint.hex()}
                    for entry in versions.get(event.__name__, [])
                ],
            }
        )
    return tuple(listing)


async def list_schemas(request: web.Request) -> web.Response:
    """Every subscribable topic, its event, its current fingerprint and every published version's."""
    return web.json_response(
        {"topics": list(_listing()), "encoding": "avro-single-object", "fingerprint": "CRC-64-AVRO"}
    )


async def get_schema(request: web.Request) -> web.Response:
    """The writer schema whose fingerprint is the 16 hex digits after ``/v1/schemas/``, as its ``.avsc`` text."""
    fingerprint = request.match_info["fingerprint"].lower()
    if not _FINGERPRINT.fullmatch(fingerprint):
        raise problems.bad_request(
            f"{fingerprint!r} is not a fingerprint: 16 hex digits, the 8 bytes after C3 01 in an event, in order"
        )
    schema = load_catalog().writers.get(bytes.fromhex(fingerprint))
    if schema is None:
        raise problems.not_found(f"no schema has fingerprint {fingerprint}")
    return web.Response(text=schema.text, content_type="application/json", headers={"Cache-Control": _IMMUTABLE})


def add_schema_routes(app: web.Application) -> None:
    """Serve the schema store on ``app``."""
    _listing()  # read the files now, not on the event loop during a request
    app.router.add_get("/v1/schemas", list_schemas)
    app.router.add_get("/v1/schemas/{fingerprint}", get_schema)
