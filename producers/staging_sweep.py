"""Sweeping the staging area: what failed or crashed uploads left under ``incoming/``.

An upload is staged under ``STAGING_PREFIX`` (a multipart upload while its bytes arrive, then a
completed object until it is copied to its final key). A gateway killed mid-request, or a delete
that failed, leaves either behind. The bucket's lifecycle rules (``LIFECYCLE_RULES``) would clean
them up, but not every S3 server applies them: SeaweedFS, the local stack's, stores the rules and
never acts on them. So each gateway sweeps the staging area itself: every ``staging_sweep_seconds``
it aborts the open uploads and deletes the objects there that are older than
``staging_max_age_seconds`` (a day by default, far longer than any upload in progress lasts: a
client that pauses past ``read_timeout`` is cut off). Gateways sweeping one bucket at once do no
harm: aborting or deleting what another just removed is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from photostream.objectstore import STAGING_PREFIX, ObjectMissing, Store, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Swept:
    """What one sweep removed."""

    objects: int
    uploads: int


async def sweep(
    store: Store, *, older_than: timedelta, prefix: str = STAGING_PREFIX, now: datetime | None = None
) -> Swept:
    """Delete the objects and abort the multipart uploads under ``prefix`` written more than ``older_than`` ago.

    Raises:
        StoreError: The store could not list or remove (what was removed before stays removed).
    """
    cutoff = (now or datetime.now(UTC)) - older_than
    objects = uploads = 0
    for leftover in await store.leftovers(prefix):
        if leftover.written >= cutoff:
            continue
        with contextlib.suppress(ObjectMissing):  # another gateway's sweep got there first
            if leftover.upload is None:
                await store.delete(leftover.key)
                objects += 1
            else:
                await store.abort_multipart(leftover.upload)
                uploads += 1
    return Swept(objects, uploads)


async def sweep_forever(store: Store, *, every: float, older_than: timedelta) -> None:
    """Sweep the staging area every ``every`` seconds until cancelled; a store that fails is tried next time."""
    while True:
        try:
            swept = await sweep(store, older_than=older_than)
        except StoreError as exc:
            log.warning("could not sweep the staging area %s: %s", STAGING_PREFIX, exc)
        else:
            if swept.objects or swept.uploads:
                log.info(
                    "swept the staging area: %d staged objects deleted, %d unfinished uploads aborted",
                    swept.objects,
                    swept.uploads,
                )
        await asyncio.sleep(every)
