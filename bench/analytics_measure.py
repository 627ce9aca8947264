"""The analytics benchmark's measurements: query times, the status lookup, exactness, and the insert rate under load.

Every read goes through the readers the product uses (``bench.analytics_adapter``), so a figure here is what
the dashboard, the gateway's status or an analyst's ``photostream sql`` would see on the same data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.analytics_adapter import QueryError, Reader, Writer
from bench.analytics_data import Counts, batches, insert_batches, uploads_as_events

DOC = Path(__file__).resolve().parents[1] / "docs" / "analytics.md"
DOC_DATABASE = "photostream"
_QUESTION = re.compile(r"^### (\d+)\. (.+)$", re.MULTILINE)
_SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# A lower bound on a time column relative to now: the query reads a window, not all time.
_WINDOW = re.compile(r">=\s*(?:now\(|toStartOf\w+\(now)")


@dataclass(frozen=True)
class Query:
    """A query to time: a question of the doc or a chart of the dashboard."""

    name: str
    title: str
    sql: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def windowed(self) -> bool:
        """True when it reads a time window relative to now; otherwise it is all-time by nature."""
        return bool(_WINDOW.search(self.sql))


@dataclass
class Timing:
    """Milliseconds of each timed run (after one warm-up), the rows of the answer, or the error."""

    name: str
    title: str
    windowed: bool
    runs_ms: list[float] = field(default_factory=list)
    rows: int = 0
    error: str | None = None
    sql: str = ""

    @property
    def median_ms(self) -> float | None:
        """Median of the runs."""
        return statistics.median(self.runs_ms) if self.runs_ms else None

    @property
    def max_ms(self) -> float | None:
        """Slowest run."""
        return max(self.runs_ms) if self.runs_ms else None

    def as_dict(self) -> dict[str, Any]:
        """For the JSON results."""
        return {**asdict(self), "median_ms": self.median_ms, "max_ms": self.max_ms}


def questions(database: str, doc: Path = DOC) -> list[Query]:
    """The ten questions of docs/analytics.md (or ``doc``), one ```sql block each, pointed at ``database``."""
    return retarget(questions_of(doc.read_text(encoding="utf-8")), database)


def retarget(queries: list[Query], database: str) -> list[Query]:
    """The queries with the doc's database replaced by ``database``."""
    return [replace(q, sql=_retarget(q.sql, database)) for q in queries]


def questions_of(text: str) -> list[Query]:
    """The questions of the doc's text ``text``, as written (database ``photostream``)."""
    section = text[text.index("## Ten questions") :]
    out = []
    for head in _QUESTION.finditer(section):
        following = re.compile(r"^#{1,3} ", re.MULTILINE).search(section, head.end())
        body = section[head.end() : following.start() if following else len(section)]
        blocks = _SQL_BLOCK.findall(body)
        if len(blocks) != 1:
            raise ValueError(f"question {head.group(1)} of the doc has {len(blocks)} sql blocks, not one")
        out.append(Query(f"Q{head.group(1)}", head.group(2), blocks[0]))
    return out


def dashboard(queries: dict[str, str], minutes: int = 60) -> list[Query]:
    """The dashboard's queries, with the parameter it sends by default."""
    return [
        Query(f"dashboard {name}", f"the dashboard's {name} chart", sql, {"minutes": minutes})
        for name, sql in queries.items()
    ]


def _retarget(sql: str, database: str) -> str:
    return sql if database == DOC_DATABASE else re.sub(rf"\b{DOC_DATABASE}\.", f"{database}.", sql)


async def time_queries(reader: Reader, queries: list[Query], runs: int) -> list[Timing]:
    """Run each query once to warm up, then ``runs`` times, one after the other."""
    timings = []
    for query in queries:
        timing = Timing(query.name, query.title, query.windowed, sql=query.sql)
        try:
            answer = await reader.query(query.sql, query.parameters)
            timing.rows = len(answer.rows)
            for _ in range(runs):
                began = time.perf_counter()
                await reader.query(query.sql, query.parameters)
                timing.runs_ms.append((time.perf_counter() - began) * 1000)
        except QueryError as error:
            timing.error = str(error)
        timings.append(timing)
        print(f"  {_line(timing)}", flush=True)
    return timings


def _line(timing: Timing) -> str:
    if timing.error:
        return f"{timing.name}: failed: {timing.error[:160]}"
    return f"{timing.name}: median {timing.median_ms:.0f} ms, max {timing.max_ms:.0f} ms, {timing.rows} rows"


async def settle(reader: Reader, *, load: float = 1.5, limit: float = 120.0) -> float:
    """Wait (up to ``limit`` seconds) until no merge runs and the 1-minute load is under ``load``; seconds waited.

    Generating a month of rows leaves merges running and the machine busy for a while; reads timed meanwhile
    would measure the aftermath of the build, not the schema.
    """
    began = time.monotonic()
    while time.monotonic() - began < limit:
        merging = (await reader.query("SELECT count() FROM system.merges")).rows[0][0]
        if not merging and os.getloadavg()[0] < load:
            break
        await asyncio.sleep(2)
    return time.monotonic() - began


async def time_status(reader: Reader, lookup: Any, database: str, runs: int = 20) -> Timing:
    """The gateway's status lookup of one completed upload (received about an hour ago): ``runs`` after a warm-up."""
    pick = await reader.query(
        f"SELECT toString(upload_id), photographer_id, received_at FROM {database}.ready "  # noqa: S608 (checked identifier)
        "WHERE received_at < now() - INTERVAL 1 HOUR ORDER BY received_at DESC LIMIT 1"
    )
    timing = Timing("status", "the status of one completed upload (ClickHouseStatus.progress)", False)
    upload_id, photographer_id, received_at = pick.rows[0]
    received_at = received_at.replace(tzinfo=UTC) if received_at.tzinfo is None else received_at
    try:
        status = await lookup(upload_id, photographer_id, received_at)
        if status != "completed":
            raise QueryError(f"upload {upload_id} reads as {status}, not completed")
        for _ in range(runs):
            began = time.perf_counter()
            await lookup(upload_id, photographer_id, received_at)
            timing.runs_ms.append((time.perf_counter() - began) * 1000)
        timing.rows = 1
    except QueryError as error:
        timing.error = str(error)
    print(f"  {_line(timing)}", flush=True)
    return timing


@dataclass
class Check:
    """One exactness check: what the generator made against what a reader sees."""

    name: str
    expected: float
    seen: float | None
    tolerance: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        """Seen equals expected, or is within the relative tolerance."""
        if self.seen is None:
            return False
        if self.tolerance:
            return abs(self.seen - self.expected) <= self.tolerance * abs(self.expected)
        return self.seen == self.expected


async def exactness(reader: Reader, database: str, expected: Counts, p95_question: Query | None) -> list[Check]:
    """Counts through the tables (FINAL) and the views against the generated numbers; the doc's p95 against exact.

    A query that fails (a read limit, say) is a failed check with the error as its note.
    """
    try:
        return await _exactness(reader, database, expected, p95_question)
    except QueryError as error:
        return [Check("exactness", 0, None, note=str(error)[:200])]


async def _exactness(reader: Reader, database: str, expected: Counts, p95_question: Query | None) -> list[Check]:
    db = database
    checks = []
    for table in ("uploads", "images", "ready", "variants", "failures"):
        final = await _scalar(reader, f"SELECT count() FROM {db}.{table} FINAL")  # noqa: S608
        raw = await _scalar(reader, f"SELECT count() FROM {db}.{table}")  # noqa: S608
        checks.append(Check(f"{table}: count() FINAL", getattr(expected, table), final, note=f"{raw:,} without FINAL"))
    totals = await reader.query(
        f"SELECT sum(uploads), sum(images), sum(failures) FROM {db}.throughput_per_minute"  # noqa: S608
    )
    uploads, images, failures = totals.rows[0]
    checks += [
        Check("throughput_per_minute: sum(uploads)", expected.uploads, uploads),
        Check("throughput_per_minute: sum(images)", expected.completed, images),
        Check("throughput_per_minute: sum(failures)", expected.failed, failures),
    ]
    statuses = dict((await reader.query(f"SELECT status, count() FROM {db}.image_stages GROUP BY status")).rows)  # noqa: S608
    for status in ("completed", "failed", "queued"):
        checks.append(Check(f"image_stages: status {status}", getattr(expected, status), statuses.get(status, 0)))
    checks += await _all_time_checks(reader, db, expected)
    if p95_question is not None:
        try:
            checks += await _p95_checks(reader, db, p95_question)
        except QueryError as error:
            checks.append(Check(f"{p95_question.name} p95 today", 0, None, note=str(error)[:200]))
    return checks


async def _all_time_checks(reader: Reader, db: str, expected: Counts) -> list[Check]:
    """The all-time views (daily rollups plus the days since) against the generator or a scan with FINAL."""
    cameras, hours = (
        await reader.query(
            "SELECT countIf(camera_make IS NOT NULL), countIf(captured_at_local IS NOT NULL) "  # noqa: S608
            f"FROM {db}.images FINAL"
        )
    ).rows[0]
    sums = {
        "cameras: sum(images)": ("cameras", "images", cameras),
        "duplicates_per_photographer: sum(images)": ("duplicates_per_photographer", "images", expected.images),
        "failures_by_reason: sum(failures)": ("failures_by_reason", "failures", expected.failures),
        "capture_hours: sum(images)": ("capture_hours", "images", hours),
    }
    checks = []
    for name, (view, column, value) in sums.items():
        try:
            checks.append(Check(name, value, await _scalar(reader, f"SELECT sum({column}) FROM {db}.{view}")))  # noqa: S608
        except QueryError:
            continue  # an older schema (a baseline) without this view
    return checks


async def _p95_checks(reader: Reader, db: str, question: Query) -> list[Check]:
    """The question's p95 per photographer against quantileExact over the deduplicated base tables."""
    answer = await reader.query(question.sql)
    if "photographer_id" not in answer.columns or "p95_ms" not in answer.columns:
        return [Check(f"{question.name} p95", 0, None, note="no photographer_id and p95_ms columns")]
    seen = {row["photographer_id"]: row["p95_ms"] for row in answer.dicts()}
    exact = await reader.query(
        "SELECT photographer_id, quantileExact(0.95)(dateDiff('millisecond', u.received_at, r.ready_at)) "  # noqa: S608
        f"FROM (SELECT photographer_id, upload_id, received_at FROM {db}.uploads FINAL "
        "WHERE received_at >= toStartOfDay(now('UTC'))) AS u "
        f"INNER JOIN (SELECT photographer_id, upload_id, ready_at FROM {db}.ready FINAL "
        "WHERE received_at >= toStartOfDay(now('UTC'))) AS r USING (photographer_id, upload_id) "
        "GROUP BY photographer_id"
    )
    if not exact.rows:
        return [Check(f"{question.name} p95 today", 0, None, note="no completed upload today")]

    def error(row: tuple[str, float]) -> float:
        photographer, value = row
        return abs(seen[photographer] - value) / value if seen.get(photographer) is not None and value else 1.0

    photographer, value = max(exact.rows, key=error)
    name = f"{question.name} p95 today (ms), the farthest of {len(exact.rows)} photographers from quantileExact"
    return [Check(name, value, seen.get(photographer), tolerance=0.01, note=photographer)]


async def _scalar(reader: Reader, sql: str) -> Any:
    return (await reader.query(sql)).rows[0][0]


@dataclass
class InsertPhase:
    """Rows the sink's writer inserted in one phase, and the seconds its insert path took."""

    load: bool
    rows: int = 0
    seconds: float = 0.0
    batches: int = 0
    refreshes: int = 0

    @property
    def rows_per_second(self) -> float:
        """Rows of all tables per second of the sink's insert path."""
        return self.rows / self.seconds if self.seconds else 0.0


async def insert_rate(
    writer: Writer, reader: Reader, queries: list[Query], *, seconds: float, rounds: int = 2, interval: float = 5.0
) -> list[InsertPhase]:
    """Alternate phases without and with the dashboard refreshing every ``interval`` s, ``rounds`` times.

    Each phase sends batches of 500 events (167 uploads, each received, processed and ready: 8 rows) through the
    sink's path, the mapping to rows and one insert per table, until that path has run for ``seconds``. The
    events are made between batches and not timed: making them is the producers' work, not the sink's.
    """
    phases = []
    for round_number in range(rounds):
        for load in (False, True):
            phase = InsertPhase(load)
            stop = asyncio.Event()
            refresher = asyncio.create_task(_refresh(reader, queries, stop, interval, phase)) if load else None
            while phase.seconds < seconds:
                now = datetime.now(UTC)
                label = f"rate-{round_number}-{int(load)}-{phase.batches}"
                tail = uploads_as_events(
                    167, now - timedelta(seconds=70), now - timedelta(seconds=60), label=label, cutoff=now
                )
                began = time.perf_counter()
                (prepared,) = batches(tail.events, size=len(tail.events))
                phase.rows += await insert_batches(writer, [prepared])
                phase.seconds += time.perf_counter() - began
                phase.batches += 1
            if refresher is not None:
                stop.set()
                await refresher
            print(
                f"  {'with' if load else 'without'} dashboard load: {phase.rows_per_second:,.0f} rows/s "
                f"({phase.rows:,} rows in {phase.batches} batches"
                + (f", {phase.refreshes} refreshes)" if load else ")"),
                flush=True,
            )
            phases.append(phase)
    return phases


async def _refresh(
    reader: Reader, queries: list[Query], stop: asyncio.Event, interval: float, phase: InsertPhase
) -> None:
    """Send every dashboard query, then wait for the rest of ``interval``, until ``stop``."""
    while not stop.is_set():
        began = time.perf_counter()
        for query in queries:
            with contextlib.suppress(QueryError):  # a refused refresh is still load
                await reader.query(query.sql, query.parameters)
        phase.refreshes += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.perf_counter() - began)))


def load_ratio(phases: list[InsertPhase]) -> float | None:
    """Rows per second with the dashboard's load over rows per second without, over every phase of each kind."""
    rates = {}
    for load in (False, True):
        chosen = [p for p in phases if p.load is load]
        rows, seconds = sum(p.rows for p in chosen), sum(p.seconds for p in chosen)
        rates[load] = rows / seconds if seconds else 0.0
    return rates[True] / rates[False] if rates[False] else None
