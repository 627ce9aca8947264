"""The benchmark's photos: synthetic 12-megapixel JPEGs with camera EXIF, made once and cached.

Skewed as in the field: the first photographer sends half of them, two others the rest.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from photostream.samples import sample_photo

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"
RESULTS = ROOT / "bench" / "results"
PHOTOGRAPHERS = ("bench-ana", "bench-ben", "bench-chloe")


@dataclass(frozen=True)
class PhotoSet:
    """Paths of the photos and whose each is."""

    paths: tuple[Path, ...]
    owners: tuple[str, ...]
    width: int
    height: int

    def megabytes(self) -> float:
        """Average file size in MB."""
        return sum(p.stat().st_size for p in self.paths) / len(self.paths) / 1e6


def _make(args: tuple[int, int, int, str]) -> str:
    seed, width, height, path = args
    Path(path).write_bytes(sample_photo(seed, size=(width, height), quality=95))
    return path


def photo_set(count: int = 40, width: int = 4000, height: int = 3000) -> PhotoSet:
    """The cached set of ``count`` photos (made on first use, in parallel)."""
    folder = CACHE / f"photos-{count}-{width}x{height}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{index:04d}.jpg" for index in range(count)]
    missing = [(index, width, height, str(path)) for index, path in enumerate(paths) if not path.exists()]
    if missing:
        print(f"making {len(missing)} photos of {width}x{height} (cached in {folder})...", flush=True)
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(_make, missing))
    half = (count + 1) // 2
    owners = [PHOTOGRAPHERS[0] if index < half else PHOTOGRAPHERS[1 + index % 2] for index in range(count)]
    # Interleave so the big sender's photos arrive spread over the run, as a busy shoot would.
    order = sorted(range(count), key=lambda i: (i % 2, i))
    return PhotoSet(tuple(paths[i] for i in order), tuple(owners[i] for i in order), width, height)


def save(results: dict, table: str) -> None:
    """Write ``results.json`` and ``results.md`` under bench/results/."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "results.md").write_text(table + "\n")


# The service's originals weigh 5-50 MB (DESIGN.md); these sizes spread evenly over that range.
PRODUCTION_MEGABYTES = (5.0, 12.5, 20.0, 27.5, 35.0, 42.5, 50.0)


def _make_sized(args: tuple[float, str]) -> str:
    megabytes, path = args
    import io

    from PIL import Image

    # Pixel noise, as a high-ISO frame is mostly: JPEG keeps about 1.17 bytes a pixel of it at quality 95 (4:2:0).
    side = int((megabytes * 1e6 / 1.17) ** 0.5)
    noise = os.urandom(side * side * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), noise).save(out, format="JPEG", quality=95)
    Path(path).write_bytes(out.getvalue())
    return path


def production_sized(megabytes: tuple[float, ...] = PRODUCTION_MEGABYTES) -> tuple[Path, ...]:
    """JPEGs of about these sizes (made once, cached), for what the front door carries in production."""
    folder = CACHE / "sized"
    folder.mkdir(parents=True, exist_ok=True)
    paths = tuple(folder / f"{size:g}mb.jpg" for size in megabytes)
    missing = [(size, str(path)) for size, path in zip(megabytes, paths, strict=True) if not path.exists()]
    if missing:
        print(f"making {len(missing)} photos of {', '.join(f'{s:g}' for s, _ in missing)} MB in {folder}...")
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(_make_sized, missing))
    return paths
