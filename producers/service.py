"""Run the gateway as a service: wire real adapters from settings, serve until stopped."""

from __future__ import annotations

import errno
import logging

from aiohttp import web

from photostream.config import (
    ClickHouseSettings,
    GatewaySettings,
    KafkaSettings,
    S3Settings,
    SchemaRegistrySettings,
    clickhouse_settings,
)
from photostream.logs import announce
from photostream.objectstore import ObjectStore
from photostream.topics import ensure_topics
from photostream.warehouse import reader_for
from producers.accesslog import RedactingAccessLogger
from producers.dashboard import Dashboard
from producers.gateway import Services, create_app
from producers.keys import S3KeyStore
from producers.ledger import UploadLedger
from producers.progress_feed import ProgressFeed
from producers.publisher import KafkaUploadEvents
from producers.status import ClickHouseStatus
from schemas.serde import EventSerde

log = logging.getLogger(__name__)

# Bounds on what one client can make the server hold: header lines and fields.
MAX_HEADER_LINE_BYTES = 8190
# Why a listening socket cannot be had: taken, not this machine's address, not allowed.
_BIND_ERRORS = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}


def build_services(
    gateway: GatewaySettings,
    kafka: KafkaSettings,
    s3: S3Settings,
    registry: SchemaRegistrySettings,
    warehouse: ClickHouseSettings,
) -> Services:
    """The gateway's real adapters: S3 for originals, keys and records; Kafka for events; ClickHouse for status."""
    store = ObjectStore(s3)
    reader = reader_for(warehouse)  # shared by status and dashboard; the status source closes it
    token = gateway.dashboard_token
    serde = EventSerde(registry.url)
    return Services(
        store=store,
        keys=S3KeyStore(store, unknown_cache_seconds=gateway.unknown_key_cache_seconds),
        ledger=UploadLedger(store),
        events=KafkaUploadEvents(
            kafka,
            serde,
            gateway_id=gateway.instance_id,
            delivery_timeout=gateway.kafka_delivery_timeout,
        ),
        status=ClickHouseStatus(reader, warehouse.database),
        dashboard=Dashboard(
            reader,
            warehouse.database,
            token=token.get_secret_value() if token else None,
            retry_after=gateway.retry_after_seconds,
        ),
        feed=ProgressFeed(kafka, serde),
    )


def run_gateway() -> None:
    """Serve the gateway on GATEWAY_HOST:GATEWAY_PORT until SIGINT or SIGTERM."""
    gateway, kafka, s3, registry = GatewaySettings(), KafkaSettings(), S3Settings(), SchemaRegistrySettings()
    created = ensure_topics(kafka)
    if created:
        log.info("created topics %s", ", ".join(created))
    app = create_app(gateway, build_services(gateway, kafka, s3, registry, clickhouse_settings()))

    def listening(_: str) -> None:
        # run_app calls this once every site is started, so the port is bound: callers
        # (make run, tests, supervisors) may send requests as soon as they read the line.
        announce(log, f"gateway listening on http://{gateway.host}:{gateway.port}")

    try:
        web.run_app(
            app,
            host=gateway.host,
            port=gateway.port,
            print=listening,
            access_log_class=RedactingAccessLogger,
            max_line_size=MAX_HEADER_LINE_BYTES,
            max_field_size=MAX_HEADER_LINE_BYTES,
        )
    except OSError as exc:
        if exc.errno not in _BIND_ERRORS:
            raise
        raise SystemExit(
            f"gateway cannot listen on {gateway.host}:{gateway.port}: {exc.strerror or exc} "
            "(set GATEWAY_HOST / GATEWAY_PORT)"
        ) from exc
