"""Fixtures for the workers' integration tests: the real gateway in process, real worker processes."""

from __future__ import annotations

import pytest

from photostream.config import GatewaySettings
from photostream.topics import ensure_topics
from producers.gateway import create_app
from tests.gateway_client import gateway_services
from tests.streams.workers import WorkerGroup, delete_group_topics, start_group_at_end


@pytest.fixture
def workers(local_stack, tmp_path, unique_name):
    ensure_topics(local_stack.kafka)
    group = WorkerGroup(local_stack.kafka, local_stack.s3, unique_name("test-processing"), tmp_path)
    start_group_at_end(local_stack.kafka, group.app_id)
    yield group
    group.stop_all()
    delete_group_topics(local_stack.kafka, group.app_id)


@pytest.fixture
async def gateway(aiohttp_client, local_stack):
    settings = GatewaySettings(daily_quota=10_000)
    services = gateway_services(local_stack.kafka, local_stack.s3, settings)
    client = await aiohttp_client(create_app(settings, services))
    client.services = services
    return client
