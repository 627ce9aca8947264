"""Apache Kafka for the local stack: KRaft nodes (each a broker and a controller), on the JVM.

The jars come from Maven Central through the small pom beside this module; the
storage is formatted once; every broker binds 127.0.0.1 only and logs to a file.

One node by default (``kafka``, data in ``var/kafka``). With ``STACK_KAFKA_BROKERS=N`` a
cluster of N (``kafka-1`` .. ``kafka-N``, data in ``var/kafka-<n>``): every node votes in
the controller quorum, the storages share one cluster id, internal topics get 3 replicas
with 2 in sync, and a node counts as up once the cluster lists it.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
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


def _random_cluster_id() -> str:
    """A cluster id as ``StorageTool random-uuid`` makes one (base64url, no padding), without a JVM."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka's Uuid.randomUuid() rejects these: they read as options
            return text


class KafkaBroker:
    """One local Kafka node (broker and controller): the only one, or node ``node`` of a cluster."""

    def __init__(self, settings: StackSettings, node: int = 1) -> None:
        """Lay out the node's folders under the stack's var dir."""
        self.settings = settings
        self.node = node
        self.clustered = settings.kafka_brokers > 1
        # A single node keeps the names it always had, so an existing var/ stays usable.
        self.name = f"kafka-{node}" if self.clustered else "kafka"
        self.home = settings.var_dir / self.name
        self.data_dir = self.home / "data"
        self.config_file = self.home / "server.properties"
        self.jars_dir = settings.cache_dir / f"kafka-{KAFKA_VERSION}"
        self.port, self.controller_port = settings.kafka_node_ports(node)
        self.process = ManagedProcess(
            name=self.name,
            run_dir=settings.var_dir / "run",
            log_file=settings.var_dir / "log" / f"{self.name}.out",
            # The config path names this node of this stack, so a reused pid is never taken for it.
            marker=str(self.config_file),
            # The last nodes of a cluster to stop wait for a controlled shutdown that a quorum gone
            # with the others can no longer approve; past this they are killed, which loses nothing
            # written (the page cache keeps it) and costs a log recovery at the next start.
            stop_timeout=10.0 if self.clustered else 30.0,
        )

    @property
    def endpoint(self) -> str:
        """The node's client address."""
        return f"{HOST}:{self.port}"

    @property
    def ports(self) -> tuple[int, ...]:
        """The TCP ports the node binds."""
        return (self.port, self.controller_port)

    def answers(self, timeout: float = 3.0) -> bool:
        """True when the node answers a cluster description (in a cluster: one of ours, listing this node)."""
        if not port_open(HOST, self.port):
            return False
        cluster = describe_cluster(self.endpoint, timeout)
        if cluster is None:
            return False
        if not self.clustered:
            return True
        return cluster.cluster_id == self.formatted_cluster_id() and self.node in {n.id for n in cluster.nodes}

    def formatted_cluster_id(self) -> str | None:
        """The cluster id this node's storage was formatted with, or None before formatting."""
        try:
            text = (self.data_dir / "meta.properties").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id":
                return value.strip()
        return None

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
        """The node's configuration: a KRaft broker and controller on loopback, voting with its peers."""
        s = self.settings
        voters = ",".join(f"{node}@{HOST}:{s.kafka_node_ports(node)[1]}" for node in s.kafka_nodes)
        # Internal topics: one replica on a single node; in a cluster 3 (2 in sync), so one node may die.
        replicas = str(min(3, s.kafka_brokers))
        in_sync = str(max(1, min(3, s.kafka_brokers) - 1))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": in_sync,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": in_sync,
            # Topics created without these (the project sets them on its own) still survive a dead node.
            "default.replication.factor": replicas,
            "min.insync.replicas": in_sync,
            # Group joins wait this long for more members; tests start far faster without.
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created by the project, with their configs, never by accident.
            "auto.create.topics.enable": "false",
            "message.max.bytes": str(16 * 1024 * 1024),
        }
        if self.clustered:
            # A dead node is fenced (and leaves every ISR, so acks=all writes go on) once its session
            # lapses: 4 s instead of 9 s. Killing the active controller adds an election (~2 s) before
            # that clock starts, and the gateway waits GATEWAY_KAFKA_DELIVERY_TIMEOUT (15 s) at most.
            props["broker.heartbeat.interval.ms"] = "1000"
            props["broker.session.timeout.ms"] = "4000"
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise StackError("Java 17+ is needed for the local Kafka broker")
        return java

    def _format_storage(self, java: str, classpath: str, config: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        if self.clustered:
            cluster_id = self._cluster_id()
        else:
            cluster_id = subprocess.run(  # noqa: S603 - fixed argv
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
                cluster_id,
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

    def _cluster_id(self) -> str:
        """The id every node of the cluster is formatted with: kept beside the nodes, made once."""
        path = self.settings.var_dir / "kafka-cluster.id"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        cluster_id = _random_cluster_id()
        path.write_text(cluster_id + "\n")
        return cluster_id

    def start(self) -> int:
        """Write the config, format storage once, and start the node; returns its pid."""
        jars = self.ensure_jars()
        java = self._java()
        classpath = f"{jars}/*"
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.config_file
        config.write_text(self.server_properties())
        self._format_storage(java, classpath, config)
        log_dir = self.settings.var_dir / "log" / self.name
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


class KafkaCluster:
    """The local Kafka nodes together: one by default, ``STACK_KAFKA_BROKERS`` of them in a cluster."""

    name = "kafka"

    def __init__(self, settings: StackSettings) -> None:
        """One node per broker, each with its own ports, data folder and pidfile."""
        self.settings = settings
        self.nodes = tuple(KafkaBroker(settings, node) for node in settings.kafka_nodes)

    @property
    def endpoint(self) -> str:
        """Every node's address, comma-separated: the bootstrap list clients use."""
        return ",".join(node.endpoint for node in self.nodes)

    def ensure_jars(self) -> Path:
        """Fetch the jars every node runs, once."""
        return self.nodes[0].ensure_jars()

    def answers(self, timeout: float = 3.0) -> bool:
        """True when the cluster's description lists every node."""
        cluster = describe_cluster(self.endpoint, timeout)
        return cluster is not None and {node.node for node in self.nodes} <= {n.id for n in cluster.nodes}

    def strays(self) -> tuple[KafkaBroker, ...]:
        """The nodes of another layout (another ``STACK_KAFKA_BROKERS``) when any of them runs from this var dir.

        So ``stack down`` and ``stack status`` find a cluster whatever the setting is when they run,
        dead nodes included.
        """
        layouts = {1, self._cluster_size_on_disk() or 1} - {self.settings.kafka_brokers}
        for layout in sorted(layouts):
            nodes = KafkaCluster(self.settings.model_copy(update={"kafka_brokers": layout})).nodes
            if any(node.process.pid() is not None for node in nodes):
                return nodes
        return ()

    def _cluster_size_on_disk(self) -> int | None:
        """How many nodes the cluster in this var dir was last started with (its voters), if one was."""
        try:
            text = (self.settings.var_dir / "kafka-1" / "server.properties").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key == "controller.quorum.voters":
                return len(value.split(","))
        return None
