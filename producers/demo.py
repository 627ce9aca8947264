"""`photostream demo`: sample photos from several photographers through the running pipeline, then the report.

The photos are generated (``photostream.samples``: photo-like pixels, camera EXIF, capture
times, some with GPS), skewed so the first photographer sends half of them, as in the field.
They go through the gateway like any client's, and the report comes from ClickHouse.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from photostream.config import ClickHouseSettings, S3Settings
from photostream.samples import sample_photo
from photostream.warehouse import QueryResult, reader_for
from producers.keys import create_keys
from producers.upload import Outcome, Uploader, processed_summary, summary

PHOTOGRAPHERS = ("demo-ana", "demo-ben", "demo-chloe")
# Where sample photos say they were taken, for the photographers who keep GPS.
_PLACES = ((48.8584, 2.2945, 35.0), (-33.8568, 151.2153, 4.0), (40.6892, -74.0445, 10.0))


def share_of(index: int, total: int) -> int:
    """Photos for the ``index``-th photographer: the first sends half, the others split the rest."""
    first = (total + 1) // 2
    if index == 0:
        return first
    others = len(PHOTOGRAPHERS) - 1
    rest = total - first
    return rest // others + (1 if index - 1 < rest % others else 0)


def make_photos(folder: Path, total: int, size: tuple[int, int], run: int) -> dict[str, list[Path]]:
    """Write ``total`` sample JPEGs under ``folder``, per photographer."""
    photos: dict[str, list[Path]] = {}
    seed = run * 10_000
    for index, photographer in enumerate(PHOTOGRAPHERS):
        photos[photographer] = []
        for number in range(share_of(index, total)):
            seed += 1
            path = folder / photographer / f"IMG_{number:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            gps = _PLACES[index] if number % 3 == 0 else None
            path.write_bytes(sample_photo(seed, size=size, quality=92, gps=gps))
            photos[photographer].append(path)
    return photos


async def report(warehouse: ClickHouseSettings) -> list[tuple[str, QueryResult]]:
    """The throughput and latency of the demo photographers, from ClickHouse."""
    db = warehouse.database
    who = {"photographers": list(PHOTOGRAPHERS)}
    queries = (
        (
            "Throughput per photographer and minute",
            f"SELECT photographer_id, minute, uploads, images, failures, round(bytes_in / 1e6, 1) AS mb_in, "  # noqa: S608
            f"round(bytes_out / 1e6, 1) AS mb_out, round(p50_ms) AS p50_ms, round(p95_ms) AS p95_ms, "
            f"round(p99_ms) AS p99_ms FROM {db}.throughput_per_minute "
            "WHERE photographer_id IN {photographers:Array(String)} ORDER BY minute, photographer_id",
        ),
        (
            "Latency per stage (ms)",
            "SELECT count() AS images, round(quantile(0.5)(gateway_ms)) AS gateway_p50, "  # noqa: S608
            "round(quantile(0.5)(queue_ms)) AS queue_p50, round(quantile(0.5)(processing_ms)) AS processing_p50, "
            "round(quantile(0.5)(storage_ms)) AS storage_p50, round(quantile(0.5)(end_to_end_ms)) AS end_to_end_p50, "
            f"round(quantile(0.95)(end_to_end_ms)) AS end_to_end_p95 FROM {db}.image_stages "
            "WHERE status = 'completed' AND photographer_id IN {photographers:Array(String)}",
        ),
    )
    reader = reader_for(warehouse)
    try:
        return [(title, await reader.query(sql, who)) for title, sql in queries]
    finally:
        await reader.close()


def print_report(console: Console, sections: list[tuple[str, QueryResult]]) -> None:
    """Print each report section as a table."""
    for title, result in sections:
        table = Table(*result.columns, title=title)
        for row in result.rows:
            table.add_row(*("" if value is None else str(value) for value in row))
        console.print(table)


async def run_demo(
    url: str,
    s3: S3Settings,
    warehouse: ClickHouseSettings,
    *,
    photos: int,
    size: tuple[int, int],
    console: Console,
    wait_timeout: float = 600.0,
) -> list[Outcome]:
    """Generate, upload, wait, report; returns the upload outcomes."""
    keys = await create_keys(s3, PHOTOGRAPHERS)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="photostream-demo-") as folder:
        with console.status(f"making {photos} sample photos of {size[0]}x{size[1]}"):
            made = make_photos(Path(folder), photos, size, run=int(time.time()) % 100_000)
        started = time.monotonic()
        for photographer, paths in made.items():
            uploader = Uploader(url, keys[photographer], parallel=4, console=console)
            outcomes += await uploader.upload(paths)
        console.print(summary(outcomes, time.monotonic() - started))
        for photographer in PHOTOGRAPHERS:
            mine = [o for o in outcomes if o.path.parent.name == photographer]
            await Uploader(url, keys[photographer], console=console).wait(mine, timeout=wait_timeout)
        console.print(processed_summary(outcomes))
    print_report(console, await report(warehouse))
    return outcomes
