"""Gateways for the producers' tests: the real app on the local stack's Kafka and S3, settings per module."""

from __future__ import annotations

import pytest

from photostream.config import GatewaySettings, KafkaSettings, S3Settings
from photostream.topics import ensure_topics
from producers.gateway import create_app
from tests.gateway_client import gateway_services


@pytest.fixture
def make_client(aiohttp_client, local_stack):
    """Gateway instances with the given settings, sharing the bucket; ``kafka`` or ``s3`` to point one elsewhere."""
    ensure_topics(local_stack.kafka)

    async def make(settings: GatewaySettings, *, kafka: KafkaSettings | None = None, s3: S3Settings | None = None):
        services = gateway_services(kafka or local_stack.kafka, s3 or local_stack.s3, settings)
        client = await aiohttp_client(create_app(settings, services))
        client.services = services
        return client

    return make


@pytest.fixture
async def client(make_client, settings):
    """A gateway with the module's ``settings``."""
    return await make_client(settings)


@pytest.fixture
async def photographer(client, unique_name):
    """A new photographer's name and API key."""
    name = unique_name("ph")
    return name, await client.services.keys.create(name)
