"""Run ``photostream`` services (worker, sinks, ...) as child processes, as an operator would."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ServiceProcess:
    """One ``photostream`` service running as a child process, and its log file."""

    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crash would."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """Stop it gracefully, then kill it if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        """What it logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_service(args: list[str], env: Mapping[str, str], log: Path) -> ServiceProcess:
    """Start ``photostream <args>`` in its own session, its output going to ``log``."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "photostream", *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ServiceProcess(process, log)


def free_port() -> int:
    """A TCP port nothing listens on right now, on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gateway(env: Mapping[str, str], log: Path, timeout: float = 60) -> ServiceProcess:
    """Start ``photostream gateway`` and return once it says it listens (fails if it exits first)."""
    process = start_service(["gateway"], env, log)
    deadline = time.monotonic() + timeout
    while "gateway listening" not in process.output():
        assert process.process.poll() is None, process.output()
        assert time.monotonic() < deadline, f"the gateway did not listen within {timeout} s:\n{process.output()}"
        time.sleep(0.2)
    return process
