"""The yardstick for the image library: a minimal program that calls libvips directly for the same outputs.

Written for the benchmark and sharing no code with photostream. For each photo: one
shrink-on-load decode to 1920 px (upright, held in memory), the web variant (1920 px) in WebP
and JPEG, the thumb (300 px) in WebP and JPEG and the square (150 px, attention crop) in WebP
cut from that copy, and a pHash of a 256 px greyscale copy. The encoder settings are the
library's (quality 82, WebP effort 4, progressive optimised JPEG, no metadata).

Why this is the fastest way libvips allows: ``thumbnail`` opens the file with shrink-on-load
(the JPEG decoder scales by 1/2, 1/4 or 1/8 while decoding), so the full 12 MP image is never
made; ``copy_memory`` keeps the 1920 px copy so the smaller sizes do not decode again; photos run
on two threads per core with libvips' own threading at 1, since with a queue of photos splitting
each one across threads only adds synchronisation.

    python bench/direct_libvips.py photo.jpg ...   # prints {"photos": n, "seconds": t}
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("VIPS_CONCURRENCY", "1")  # before pyvips loads libvips

import imagehash
import numpy as np
import pyvips
from PIL import Image

pyvips.cache_set_max(0)  # every photo is seen once
THREADS = 2 * (os.cpu_count() or 1)  # two per core, so one thread's Python steps overlap another's libvips work


def one(path: str) -> int:
    """Render every output of one photo; returns the bytes written."""
    web = pyvips.Image.thumbnail(path, 1920, height=1920, size="down").copy_memory()
    outputs = [
        web.webpsave_buffer(Q=82, effort=4, keep="none"),
        web.jpegsave_buffer(Q=82, keep="none", optimize_coding=True, interlace=True),
    ]
    thumb = web.thumbnail_image(300, height=300, size="down")
    outputs += [
        thumb.webpsave_buffer(Q=82, effort=4, keep="none"),
        thumb.jpegsave_buffer(Q=82, keep="none", optimize_coding=True, interlace=True),
    ]
    square = web.thumbnail_image(150, height=150, crop="attention")
    outputs.append(square.webpsave_buffer(Q=82, effort=4, keep="none"))
    grey = web.thumbnail_image(256, height=256, size="down").colourspace("b-w")[0]
    pixels = np.ndarray(buffer=grey.write_to_memory(), dtype=np.uint8, shape=(grey.height, grey.width))
    imagehash.phash(Image.fromarray(pixels))
    return sum(len(output) for output in outputs)


def main() -> None:
    """Time every photo named on the command line, on two threads per core."""
    paths = sys.argv[1:]
    with ThreadPoolExecutor(THREADS) as pool:
        started = time.perf_counter()
        list(pool.map(one, paths))
        seconds = time.perf_counter() - started
    print(json.dumps({"photos": len(paths), "seconds": seconds}))


if __name__ == "__main__":
    main()
