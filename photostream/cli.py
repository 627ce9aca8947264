"""The `photostream` command line: one entry point, a subcommand per job."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path

import click

from photostream import __version__
from photostream.config import LogSettings, StackSettings
from photostream.stack import Stack, StackError, State, Status
from schemas.topics import EVENT_BY_TOPIC

_BROKERS = click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    help="Kafka brokers in the local cluster (default STACK_KAFKA_BROKERS, 1).",
)


def _print_report(report: Iterable[Status]) -> None:
    for line in report:
        click.echo(str(line))


def _setup_logging(service: str, level: str | None = None) -> LogSettings:
    """Log as LOG_FORMAT and LOG_LEVEL (or ``level``) say; a value they cannot take is a usage error."""
    from photostream.logs import setup_logging

    try:
        settings = LogSettings() if level is None else LogSettings(level=level)
    except ValueError as exc:  # pydantic's ValidationError: an unknown format or level
        raise click.ClickException(str(exc)) from exc
    return setup_logging(service, settings)


def _stack(brokers: int | None) -> Stack:
    try:
        settings = StackSettings() if brokers is None else StackSettings(kafka_brokers=brokers)
    except ValueError as exc:  # pydantic's ValidationError: ports that overlap, say
        raise click.ClickException(str(exc)) from exc
    return Stack(settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="photostream")
def main() -> None:
    """Photo ingestion on Kafka: gateway, Faust workers, S3 and ClickHouse sinks."""


@main.group()
def stack() -> None:
    """The local stack: Apache Kafka, SeaweedFS S3 and chDB on 127.0.0.1."""


@stack.command("up")
@_BROKERS
def stack_up(brokers: int | None) -> None:
    """Start what is not running and wait until every server answers (idempotent)."""
    local = _stack(brokers)
    try:
        _print_report(local.up())
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    if local.settings.kafka_brokers > 1:
        # Clients of a cluster need every broker and 3 replicas per topic: `make run` sets these itself.
        for name, value in local.settings.kafka_settings().environment().items():
            click.echo(f"export {name}={value}")


@stack.command("down")
@_BROKERS
def stack_down(brokers: int | None) -> None:
    """Stop the servers this stack started (every Kafka broker it runs); anything else is left running."""
    _print_report(_stack(brokers).down())


@stack.command("status")
@_BROKERS
def stack_status(brokers: int | None) -> None:
    """Tell which servers answer, and which of them this stack started."""
    report = _stack(brokers).status()
    _print_report(report)
    if any(item.state is State.DOWN for item in report):
        raise SystemExit(3)


@stack.command("vacuum")
def stack_vacuum() -> None:
    """Give the disk back the space of deleted S3 objects now (SeaweedFS does it every 15 minutes)."""
    local = Stack()
    if not local.s3.answers():
        raise click.ClickException("the local S3 server is not running: photostream stack up")
    try:
        freed = local.s3.vacuum()
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    left = local.s3.volume_bytes()
    click.echo(f"freed {freed / 1e6:.0f} MB of deleted objects; the volumes take {left / 1e6:.0f} MB")


@stack.command("jars")
def stack_jars() -> None:
    """Fetch the Kafka broker's jars from Maven Central into the cache (once)."""
    try:
        click.echo(Stack().kafka.ensure_jars())
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
def run() -> None:
    """Run the pipeline on the local stack until Ctrl-C; stop what this command started."""
    from photostream.local_run import run_local

    # The workers and the sinks it starts inherit LOG_FORMAT and LOG_LEVEL with the environment.
    _setup_logging("run")
    try:
        run_local(click.echo)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
def gateway() -> None:
    """Serve the HTTP upload gateway (GATEWAY_HOST:GATEWAY_PORT, default 127.0.0.1:8080)."""
    from producers.service import run_gateway

    _setup_logging("gateway")
    run_gateway()


@main.command()
@click.option("--loglevel", help="Log level of the worker [default: LOG_LEVEL, INFO].")
def worker(loglevel: str | None) -> None:
    """Run a Faust processing worker; start several to share the partitions."""
    from streams.worker import run_worker

    run_worker(_setup_logging("worker", loglevel))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--api-key", envvar="PHOTOSTREAM_API_KEY", required=True, help="Your key (or PHOTOSTREAM_API_KEY).")
