"""S3 as an asyncio-friendly object store: the one adapter between our code and boto3.

boto3 blocks, so every call runs on a dedicated thread pool, never on the event
loop. botocore's exceptions are translated here and nowhere else::

    StoreError                 anything the store could not do
     ├── StoreUnavailable      retriable: connection refused, timeouts, 5xx, throttling
     └── ObjectMissing         the key (or bucket) does not exist

The bucket's lifecycle rules (``LIFECYCLE_RULES``) clean up what a crashed or failed
upload can leave behind: multipart uploads never completed, and staged copies under
``STAGING_PREFIX`` never moved to their final key.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from photostream.clients import s3_client
from photostream.config import S3Settings

T = TypeVar("T")

_MISSING_CODES = {"404", "NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchUpload"}
_PRECONDITION_CODES = {"412", "PreconditionFailed", "ConditionalRequestConflict"}

# Where an upload in progress is staged before its content, and so its final key, is known.
STAGING_PREFIX = "incoming/"
LIFECYCLE_RULES: tuple[dict[str, Any], ...] = (
    {
        "ID": "photostream-abort-incomplete-multipart-uploads",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    },
    {
        "ID": "photostream-expire-staged-uploads",
        "Status": "Enabled",
        "Filter": {"Prefix": STAGING_PREFIX},
        "Expiration": {"Days": 1},
    },
)


class StoreError(Exception):
    """The object store could not do what was asked."""

    retriable = False


class StoreUnavailable(StoreError):
    """The store is down, slow or throttling; trying again later may work."""

    retriable = True


class ObjectMissing(StoreError):
    """The object (or bucket) does not exist."""


class AlreadyExists(StoreError):
    """A create-only write found the object already there."""


def _translate(exc: Exception) -> StoreError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _MISSING_CODES:
            return ObjectMissing(code)
        if code in _PRECONDITION_CODES or status == 412:
            return AlreadyExists(code)
        if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError"}:
            return StoreUnavailable(f"S3 answered {status} {code}")
        return StoreError(f"S3 refused: {status} {code} {error.get('Message', '')}".strip())
    if isinstance(exc, ConnectionError | HTTPClientError):
        return StoreUnavailable(f"S3 unreachable: {exc}")
    return StoreUnavailable(f"S3 call failed: {exc}")


def ensure_lifecycle_rules(client: Any, bucket: str, rules: Sequence[dict[str, Any]] = LIFECYCLE_RULES) -> bool:
    """Put ``rules`` into the bucket's lifecycle configuration, keeping rules with other IDs (blocking).

    Idempotent: when every rule is already there as given, nothing is written and the
    answer is False. Raises StoreError when the server refuses the configuration.
    """
    try:
        try:
            current = client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                raise
            current = []
        if all(rule in current for rule in rules):
            return False
        ours = {rule["ID"] for rule in rules}
        kept = [rule for rule in current if rule.get("ID") not in ours]
        client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [*kept, *rules]})
    except (ClientError, BotoCoreError) as exc:
        raise _translate(exc) from exc
    return True


@dataclass(frozen=True)
class MultipartUpload:
    """An open multipart upload and the parts stored so far."""

    key: str
    upload_id: str
    parts: tuple[dict[str, Any], ...] = ()


class ObjectStore:
    """Async operations on one bucket, each run off the event loop."""

    def __init__(self, settings: S3Settings, *, max_workers: int = 32) -> None:
        """Create the client and the thread pool its blocking calls run on."""
        self.settings = settings
        self.bucket = settings.bucket
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="s3")
        self._client = s3_client(settings, max_pool_connections=max_workers)

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc) from exc

    def close(self) -> None:
        """Release the thread pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def ping(self) -> None:
        """Raise StoreError unless the bucket answers."""
        await self._call(self._client.head_bucket, Bucket=self.bucket)

    async def put(
        self,
        key: str,
        body: bytes | bytearray,
        *,
        content_type: str,
        if_none_match: bool = False,
        cache_control: str | None = None,
        sha256: bytes | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Store ``body`` at ``key``.

        Args:
            key: The object key.
            body: The bytes.
            content_type: Its media type.
            if_none_match: Fail with AlreadyExists if the key is taken.
            cache_control: The Cache-Control header to store with it.
            sha256: The body's SHA-256 digest: the server refuses the write if the bytes it got differ.
            metadata: User metadata (``x-amz-meta-*``), short ASCII strings.
        """
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if if_none_match else {}
        if cache_control:
            extra["CacheControl"] = cache_control
        if sha256 is not None:
            extra["ChecksumSHA256"] = base64.b64encode(sha256).decode()
        if metadata:
            extra["Metadata"] = metadata
        await self._call(
            self._client.put_object, Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **extra
        )

    async def head(self, key: str) -> tuple[int, dict[str, str]]:
        """Return an object's size and user metadata; ObjectMissing if there is none."""
        answer = await self._call(self._client.head_object, Bucket=self.bucket, Key=key)
        return int(answer["ContentLength"]), dict(answer.get("Metadata", {}))

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""

        def list_all() -> list[str]:
            paginator = self._client.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

        return await self._call(list_all)

    async def get(self, key: str) -> bytes:
        """Return the object's bytes (for small objects: records, not originals)."""

        def read() -> bytes:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

        return await self._call(read)

    async def read_into(self, key: str, write: Callable[[bytes], object], *, chunk_bytes: int = 1 << 20) -> int:
        """Stream an object to ``write`` chunk by chunk, all on the store's thread; returns its size.

        For originals: nothing holds the whole object, and ``write`` (hashing, spilling to disk)
        runs off the event loop too. An exception from ``write`` stops the download and comes
        out as it is; a read that breaks mid-way is ``StoreUnavailable``, and a retry starts over.
        """

        def read() -> int:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            size = 0
            try:
                for chunk in body.iter_chunks(chunk_bytes):
                    write(chunk)
                    size += len(chunk)
            finally:
                body.close()
            return size

        return await self._call(read)

    async def exists(self, key: str) -> bool:
        """Tell whether ``key`` exists."""
        try:
            await self._call(self._client.head_object, Bucket=self.bucket, Key=key)
        except ObjectMissing:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Delete ``key`` (no error if it is already gone)."""
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=key)

    async def copy(self, source_key: str, key: str) -> None:
        """Copy ``source_key`` to ``key`` inside the store (content type kept; up to 5 GB)."""
        await self._call(
            self._client.copy_object, Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source_key}
        )

    async def put_json(self, key: str, record: dict[str, Any], *, if_none_match: bool = False) -> None:
        """Store a small JSON record."""
        body = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
        await self.put(key, body, content_type="application/json", if_none_match=if_none_match)

    async def get_json(self, key: str) -> dict[str, Any]:
        """Read a small JSON record; ObjectMissing if there is none."""
        return json.loads(await self.get(key))

    async def count(self, prefix: str) -> int:
        """Count the objects under ``prefix``."""

        def count_all() -> int:
            paginator = self._client.get_paginator("list_objects_v2")
            return sum(page.get("KeyCount", 0) for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix))

        return await self._call(count_all)

    async def start_multipart(self, key: str, *, content_type: str) -> MultipartUpload:
        """Open a multipart upload for ``key``."""
        answer = await self._call(
            self._client.create_multipart_upload, Bucket=self.bucket, Key=key, ContentType=content_type
        )
        return MultipartUpload(key=key, upload_id=answer["UploadId"])

    async def upload_part(self, upload: MultipartUpload, body: bytes | bytearray) -> MultipartUpload:
        """Store the next part; returns the upload with it recorded."""
        number = len(upload.parts) + 1
        answer = await self._call(
            self._client.upload_part,
            Bucket=self.bucket,
            Key=upload.key,
            UploadId=upload.upload_id,
            PartNumber=number,
            Body=body,
        )
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        return MultipartUpload(upload.key, upload.upload_id, (*upload.parts, part))

    async def complete_multipart(self, upload: MultipartUpload) -> None:
        """Make the object durable and visible from its parts."""
        await self._call(
            self._client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=upload.key,
            UploadId=upload.upload_id,
            MultipartUpload={"Parts": list(upload.parts)},
        )

    async def abort_multipart(self, upload: MultipartUpload) -> None:
        """Drop an unfinished multipart upload and its parts."""
        await self._call(
            self._client.abort_multipart_upload, Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id
        )

    def presign_get(self, key: str, expires_in: int) -> str:
        """A time-limited GET URL for ``key`` (local signing, no request)."""
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )
