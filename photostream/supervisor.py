"""Child processes that `photostream run` keeps alive: started, restarted when they die, stopped on exit."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class Child:
    """One supervised command and the file its output goes to."""

    name: str
    argv: Sequence[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restarts: int = 0

    def start(self) -> None:
        """Start the command, appending its output to ``log_path``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            # A session of its own: a terminal's Ctrl-C reaches only `run`, which stops children in order.
            self.process = subprocess.Popen(  # noqa: S603 - our own argv
                self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Ask it to stop (SIGTERM), then kill it after ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Supervisor:
    """Keeps children running until ``stop``; a child that exits is restarted after a short pause."""

    def __init__(self, children: Sequence[Child], *, check_every: float = 1.0, restart_delay: float = 2.0) -> None:
        """Create the supervisor; nothing starts before ``start``."""
        self.children = list(children)
        self._check_every = check_every
        self._restart_delay = restart_delay
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        """Start every child and the thread that watches them."""
        for child in self.children:
            child.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, then stop every child (in parallel, each with its own grace period)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        stoppers = [threading.Thread(target=child.stop) for child in self.children]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()

    def _watch(self) -> None:
        while not self._stopping.wait(self._check_every):
            for child in self.children:
                code = child.process.poll() if child.process is not None else None
                if code is None:
                    continue
                log.warning("%s exited with %s; restarting it (see %s)", child.name, code, child.log_path)
                if self._stopping.wait(self._restart_delay):
                    return
                child.restarts += 1
                child.start()