@click.option(
    "--url", default="http://127.0.0.1:8080", show_default=True, envvar="PHOTOSTREAM_URL", help="The gateway."
)
@click.option("--parallel", "-j", default=4, show_default=True, type=click.IntRange(1, 64), help="Uploads at once.")
@click.option("--attempts", default=6, show_default=True, type=click.IntRange(1), help="Tries per file on 429/503.")
@click.option("--title", help="Title for every file.")
@click.option("--tags", help="Comma-separated tags for every file.")
@click.option("--wait", is_flag=True, help="Wait until each upload is completed or failed, and show the results.")
@click.option("--wait-timeout", default=600.0, show_default=True, help="Seconds --wait waits at most.")
@click.option(
    "--resumable",
    is_flag=True,
    help="Send through tus in 5 MB chunks; run the same command again after an interruption to go on.",
)
@click.option(
    "--direct",
    is_flag=True,
    help="Send each file straight to S3 through a URL the gateway signs (not with --resumable).",
)
@click.option(
    "--resume-state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where --resumable keeps the upload URLs [default: the user's cache dir].",
)
def upload(
    paths: tuple[Path, ...],
    api_key: str,
    url: str,
    parallel: int,
    attempts: int,
    title: str | None,
    tags: str | None,
    wait: bool,
    wait_timeout: float,
    resumable: bool,
    direct: bool,
    resume_state: Path | None,
) -> None:
    """Upload PATHS (files, and folders recursively) to the gateway."""
    import time

    from rich.console import Console

    from producers.tus_client import ResumeState, default_state_path
    from producers.upload import Uploader, collect, processed_summary, results_table, summary

    files = collect(paths)
    if not files:
        raise click.ClickException("no image files found")
    if resumable and direct:
        raise click.UsageError("--resumable and --direct are two ways to send: choose one")
    state = ResumeState(resume_state or default_state_path()) if resumable else None
    uploader = Uploader(
        url, api_key, parallel=parallel, attempts=attempts, title=title, tags=tags, resume_state=state, direct=direct
    )
    started = time.monotonic()
    outcomes = asyncio.run(uploader.upload(files))
    click.echo(summary(outcomes, time.monotonic() - started))
    if wait:
        asyncio.run(uploader.wait(outcomes, timeout=wait_timeout))
        Console().print(results_table(outcomes))
        click.echo(processed_summary(outcomes))
    unauthorized = [o for o in outcomes if o.problem == "unauthorized"]
    if unauthorized:
        raise click.ClickException("the gateway refused the API key")
    if any(o.result in {"rejected", "error"} or o.final.get("status") == "failed" for o in outcomes):
        sys.exit(1)


@main.command()
@click.option("--photos", default=24, show_default=True, type=click.IntRange(3), help="How many sample photos.")
@click.option("--size", default="3000x2000", show_default=True, help="Their size, WIDTHxHEIGHT.")
@click.option("--url", default=None, envvar="PHOTOSTREAM_URL", help="The gateway [default: GATEWAY_HOST:GATEWAY_PORT].")
def demo(photos: int, size: str, url: str | None) -> None:
    """Send sample photos from three photographers through the running pipeline, then print its report."""
    from rich.console import Console

    from photostream.config import GatewaySettings, S3Settings, clickhouse_settings
    from photostream.warehouse import WarehouseError
    from producers.demo import run_demo

    try:
        width, height = (int(part) for part in size.lower().split("x"))
    except ValueError as exc:
        raise click.BadParameter("expected WIDTHxHEIGHT, e.g. 3000x2000", param_hint="--size") from exc
    gateway = GatewaySettings()
    url = url or f"http://{gateway.host}:{gateway.port}"
    try:
        outcomes = asyncio.run(
            run_demo(url, S3Settings(), clickhouse_settings(), photos=photos, size=(width, height), console=Console())
        )
    except WarehouseError as exc:
        raise click.ClickException(f"no report: {exc}") from exc
    if any(o.result == "error" for o in outcomes):
        raise click.ClickException(f"the gateway at {url} did not take the photos: is `make run` running?")


