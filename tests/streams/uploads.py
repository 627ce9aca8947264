"""Test uploads and a helper to send them through the in-process gateway."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from photostream.samples import Camera, sample_photo
from tests.gateway_client import auth, form


def photo(seed: int, *, size=(1200, 800), quality=90, orientation: int | None = None, make="Canon") -> bytes:
    """A photo-like JPEG whose EXIF names ``make`` (see ``photostream.samples``)."""
    camera = Camera(make, f"{make} Test Body", "Test Lens")
    return sample_photo(seed, size=size, quality=quality, orientation=orientation, camera=camera)


def large_png(seed: int) -> bytes:
    """A 48-megapixel PNG (a smooth gradient, so the file stays small while decoding takes a while)."""
    x = np.linspace(0, 255, 8000, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, 6000, dtype=np.float32)[:, None]
    pixels = np.stack(np.broadcast_arrays(x, y, (x + y + seed * 40) % 256), axis=2).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", compress_level=1)
    return out.getvalue()


async def upload(gateway, api_key: str, *files: tuple[str, bytes]) -> list[dict]:
    response = await gateway.post("/v1/uploads", data=form(*files), headers=auth(api_key))
    body = await response.json()
    assert response.status == 202, body
    return body["uploads"]
