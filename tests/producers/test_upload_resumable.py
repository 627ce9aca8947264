"""`photostream upload --resumable`: a cut upload goes on from the server's offset, in this run or the next."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
from click.testing import CliRunner

from photostream.cli import main
from photostream.config import GatewaySettings
from producers.ledger import original_key
from producers.tus_client import ResumeState
from producers.upload import Uploader
from tests.cutting_proxy import CuttingProxy
from tests.producers.test_gateway import noisy_jpeg
from tests.producers.test_tus import PART

pytestmark = pytest.mark.integration


@pytest.fixture
def settings():
    return GatewaySettings(max_file_bytes=20 * 1024 * 1024, part_bytes=PART)


@pytest.fixture
def photo_file(tmp_path):
    path = tmp_path / "IMG_7001.JPG"
    path.write_bytes(noisy_jpeg(12))
    return path


async def settled_offset(client, key: str, path: str, at_least: int) -> int:
    for _ in range(100):
        response = await client.head(path, headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {key}"})
        offset = int(response.headers["Upload-Offset"])
        if offset >= at_least:
            return offset
        await asyncio.sleep(0.05)
    raise AssertionError(f"the cut request's bytes were never saved (offset {offset})")


async def stored(client, name: str, upload_id: str) -> bytes:
    return await client.services.store.get(original_key(name, upload_id))


async def test_a_cut_upload_is_resumed_by_the_retry_not_sent_again(client, photographer, photo_file, tmp_path):
    name, key = photographer
    size = photo_file.stat().st_size
    proxy = CuttingProxy(client.server.port, cut_after=PART + PART // 2, once=True)
    state = ResumeState(tmp_path / "state.json")
    try:
        uploader = Uploader(f"http://127.0.0.1:{proxy.port}", key, resume_state=state)
        [outcome] = await uploader.upload([photo_file])
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    assert outcome.result == "accepted", outcome
    assert await stored(client, name, outcome.upload_id) == photo_file.read_bytes()
    # The retry asked for the offset and sent only the rest: a restart would send about 1.5 files.
    assert size < proxy.sent < size + 256 * 1024, (proxy.sent, size)
    assert json.loads(state.path.read_text()) == {}  # nothing left to resume


async def test_the_next_run_resumes_what_an_interrupted_run_left(client, photographer, photo_file, tmp_path):
    name, key = photographer
    size = photo_file.stat().st_size
    state_path = tmp_path / "state.json"
    proxy = CuttingProxy(client.server.port, cut_after=PART + PART // 2)  # every try of this run is cut
    gateway = f"http://127.0.0.1:{proxy.port}"
    try:
        [failed] = await Uploader(gateway, key, attempts=1, resume_state=ResumeState(state_path)).upload([photo_file])
        assert failed.result == "error"
        [kept] = json.loads(state_path.read_text()).values()
        assert kept.startswith(f"{gateway}/v1/tus/")
        # The cut request's handler saves the bytes it took a moment later; a user's next run comes later still.
        await settled_offset(client, key, kept.removeprefix(gateway), at_least=PART + 1)
        proxy.once = True
        [done] = await Uploader(gateway, key, resume_state=ResumeState(state_path)).upload([photo_file])
    finally:
        proxy.close()
    assert done.result == "accepted", done
    assert size < proxy.sent < size + 256 * 1024, (proxy.sent, size)
    assert (
        hashlib.sha256(await stored(client, name, done.upload_id)).digest()
        == hashlib.sha256(photo_file.read_bytes()).digest()
    )


def test_a_changed_file_is_a_new_upload(tmp_path):
    state = ResumeState(tmp_path / "state.json")
    photo = tmp_path / "a.jpg"
    photo.write_bytes(noisy_jpeg(0.2))
    before = ResumeState.key("http://gw", photo)
    photo.write_bytes(noisy_jpeg(0.2))
    assert ResumeState.key("http://gw", photo) != before
    state.put(before, "http://gw/v1/tus/0123")
    assert ResumeState(state.path).get(before) == "http://gw/v1/tus/0123"


async def test_the_command_takes_resumable_and_a_state_file(client, photographer, photo_file, tmp_path):
    _, key = photographer
    url = f"http://{client.server.host}:{client.server.port}"
    result = await asyncio.to_thread(  # the command runs its own event loop; the gateway's keeps serving
        CliRunner().invoke,
        main,
        ["upload", str(photo_file), "--resumable", "--resume-state", str(tmp_path / "s.json"), "--url", url],
        env={"PHOTOSTREAM_API_KEY": key},
    )
    assert result.exit_code == 0, result.output
    assert "1 accepted" in result.output
