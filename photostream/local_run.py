"""`photostream run`: the pipeline on the local stack, in the foreground, until Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from photostream.config import GatewaySettings, S3Settings
from photostream.objectstore import ObjectStore
from photostream.stack import Stack, State
from producers.keys import S3KeyStore

DEMO_PHOTOGRAPHER = "demo"


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
        store.close()
    path.touch(mode=0o600)
    path.write_text(api_key + "\n")
    return api_key


def run_local(echo: Callable[[str], None]) -> None:
    """Start the stack, then serve the gateway until SIGINT/SIGTERM; stop what was started."""
    from producers.service import run_gateway

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stack = Stack()
    report = stack.up()
    started = {item.name for item in report if item.state is State.STARTED}
    for line in report:
        echo(str(line))
    try:
        api_key = asyncio.run(_dev_api_key(stack.settings.var_dir / "dev-api-key", S3Settings()))
        gateway = GatewaySettings()
        echo(f"gateway: http://{gateway.host}:{gateway.port}")
        echo(f"api key ({DEMO_PHOTOGRAPHER}): {api_key}")
        echo("press Ctrl-C to stop")
        run_gateway()
    finally:
        if started:
            echo("stopping " + ", ".join(sorted(started)))
            for line in stack.down(only=started):
                echo(str(line))
