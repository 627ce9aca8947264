"""Run a processing worker: real adapters from settings, then Faust's worker until stopped."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from pydantic import TypeAdapter

from photostream.config import KafkaSettings, LogSettings, S3Settings, SchemaRegistrySettings, WorkerSettings
from photostream.logs import setup_logging
from photostream.objectstore import ObjectStore
from photostream.topics import ensure_topics, worker_topics
from schemas.serde import EventSerde
from streams.app import DUPLICATES_TABLE, create_app
from streams.handler import UploadHandler
from streams.imaging import DEFAULT_VARIANTS, Limits, VariantSpec
from streams.processing import ImageProcessor

log = logging.getLogger(__name__)

_VARIANT_SPECS = TypeAdapter(tuple[VariantSpec, ...])


def load_variants(text: str) -> tuple[VariantSpec, ...]:
    """Parse ``WORKER_VARIANTS`` (a JSON list of specs); the default spec when empty.

    Raises:
        ValueError: The JSON is malformed or a spec is invalid (names, sizes, formats).
    """
    if not text.strip():
        return DEFAULT_VARIANTS
    specs = _VARIANT_SPECS.validate_json(text)
    if not specs:
        raise ValueError("WORKER_VARIANTS lists no variant")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"WORKER_VARIANTS repeats a name: {names}")
    return specs


def build_app(
    worker: WorkerSettings, kafka: KafkaSettings, s3: S3Settings, registry: SchemaRegistrySettings
) -> faust.App:
    """Wire the image library, S3 and Kafka into the Faust app."""
    processor = ImageProcessor(
        ThreadPoolExecutor(worker.threads, thread_name_prefix="imaging"),
        variants=load_variants(worker.variants),
        limits=Limits(max_pixels=worker.max_pixels, max_decode_seconds=worker.max_decode_seconds),
    )
    originals = ObjectStore(s3)
    handler = UploadHandler(
        originals,
        processor,
        gps_opt_in=worker.gps_opt_in_ids(),
        fetch_retry_seconds=worker.fetch_retry_seconds,
        spill_bytes=worker.spill_bytes,
        spill_dir=worker.spill_dir,
    )
    app = create_app(worker, kafka, handler, EventSerde(registry.url))

    @app.on_before_shutdown.connect
    async def close_store(_app: Any, /, *_: Any, signal: Any, **__: Any) -> None:
        await originals.close()

    return app


class Worker(faust.Worker):
    """Faust's worker, logging through the project's one handler (``photostream.logs``) in its format.

    Faust (mode) replaces the root logger's handlers with a coloured one on start; this hook runs
    right after and puts the project's handler back, so ``LOG_FORMAT=json`` covers every line of
    Faust, aiokafka and the agents. Faust then sends what is printed to standard output to the log
    too (``worker_redirect_stdouts``). With no terminal spinner Faust logs ``Ready`` when it is;
    with JSON logs it is quiet, so its few direct prints (the ``-INT-`` line on Ctrl-C) never
    put plain text between the JSON lines. Proved by tests/streams/test_worker_logs.py.
    """

    def __init__(self, app: faust.App, logs: LogSettings, **kwargs: Any) -> None:
        super().__init__(app, loglevel=logs.level, quiet=logs.format == "json", **kwargs)
        self._logs = logs

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Install the project's handler in place of Faust's (its spinner handler is left out too)."""
        self.spinner = None
        setup_logging("worker", self._logs)


def run_worker(logs: LogSettings) -> None:
    """Run one worker until SIGINT or SIGTERM; several share the partitions of photo-uploads.

    Args:
        logs: The log format and level (``setup_logging`` has applied them already).
    """
    worker, kafka, s3, registry = WorkerSettings(), KafkaSettings(), S3Settings(), SchemaRegistrySettings()
    # Faust's own topics too, before the app starts: see photostream.topics.
    created = ensure_topics(kafka, worker_topics(worker.app_id, [DUPLICATES_TABLE]))
    if created:
        log.info("created topics %s", ", ".join(created))
    app = build_app(worker, kafka, s3, registry)
    # Bad input is reported once, as a ProcessingFailed; libvips would also log every failed tile.
    logging.getLogger("pyvips").setLevel(logging.ERROR)
    logging.getLogger("exifread").setLevel(logging.ERROR)
    Worker(app, logs).execute_from_commandline()
