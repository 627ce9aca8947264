"""The local development stack: real servers on 127.0.0.1, no Docker.

``Stack.up()`` is idempotent: a server that already answers is left as it is, one
that is down is started and waited for until it really answers. ``Stack.down()``
stops only processes this stack started (found by their pidfiles). Kafka is one
server (``kafka``) or, with ``STACK_KAFKA_BROKERS=N``, N of them (``kafka-1`` ..).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from clickhouse_connect.driver.exceptions import ClickHouseError

from photostream.clients import clickhouse_client, redact_dsn
from photostream.config import S3Settings, StackSettings, clickhouse_settings
from photostream.stack.kafka_broker import KafkaCluster
from photostream.stack.process import ManagedProcess, StackError, port_bindable
from photostream.stack.seaweed import SeaweedS3

__all__ = ["Stack", "StackError", "State", "Status"]


class State(StrEnum):
    """What a component of the stack is doing."""

    STARTED = "started"
    ALREADY_UP = "already up"
    RUNNING = "running"
    STOPPED = "stopped"
    DOWN = "down"
    LEFT_RUNNING = "left running (not started by this stack)"
    EMBEDDED = "embedded"


@dataclass(frozen=True)
class Status:
    """One line of a stack report."""

    name: str
    state: State
    endpoint: str
    pid: int | None = None

    @property
    def ours(self) -> bool:
        """True when this stack started the process (it has our pidfile)."""
        return self.pid is not None

    def __str__(self) -> str:
        """Render as an aligned report line."""
        owner = f"  (pid {self.pid})" if self.pid else ""
        return f"{self.name:<11} {self.state.value:<11} {self.endpoint}{owner}"


class Server(Protocol):
    """A server process of the stack."""

    name: str
    process: ManagedProcess

    @property
    def endpoint(self) -> str: ...
    @property
    def ports(self) -> tuple[int, ...]: ...
    def answers(self, timeout: float = 3.0) -> bool: ...
    def start(self) -> int: ...


class Stack:
    """Kafka, S3 and ClickHouse for local runs and tests."""

    def __init__(self, settings: StackSettings | None = None, s3: S3Settings | None = None) -> None:
        """Build the stack's components from settings (the environment by default)."""
        self.settings = settings or StackSettings()
        self.s3_settings = s3 or S3Settings()
        self.kafka = KafkaCluster(self.settings)
        self.s3 = SeaweedS3(self.settings, self.s3_settings)
        self.servers: tuple[Server, ...] = (*self.kafka.nodes, self.s3)
        self.clickhouse = clickhouse_settings(self.settings)
        self.clickhouse_dsn = self.clickhouse.dsn

    def up(self) -> list[Status]:
        """Start whatever is not already answering, and wait until everything answers."""
        report: dict[str, Status] = {}
        starting: list[Server] = []
        for server in self.servers:
            if server.answers():
                report[server.name] = Status(server.name, State.ALREADY_UP, server.endpoint, server.process.pid())
                continue
            if server.process.pid() is None:
                self._check_ports_free(server)
                server.start()
            starting.append(server)
        for server in starting:
            server.process.wait_ready(server.answers, self.settings.start_timeout)
            report[server.name] = Status(server.name, State.STARTED, server.endpoint, server.process.pid())
        self.s3.ensure_bucket()
        self.s3.wait_serving(self.settings.start_timeout)
        return [report[server.name] for server in self.servers] + [self._clickhouse_status()]

    def down(self, only: Collection[str] | None = None) -> list[Status]:
        """Stop the processes this stack started; leave anything else running.

        Args:
            only: names of the servers to stop (all of ours when None); ``kafka`` names every node.

        """
        servers = [
            server
            for server in self._running_layout()
            if only is None or server.name in only or server.name.rpartition("-")[0] in only
        ]
        if not servers:
            return []
        with ThreadPoolExecutor(len(servers)) as pool:
            stopped = list(pool.map(lambda server: server.process.stop(), servers))
        report = []
        for server, was_ours in zip(servers, stopped, strict=True):
            if was_ours:
                state = State.STOPPED
            elif server.answers(timeout=1.0):
                state = State.LEFT_RUNNING
            else:
                state = State.DOWN
            report.append(Status(server.name, state, server.endpoint))
        return report

    def status(self) -> list[Status]:
        """Report each component: running (with our pid if we started it) or down."""
        report = []
        for server in self._running_layout():
            state = State.RUNNING if server.answers(timeout=1.0) else State.DOWN
            report.append(Status(server.name, state, server.endpoint, server.process.pid()))
        return [*report, self._clickhouse_status()]

    def _running_layout(self) -> list[Server]:
        """Our servers, with the Kafka nodes of another broker count in place of ours if those run here."""
        strays = self.kafka.strays()
        taken = {port for stray in strays for port in stray.ports}
        nodes = [node for node in self.kafka.nodes if not taken & set(node.ports)]
        return [*nodes, *strays, *(server for server in self.servers if server not in self.kafka.nodes)]

    def _check_ports_free(self, server: Server) -> None:
        for port in server.ports:
            if not port_bindable("127.0.0.1", port):
                raise StackError(
                    f"cannot start {server.name}: port {port} on 127.0.0.1 is taken by another program "
                    f"that is not a working {server.name} server; stop it or choose other ports "
                    "(STACK_* variables, see the README)"
                )

    def _clickhouse_status(self) -> Status:
        if not self.clickhouse_dsn.startswith("chdb:"):
            # A ClickHouse server is not ours to start: report whether it answers.
            try:
                clickhouse_client(self.clickhouse).query("SELECT 1")
            except ClickHouseError:
                return Status("clickhouse", State.DOWN, redact_dsn(self.clickhouse_dsn))
            return Status("clickhouse", State.RUNNING, redact_dsn(self.clickhouse_dsn))
        if importlib.util.find_spec("chdb") is None:
            raise StackError("the embedded ClickHouse needs the chdb package: pip install chdb")
        (self.settings.var_dir / "clickhouse").mkdir(parents=True, exist_ok=True)
        return Status("clickhouse", State.EMBEDDED, self.clickhouse_dsn)
