"""`make bench`: the four measurements of issue 6 and the analytics of issue 12, side by side in one run.

1. Ceiling: photostream's image library alone (decode, metadata, hashes, variants) on all cores.
2. Peers: plain Pillow and sharp (npm) rendering the same variants.
3. The pipeline: gateway → Kafka → workers → sinks, first upload to last ImageReady.
4. The gateway: accepted uploads per second against raw S3 PUTs, 32 clients.
5. Analytics: the doc's ten questions, the dashboard and the status on 30 days of history (bench/analytics.py,
   which also writes bench/results/analytics.json and analytics.md).

Same photos (synthetic 12-megapixel JPEGs with EXIF, one photographer sending half), same
machine, one run. Results go to bench/results/results.json and results.md (shown in the README).

    make bench                      # or: .venv/bin/python bench/run.py --photos 40
    .venv/bin/python bench/run.py --analytics quick   # the analytics section at a small scale
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import analytics, image_peers, pipeline_bench
from bench.photoset import PhotoSet, photo_set, save
from photostream.config import StackSettings
from photostream.stack import Stack, State


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40, help="how many 12 MP photos")
    parser.add_argument("--gateway-uploads", type=int, default=64)
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients for the gateway measurement")
    parser.add_argument(
        "--analytics", choices=("full", "quick", "skip"), default="full", help="the analytics section's scale"
    )
    args = parser.parse_args()
    photos = photo_set(args.photos)
    paths = list(photos.paths)
    cores = os.cpu_count() or 1
    print(
        f"{len(paths)} photos of {photos.width}x{photos.height}, {photos.megabytes():.1f} MB each; {cores} cores",
        flush=True,
    )

    stack = Stack(StackSettings())
    started = {item.name for item in stack.up() if item.state is State.STARTED}
    try:
        measure(args, photos, paths, cores)
    finally:
        # Only what this run started: a developer's running stack stays up, and nothing is left
        # behind for the next `make run` in another checkout to pick up silently.
        if started:
            stack.down(only=started)


def measure(args: argparse.Namespace, photos: PhotoSet, paths: list[Path], cores: int) -> None:
    """Run every section and write the results."""
    timings: dict[str, float | None] = {}
    print("1/5 ceiling: the image library alone...", flush=True)
    timings["ceiling"] = image_peers.ceiling(paths)
    print("2/5 peers: Pillow, sharp...", flush=True)
    timings["pillow"] = image_peers.pillow(paths)
    timings["sharp"] = image_peers.sharp(paths)
    print("3/5 the pipeline...", flush=True)
    pipeline = pipeline_bench.pipeline(paths, list(photos.owners))
    pipeline["idle"] = pipeline_bench.idle_latency(paths, list(photos.owners))
    print("4/5 the gateway against raw S3...", flush=True)
    gateway = pipeline_bench.gateway_against_s3(paths, clients=args.clients, uploads=args.gateway_uploads)
    insights = None
    if args.analytics != "skip":
        print("5/5 analytics: questions, dashboard and status on generated history...", flush=True)
        insights = analytics.run(analytics.Options.small() if args.analytics == "quick" else analytics.Options())

    lines = report(photos, timings, pipeline, gateway, cores)
    if insights is not None:
        analytics_lines = analytics.markdown(insights)
        if args.analytics == "full":
            analytics.save(insights, "\n".join(analytics_lines))
        lines += ["", "Analytics (bench/analytics.py):", "", *analytics_lines]
    text = "\n".join(lines)
    print("\n" + text)
    save(
        {
            "measured_at": datetime.now(UTC).isoformat(),
            "machine": {"cores": cores, "arch": platform.machine()},
            "photos": {
                "count": len(paths),
                "width": photos.width,
                "height": photos.height,
                "megabytes": photos.megabytes(),
            },
            "photos_per_second": timings,
            "pipeline": pipeline,
            "gateway": gateway,
            "analytics": insights,
        },
        text,
    )


def report(photos: PhotoSet, timings: dict[str, float | None], pipeline: dict, gateway: dict, cores: int) -> list[str]:
    """The results as markdown: image work against the ceiling, then the gateway against raw S3."""
    ceiling = timings["ceiling"] or 1.0
    rows = [
        ("ceiling: photostream image library alone (decode, metadata, hashes, 5 variants)", timings["ceiling"]),
        ("peer: plain Pillow, same 5 variants (no hashes)", timings["pillow"]),
        ("peer: sharp (npm), same 5 variants (no hashes)", timings["sharp"]),
        ("pipeline: first upload to last ImageReady (2 workers + sinks)", pipeline["per_second"]),
    ]
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()} with {cores} cores: {len(photos.paths)} "
        f"photos of {photos.width}x{photos.height} ({photos.megabytes():.1f} MB), one photographer sending half.",
        "",
        "| measurement | photos/s | ratio to ceiling |",
        "|---|---|---|",
    ]
    for name, value in rows:
        lines.append(f"| {name} | {value:.2f} | {value / ceiling:.2f} |" if value else f"| {name} | not run | |")
    p50, p95, idle = pipeline["p50_seconds"], pipeline["p95_seconds"], pipeline["idle"]
    raw, accepted = gateway["s3_put_per_second"], gateway["gateway_per_second"]
    lines += [
        "",
        f"Pipeline latency at steady state (upload received to ImageReady): p50 {p50:.1f} s, p95 {p95:.1f} s.",
        "",
        f"Latency one photo at a time on an idle pipeline ({idle['photos']} photos):"
        f" p50 {idle['total_p50_seconds']:.2f} s (goal < 0.8 s), p95 {idle['total_p95_seconds']:.2f} s;"
        f" stage medians: upload and queue {idle['queue_p50_seconds']:.2f} s,"
        f" processing {idle['processing_p50_seconds']:.2f} s,"
        f" variants to ImageReady {idle['storage_p50_seconds']:.2f} s.",
        "",
        f"| {gateway['clients']} clients, {gateway['megabytes_each']} MB each | uploads/s | ratio |",
        "|---|---|---|",
        f"| raw S3 PUT | {raw:.1f} | 1.00 |",
        f"| gateway, accepted (202) | {accepted:.1f} | {accepted / raw:.2f} |",
    ]
    return lines


if __name__ == "__main__":
    main()