@main.command()
def sinks() -> None:
    """Run the sink consumers: variants into S3 (and ImageReady), events into ClickHouse."""
    from sinks.service import run_sinks

    _setup_logging("sinks")
    run_sinks()


@main.command()
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="How to print the rows.",
)
def sql(query: str, fmt: str) -> None:
    """Run a read-only QUERY against the pipeline's ClickHouse (also while it runs); writes are refused."""
    from photostream.config import clickhouse_settings
    from photostream.sql import render, run_query
    from photostream.warehouse import ReadOnlyViolation, WarehouseError

    try:
        result = asyncio.run(run_query(clickhouse_settings(), query))
    except ReadOnlyViolation as exc:
        raise click.ClickException(f"refused: {exc}; `photostream sql` only reads") from exc
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(render(result, fmt))


@main.group()
def events() -> None:
    """Watch the pipeline's topics decoded, and list their schemas (for operators and subscriber authors)."""


@events.command("tail")
@click.argument("topic", type=click.Choice(list(EVENT_BY_TOPIC)))
@click.option("--from-beginning", is_flag=True, help="Start at the topic's oldest event, not at its end.")
@click.option("--photographer", "photographer_id", help="Only this photographer's events (the messages' key).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "table"]),
    default="json",
    show_default=True,
    help="JSON lines, or one short row per event.",
)
@click.option("--limit", type=click.IntRange(1), help="Stop after this many lines [default: never].")
def events_tail(topic: str, from_beginning: bool, photographer_id: str | None, fmt: str, limit: int | None) -> None:
    """Print each event of TOPIC as it arrives, decoded; a message that does not decode prints as one clear line."""
    from itertools import islice

    from photostream.config import KafkaSettings, SchemaRegistrySettings
    from photostream.events import TopicUnavailable, tail
    from schemas.serde import EventSerde

    serde = EventSerde(SchemaRegistrySettings().url)
    reads = tail(KafkaSettings(), serde, topic, from_beginning=from_beginning, photographer_id=photographer_id)
    try:
        for read in islice(reads, limit):
            click.echo(read.as_json() if fmt == "json" else read.as_row())
    except TopicUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        pass
    finally:
        reads.close()


@events.command("schemas")
def events_schemas() -> None:
    """Print each topic with its event, schema, fingerprint and wire format."""
    from terminaltables import AsciiTable

    from photostream.config import SchemaRegistrySettings
    from photostream.events import schema_rows
    from schemas.serde import EventSerde

    rows = schema_rows(EventSerde(SchemaRegistrySettings().url))
    table = AsciiTable([list(rows[0]), *(list(row.values()) for row in rows)])
    table.outer_border = table.inner_column_border = table.inner_heading_row_border = False
    table.padding_left, table.padding_right = 0, 2
    click.echo("\n".join(line.rstrip() for line in table.table.splitlines()))


@main.group()
def keys() -> None:
    """Manage photographers' API keys (stored hashed in the shared bucket)."""


@keys.command("create")
@click.argument("photographer_id")
def keys_create(photographer_id: str) -> None:
    """Create an API key for PHOTOGRAPHER_ID; the key is printed once, alone on the last line."""
    from photostream.config import S3Settings
    from photostream.objectstore import ObjectStore, StoreError
    from producers.keys import InvalidPhotographerId, S3KeyStore

    async def create() -> str:
        store = ObjectStore(S3Settings())
        try:
            return await S3KeyStore(store).create(photographer_id)
        finally:
            await store.close()

    try:
        api_key = asyncio.run(create())
    except InvalidPhotographerId as exc:
        raise click.BadParameter(str(exc), param_hint="PHOTOGRAPHER_ID") from exc
    except StoreError as exc:
        raise click.ClickException(f"could not store the key: {exc}") from exc
    click.echo(f"API key for {photographer_id} (shown once; store it now):")
    click.echo(api_key)
