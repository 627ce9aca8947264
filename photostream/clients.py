"""Library clients built from settings: the one place each connection is configured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import clickhouse_connect
from botocore.config import Config

from photostream.config import ClickHouseSettings, S3Settings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


def s3_client(
    settings: S3Settings,
    *,
    endpoint_url: str | None = None,
    timeout: float | None = None,
    max_pool_connections: int = 10,
) -> Any:
    """A boto3 S3 client for the configured endpoint and credentials (path-style addressing).

    ``timeout`` replaces both of the settings' timeouts (connect and read), for a probe or a tool.
    """
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or settings.endpoint_url,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key.get_secret_value(),
        region_name=settings.region,
        config=Config(
            connect_timeout=timeout or settings.connect_timeout,
            read_timeout=timeout or settings.read_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=max_pool_connections,
            s3={"addressing_style": "path"},
            # SigV4 presigned URLs carry their expiry inside the signature.
            signature_version="s3v4",
        ),
    )


def clickhouse_client(
    settings: ClickHouseSettings, *, database: str | None = None, session_settings: dict[str, Any] | None = None
) -> Client:
    """A clickhouse-connect client: chDB in process for ``chdb://``, a server for ``http(s)://``.

    The DSN must be set (see ``photostream.config.clickhouse_settings``). The same
    Client API serves both, so callers never branch on the backend. Each client is a
    session of its own; ``session_settings`` are applied to it in their order.
    """
    if not settings.dsn:
        raise ValueError("ClickHouse DSN is empty; build settings with clickhouse_settings()")
    return clickhouse_connect.get_client(dsn=settings.dsn, database=database, settings=session_settings)


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced, safe to print or log."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
