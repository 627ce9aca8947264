"""Test uploads and a helper to send them through the in-process gateway."""

from __future__ import annotations

from photostream.samples import Camera, sample_photo
from tests.gateway_client import auth, form


def photo(seed: int, *, size=(1200, 800), quality=90, orientation: int | None = None, make="Canon") -> bytes:
    """A photo-like JPEG whose EXIF names ``make`` (see ``photostream.samples``)."""
    camera = Camera(make, f"{make} Test Body", "Test Lens")
    return sample_photo(seed, size=size, quality=quality, orientation=orientation, camera=camera)


async def upload(gateway, api_key: str, *files: tuple[str, bytes]) -> list[dict]:
    response = await gateway.post("/v1/uploads", data=form(*files), headers=auth(api_key))
    body = await response.json()
    assert response.status == 202, body
    return body["uploads"]
