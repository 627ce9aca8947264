"""Following uploads as they go: SSE and WebSocket, fed from Kafka, on the whole local pipeline."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from tests.gateway_client import auth, form
from tests.streams.imaging.photos import make_photo, truncated_jpeg
from tests.streams.uploads import large_png

pytestmark = pytest.mark.integration

SUCCESS = ["received", "processing", "processed", "ready"]


async def read_sse(response, timeout: float = 120, heard: dict[str, datetime] | None = None) -> list[tuple[str, dict]]:
    """Every (event, data) of a Server-Sent Events stream, until the server ends it.

    Args:
        response: The stream's response.
        timeout: Seconds for the whole stream.
        heard: Filled with the moment each event arrived, by its name.
    """
    events, name, data = [], None, []
    async with asyncio.timeout(timeout):
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                events.append((name, json.loads("\n".join(data))))
                if heard is not None:
                    heard.setdefault(name, datetime.now(UTC))
                name, data = None, []
    return events


@pytest.fixture
async def pipeline(make_gateway, workers, sinks, unique_name):
    """A gateway with its progress feed, the sinks and a worker running, and a photographer's key."""
    gateway = await make_gateway()
    sinks.start()
    workers.start()
    return gateway, await gateway.services.keys.create(unique_name("ph"))


async def upload(gateway, key: str, name: str, data: bytes) -> str:
    response = await gateway.post("/v1/uploads", data=form((name, data)), headers=auth(key))
    assert response.status == 202, await response.text()
    return (await response.json())["uploads"][0]["upload_id"]


@pytest.mark.timeout(300)
async def test_server_sent_events_follow_an_upload_then_replay_for_a_late_client(pipeline, make_gateway):
    gateway, key = pipeline
    upload_id = await upload(gateway, key, "a.jpg", make_photo(seed=41, width=800, height=600))
    response = await gateway.get(f"/v1/uploads/{upload_id}/events", headers=auth(key))
    assert response.status == 200
    assert response.content_type == "text/event-stream"
    live = await read_sse(response)
    assert [name for name, _ in live] == SUCCESS, live
    assert all(data["upload_id"] == upload_id and data["stage"] == name for name, data in live)
    moments = [data["at"] for _, data in live]
    assert moments == sorted(moments), moments
    processed = dict(live)["processed"]
    assert (processed["metadata"]["width"], processed["metadata"]["height"]) == (800, 600)
    assert {(v["name"], v["format"]) for v in dict(live)["ready"]["variants"]} >= {("web", "webp"), ("thumb", "jpeg")}

    # Connected just after the end, a client gets the same stages (the status may not have them yet:
    # the feed's recent stages cover that moment), and the stream ends.
    late = await read_sse(await gateway.get(f"/v1/uploads/{upload_id}/events", headers=auth(key)))
    assert late == live

    # Another gateway instance, started after it all, answers from the status alone.
    other = await make_gateway()
    async with asyncio.timeout(60):
        while (await (await other.get(f"/v1/uploads/{upload_id}", headers=auth(key))).json())["status"] != "completed":
            await asyncio.sleep(0.5)
    replayed = await read_sse(await other.get(f"/v1/uploads/{upload_id}/events", headers=auth(key)))
    assert [name for name, _ in replayed] == SUCCESS
    assert dict(replayed)["processed"]["metadata"] == processed["metadata"]
    assert dict(replayed)["ready"]["variants"] == dict(live)["ready"]["variants"]
    for (_, then), (_, now) in zip(live, replayed, strict=True):
        assert datetime.fromisoformat(then["at"]) == datetime.fromisoformat(now["at"]), (then, now)


