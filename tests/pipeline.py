"""The sinks as a real process, for tests that run the whole pipeline."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from photostream.config import KafkaSettings, S3Settings
from photostream.warehouse import RemoteReader
from schemas.topics import PHOTO_DELETED, PHOTO_VARIANTS
from sinks import clickhouse
from tests.processes import ServiceProcess, free_port, start_service
from tests.streams.workers import commit_offsets, start_group_at_end


@dataclass
class Sinks:
    """A `photostream sinks` process with its own consumer groups and embedded ClickHouse."""

    kafka: KafkaSettings
    s3: S3Settings
    directory: Path
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    query_url: str = field(default_factory=lambda: f"http://127.0.0.1:{free_port()}")
    query_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    runs: list[ServiceProcess] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    starts: dict[str, list] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.kafka.environment(),  # the brokers, and the replicas of the topics it creates
            "S3_ENDPOINT_URL": self.s3.endpoint_url,
            "CLICKHOUSE_DSN": f"chdb://{self.directory / 'clickhouse'}",
            **self.reader_env,
            "SINKS_S3_GROUP": f"test-s3-sink-{self.suffix}",
            "SINKS_CLICKHOUSE_GROUP": f"test-clickhouse-sink-{self.suffix}",
            "SINKS_BATCH_SECONDS": "0.5",
            **self.extra_env,
        }

    @property
    def s3_group(self) -> str:
        """The S3 sink's consumer group."""
        return f"test-s3-sink-{self.suffix}"

    @property
    def reader_env(self) -> dict[str, str]:
        """What another process needs to read through these sinks."""
        return {"CLICKHOUSE_QUERY_URL": self.query_url, "CLICKHOUSE_QUERY_TOKEN": self.query_token}

    def reader(self) -> RemoteReader:
        """A reader through these sinks' query endpoint."""
        return RemoteReader(self.query_url, self.query_token)

    def skip_history(self) -> None:
        """Start both groups at the end of their topics, past earlier tests' events."""
        self.starts = {
            f"test-s3-sink-{self.suffix}": [
                offset
                for topic in (PHOTO_VARIANTS, PHOTO_DELETED)
                for offset in start_group_at_end(self.kafka, f"test-s3-sink-{self.suffix}", topic)
            ]
        }
        group = f"test-clickhouse-sink-{self.suffix}"
        self.starts[group] = [
            offset for topic in clickhouse.TOPICS for offset in start_group_at_end(self.kafka, group, topic)
        ]

    def rewind(self) -> None:
        """Move both groups back to where the test started, as if every commit since had been lost."""
        for group, offsets in self.starts.items():
            commit_offsets(self.kafka, group, offsets)

    def start(self, timeout: float = 60) -> ServiceProcess:
        process = start_service(["sinks"], self.env, self.directory / f"sinks-{len(self.runs)}.log")
        self.runs.append(process)
        deadline = time.monotonic() + timeout
        while "sinks running" not in process.output():
            if process.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"sinks did not start:\n{process.output()[-4000:]}")
            time.sleep(0.2)
        return process

    def stop(self) -> None:
        for run in self.runs:
            run.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {run.log.name}\n{run.output()[-5000:]}" for run in self.runs)

    def logs_in_full(self) -> str:
        """Every run's whole log, for a failure to search."""
        return "\n".join(f"--- {run.log.name}\n{run.output()}" for run in self.runs)
