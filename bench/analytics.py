"""`make bench-analytics`: the analysts' questions, the dashboard and the status on a month of history (issue 12).

Builds the project's schema with its own migrations in a fresh chDB path, fills 30 days of a 60,000-photos-a-day
service inside ClickHouse (``INSERT ... SELECT FROM numbers(...)``: seconds, no row made in Python), merges it,
then adds the last ten minutes as the sink writes them (batches of 50 events, one replayed). Then, in one run:

- the ten questions of docs/analytics.md (their SQL read from the doc) and the dashboard's queries: median and
  max of 5 runs after a warm-up, through the product's read sessions;
- the gateway's status lookup of one completed upload: median of 20;
- exactness: counts through the tables (FINAL) and the views against what was generated, despite the replay,
  and the doc's p95 against ``quantileExact`` over the deduplicated tables;
- the sink's insert rate without and with the dashboard refreshing every 5 s, alternated twice;
- growth: everything read again at 60 days, and the ratio 60 d / 30 d.

Results go to bench/results/analytics.json and analytics.md (shown in the README).

    make bench-analytics                                      # or: .venv/bin/python bench/analytics.py
    .venv/bin/python bench/analytics.py --quick               # small scale, about a minute, writes no results
    .venv/bin/python bench/analytics.py --schema-version 2    # an older schema, for a baseline
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.analytics_adapter import (
    Writer,
    dashboard_queries,
    migrate_to,
    open_reader,
    open_writer,
    read_settings,
    refresh_daily_rollups,
    settings_for,
    status_lookup,
)
from bench.analytics_data import BATCH_EVENTS, TAIL, HistoryPlan, Scale, generate_history, insert_tail, tail_events
from bench.analytics_measure import (
    DOC,
    Check,
    InsertPhase,
    Query,
    dashboard,
    exactness,
    insert_rate,
    load_ratio,
    questions_of,
    retarget,
    settle,
    time_queries,
    time_status,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
GOALS = {"median_ms": 200, "max_ms": 500, "status_median_ms": 20, "load_ratio": 0.8, "growth_ratio": 1.2}


@dataclass(frozen=True)
class Options:
    """What to build and measure."""

    days: int = 30
    photos_per_day: int = 60_000
    runs: int = 5
    status_runs: int = 20
    insert_seconds: float = 20.0
    growth: bool = True
    database: str = "photostream"
    path: Path | None = None
    schema_version: int | None = None
    read_memory_gb: float | None = None
    doc: Path = DOC
    keep: bool = False
    quick: bool = False

    @classmethod
    def small(cls, **changes: Any) -> Options:
        """A small scale for a fast check: 2 days of 5,000 photos, 2 runs, 3 s insert phases."""
        return replace(
            cls(days=2, photos_per_day=5_000, runs=2, status_runs=5, insert_seconds=3.0, quick=True), **changes
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, help="days of history (default 30; growth rebuilds at twice that)")
    parser.add_argument("--photos-per-day", type=int, help="uploads a day (default 60,000)")
    parser.add_argument("--runs", type=int, help="timed runs per query after the warm-up (default 5)")
    parser.add_argument("--insert-seconds", type=float, help="seconds of each insert phase (default 20)")
    parser.add_argument("--skip-growth", action="store_true", help="do not rebuild at twice the days")
    parser.add_argument("--quick", action="store_true", help="a small scale for a fast check; writes no results")
    parser.add_argument("--database", default="photostream", help="database to build (default photostream)")
    parser.add_argument("--path", type=Path, help="chDB data path (default: a fresh temporary directory)")
    parser.add_argument("--schema-version", type=int, help="migrate only up to this version (a baseline)")
    parser.add_argument("--read-memory-gb", type=float, help="memory limit per read (default: the product's)")
    parser.add_argument("--doc", type=Path, help="read the questions from this file (default docs/analytics.md)")
    parser.add_argument("--keep", action="store_true", help="keep the data path afterwards")
    parser.add_argument("--report-from", type=Path, help="only render the .md of a results .json written before")
    args = parser.parse_args()
    if args.report_from:
        text = "\n".join(markdown(json.loads(args.report_from.read_text())))
        args.report_from.with_suffix(".md").write_text(text + "\n")
        print(text)
        return
    base = Options.small() if args.quick else Options()
    given = {
        "days": args.days,
        "photos_per_day": args.photos_per_day,
        "runs": args.runs,
        "insert_seconds": args.insert_seconds,
        "path": args.path,
        "schema_version": args.schema_version,
        "read_memory_gb": args.read_memory_gb,
        "doc": args.doc,
    }
    options = replace(
        base,
        **{k: v for k, v in given.items() if v is not None},
        growth=not args.skip_growth,
        database=args.database,
        keep=args.keep,
    )
    results = run(options)
    text = "\n".join(markdown(results))
    print("\n" + text)
    if options.quick:
        print("\n(--quick: results not written)")
    else:
        written = save(
            results, text, suffix="" if options.schema_version is None else f"-schema-v{options.schema_version}"
        )
        print(f"\nwritten: {', '.join(str(p.relative_to(ROOT)) for p in written)}")
    failed = [c["name"] for c in results["exactness"] if not c["ok"] and c["exact"]]
    if failed:
        sys.exit(f"counts differ from what was generated: {', '.join(failed)}")


def run(options: Options) -> dict[str, Any]:
    """Build, measure and, unless ``options.growth`` is off, rebuild at twice the days and measure again."""
    own_path = options.path is None
    path = options.path or Path(tempfile.mkdtemp(prefix="photostream-bench-analytics-")) / "clickhouse"
    _refuse_stack_path(path)
    try:
        return asyncio.run(_run(options, path))
    finally:
        if own_path and not options.keep:
            shutil.rmtree(path.parent, ignore_errors=True)
        elif options.keep:
            print(f"data kept in {path}", flush=True)


async def _run(options: Options, path: Path) -> dict[str, Any]:
    scale = Scale(options.days, options.photos_per_day)
    print(f"analytics bench in {path}: {scale.days} days of {scale.photos_per_day:,} photos a day", flush=True)
    # Read once: the doc may be edited while the bench runs, and both scales must ask the same questions.
    asked = questions_of(options.doc.read_text(encoding="utf-8"))
    first = await _measure_database(options, path, options.database, scale, asked, insert=True)
    results: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "arch": platform.machine()},
        "goals": GOALS,
        "options": {k: _portable(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        **first,
    }
    if options.growth:
        grown = Scale(options.days * 2, options.photos_per_day)
        print(f"growth: {grown.days} days in a second database", flush=True)
        growth_database = f"{options.database}_growth"
        results["growth"] = await _measure_database(options, path, growth_database, grown, asked, insert=False)
    return results


async def _measure_database(
    options: Options, path: Path, database: str, scale: Scale, asked: list[Query], *, insert: bool
) -> dict:
    memory = None if options.read_memory_gb is None else int(options.read_memory_gb * 1024**3)
    settings = settings_for(path, database, read_memory_bytes=memory)
    writer = open_writer(settings)
    reader = open_reader(settings)
    try:
        built = await build(writer, database, scale, options.schema_version)
        doc_questions = retarget(asked, database)
        charts = dashboard(dashboard_queries(reader, database))
        print("exactness...", flush=True)
        p95 = next((q for q in doc_questions if "p95_ms" in q.sql and "toStartOfDay" in q.sql), None)
        checks = await exactness(reader, database, built["expected_counts"], p95)
        waited = await settle(reader)
        load_before = os.getloadavg()[0]
        print(f"settled in {waited:.0f} s (no merge running, load {load_before:.1f})", flush=True)
        print(f"the ten questions, {options.runs} runs each after a warm-up...", flush=True)
        timed = await time_queries(reader, doc_questions, options.runs)
        print("the dashboard's queries (minutes=60)...", flush=True)
        timed_charts = await time_queries(reader, charts, options.runs)
        print(f"the status lookup, median of {options.status_runs}...", flush=True)
        status = await time_status(reader, status_lookup(reader, database), database, options.status_runs)
        out: dict[str, Any] = {
            **{k: v for k, v in built.items() if k != "expected_counts"},
            "expected": built["expected_counts"].as_dict(),
            "read_settings": read_settings(settings),
            "exactness": [_check(c) for c in checks],
            "questions": [t.as_dict() for t in timed],
            "dashboard": [t.as_dict() for t in timed_charts],
            "status": status.as_dict(),
        }
        # Others share the machine: the 1-minute load average around the reads says how noisy they were.
        out["load_average"] = {"before": load_before, "after_reads": os.getloadavg()[0], "settle_seconds": waited}
        if insert:
            print(
                f"insert rate: {options.insert_seconds:.0f} s phases without and with the dashboard, twice", flush=True
            )
            load_reader = open_reader(settings)
            try:
                phases = await insert_rate(writer, load_reader, charts, seconds=options.insert_seconds)
            finally:
                await load_reader.close()
            out["insert"] = {"phases": [_phase(p) for p in phases], "ratio": load_ratio(phases)}
        if not options.keep:  # its merges would run on under the next database's measurements
            await writer.run(lambda client: client.command(f"DROP DATABASE IF EXISTS {database} SYNC"))
        return out
    finally:
        await reader.close()
        writer.close()


async def build(writer: Writer, database: str, scale: Scale, schema_version: int | None) -> dict[str, Any]:
    """Migrate, generate the history, merge, insert the tail with a replay; the counts an analyst should see."""
    exists = await writer.run(lambda client: client.command(f"EXISTS DATABASE {database}"))
    if str(exists).strip() == "1":
        raise ValueError(f"database {database} already exists at this path: use a fresh --path or --database")
    await writer.run(migrate_to, database, schema_version)
    version = await writer.run(
        lambda client: client.command(f"SELECT max(version) FROM {database}.schema_migrations")  # noqa: S608
    )
    engine = await writer.run(lambda client: client.command("SELECT version()"))
    plan = HistoryPlan.make(scale, datetime.now(UTC).replace(microsecond=0) - TAIL)
    print(f"generating {plan.rows:,} uploads inside ClickHouse (schema v{version})...", flush=True)
    began = time.perf_counter()
    seconds = await writer.run(generate_history, database, plan)
    seconds["total"] = time.perf_counter() - began
    # The service has run for weeks: its daily rollups were refreshed minutes ago, before the last ten minutes.
    began = time.perf_counter()
    rollups = await writer.run(refresh_daily_rollups, database)
    seconds["rollups"] = time.perf_counter() - began
    tail = tail_events(scale, plan.end, datetime.now(UTC))
    began = time.perf_counter()
    replayed, replayed_rows = await insert_tail(writer, tail)
    seconds["tail"] = time.perf_counter() - began
    expected = plan.counts() + tail.counts
    print(
        f"  {seconds['total']:.0f} s (merge {seconds['optimize']:.0f} s); {rollups} daily rollups refreshed in "
        f"{seconds['rollups']:.1f} s; last {TAIL.seconds // 60} minutes: "
        f"{len(tail.events)} events, batch {replayed} inserted twice ({replayed_rows} rows)",
        flush=True,
    )
    return {
        "clickhouse": str(engine),
        "schema_version": int(version),
        "scale": {"days": scale.days, "photos_per_day": scale.photos_per_day},
        "generation_seconds": seconds,
        "tail": {
            "events": len(tail.events),
            "batch_events": BATCH_EVENTS,
            "replayed_batch": replayed,
            "replayed_rows": replayed_rows,
        },
        "expected_counts": expected,
    }


def _check(check: Check) -> dict[str, Any]:
    return {**asdict(check), "ok": check.ok, "exact": not check.tolerance}


def _phase(phase: InsertPhase) -> dict[str, Any]:
    return {**asdict(phase), "rows_per_second": phase.rows_per_second}


def _refuse_stack_path(path: Path) -> None:
    # chDB allows one process per path: the local stack's engine must never be opened here.
    if (ROOT / "var").resolve() in path.resolve().parents:
        raise SystemExit(f"{path} is inside the local stack's var/: give the bench a path of its own")


def save(results: dict[str, Any], text: str, suffix: str = "") -> list[Path]:
    """Write ``analytics{suffix}.json`` and ``.md`` under bench/results/."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    written = [RESULTS / f"analytics{suffix}.json", RESULTS / f"analytics{suffix}.md"]
    written[0].write_text(json.dumps(results, indent=2, default=str) + "\n")
    written[1].write_text(text + "\n")
    return written


