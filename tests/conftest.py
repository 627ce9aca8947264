"""Shared fixtures: the real local stack, started once per test session.

Integration tests ask for ``local_stack``. It reuses servers that already answer
(a developer's `photostream stack up`) and, at the end, stops only the servers that
this test session started itself.

One test session at a time uses the local stack: the session holds a lock on it
(``var/run/test-session.lock``) and a second one waits. Two at once would share
``photo-uploads``, and every worker group of one would also process the other's
uploads, with a duplicate table that never saw their originals; the other's tests
would then read two different ``ImageProcessed`` for one upload, and stop each
other's servers at the end.
"""

from __future__ import annotations

import fcntl
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from photostream.config import GatewaySettings, KafkaSettings, S3Settings, StackSettings
from photostream.stack import Stack, State
from photostream.topics import ensure_topics
from producers.dashboard import Dashboard
from producers.gateway import create_app
from producers.progress_feed import ProgressFeed
from producers.status import ClickHouseStatus
from schemas.topics import PHOTO_DELETED, PHOTO_UPLOADS
from tests.gateway_client import gateway_services
from tests.pipeline import Sinks
from tests.streams.workers import WorkerGroup, delete_group_topics, start_group_at_end

DATABASE = "photostream"


@dataclass(frozen=True)
class LocalStack:
    """Endpoints of the running local stack, for the tests' clients."""

    stack: Stack
    kafka: KafkaSettings
    s3: S3Settings


SESSION_LOCK_WAIT = 1800.0  # seconds a session waits for another one to finish with the stack


@contextmanager
def one_session_at_a_time(var_dir: Path) -> Iterator[None]:
    """Hold the local stack for this test session; wait while another session holds it."""
    lock_path = var_dir / "run" / "test-session.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        deadline = time.monotonic() + SESSION_LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test session has held the local stack ({lock_path}) for too long")
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    settings = StackSettings()
    with one_session_at_a_time(settings.var_dir):
        stack = Stack(settings)
        report = stack.up()
        started = {item.name for item in report if item.state is State.STARTED}
        yield LocalStack(
            stack=stack,
            # Every broker of the stack (STACK_KAFKA_BROKERS), and topics with up to 3 replicas.
            kafka=stack.settings.kafka_settings(),
            s3=S3Settings(endpoint_url=stack.s3.endpoint),
        )
        if started:
            stack.down(only=started)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Names that never collide across tests and runs on a shared broker or bucket."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make


@pytest.fixture
def workers(local_stack, tmp_path, unique_name):
    ensure_topics(local_stack.kafka)
    group = WorkerGroup(local_stack.kafka, local_stack.s3, unique_name("test-processing"), tmp_path)
    for topic in (PHOTO_UPLOADS, PHOTO_DELETED):
        start_group_at_end(local_stack.kafka, group.app_id, topic)
    yield group
    group.stop_all()
    delete_group_topics(local_stack.kafka, group.app_id)


@pytest.fixture
def sinks(local_stack, tmp_path):
    ensure_topics(local_stack.kafka)
    running = Sinks(local_stack.kafka, local_stack.s3, tmp_path)
    running.skip_history()
    yield running
    running.stop()


@pytest.fixture
def make_gateway(aiohttp_client, local_stack, sinks):
    """Gateway instances sharing the bucket and reading status through the sinks."""

    async def make(token: str | None = None):
        settings = GatewaySettings(daily_quota=10_000)
        reader = sinks.reader()
        status = ClickHouseStatus(reader, DATABASE)
        dashboard = Dashboard(reader, DATABASE, token=token)
        feed = ProgressFeed(local_stack.kafka)
        services = gateway_services(
            local_stack.kafka, local_stack.s3, settings, status=status, dashboard=dashboard, feed=feed
        )
        client = await aiohttp_client(create_app(settings, services))
        client.services = services
        return client

    return make
