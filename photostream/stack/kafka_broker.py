"""Apache Kafka for the local stack: one KRaft node (broker and controller), on the JVM.

The jars come from Maven Central through the small pom beside this module; the
storage is formatted once; the broker binds 127.0.0.1 only and logs to a file.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, DescribeClusterResult

from photostream.config import StackSettings
from photostream.stack.process import ManagedProcess, StackError, port_open

KAFKA_VERSION = "4.1.1"
HOST = "127.0.0.1"

# Heap and GC flags sized for a 2-core / 24 GB machine shared with the workers.
_JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:ActiveProcessorCount=2",
    "-Djava.awt.headless=true",
)


def describe_cluster(bootstrap: str, timeout: float = 3.0) -> DescribeClusterResult | None:
    """The cluster description a broker gives, or None when none answers in time."""
    # log_level 0 keeps librdkafka from printing connection errors while we poll.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        return admin.describe_cluster(request_timeout=timeout).result(timeout=timeout + 1)
    except (KafkaException, TimeoutError):
        return None


def _resource(name: str) -> Path:
    return Path(str(resources.files("photostream.stack").joinpath("kafka", name)))


class KafkaBroker:
    """The local single-node Kafka broker."""

    name = "kafka"

    def __init__(self, settings: StackSettings) -> None:
        """Lay out the broker's folders under the stack's var dir."""
        self.settings = settings
        self.home = settings.var_dir / "kafka"
        self.data_dir = self.home / "data"
        self.jars_dir = settings.cache_dir / f"kafka-{KAFKA_VERSION}"
        self.process = ManagedProcess(
            name="kafka",
            run_dir=settings.var_dir / "run",
            log_file=settings.var_dir / "log" / "kafka.out",
            marker="kafka.Kafka",
        )

    @property
    def endpoint(self) -> str:
        """The bootstrap address clients use."""
        return f"{HOST}:{self.settings.kafka_port}"

    @property
    def ports(self) -> tuple[int, ...]:
        """The TCP ports the broker binds."""
        return (self.settings.kafka_port, self.settings.kafka_controller_port)

    def answers(self, timeout: float = 3.0) -> bool:
        """True when a Kafka broker on the port answers a cluster description."""
        if not port_open(HOST, self.settings.kafka_port):
            return False
        return describe_cluster(self.endpoint, timeout) is not None

    def ensure_jars(self) -> Path:
        """Fetch the broker's jars with Maven into the cache, once."""
        if any(self.jars_dir.glob("kafka_2.13-*.jar")):
            return self.jars_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("Maven (mvn) is needed once to fetch the Kafka jars; install Maven 3")
        partial = self.jars_dir.with_name(self.jars_dir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        result = subprocess.run(  # noqa: S603 - fixed argv
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(_resource("pom.xml")),
                f"-Dkafka.version={KAFKA_VERSION}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"mvn could not fetch the Kafka jars:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        # Rename at the end so an interrupted download is never taken for a complete one.
        partial.rename(self.jars_dir)
        return self.jars_dir

    def server_properties(self) -> str:
        """The broker's configuration for a single KRaft node on loopback."""
        s = self.settings
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{s.kafka_port},CONTROLLER://{HOST}:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            # One node: every internal topic has a single replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Group joins wait this long for more members; tests start far faster without.
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created by the project, with their configs, never by accident.
            "auto.create.topics.enable": "false",
            "message.max.bytes": str(16 * 1024 * 1024),
        }
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise StackError("Java 17+ is needed for the local Kafka broker")
        return java

    def _format_storage(self, java: str, classpath: str, config: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        uuid = subprocess.run(  # noqa: S603 - fixed argv
            [java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        result = subprocess.run(  # noqa: S603 - fixed argv
            [
                java,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                uuid,
                "-c",
                str(config),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def start(self) -> int:
        """Write the config, format storage once, and start the broker; returns its pid."""
        jars = self.ensure_jars()
        java = self._java()
        classpath = f"{jars}/*"
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        config.write_text(self.server_properties())
        self._format_storage(java, classpath, config)
        log_dir = self.settings.var_dir / "log" / "kafka"
        log_dir.mkdir(parents=True, exist_ok=True)
        heap = self.settings.kafka_heap
        argv = [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            *_JVM_FLAGS,
            f"-Dlog4j2.configurationFile={_resource('log4j2.properties')}",
            f"-Dkafka.logs.dir={log_dir}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(config),
        ]
        return self.process.start(argv, cwd=self.home)
