"""What a worker does with one ``UploadReceived``, in two steps, with no Kafka in it.

``prepare`` fetches the original and runs the image work. It is slow and runs for several uploads
at once. ``decide`` checks duplicates and builds the events to emit. It is quick, touches the
duplicate index, and the agent runs it for one partition's uploads strictly in their order, so
the earlier upload is always the original.

Bad input never raises out of here: it becomes a ``ProcessingFailed`` with a reason code. An
upload deleted before ``decide`` (its tombstone, or the delete the agent recorded in the index)
emits nothing at all.

Memory: an original is streamed from the store into a ``SpooledOriginal`` (``streams.spill``),
hashed on the store's thread as it arrives, kept in memory up to ``spill_bytes`` and in a temp
file beyond, which the image library reads from its path. So the original bytes a worker holds
are bounded (about ``spill_bytes`` per upload in flight) whatever the originals weigh, and the
temp file is removed however the upload ends. A temp file that cannot be written (disk full) is
not the input's fault: the error stops the worker, and the upload is replayed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import tenacity

from photostream.deletions import is_deleted
from photostream.objectstore import ObjectMissing, Store, StoreError
from schemas.events import (
    Event,
    FailureReason,
    ImageProcessed,
    ProcessingFailed,
    ProcessingStarted,
    Stage,
    UploadReceived,
    VariantRendered,
)
from schemas.topics import Source
from streams.duplicates import DuplicateIndex
from streams.imaging import ImageError, variant_count
from streams.processing import ImageProcessor, Processed
from streams.spill import SpooledOriginal

log = logging.getLogger(__name__)


# Originals up to this size stay in memory; larger ones go to a temp file while processed.


@dataclass(frozen=True, slots=True)
class Prepared:
    """The slow part's result: the image work, or why there is none."""

    upload: UploadReceived
    started_at: datetime
    processed: Processed | None = None
    failure: ProcessingFailed | None = None
    # The upload was deleted before its image work: nothing is emitted for it.
    deleted: bool = False


