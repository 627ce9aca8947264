"""Fixtures for the contract's tests; sample events live in ``tests.schemas.samples``."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest


@pytest.fixture
def mock_registry_url() -> Callable[[], str]:
    """Fresh ``mock://`` URLs: same URL = same in-memory registry, so tests must not share one."""

    def make() -> str:
        return f"mock://schemas-test-{uuid.uuid4().hex[:12]}"

    return make