# ---------------------------------------------------------------------------------------------------------------
# The report


def markdown(results: dict[str, Any]) -> list[str]:
    """The results as markdown: the data, query times with goals and growth, exactness, insert rate."""
    scale, expected, growth = results["scale"], results["expected"], results.get("growth")
    reads, gen, tail = results["read_settings"], results["generation_seconds"], results["tail"]
    lines = [
        f"Measured {results['measured_at'][:10]} on {results['machine']['arch']} with {results['machine']['cores']} "
        f"cores; chDB (ClickHouse {results['clickhouse']}), schema v{results['schema_version']}.",
        "",
        f"Data: {scale['days']} days of {scale['photos_per_day']:,} photos a day from 15 photographers (one sending "
        f"30 %): {expected['uploads']:,} uploads, {expected['images']:,} images, {expected['ready']:,} ready, "
        f"{expected['variants']:,} variants, {expected['failures']:,} failures; made inside ClickHouse in "
        f"{gen['total']:.0f} s (merge included)"
        + (f", its daily rollups refreshed once ({gen['rollups']:.1f} s)" if gen.get("rollups") else "")
        + f"; the last ten minutes as {tail['events']} events in batches of "
        f"{tail['batch_events']} through the sink's writer, one batch twice ({tail['replayed_rows']} rows replayed). "
        "Reads through the product's read sessions "
        f"(max_threads {reads['max_threads']}, {reads['sessions']} sessions, "
        f"{reads['max_memory_bytes'] / 1024**3:.0f} GB of memory per query). Load average (1 min, 2 cores) before "
        f"and after the reads (timed once no merge ran and the load was under 1.5, or after 2 minutes): "
        f"{_loads(results)}." + _doc(results),
        "",
    ]
    columns = "| query | reads | rows | median ms | max ms | goal < 200 / < 500 ms |"
    rule = "|---|---|---|---|---|---|"
    if growth:
        columns += (
            f" {growth['scale']['days']} d median ms | {growth['scale']['days']} d / {scale['days']} d | goal ≤ 1.2 |"
        )
        rule += "---|---|---|"
    lines += [columns, rule]
    grown = {t["name"]: t for t in (growth["questions"] + growth["dashboard"] + [growth["status"]])} if growth else {}
    for timing in results["questions"] + results["dashboard"] + [results["status"]]:
        lines.append(_timing_row(timing, grown.get(timing["name"]), bool(growth)))
    lines += ["", "| exactness | expected | seen | |", "|---|---|---|---|"]
    for check in results["exactness"]:
        verdict = "ok" if check["ok"] else "DIFFERS"
        tolerance = " (within 1 %)" if not check["exact"] else ""
        note = f" ({check['note']})" if check["note"] else ""
        expected, seen = _number(check["expected"]), _number(check["seen"])
        lines.append(f"| {check['name']}{note} | {expected} | {seen} | {verdict}{tolerance} |")
    insert = results.get("insert")
    if insert:
        lines += [
            "",
            "| sink inserts (500 events a batch) | rows/s | rows | batches | dashboard refreshes |",
            "|---|---|---|---|---|",
        ]
        for phase in insert["phases"]:
            name = "with the dashboard every 5 s" if phase["load"] else "without load"
            refreshes = phase["refreshes"] if phase["load"] else ""
            lines.append(
                f"| {name} | {phase['rows_per_second']:,.0f} | {phase['rows']:,} | {phase['batches']} | {refreshes} |"
            )
        ratio = insert["ratio"]
        verdict = "ok" if ratio is not None and ratio >= GOALS["load_ratio"] else "MISSED"
        lines += ["", f"Insert rate with the dashboard's load over without: {ratio:.2f} (goal ≥ 0.8: {verdict})."]
    return lines


