"""`make bench`: the image work against its peers, the pipeline's rate and latency, and the analytics, side by side.

1. Image work, the same photos, all cores: photostream's image library (decode, metadata,
   hashes, 5 variants), a minimal program calling libvips directly for the same outputs
   (bench/direct_libvips.py), plain Pillow and sharp (npm), each written the fastest way its
   docs allow. Each round runs all four, in a rotating order.
2. The pipeline (gateway → Kafka → workers → sinks, everything on this machine): latency of one
   photo at a time when idle, the sustained rate over 200 uploads (kept 24 ahead of the
   processing, so uploads go on beside it), the core-seconds each part uses, and latency under
   open-loop Poisson arrivals at 50 % and 80 % of that rate (15 photographers, one sending 30 %).
3. The front door: uploads per second of the multipart POST, tus and the direct path against raw
   S3 PUTs of the same photos, 32 clients, each as a ratio with its goal (bench/front_door.py),
   on originals of 5-50 MB as the service takes them (``photoset.production_sized``: each way in
   adds a fixed cost per upload, which smaller photos than production's would overweight),
   and how soon an SSE client hears an ImageReady written to Kafka (bench/live_latency.py).
4. Analytics: the doc's ten questions, the dashboard and the status on 30 days of history
   (bench/analytics.py, which also writes bench/results/analytics.json and analytics.md).

Every figure of issue 15 is printed with its goal, as the median of ``--runs`` rounds with the
spread beside it. Results go to bench/results/results.json and results.md (shown in the README).
It starts the servers it needs and stops those it started.

    make bench                                          # or: .venv/bin/python bench/run.py
    .venv/bin/python bench/run.py --runs 1 --open-loop-seconds 60 --analytics skip   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import analytics, front_door, image_peers, live_latency, pipeline_bench
from bench.photoset import PhotoSet, photo_set, production_sized, save
from photostream.config import StackSettings
from photostream.stack import Stack, State

IMAGE_PEERS: dict[str, Callable[[list[Path]], float | None]] = {
    "library": image_peers.ceiling,
    "direct_libvips": image_peers.direct_libvips,
    "pillow": image_peers.pillow,
    "sharp": image_peers.sharp,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40, help="how many distinct 12 MP photos")
    parser.add_argument("--runs", type=int, default=3, help="rounds of every measurement; figures are their median")
    parser.add_argument("--sustained-photos", type=int, default=200, help="uploads in a sustained-rate run")
    parser.add_argument("--open-loop-seconds", type=float, default=180, help="length of each open-loop run")
    parser.add_argument(
        "--gateway-uploads", type=int, default=front_door.UPLOADS, help="uploads per way in each front-door round"
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients at the front door")
    parser.add_argument(
        "--front-door-runs",
        type=int,
        default=3,
        help="rounds at the front door: a round is about four minutes",
    )
    parser.add_argument(
        "--analytics", choices=("full", "quick", "skip"), default="full", help="the analytics section's scale"
    )
    args = parser.parse_args()
    photos = photo_set(args.photos)
    print(
        f"{len(photos.paths)} photos of {photos.width}x{photos.height}, {photos.megabytes():.1f} MB each;"
        f" {os.cpu_count()} cores; {args.runs} rounds",
        flush=True,
    )
    stack = Stack(StackSettings())
    started = {item.name for item in stack.up() if item.state is State.STARTED}
    try:
        measure(args, photos)
    finally:
        # Only what this run started: a developer's running stack stays up, and nothing is left
        # behind for the next `make run` in another checkout to pick up silently.
        if started:
            stack.down(only=started)


def measure(args: argparse.Namespace, photos: PhotoSet) -> None:
    """Run every section and write the results."""
    paths = list(photos.paths)
    images: dict[str, list[float | None]] = {name: [] for name in IMAGE_PEERS}
    for round_ in range(args.runs):
        order = list(IMAGE_PEERS)[round_ % len(IMAGE_PEERS) :] + list(IMAGE_PEERS)[: round_ % len(IMAGE_PEERS)]
        for name in order:
            print(f"round {round_ + 1}: image work, {name}...", flush=True)
            images[name].append(IMAGE_PEERS[name](paths))
    pipeline: dict[str, list] = {"idle": [], "sustained": [], "half": [], "eighty": []}
    for round_ in range(args.runs):
        print(f"round {round_ + 1}: the pipeline, idle latency and sustained rate...", flush=True)
        pipeline["idle"].append(pipeline_bench.idle_latency(paths, list(photos.owners)))
        pipeline["sustained"].append(pipeline_bench.sustained(paths, photos=args.sustained_photos))
    rate = statistics.median(run["per_second"] for run in pipeline["sustained"])
    for round_ in range(args.runs):
        for key, share in (("half", 0.5), ("eighty", 0.8)):
            print(f"round {round_ + 1}: open-loop arrivals at {share:.0%} of {rate:.2f} photos/s...", flush=True)
            run = pipeline_bench.open_loop(paths, rate=share * rate, seconds=args.open_loop_seconds, seed=round_)
            pipeline[key].append(run)
    print("the front door: POST, tus and direct against raw S3 PUT...", flush=True)
    gateway = front_door.measure(
        list(production_sized()), clients=args.clients, uploads=args.gateway_uploads, runs=args.front_door_runs
    )
    print("live progress: ImageReady on Kafka to the SSE event...", flush=True)
    gateway["live"] = live_latency.measure(paths)
    insights = None
    if args.analytics != "skip":
        print("analytics: questions, dashboard and status on generated history...", flush=True)
        insights = analytics.run(analytics.Options.small() if args.analytics == "quick" else analytics.Options())

    goals = goal_rows(images, pipeline, os.cpu_count() or 1)
    lines = report(photos, args, images, pipeline, goals, gateway)
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
            "machine": {"cores": os.cpu_count(), "arch": platform.machine()},
            "photos": {
                "count": len(paths),
                "width": photos.width,
                "height": photos.height,
                "megabytes": photos.megabytes(),
            },
            "runs": args.runs,
            "image_photos_per_second": images,
            "pipeline": pipeline,
            "goals": goals,
            "gateway": gateway,
            "analytics": insights,
        },
        text,
    )


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _ratios(numerators: list[float | None], denominators: list[float | None]) -> list[float]:
    """Round-by-round ratios (measured side by side), leaving out rounds where either side did not run."""
    return [a / b for a, b in zip(numerators, denominators, strict=True) if a and b]


def goal_rows(images: dict[str, list[float | None]], pipeline: dict[str, list], cores: int) -> list[dict]:
    """Each figure of issue 15: median and spread over the rounds, its goal, and whether the median meets it."""
    sustained = [run["per_second"] for run in pipeline["sustained"]]
    rows = [
        ("image library ÷ direct libvips", _ratios(images["library"], images["direct_libvips"]), ">=", 0.95),
        ("image library ÷ sharp", _ratios(images["library"], images["sharp"]), ">=", 1.1),
        ("image library ÷ Pillow", _ratios(images["library"], images["pillow"]), ">=", 1.5),
        ("pipeline sustained rate ÷ direct libvips", _ratios(sustained, images["direct_libvips"]), ">=", 0.75),
        ("idle latency p50 (s)", [run["total_p50_seconds"] for run in pipeline["idle"]], "<", 0.8),
        ("50 % load latency p95 (s)", [run["p95_seconds"] for run in pipeline["half"]], "<", 2.0),
        ("50 % load latency p99 (s)", [run["p99_seconds"] for run in pipeline["half"]], "<", 4.0),
        ("80 % load latency p95 (s)", [run["p95_seconds"] for run in pipeline["eighty"]], "<", 5.0),
        ("pipeline photos/s per core", [rate / cores for rate in sustained], ">=", 2.0),
    ]
    goals = []
    for name, values, sense, goal in rows:
        if not values:
            goals.append({"figure": name, "goal": f"{sense} {goal}", "met": None})
            continue
        spread = _spread(values)
        met = spread["median"] >= goal if sense == ">=" else spread["median"] < goal
        goals.append({"figure": name, **spread, "goal": f"{sense} {goal}", "met": met})
    return goals


def report(
    photos: PhotoSet,
    args: argparse.Namespace,
    images: dict[str, list[float | None]],
    pipeline: dict[str, list],
    goals: list[dict],
    gateway: dict,
) -> list[str]:
    """The results as markdown: the goals, the image work's rates, then the gateway against raw S3."""
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()} with {os.cpu_count()} cores:"
        f" {len(photos.paths)} photos of {photos.width}x{photos.height} ({photos.megabytes():.1f} MB),"
        f" {args.runs} rounds (median, with min-max); sustained rate over {args.sustained_photos} uploads;"
        f" open-loop runs of {args.open_loop_seconds:.0f} s.",
        "",
        "| figure | median | min-max | goal | met |",
        "|---|---|---|---|---|",
    ]
    for row in goals:
        if row["met"] is None:
            lines.append(f"| {row['figure']} | not run | | {row['goal']} | |")
            continue
        met = "yes" if row["met"] else "**no**"
        lines.append(
            f"| {row['figure']} | {row['median']:.2f} | {row['min']:.2f}-{row['max']:.2f} | {row['goal']} | {met} |"
        )
    if pipeline["idle"]:
        stage = {key: statistics.median(run[key] for run in pipeline["idle"]) for key in pipeline["idle"][0]}
        lines += [
            "",
            f"Idle latency by stage (medians): upload and queue {stage['queue_p50_seconds']:.2f} s, processing"
            f" {stage['processing_p50_seconds']:.2f} s, variants to ImageReady {stage['storage_p50_seconds']:.2f} s.",
        ]
    if pipeline["sustained"] and "cpu_seconds_per_photo" in pipeline["sustained"][0]:
        roles = list(pipeline["sustained"][0]["cpu_seconds_per_photo"])
        share = {
            role: statistics.median(run["cpu_seconds_per_photo"][role] for run in pipeline["sustained"])
            for role in roles
        }
        total = sum(share.values()) or 1.0
        lines += [
            "",
            "Core-seconds per photo in the sustained runs (medians), by part: "
            + ", ".join(f"{role} {seconds:.3f} ({seconds / total:.0%})" for role, seconds in share.items())
            + f"; {total:.3f} in all, {(os.cpu_count() or 1) / total:.2f} photos/s if every core were busy.",
        ]
    lines += ["", "| image work, all cores | photos/s (median) | min-max |", "|---|---|---|"]
    for name, values in images.items():
        measured = [value for value in values if value]
        if measured:
            lines.append(f"| {name} | {statistics.median(measured):.2f} | {min(measured):.2f}-{max(measured):.2f} |")
        else:
            lines.append(f"| {name} | not run | |")
    lines += ["", *front_door.report(gateway), "", *live_latency.report(gateway["live"])]
    return lines


if __name__ == "__main__":
    main()
