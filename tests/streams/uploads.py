"""Photo-like test uploads and a helper to send them through the in-process gateway."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from tests.gateway_client import auth, form


def photo(seed: int, *, size=(1200, 800), quality=90, orientation: int | None = None, make="Canon") -> bytes:
    """A photo-like JPEG with camera EXIF: a smooth background and random shapes, distinct per seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    x = np.broadcast_to(np.arange(width), (height, width))
    background = np.stack([127 + 100 * np.sin(x / width * rng.uniform(1, 6) + rng.uniform(0, 6))] * 3, -1)
    image = Image.fromarray(np.clip(background + rng.normal(0, 6, background.shape), 0, 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        box = (x0, y0, x0 + rng.integers(width // 10, width // 2), y0 + rng.integers(height // 10, height // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = f"{make} Test Body"
    if orientation:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, exif=exif)
    return out.getvalue()


async def upload(gateway, api_key: str, *files: tuple[str, bytes]) -> list[dict]:
    response = await gateway.post("/v1/uploads", data=form(*files), headers=auth(api_key))
    body = await response.json()
    assert response.status == 202, body
    return body["uploads"]
