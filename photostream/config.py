"""Typed settings, read once from the environment (12-factor).

Each part of the system has one small frozen settings class with its own
environment prefix, so every variable name is visible here and in the README:

    KAFKA_*            where the brokers are
    S3_*               the object store and its bucket
    CLICKHOUSE_*       the analytics store (chDB in process, or a server)
    SCHEMA_REGISTRY_*  optional Confluent-compatible registry
    GATEWAY_*          the HTTP gateway
    WORKER_*           the Faust processing workers
    SINKS_*            the S3 and ClickHouse sink consumers
    STACK_*            the local development stack (ports, data folder)
    LOG_*              how every service logs (text or JSON lines, level)

Defaults run the local stack with no edits. Services build the settings they
need at start-up and pass them down; nothing else reads the environment.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import DirectoryPath, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Credentials of the loopback-only development S3 server that `photostream stack up`
# starts. They protect nothing outside this machine; production passes its own.
LOCAL_S3_ACCESS_KEY_ID = "photostream-local"
LOCAL_S3_SECRET_ACCESS_KEY = "photostream-local-dev-only"  # noqa: S105 - local dev server only


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, frozen=True, extra="ignore")


class KafkaSettings(BaseSettings):
    """Connection to the Kafka cluster."""

    model_config = _config("KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"
    # Replicas of each topic the project creates: 1 for a single broker, 3 in production.
    replication_factor: int = Field(default=1, ge=1)
    # Replicas that must have an acks=all write before it is acknowledged, set on the topics the
    # project creates. Unset: one less than the replication factor (2 of 3), at least 1.
    min_insync_replicas: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _isr_within_replicas(self) -> KafkaSettings:
        if self.min_insync_replicas is not None and self.min_insync_replicas > self.replication_factor:
            raise ValueError("KAFKA_MIN_INSYNC_REPLICAS cannot exceed KAFKA_REPLICATION_FACTOR")
        return self

    @property
    def min_isr(self) -> int:
        """The ``min.insync.replicas`` of the topics the project creates."""
        return self.min_insync_replicas or max(1, self.replication_factor - 1)

    def environment(self) -> dict[str, str]:
        """The variables that hand these settings to a child process."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
        }
        if self.min_insync_replicas is not None:
            env["KAFKA_MIN_INSYNC_REPLICAS"] = str(self.min_insync_replicas)
        return env


class S3Settings(BaseSettings):
    """The object store holding originals and derivatives."""

    model_config = _config("S3_")

    endpoint_url: str = "http://127.0.0.1:8333"
    access_key_id: str = LOCAL_S3_ACCESS_KEY_ID
    secret_access_key: SecretStr = SecretStr(LOCAL_S3_SECRET_ACCESS_KEY)
    region: str = "us-east-1"
    bucket: str = "photostream"
    # A store that is down refuses or never answers the connection: found out fast. One that is busy
    # takes its time over a 50 MB PUT under load; giving up then costs the client the whole resend.
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)


