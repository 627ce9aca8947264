"""Background server processes that the stack starts, finds again and stops.

A process we start gets a pidfile under ``var/run``; ``stop`` only ever signals a
pid from such a file, and only if that pid still runs the command we started (pids
are reused), so a server someone else started is never touched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A local server could not be started, reached or stopped; the message says why."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_bindable(host: str, port: int) -> bool:
    """True when nothing listens on host:port, so a server could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _cmdline(pid: int, *, attempts: int = 20) -> str:
    """The process's command line, or "" when it has none.

    A live process reads as empty for a moment while it execs (the shell that starts a server forks, then
    execs it): read again for up to 0.2 s before calling it empty, or a server just started would look like a
    stranger and lose its pidfile.
    """
    for attempt in range(attempts):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return ""
        if raw or attempt == attempts - 1:
            break
        time.sleep(0.01)
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass(frozen=True)
class ManagedProcess:
    """One server process of the local stack.

    Attributes:
        name: short name used in messages and file names.
        run_dir: folder of the pidfile.
        log_file: where the process's stdout and stderr go.
        marker: a string its command line contains, to recognise it by pid.
        stop_timeout: seconds between SIGTERM and SIGKILL when stopping.

    """

    name: str
    run_dir: Path
    log_file: Path
    marker: str
    stop_timeout: float = 30.0

    @property
    def pidfile(self) -> Path:
        """Path of the file holding the pid of the process we started."""
        return self.run_dir / f"{self.name}.pid"

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pidfile is removed)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if _alive(pid) and self.marker in _cmdline(pid):
            return pid
        self.pidfile.unlink(missing_ok=True)
        return None

    def start(self, argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> int:
        """Start the process detached in a session of its own and record its pid.

        A short-lived ``sh`` starts the server in the background and writes its pid,
        so the server is not our child: it outlives this process, leaves no zombie
        behind, and is stopped later through its pidfile alone.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            subprocess.run(  # noqa: S603 - argv is built by the stack, not user input
                ["/bin/sh", "-c", '"$@" & echo $! > "$PIDFILE"', "sh", *argv],
                cwd=cwd,
                env={**(env if env is not None else os.environ), "PIDFILE": str(self.pidfile)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                check=True,
            )
        return int(self.pidfile.read_text().strip())

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll ``ready`` until it answers True; fail fast if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise StackError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.25)
        raise StackError(f"{self.name} did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> bool:
        """Stop our process (TERM, then KILL after ``stop_timeout``); False if none ran."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the process's log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_file})"
        return "\n".join(text.splitlines()[-lines:])
