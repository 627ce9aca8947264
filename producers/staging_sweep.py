"""Sweeping the staging area: what failed or crashed uploads left under ``incoming/``.

A direct upload is staged under ``STAGING_PREFIX`` (a multipart upload while its bytes arrive, then
a completed object until it is copied to its final key), and every upload's pending marker waits
there until it is acknowledged. A gateway killed mid-request, or a delete that failed, leaves them
behind. The bucket's lifecycle rules (``LIFECYCLE_RULES``) would clean
them up, but not every S3 server applies them: SeaweedFS, the local stack's, stores the rules and
never acts on them. So each gateway sweeps the staging area itself: every ``staging_sweep_seconds``
it aborts the open uploads and deletes the objects there that are older than
``staging_max_age_seconds`` (a day by default, far longer than any upload in progress lasts: a
client that pauses past ``read_timeout`` is cut off). Gateways sweeping one bucket at once do no
harm: aborting or deleting what another just removed is a no-op.

A gateway killed after storing an original at its final key but before Kafka acknowledged its
event leaves an orphan there. Its pending marker (``producers.ledger.pending_key``, written before
the original, removed once the upload is acknowledged or discarded) stays behind too, and names
it: when the sweep finds an old marker of an upload that was never acknowledged, it deletes the
original, then the marker. A client that retried meanwhile has been acknowledged (then the
original stays) or has written a fresh marker (then it is not old).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from photostream.objectstore import STAGING_PREFIX, ObjectMissing, Store, StoreError
from producers.ledger import original_key, pending_upload

Acknowledged = Callable[[str], Awaitable[bool]]
"""Tells whether an upload id was acknowledged (the gateway's ledger has its record)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Swept:
    """What one sweep removed: staged objects and markers, unfinished uploads, orphaned originals."""

    objects: int = 0
    uploads: int = 0
    orphans: int = 0


async def sweep(
    store: Store,
    *,
    older_than: timedelta,
    acknowledged: Acknowledged,
    prefix: str = STAGING_PREFIX,
    now: datetime | None = None,
) -> Swept:
    """Remove what lies under ``prefix`` written more than ``older_than`` ago, and the orphans old markers name.

    Raises:
        StoreError: The store could not list or remove (what was removed before stays removed).
    """
    cutoff = (now or datetime.now(UTC)) - older_than
    objects = uploads = orphans = 0
    for leftover in await store.leftovers(prefix):
        if leftover.written >= cutoff:
            continue
        with contextlib.suppress(ObjectMissing):  # another gateway's sweep got there first
            if leftover.upload is not None:
                await store.abort_multipart(leftover.upload)
                uploads += 1
                continue
            pending = pending_upload(leftover.key)
            if pending is not None and not await acknowledged(pending[1]):
                await store.delete(original_key(*pending))
                orphans += 1
            await store.delete(leftover.key)
            objects += 1
    return Swept(objects, uploads, orphans)


async def sweep_forever(
    store: Store,
    *,
    every: float,
    older_than: timedelta,
    acknowledged: Acknowledged,
    also: Callable[[], Awaitable[int]] | None = None,
) -> None:
    """Sweep the staging area every ``every`` seconds until cancelled; a store that fails is tried next time.

    ``also`` is another sweep run each time (the expired tus uploads); it returns how many it removed.
    """
    while True:
        if also is not None:
            try:
                removed = await also()
            except StoreError as exc:
                log.warning("could not sweep expired resumable uploads: %s", exc)
            else:
                if removed:
                    log.info("swept %d expired resumable uploads", removed)
        try:
            swept = await sweep(store, older_than=older_than, acknowledged=acknowledged)
        except StoreError as exc:
            log.warning("could not sweep the staging area %s: %s", STAGING_PREFIX, exc)
        else:
            if swept != Swept():
                log.info(
                    "swept the staging area: %d staged objects or markers deleted, %d unfinished uploads aborted, "
                    "%d originals of unacknowledged uploads deleted",
                    swept.objects,
                    swept.uploads,
                    swept.orphans,
                )
        await asyncio.sleep(every)