class ClickHouseSettings(BaseSettings):
    """The analytics store.

    ``dsn`` is either ``chdb:///absolute/path`` (the embedded engine, one process per
    path) or ``http://user:password@host:8123/database`` for a ClickHouse server.
    Left empty, it is the embedded engine under ``STACK_VAR_DIR``.
    """

    model_config = _config("CLICKHOUSE_")

    dsn: str = ""
    # An identifier: it is spliced into SQL (values never are).
    database: str = Field(default="photostream", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    # With the embedded engine only the sinks process may open it; every other process
    # (gateway status, `photostream sql`) sends its read-only queries here, to the sinks.
    # Loopback only: the endpoint answers any SQL a reader may run.
    query_url: str = "http://127.0.0.1:8124"
    # Proves a caller of query_url may read. Unset: a token file beside the embedded engine's
    # data (mode 0600), written by the sinks, read by the processes of the same user.
    query_token: SecretStr | None = None
    # Limits of every read query (the status, the dashboard, `photostream sql`, analysts' SQL).
    query_max_seconds: float = Field(default=10.0, gt=0)
    query_max_result_rows: int = Field(default=100_000, gt=0)
    query_max_result_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    query_max_memory_bytes: int = Field(default=2 * 1024**3, gt=0)
    # Threads one read query may use; one leaves the other core to ingestion on a 2-core machine.
    query_max_threads: int = Field(default=1, ge=1)
    # Read queries that run at once (each on a session of its own); the rest wait.
    query_sessions: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _loopback_query_url(self) -> ClickHouseSettings:
        host = urlsplit(self.query_url).hostname or ""
        if host != "localhost":
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise ValueError(f"CLICKHOUSE_QUERY_URL must name a loopback host, not {host!r}")
        return self

    @property
    def embedded(self) -> bool:
        """True when the DSN names the in-process chDB engine."""
        return self.dsn.startswith("chdb:")

    @property
    def token_file(self) -> Path:
        """Where the sinks keep the query endpoint's token for the embedded engine (beside its data)."""
        data = Path(urlsplit(self.dsn).path or "clickhouse")
        return data.with_name(data.name + ".query-token")


class SchemaRegistrySettings(BaseSettings):
    """Optional Confluent-compatible schema registry; unset means single-object encoding."""

    model_config = _config("SCHEMA_REGISTRY_")

    url: str | None = None


class GatewaySettings(BaseSettings):
    """The HTTP gateway that accepts uploads."""

    model_config = _config("GATEWAY_")

    host: str = "127.0.0.1"
    port: int = 8080
    # Which instance accepted an upload; shows in events and logs.
    instance_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    max_file_bytes: int = 50 * 1024 * 1024
    max_files_per_request: int = 100
    daily_quota: int = 5000
    # S3 multipart part size (tus, direct): the most memory one upload in flight holds (S3 minimum 5 MiB).
    part_bytes: int = 5 * 1024 * 1024
    # Where a POSTed file beyond one part waits for its hash before its one PUT (unnamed files, gone when
    # closed); unset, the system's temporary directory. It needs max_file_bytes per upload in flight.
    spool_dir: DirectoryPath | None = None
    # Seconds a client may pause between two chunks of its upload before it is cut off.
    read_timeout: float = 30.0
    kafka_delivery_timeout: float = 15.0
    retry_after_seconds: int = 5
    presigned_url_seconds: int = 3600
    # Required to see /dashboard when set; unset, only loopback clients may.
    dashboard_token: SecretStr | None = None
    # An unknown API key is remembered this long, so the same bad key again does not reach S3.
    unknown_key_cache_seconds: float = Field(default=60.0, ge=0)
    # After this many 401s from one client address within the window, that address gets 429.
    auth_failure_limit: int = Field(default=10, ge=1)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0)
    # How often the gateway sweeps the staging area of what failed uploads left (0: never), and the age past
    # which a staged object or an unfinished multipart upload there is removed (see producers.staging_sweep).
    staging_sweep_seconds: float = Field(default=3600.0, ge=0)
    staging_max_age_seconds: float = Field(default=86400.0, gt=0)
    # An unfinished tus upload expires this long after its last bytes (Upload-Expires); the sweep removes it.
    tus_expiry_seconds: float = Field(default=86400.0, gt=0)
    # How long the presigned URLs of a direct upload (POST /v1/uploads/direct) are valid.
    direct_url_seconds: int = Field(default=3600, gt=0)
    # A direct upload larger than this gets presigned multipart part URLs instead of one PUT (S3's single-PUT limit).
    direct_put_max_bytes: int = Field(default=5 * 1024**3, gt=0)


class WorkerSettings(BaseSettings):
    """The Faust workers that turn uploads into metadata and variants."""

    model_config = _config("WORKER_")

    # The Faust app id: the consumer group and the prefix of its table's changelog topic.
    app_id: str = "photostream-processing"
    # Images in flight at once per worker; more than the cores, so fetching overlaps decoding.
    in_flight: int = Field(default_factory=lambda: 2 * (os.cpu_count() or 1) + 2, ge=1)
    # Threads running the image library (libvips and Pillow release the GIL).
    threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    max_pixels: int = Field(default=100_000_000, ge=1)
    max_decode_seconds: float = Field(default=60.0, gt=0)
    # Hamming distance (of 64 bits) within which two perceptual hashes are near-duplicates.
    # Part of the duplicate table's layout: changing it starts a new index.
    duplicate_distance: int = Field(default=6, ge=0, le=15)
    # JSON list of variants, e.g. [{"name": "web", "width": 1920, "height": 1920, "formats": ["webp"]}].
    # Empty means the default spec (web 1920 and thumb 300 in WebP and JPEG, square 150 in WebP).
    variants: str = ""
    # Photographers (comma-separated ids) who opted in to keeping GPS in their metadata.
    gps_opt_in: str = ""
    # How long an original that S3 cannot serve is retried before the upload fails.
    fetch_retry_seconds: float = Field(default=120.0, ge=0)
    # Originals larger than this are streamed to a temp file while processed, not held in memory.
    spill_bytes: int = Field(default=8 * 1024 * 1024, ge=0)
    # Where those temp files go; unset, the system's temp dir.
    spill_dir: Path | None = None
    # Seconds without heartbeats before a dead worker's partitions move to the others.
    session_timeout: float = Field(default=10.0, ge=6)
    # Faust's web server (stats, table views); 0 turns it off.
    web_port: int = 0
    # Where Faust keeps its local files.
    data_dir: Path = Path("var/faust")

    def gps_opt_in_ids(self) -> frozenset[str]:
        """The photographers whose GPS coordinates are kept."""
        return frozenset(part.strip() for part in self.gps_opt_in.split(",") if part.strip())