@pytest.mark.timeout(300)
async def test_processing_is_pushed_as_the_worker_starts_not_once_it_is_done(pipeline):
    gateway, key = pipeline
    # 48 megapixels to decode: the work takes seconds, and a follower hears of it while it runs.
    upload_id = await upload(gateway, key, "large.png", large_png(seed=7))
    heard: dict[str, datetime] = {}
    events = await read_sse(await gateway.get(f"/v1/uploads/{upload_id}/events", headers=auth(key)), heard=heard)
    assert [name for name, _ in events] == SUCCESS, events
    started, processed = (datetime.fromisoformat(dict(events)[stage]["at"]) for stage in ("processing", "processed"))
    # Heard before the worker finished: not derived from ImageProcessed, which exists only after processed_at.
    assert started <= heard["processing"] < processed, (started, heard["processing"], processed)


@pytest.mark.timeout(300)
async def test_a_failed_upload_ends_its_stream_with_the_reason(pipeline):
    gateway, key = pipeline
    upload_id = await upload(gateway, key, "cut.jpg", truncated_jpeg())
    events = await read_sse(await gateway.get(f"/v1/uploads/{upload_id}/events", headers=auth(key)))
    # The worker's processing-started signal is best effort, and on another topic than the failure it
    # precedes: a follower may not hear of the start of work that failed at once.
    assert [name for name, _ in events] in (["received", "processing", "failed"], ["received", "failed"]), events
    assert dict(events)["failed"]["error"]["code"] == "corrupt"


async def test_only_the_owner_may_follow(make_gateway, sinks, unique_name):
    gateway = await make_gateway()
    key = await gateway.services.keys.create(unique_name("ph"))
    other = await gateway.services.keys.create(unique_name("ph"))
    upload_id = await upload(gateway, key, "a.jpg", make_photo(seed=42))
    assert (await gateway.get(f"/v1/uploads/{upload_id}/events", headers=auth(other))).status == 404
    assert (await gateway.get("/v1/uploads/not-an-id/events", headers=auth(key))).status == 404
    assert (await gateway.get(f"/v1/uploads/{upload_id}/events")).status == 401
    assert (await gateway.get("/v1/ws")).status == 401


@pytest.mark.timeout(300)
async def test_one_websocket_follows_several_uploads(pipeline, unique_name):
    gateway, key = pipeline
    other = await gateway.services.keys.create(unique_name("ph"))
    first = await upload(gateway, key, "a.jpg", make_photo(seed=43))
    second = await upload(gateway, key, "b.jpg", make_photo(seed=44))
    foreign = await upload(gateway, other, "c.jpg", make_photo(seed=45))
    seen: dict[str, list[str]] = {first: [], second: []}
    errors = []
    async with gateway.ws_connect("/v1/ws", headers=auth(key)) as socket:
        await socket.send_json({"subscribe": [first, second, foreign, "nonsense"]})
        async with asyncio.timeout(120):
            while not all(stages and stages[-1] in {"ready", "failed"} for stages in seen.values()):
                message = await socket.receive_json()
                if "error" in message:
                    errors.append(message)
                else:
                    seen[message["upload_id"]].append(message["stage"])
    assert seen == {first: SUCCESS, second: SUCCESS}
    assert sorted(error["upload_id"] for error in errors) == sorted([foreign, "nonsense"])
    assert {error["error"] for error in errors} == {"not-found"}


@pytest.mark.timeout(120)
async def test_a_follower_of_an_upload_learns_that_it_was_deleted_and_the_stream_ends(make_gateway, unique_name):
    gateway = await make_gateway()  # no worker runs: the upload stays queued until deleted
    key = await gateway.services.keys.create(unique_name("ph"))
    upload_id = await upload(gateway, key, "a.jpg", make_photo(seed=43, width=400, height=300))
    response = await gateway.get(f"/v1/uploads/{upload_id}/events", headers=auth(key))
    following = asyncio.create_task(read_sse(response, timeout=60))
    await asyncio.sleep(0.5)  # the stream is open and has sent `received`
    assert not following.done()
    assert (await gateway.delete(f"/v1/uploads/{upload_id}", headers=auth(key))).status == 204
    events = await following
    assert [name for name, _ in events] == ["received", "deleted"], events
    assert datetime.fromisoformat(events[1][1]["at"]) >= datetime.fromisoformat(events[0][1]["at"])
