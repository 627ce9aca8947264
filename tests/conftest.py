"""Shared fixtures: the real local stack, started once per test session.

Integration tests ask for ``local_stack``. It reuses servers that already answer
(a developer's `photostream stack up`) and, at the end, stops only the servers that
this test session started itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from photostream.config import GatewaySettings, KafkaSettings, S3Settings, StackSettings
from photostream.stack import Stack, State
from photostream.topics import ensure_topics
from producers.dashboard import Dashboard
from producers.gateway import create_app
from producers.status import ClickHouseStatus
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


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    stack = Stack(StackSettings())
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
    start_group_at_end(local_stack.kafka, group.app_id)
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
        services = gateway_services(local_stack.kafka, local_stack.s3, settings, status=status, dashboard=dashboard)
        client = await aiohttp_client(create_app(settings, services))
        client.services = services
        return client

    return make
