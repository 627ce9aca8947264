"""`photostream run`: the pipeline on the local stack, in the foreground, until Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from photostream.config import GatewaySettings, S3Settings
from photostream.objectstore import ObjectStore
from photostream.stack import Stack, State
from photostream.supervisor import Child, Supervisor
from producers.keys import S3KeyStore

DEMO_PHOTOGRAPHER = "demo"
# Two workers share the partitions, as in production, so a crash of one is covered by the other.
LOCAL_WORKERS = 2


async def _dev_api_key(path: Path, s3: S3Settings) -> str:
    """The demo photographer's key, kept in the stack's var dir and re-made if it stopped working."""
    store = ObjectStore(s3)
    try:
        keys = S3KeyStore(store)
        if path.exists():
            saved = path.read_text().strip()
            if await keys.lookup(saved) is not None:
                return saved
        api_key = await keys.create(DEMO_PHOTOGRAPHER)
    finally:
        await store.close()
    path.touch(mode=0o600)
    path.write_text(api_key + "\n")
    return api_key


def run_local(echo: Callable[[str], None]) -> None:
    """Start the stack, workers and sinks, then serve the gateway until SIGINT/SIGTERM; stop what was started."""
    from producers.service import run_gateway

    stack = Stack()
    report = stack.up()
    started = {item.name for item in report if item.state is State.STARTED}
    for line in report:
        echo(str(line))
    # The services read their settings from the environment: point them at this stack's brokers
    # (every one of a cluster, 3 replicas per topic) unless the caller said otherwise.
    for name, value in stack.settings.kafka_settings().environment().items():
        os.environ.setdefault(name, value)
    logs = stack.settings.var_dir / "log"
    photostream = [sys.executable, "-m", "photostream"]
    children = Supervisor(
        [
            *(
                Child(f"worker-{n}", [*photostream, "worker"], logs / f"worker-{n}.log")
                for n in range(1, LOCAL_WORKERS + 1)
            ),
            Child("sinks", [*photostream, "sinks"], logs / "sinks.log"),
        ]
    )
    try:
        children.start()
        echo(f"workers: {LOCAL_WORKERS}, sinks: 1 (logs in {logs})")
        api_key = asyncio.run(_dev_api_key(stack.settings.var_dir / "dev-api-key", S3Settings()))
        gateway = GatewaySettings()
        echo(f"gateway: http://{gateway.host}:{gateway.port}")
        echo(f"dashboard: http://{gateway.host}:{gateway.port}/dashboard")
        echo(f"api key ({DEMO_PHOTOGRAPHER}): {api_key}")
        echo("press Ctrl-C to stop")
        run_gateway()
    finally:
        echo("stopping the workers and the sinks")
        children.stop()
        if started:
            echo("stopping " + ", ".join(sorted(started)))
            for line in stack.down(only=started):
                echo(str(line))
