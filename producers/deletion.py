"""Cancel and delete: ``DELETE /v1/uploads/{upload_id}`` (owner only, idempotent, 204).

In this order, each step safe to repeat, so a delete cut short anywhere is finished by the
client's retry:

1. the tombstone (``photostream.deletions``): from here on a worker that has not rendered the
   upload skips it, and the S3 sink neither stores its variants nor announces it ready;
2. ``UploadDeleted`` on ``photo-deleted``, acknowledged by Kafka: the workers forget it as a
   duplicate candidate, the sinks remove what they hold of it, ClickHouse marks it deleted, and
   subscribers learn of it. Not acknowledged: 503, and the upload is still listed, so the client
   retries;
3. the ledger's record: ``GET /v1/uploads/{id}`` answers 404, and the same content uploaded
   again is a new upload (same id, a later ``received_at``);
4. the original and every variant in S3.

A repeated delete finds no record but the photographer's tombstone: it removes the objects again
(a variant the S3 sink was writing during the first one) and answers 204. An id that was never
this photographer's is a 404, as for ``GET``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from photostream.deletions import read_tombstone, write_tombstone
from photostream.layout import variants_prefix
from photostream.logs import upload_context
from photostream.objectstore import Store
from producers import problems
from producers.fields import upload_id_in
from producers.ledger import UploadRecord, original_key, pending_key
from schemas.events import UploadDeleted

if TYPE_CHECKING:
    from producers.gateway import Gateway

log = logging.getLogger(__name__)


class UploadDeletion:
    """The delete endpoint, on the gateway's services."""

    def __init__(self, gateway: Gateway) -> None:
        """Serve deletes for ``gateway``."""
        self.gateway = gateway

    def add_routes(self, app: web.Application) -> None:
        """Serve ``DELETE /v1/uploads/{upload_id}`` on ``app``."""
        app.router.add_delete("/v1/uploads/{upload_id}", self.delete)

    async def delete(self, request: web.Request) -> web.Response:
        """Delete the caller's upload (see the module docstring); 204 also when it was deleted before."""
        photographer_id = await self.gateway.photographer(request)
        upload_id = upload_id_in(request)
        services = self.gateway.services
        with upload_context(upload_id=upload_id, photographer_id=photographer_id):
            record = await services.ledger.find(upload_id)
            if record is not None and record.photographer_id == photographer_id:
                await self._delete(record)
                return web.Response(status=204)
            tombstone = await read_tombstone(services.store, upload_id)
            if record is None and tombstone is not None and tombstone.photographer_id == photographer_id:
                await remove_objects(services.store, photographer_id, upload_id, tombstone.received_at)
                return web.Response(status=204)
            raise problems.not_found(f"no upload {upload_id}")

    async def _delete(self, record: UploadRecord) -> None:
        services = self.gateway.services
        received_at = record.received
        event = UploadDeleted(
            upload_id=uuid.UUID(record.upload_id),
            photographer_id=record.photographer_id,
            sha256=record.sha256,
            bucket=services.store.bucket,
            original_key=record.original_key,
            received_at=received_at,
            deleted_at=datetime.now(UTC),
            gateway_id=self.gateway.settings.instance_id,
        )
        await write_tombstone(services.store, event)
        await services.events.publish(event)
        await services.ledger.forget(record.upload_id)
        await remove_objects(services.store, record.photographer_id, record.upload_id, received_at)
        self.gateway.metrics.files.labels("deleted").inc()
        log.info("deleted %s (received %s)", record.filename, record.received_at)


async def remove_objects(store: Store, photographer_id: str, upload_id: str, received_at: datetime) -> None:
    """Remove an upload's original, its pending marker and every variant stored so far."""
    variants = await store.list_keys(variants_prefix(photographer_id, upload_id, received_at))
    keys = [original_key(photographer_id, upload_id), pending_key(photographer_id, upload_id), *variants]
    await asyncio.gather(*(store.delete(key) for key in keys))