def _timing_row(timing: dict[str, Any], grown: dict[str, Any] | None, growth: bool) -> str:
    status = timing["name"] == "status"
    name = f"{timing['name']} {timing['title']}" if timing["name"].startswith("Q") else timing["title"]
    reads = "one upload" if status else ("window" if timing["windowed"] else "all time")
    if timing["error"]:
        row = f"| {name} | {reads} | | failed: {timing['error'][:80]} | | MISSED |"
        return row + (" | | |" if growth else "")
    median, slowest = timing["median_ms"], timing["max_ms"]
    if status:
        goal = f"< 20 ms median: {'ok' if median < GOALS['status_median_ms'] else 'MISSED'}"
    else:
        goal = "ok" if median < GOALS["median_ms"] and slowest < GOALS["max_ms"] else "MISSED"
    row = f"| {name} | {reads} | {timing['rows']} | {_ms(median)} | {_ms(slowest)} | {goal} |"
    if not growth:
        return row
    if not grown or grown["error"] or not median:
        return row + " failed | | |"
    ratio = grown["median_ms"] / median
    # An all-time question asks about the whole history, so growing with it is not a miss; it is still shown.
    exempt = not (timing["windowed"] or status)
    verdict = "ok" if ratio <= GOALS["growth_ratio"] else ("all time" if exempt else "MISSED")
    return row + f" {_ms(grown['median_ms'])} | {ratio:.2f} | {verdict} |"


def _portable(path: Path) -> str:
    """A path as results may record it: relative to the project, else its name (no machine paths)."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if ROOT in resolved.parents else path.name


def _doc(results: dict[str, Any]) -> str:
    doc = results["options"]["doc"]
    return "" if doc == _portable(DOC) else f" Questions from {Path(doc).name}, not docs/analytics.md."


def _loads(results: dict[str, Any]) -> str:
    runs = [r for r in (results, results.get("growth")) if r and "load_average" in r]
    loads = [
        f"{r['scale']['days']} d {r['load_average']['before']:.1f} / {r['load_average']['after_reads']:.1f}"
        for r in runs
    ]
    return ", ".join(loads) or "not recorded"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


if __name__ == "__main__":
    main()