class SinksSettings(BaseSettings):
    """The sink consumers: variants into S3, events into ClickHouse."""

    model_config = _config("SINKS_")

    s3_group: str = "photostream-s3-sink"
    clickhouse_group: str = "photostream-clickhouse-sink"
    # A batch is flushed (written, then its offsets committed) at this many events or this age.
    batch_size: int = Field(default=500, ge=1)
    # The ClickHouse sink's batch age: fewer, larger inserts (ClickHouse wants about one per second).
    batch_seconds: float = Field(default=1.0, gt=0)
    # The S3 sink's: every variant is its own PUT, so waiting buys no fewer writes, only latency.
    # At 0 it writes whatever Kafka has delivered as soon as nothing more is waiting; under load
    # its batches still grow, with what arrives while the previous one is written.
    s3_batch_seconds: float = Field(default=0.0, ge=0)
    # Variants never change once written (their keys carry the image id), so caches may keep them.
    cache_control: str = "public, max-age=31536000, immutable"
    # How long a failing S3 or ClickHouse write is retried before the sink gives up and exits.
    retry_seconds: float = Field(default=600.0, gt=0)
    # Seconds the S3 sink waits for Kafka to acknowledge an ImageReady before the flush fails (and is retried).
    kafka_delivery_timeout: float = Field(default=15.0, gt=0)


class StackSettings(BaseSettings):
    """The local development stack: real servers on 127.0.0.1, data under ``var_dir``."""

    model_config = _config("STACK_")

    var_dir: Path = Path("var")
    cache_dir: Path = Path(".cache")
    # Brokers of the local Kafka cluster (each a KRaft broker and controller). Broker n (1..N)
    # listens on kafka_port + 2(n-1), its controller on kafka_controller_port + 2(n-1):
    # three brokers on the defaults take 9092/9093, 9094/9095 and 9096/9097.
    kafka_brokers: int = Field(default=1, ge=1, le=9)
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "1g"
    s3_port: int = 8333
    seaweed_master_port: int = 9333
    seaweed_volume_port: int = 8081
    seaweed_filer_port: int = 8888
    start_timeout: float = 90.0

    @model_validator(mode="after")
    def _absolute_paths(self) -> StackSettings:
        # Servers run with their own working directory; relative paths would drift.
        object.__setattr__(self, "var_dir", self.var_dir.resolve())
        object.__setattr__(self, "cache_dir", self.cache_dir.resolve())
        return self

    @model_validator(mode="after")
    def _distinct_kafka_ports(self) -> StackSettings:
        ports = [port for node in self.kafka_nodes for port in self.kafka_node_ports(node)]
        if len(set(ports)) < len(ports) or max(ports) > 65535:
            raise ValueError(
                f"{self.kafka_brokers} Kafka brokers from STACK_KAFKA_PORT={self.kafka_port} and "
                f"STACK_KAFKA_CONTROLLER_PORT={self.kafka_controller_port} need ports {sorted(ports)}: "
                "they overlap or run past 65535"
            )
        return self

    @property
    def kafka_nodes(self) -> range:
        """The node ids of the local Kafka brokers, 1..N."""
        return range(1, self.kafka_brokers + 1)

    def kafka_node_ports(self, node: int) -> tuple[int, int]:
        """Broker ``node``'s client (PLAINTEXT) and controller ports: each base port + 2 (node - 1)."""
        step = 2 * (node - 1)
        return self.kafka_port + step, self.kafka_controller_port + step

    def kafka_settings(self) -> KafkaSettings:
        """Client settings for this stack's brokers: all of them to bootstrap from, up to 3 replicas a topic."""
        bootstrap = ",".join(f"127.0.0.1:{self.kafka_node_ports(node)[0]}" for node in self.kafka_nodes)
        return KafkaSettings(bootstrap_servers=bootstrap, replication_factor=min(3, self.kafka_brokers))

    def default_clickhouse_dsn(self) -> str:
        """The embedded chDB path used when ``CLICKHOUSE_DSN`` is not set."""
        return f"chdb://{self.var_dir / 'clickhouse'}"


class LogSettings(BaseSettings):
    """How every service logs (see photostream.logs): plain text or one JSON object per line."""

    model_config = _config("LOG_")

    format: Literal["plain", "json"] = "plain"
    level: str = "INFO"

    @field_validator("format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in logging.getLevelNamesMapping() or level == "NOTSET":
            raise ValueError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {value!r}")
        return level


def clickhouse_settings(stack: StackSettings | None = None) -> ClickHouseSettings:
    """ClickHouse settings with the DSN filled in from the stack when unset."""
    settings = ClickHouseSettings()
    if settings.dsn:
        return settings
    stack = stack or StackSettings()
    return settings.model_copy(update={"dsn": stack.default_clickhouse_dsn()})


ALL_SETTINGS: tuple[type[BaseSettings], ...] = (
    KafkaSettings,
    S3Settings,
    ClickHouseSettings,
    SchemaRegistrySettings,
    GatewaySettings,
    WorkerSettings,
    SinksSettings,
    StackSettings,
    LogSettings,
)


def environment_variables() -> set[str]:
    """Every environment variable any settings class reads (for docs and checks)."""
    names: set[str] = set()
    for cls in ALL_SETTINGS:
        prefix = cls.model_config.get("env_prefix", "")
        names.update(f"{prefix}{field}".upper() for field in cls.model_fields)
    return names
