"""Where the core-seconds go: CPU time of each part of the pipeline over a measured window, read from /proc.

Each process's user + system time is sampled every half second, so a process that exits within
the window (a worker stopped at the end) keeps what it used until its last sample. Processes are
told apart by their command lines.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

ROLES = {
    "workers": "photostream worker",
    "sinks": "photostream sinks",
    "gateway": "photostream gateway",
    "kafka": "kafka.Kafka",
    "s3 server": "weed server",
}
_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_by_process() -> dict[int, tuple[str, float]]:
    """Every process of a known role, with its CPU seconds so far."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        role = next((name for name, marker in ROLES.items() if marker in command), None)
        if role is None:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        found[int(entry.name)] = (role, (int(fields[11]) + int(fields[12])) / _TICKS)
    return found


class CpuShare:
    """``with CpuShare() as share: ...`` then ``share.seconds``: CPU seconds per role used inside the block."""

    def __init__(self, interval: float = 0.5) -> None:
        self._interval = interval
        self._first: dict[int, tuple[str, float]] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.seconds: dict[str, float] = {}

    def _sample(self) -> None:
        while True:
            for pid, (role, cpu) in _cpu_by_process().items():
                self._first.setdefault(pid, (role, cpu))
                self._last[pid] = (role, cpu)
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> CpuShare:
        self._first = {pid: (role, cpu) for pid, (role, cpu) in _cpu_by_process().items()}
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        # A last sample: without it, what was used since the thread's last one (up to an interval) is lost,
        # all of it in a window shorter than the interval.
        for pid, (role, cpu) in _cpu_by_process().items():
            if pid in self._first:
                self._last[pid] = (role, cpu)
        totals = dict.fromkeys(ROLES, 0.0)
        for pid, (role, cpu) in self._last.items():
            totals[role] += cpu - self._first[pid][1]
        self.seconds = totals