class UploadHandler:
    """Turns uploads into ``VariantRendered`` + ``ImageProcessed``, or a ``ProcessingFailed``."""

    def __init__(
        self,
        originals: Store,
        processor: ImageProcessor,
        *,
        gps_opt_in: frozenset[str] = frozenset(),
        fetch_retry_seconds: float,
        spill_bytes: int,
        spill_dir: Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Create the handler.

        Args:
            originals: The store originals are read from (only ``read_into``); a retriable
                ``StoreError`` is retried, and each retry starts the object over.
            processor: Runs the image library off the event loop.
            gps_opt_in: Photographers whose GPS coordinates stay in their metadata.
            fetch_retry_seconds: How long an unreachable store is retried before the upload fails.
            spill_bytes: Originals larger than this are kept in a temp file, not in memory.
            spill_dir: Where those temp files go; the system's temp dir when None.
            clock: The current time (tests pin it).
        """
        self._originals = originals
        self._processor = processor
        self._gps_opt_in = gps_opt_in
        self._spill_bytes = spill_bytes
        self._spill_dir = spill_dir
        self._clock = clock
        self._fetch = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(lambda error: isinstance(error, StoreError) and error.retriable),
            wait=tenacity.wait_random_exponential(multiplier=0.2, max=10),
            stop=tenacity.stop_after_delay(fetch_retry_seconds),
            before_sleep=tenacity.before_sleep_log(log, logging.WARNING),
            reraise=True,
        )

    async def prepare(
        self,
        upload: UploadReceived,
        source: Source,
        *,
        announce: Callable[[ProcessingStarted], Awaitable[None]] | None = None,
    ) -> Prepared:
        """Fetch the original and derive everything from it; never raises on bad input.

        Args:
            upload: The upload to process.
            source: Where its event sits in Kafka.
            announce: Told first that the work starts (the live progress signal), at the moment the upload's
                ``ImageProcessed`` will carry as its ``processing_started_at``.
        """
        started_at = self._clock()
        log.info("processing upload %s (%d bytes)", upload.upload_id, upload.bytes)
        if announce is not None:
            await announce(
                ProcessingStarted(
                    upload_id=upload.upload_id,
                    photographer_id=upload.photographer_id,
                    received_at=upload.received_at,
                    processing_started_at=started_at,
                )
            )
        try:
            original: SpooledOriginal = await self._fetch(self._download, upload.original_key)
        except ObjectMissing:
            if await self._was_deleted(upload):
                log.info("upload %s was deleted before it was processed: skipped", upload.upload_id)
                return Prepared(upload=upload, started_at=started_at, deleted=True)
            return self._failed(upload, source, started_at, FailureReason.MISSING_ORIGINAL, "the original is gone")
        except StoreError as error:
            detail = f"the original could not be read: {error!r}"
            return self._failed(upload, source, started_at, FailureReason.INTERNAL, detail)
        with original:  # removes the temp file however this ends, cancellation included
            if original.sha256() != upload.sha256:
                # A direct upload's declared hash, or bytes changed in the store since the gateway hashed them.
                detail = f"the stored original's sha256 is {original.sha256()}, not the {upload.sha256} declared"
                return self._failed(upload, source, started_at, FailureReason.CHECKSUM_MISMATCH, detail)
            keep_gps = upload.photographer_id in self._gps_opt_in
            try:
                processed = await self._processor.process(original.source(), keep_gps=keep_gps)
            except ImageError as error:
                return self._failed(upload, source, started_at, error.reason, error.detail)
            except Exception as error:  # a library bug must not stop the partition
                log.exception("processing %s failed unexpectedly", upload.upload_id)
                detail = f"unexpected error: {error!r}"
                return self._failed(upload, source, started_at, FailureReason.INTERNAL, detail)
        return Prepared(upload=upload, started_at=started_at, processed=processed)

    async def _was_deleted(self, upload: UploadReceived) -> bool:
        """Whether a missing original was deleted by its photographer (a tombstone), rather than lost."""
        try:
            return await is_deleted(self._originals, upload.upload_id, upload.received_at)
        except StoreError as error:
            log.warning("could not tell whether %s was deleted: %r", upload.upload_id, error)
            return False

    async def _download(self, key: str) -> SpooledOriginal:
        """One attempt: stream the original into a fresh spool, hashing it on the store's thread."""
        original = SpooledOriginal(self._spill_bytes, self._spill_dir)
        try:
            await self._originals.read_into(key, original.write)
        except BaseException:
            original.discard()  # a retry starts over; a cancelled download stops at its next chunk
            raise
        return original

    def decide(self, prepared: Prepared, source: Source, duplicates: DuplicateIndex) -> Sequence[Event]:
        """Check for duplicates and return the events to emit, variants first.

        Call it for one partition's uploads in offset order: the index records each upload as it
        decides, and an upload only duplicates an earlier one.
        """
        upload, processed = prepared.upload, prepared.processed
        if prepared.deleted or duplicates.deleted(upload.photographer_id, upload.upload_id, upload.received_at):
            # Deleted while queued or in the works: no variant, no summary, not a duplicate candidate.
            if not prepared.deleted:
                log.info("upload %s was deleted while it was processed: nothing emitted", upload.upload_id)
            return ()
        if processed is None:
            return () if prepared.failure is None else (prepared.failure,)
        duplicate = duplicates.check_and_record(
            upload.photographer_id,
            upload.upload_id,
            sha256=upload.sha256,
            phash=processed.fingerprints.phash,
            sequence=source.offset,
        )
        now = self._clock()
        count = variant_count(self._processor.variants)
        variants = [
            VariantRendered(
                upload_id=upload.upload_id,
                photographer_id=upload.photographer_id,
                variant=variant.variant,
                format=variant.format,
                content_type=variant.content_type,
                width=variant.width,
                height=variant.height,
                data=variant.data,
                sha256=variant.sha256,
                variant_count=count,
                received_at=upload.received_at,
                rendered_at=now,
            )
            for variant in processed.variants
        ]
        timings = processed.timings
        summary = ImageProcessed(
            upload_id=upload.upload_id,
            photographer_id=upload.photographer_id,
            sha256=upload.sha256,
            metadata=processed.metadata,
            phash=processed.fingerprints.phash,
            placeholder=processed.fingerprints.placeholder,
            duplicate_of=duplicate.upload_id if duplicate else None,
            duplicate_kind=duplicate.kind if duplicate else None,
            variant_names=tuple(dict.fromkeys(variant.variant for variant in processed.variants)),
            received_at=upload.received_at,
            processing_started_at=prepared.started_at,
            processed_at=now,
            decode_ms=timings.decode_ms,
            metadata_ms=timings.metadata_ms,
            hash_ms=timings.hash_ms,
            render_ms=timings.render_ms,
        )
        return (*variants, summary)

    def _failed(
        self, upload: UploadReceived, source: Source, started_at: datetime, reason: FailureReason, detail: str
    ) -> Prepared:
        failure = ProcessingFailed(
            upload_id=upload.upload_id,
            photographer_id=upload.photographer_id,
            stage=Stage.PROCESSING,
            reason=reason,
            detail=detail,
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            received_at=upload.received_at,
            failed_at=self._clock(),
        )
        log.info("upload %s failed: %s (%s)", upload.upload_id, reason.value, detail)
        return Prepared(upload=upload, started_at=started_at, failure=failure)
