"""Fixtures for the workers' integration tests: the real gateway in process, real worker processes."""

from __future__ import annotations

import pytest

from photostream.config import GatewaySettings
from producers.gateway import create_app
from tests.gateway_client import gateway_services


@pytest.fixture
async def gateway(aiohttp_client, local_stack):
    settings = GatewaySettings(daily_quota=10_000)
    services = gateway_services(local_stack.kafka, local_stack.s3, settings)
    client = await aiohttp_client(create_app(settings, services))
    client.services = services
    return client
