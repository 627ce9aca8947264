"""Hostile and broken input through the gateway, end to end: a clear 4xx, or a ProcessingFailed
with the right reason, or a normal image; and the pipeline keeps serving everyone meanwhile."""

from __future__ import annotations

import asyncio
import io
import time

import aiohttp
import pytest
from PIL import Image

from tests.gateway_client import auth
from tests.streams.imaging.photos import (
    animated_gif,
    cmyk_jpeg,
    decompression_bomb_png,
    jpeg_header_then_garbage,
    make_photo,
    rgba16_png,
    text_named_jpeg,
    truncated_jpeg,
)

pytestmark = pytest.mark.integration

SOFTWARE, EXPOSURE_TIME, DATE_TIME_ORIGINAL = 0x0131, 0x829A, 0x9003


def absurd_exif_jpeg() -> bytes:
    # 60 KB of text, a string where a number belongs, an impossible date.
    tags = {SOFTWARE: "x" * 60_000, EXPOSURE_TIME: "fast", DATE_TIME_ORIGINAL: "9999:99:99 99:99:99"}
    return make_photo(width=320, height=240, seed=11, exif=tags)


# name -> (filename sent, bytes, content type sent, what must happen)
CASES = {
    "zero bytes": ("empty.jpg", b"", "image/jpeg", ("rejected", "empty-file")),
    "text named .jpg": ("notes.jpg", text_named_jpeg(), "image/jpeg", ("rejected", "unsupported-media-type")),
    "truncated jpeg": ("cut.jpg", truncated_jpeg(), "image/jpeg", ("failed", "corrupt")),
    "garbage after a jpeg header": ("garbage.jpg", jpeg_header_then_garbage(), "image/jpeg", ("failed", "corrupt")),
    "decompression bomb": ("bomb.png", decompression_bomb_png(), "image/png", ("failed", "too_many_pixels")),
    "absurd and huge exif": ("exif.jpg", absurd_exif_jpeg(), "image/jpeg", ("completed", None)),
    "animated gif": ("anim.gif", animated_gif(), "image/gif", ("completed", None)),
    "cmyk jpeg": ("cmyk.jpg", cmyk_jpeg(), "image/jpeg", ("completed", None)),
    "16-bit png with alpha": ("deep.png", rgba16_png(), "image/png", ("completed", None)),
    "path in the name": (
        "../../etc/passwd.jpg",
        make_photo(seed=21, width=200, height=150),
        "image/jpeg",
        ("completed", None),
    ),
    "NUL in the name": (
        "a\x00b.jpg",
        make_photo(seed=22, width=200, height=150),
        "image/jpeg",
        ("rejected", "bad-request"),
    ),
    "RTL mark in the name": (
        "\u202egpj.jpg",
        make_photo(seed=25, width=200, height=150),
        "image/jpeg",
        ("completed", None),
    ),
    "1000-character name": (
        "n" * 996 + ".jpg",
        make_photo(seed=23, width=200, height=150),
        "image/jpeg",
        ("completed", None),
    ),
    "wrong content type": ("photo.jpg", make_photo(seed=24, width=200, height=150), "text/plain", ("completed", None)),
}


BOUNDARY = "photostream-test-boundary"


def one_file_body(filename: str, data: bytes, content_type: str) -> bytes:
    """A multipart body written by hand: client libraries refuse control characters in names, attackers do not."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode("utf-8", "surrogateescape")
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


async def post_one(gateway, key: str, filename: str, data: bytes, content_type: str):
    headers = {**auth(key), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return await gateway.post("/v1/uploads", data=one_file_body(filename, data, content_type), headers=headers)


def tiny_png(index: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (index % 256, index // 256, 7)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.timeout(500)
async def test_bad_input_gets_a_clear_answer_and_nothing_stops(make_gateway, workers, sinks, local_stack, unique_name):
    gateway = await make_gateway()
    sinks.start()
    worker = workers.start()
    key = await gateway.services.keys.create(unique_name("ph"))
    accepted: dict[str, str] = {}
    for name, (filename, data, content_type, (outcome, code)) in CASES.items():
        response = await post_one(gateway, key, filename, data, content_type)
        body = await response.json()
        if outcome == "rejected":
            assert 400 <= response.status < 500, (name, body)
            assert body["code"] == code, (name, body)
            continue
        assert response.status == 202, (name, body)
        (item,) = body["uploads"]
        assert "/" not in item["filename"], (name, item["filename"])
        assert "\x00" not in item["filename"], (name, item["filename"])
        assert "\u202e" not in item["filename"], (name, item["filename"])  # no bidi tricks on display
        assert len(item["filename"]) <= 255, name
        record = await gateway.services.ledger.find(item["upload_id"])
        assert "passwd" not in record.original_key, record.original_key  # keys come from ids, never names
        accepted[name] = item["upload_id"]

    # 500 files in one request: the gateway takes its limit and answers the rest clearly.
    form = aiohttp.FormData(quote_fields=False)
    for index in range(500):
        form.add_field("file", io.BytesIO(tiny_png(index)), filename=f"{index}.png", content_type="image/png")
    many = await gateway.post("/v1/uploads", data=form, headers=auth(key))
    many_body = await many.json()
    assert many.status == 207, many_body
    statuses = [item["status"] for item in many_body["uploads"]]
    assert statuses.count("queued") == 100
    assert statuses.count("rejected") == 400
    assert {item["problem"]["code"] for item in many_body["uploads"] if item["status"] == "rejected"} == {
        "too-many-files"
    }

    # Meanwhile a normal photo is still processed.
    normal = await post_one(gateway, key, "ok.jpg", make_photo(seed=99), "image/jpeg")
    accepted["a normal photo after all that"] = (await normal.json())["uploads"][0]["upload_id"]

    expected = {name: CASES[name][3] if name in CASES else ("completed", None) for name in accepted}
    results: dict[str, dict] = {}
    deadline = time.monotonic() + 240
    while len(results) < len(accepted) and time.monotonic() < deadline:
        for name, upload_id in accepted.items():
            if name in results:
                continue
            body = await (await gateway.get(f"/v1/uploads/{upload_id}", headers=auth(key))).json()
            if body["status"] != "queued":
                results[name] = body
        await asyncio.sleep(1)
    assert set(results) == set(accepted), (set(accepted) - set(results), sinks.logs(), workers.logs())
    for name, (outcome, code) in expected.items():
        body = results[name]
        assert body["status"] == outcome, (name, body)
        if code is not None:
            assert body["error"]["code"] == code, (name, body)
    assert worker.process.poll() is None, "the worker died on input"
