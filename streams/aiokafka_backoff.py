"""aiokafka 0.14 (under faust) asks again at once for metadata it failed to get; here it pauses first.

While no broker answers, every part of the client that needs metadata asks for an update: the
producer's sender loops on "ask, wait for the answer" as long as a batch has no known leader, and
each failed connection asks too. An update fails at once (connection refused) and is asked for
again at once, so a worker spun a core through a broker restart of a few seconds and logged two
errors per attempt, 75,000 lines in all.

With ``install()``, an update that reached no broker reports its failure only after a pause, which
doubles with each failure in a row, from the client's ``retry_backoff_ms`` up to one second. Every
caller waits on the same update, so the pause holds them all; once a broker answers again, the next
update is at most a second late.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.client import AIOKafkaClient

# The longest pause between two failed updates: how late, at most, a client notices the broker is back.
MAX_PAUSE_SECONDS = 1.0


def pause_after(failures: int, backoff: float) -> float:
    """The pause after ``failures`` failed updates in a row (at least one), starting from ``backoff``."""
    return min(backoff * 2 ** (failures - 1), MAX_PAUSE_SECONDS)


def install() -> None:
    """Make every aiokafka client in this process pause after a failed metadata update (idempotent)."""
    update = AIOKafkaClient._metadata_update
    if getattr(update, "pauses_after_failure", False):
        return

    async def update_or_pause(self: AIOKafkaClient, cluster_metadata: Any, topics: Any) -> bool:
        updated: bool = await update(self, cluster_metadata, topics)
        failures = 0 if updated else getattr(self, "_failed_updates", 0) + 1
        self._failed_updates = failures  # type: ignore[attr-defined]  # this module's own counter
        if failures:
            await asyncio.sleep(pause_after(failures, self._retry_backoff))
        return updated

    update_or_pause.pauses_after_failure = True  # type: ignore[attr-defined]
    AIOKafkaClient._metadata_update = update_or_pause  # type: ignore[method-assign]
