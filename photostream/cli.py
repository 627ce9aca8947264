"""The `photostream` command line: one entry point, a subcommand per job."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterable

import click

from photostream import __version__
from photostream.stack import Stack, StackError, State, Status


def _print_report(report: Iterable[Status]) -> None:
    for line in report:
        click.echo(str(line))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="photostream")
def main() -> None:
    """Photo ingestion on Kafka: gateway, Faust workers, S3 and ClickHouse sinks."""


@main.group()
def stack() -> None:
    """The local stack: Apache Kafka, SeaweedFS S3 and chDB on 127.0.0.1."""


@stack.command("up")
def stack_up() -> None:
    """Start what is not running and wait until every server answers (idempotent)."""
    try:
        _print_report(Stack().up())
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc


@stack.command("down")
def stack_down() -> None:
    """Stop the servers this stack started; anything else is left running."""
    _print_report(Stack().down())


@stack.command("status")
def stack_status() -> None:
    """Tell which servers answer, and which of them this stack started."""
    report = Stack().status()
    _print_report(report)
    if any(item.state is State.DOWN for item in report):
        raise SystemExit(3)


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
    local = Stack()
    try:
        report = local.up()
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    _print_report(report)
    click.echo("photostream is running; press Ctrl-C to stop")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    started = {item.name for item in report if item.state is State.STARTED}
    if started:
        click.echo("stopping " + ", ".join(sorted(started)))
        _print_report(local.down(only=started))


def _not_yet(name: str, summary: str) -> click.Command:
    @click.command(name, help=f"{summary} (not implemented yet).", context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"`photostream {name}` is not implemented yet")

    return command


for _name, _summary in (
    ("gateway", "Serve the HTTP upload gateway"),
    ("worker", "Run a Faust processing worker"),
    ("sinks", "Run the S3 and ClickHouse sink consumers"),
    ("upload", "Upload files and folders to the gateway"),
    ("sql", "Run a read-only SQL query against the pipeline's ClickHouse"),
    ("keys", "Manage photographers' API keys"),
):
    main.add_command(_not_yet(_name, _summary))
