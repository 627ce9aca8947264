"""`photostream upload` as a user runs it: against a flaky stand-in gateway, then the real pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import struct
import sys
from pathlib import Path

import pytest
from aiohttp import web

from photostream.samples import sample_photo
from producers.upload import Uploader, collect


def write_tree(root: Path) -> dict[str, Path]:
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    files = {
        "a": root / "a.jpg",
        "b": root / "b.jpg",
        "c": root / "sub" / "c.jpg",
        "copy": root / "sub" / "copy-of-a.JPG",
        "text": root / "notes.jpg",
    }
    files["a"].write_bytes(sample_photo(1, size=(640, 480)))
    files["b"].write_bytes(sample_photo(2, size=(640, 480)))
    files["c"].write_bytes(sample_photo(3, size=(480, 640)))
    shutil.copy(files["a"], files["copy"])
    files["text"].write_text("not a photo at all\n")
    (root / ".hidden" / "skipped.jpg").write_bytes(sample_photo(4, size=(64, 48)))
    (root / "readme.txt").write_text("skipped: not an image name\n")
    return files


def test_folders_are_walked_for_image_files_and_named_files_are_kept(tmp_path):
    files = write_tree(tmp_path / "photos")
    extra = tmp_path / "named.bin"
    extra.write_bytes(b"x")
    found = collect([tmp_path / "photos", extra])
    assert sorted(found) == sorted([*files.values(), extra])
    with pytest.raises(FileNotFoundError):
        collect([tmp_path / "missing"])


async def test_busy_and_unavailable_answers_are_retried_honouring_retry_after(aiohttp_server, tmp_path):
    answers = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"})]
    seen: list[int] = []

    async def uploads(request: web.Request) -> web.Response:
        reader = await request.multipart()
        part = await reader.next()
        size = len(await part.read())
        seen.append(size)
        if answers:
            status, headers = answers.pop(0)
            return web.json_response({"status": status, "code": "busy"}, status=status, headers=headers)
        item = {"upload_id": "00000000-0000-0000-0000-000000000001", "filename": part.filename, "status": "queued"}
        return web.json_response({"uploads": [item]}, status=202)

    app = web.Application()
    app.router.add_post("/v1/uploads", uploads)
    server = await aiohttp_server(app)
    photo = tmp_path / "p.jpg"
    photo.write_bytes(sample_photo(7, size=(320, 240)))
    (outcome,) = await Uploader(str(server.make_url("/")), "psk_test", attempts=4).upload([photo])
    assert outcome.result == "accepted"
    assert seen == [photo.stat().st_size] * 3  # the whole file, three times


async def test_a_gateway_that_stays_away_is_reported_not_raised(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(sample_photo(8, size=(64, 48)))
    (outcome,) = await Uploader("http://127.0.0.1:9", "psk_test", attempts=2).upload([photo])
    assert outcome.result == "error"
    assert "gave up after 2 tries" in outcome.detail


async def test_connections_reset_mid_file_are_retried_and_leave_no_file_open(tmp_path):
    """A server that resets the connection mid-body, as a killed gateway does, while the uploader reads the file.

    The reset often lands while aiohttp's writer is inside a read of the file: the uploader must neither raise
    nor keep the file open. Twelve cuts (four files, three tries each) make that timing all but certain.
    """
    cuts = 0

    async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal cuts
        await reader.readexactly(2 * 1024 * 1024)
        cuts += 1
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()  # linger 0: a reset, not an orderly close

    server = await asyncio.start_server(reset_mid_body, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    photos = []
    for index in range(4):
        photo = tmp_path / f"{index}.jpg"
        photo.write_bytes(sample_photo(index, size=(64, 48)) + os.urandom(24 * 1024 * 1024))
        photos.append(photo)
    try:
        outcomes = await Uploader(f"http://127.0.0.1:{port}", "psk_test", parallel=4, attempts=3).upload(photos)
    finally:
        server.close()
    assert [outcome.result for outcome in outcomes] == ["error"] * 4
    assert all("gave up after 3 tries" in outcome.detail for outcome in outcomes)
    assert cuts == 12
    await asyncio.sleep(0.5)  # a writer cancelled inside a read closes its file when the read returns
    assert not [path for path in open_files() if path.startswith(str(tmp_path))]


def open_files() -> list[str]:
    """What this process holds open (an fd closed while the list is read, like the listing's own, is skipped)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):
            held.append(os.readlink(f"/proc/self/fd/{fd}"))
    return held


@pytest.mark.integration
@pytest.mark.timeout(300)
async def test_upload_a_folder_through_the_pipeline_and_wait(make_gateway, workers, sinks, tmp_path, unique_name):
    gateway = await make_gateway()
    api_key = await gateway.services.keys.create(unique_name("ph"))
    sinks.start()
    workers.start()
    write_tree(tmp_path / "photos")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "photostream", "upload", str(tmp_path / "photos"),
        "--api-key", api_key, "--url", str(gateway.make_url("/")), "--parallel", "3", "--wait",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=240)
    stdout, stderr = out.decode(), err.decode()
    assert process.returncode == 1, stdout + stderr  # one file was rejected
    assert "5 files" in stdout
    assert "3 accepted, 1 duplicates (already uploaded), 1 rejected (unsupported-media-type: 1)" in stdout
    assert "4 completed, 0 failed, 0 still queued" in stdout  # the duplicate reports its image
    assert "no live progress" not in stdout + stderr  # the stages were pushed, not polled
    assert "c.jpg" in stdout
