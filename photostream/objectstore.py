"""The object store port: one bucket of objects, its S3 adapter and an in-memory one.

``Store`` is the interface the gateway, the worker and the sinks are written against.
``ObjectStore`` is S3, the one adapter between our code and S3: a request for one small
object goes out over aiohttp, signed by botocore (``photostream.signed_s3``: a fifth of
boto3's CPU per request); bulk transfers, listings and multipart uploads go through boto3,
which blocks, so those run on a dedicated thread pool, never on the event loop.
``MemoryObjectStore`` keeps the objects in dicts, for tests of the logic around the store
(as httpx ships ``MockTransport`` beside ``HTTPTransport``); a contract test runs the
same behaviour tests against both. Both raise the same errors (``photostream.store_errors``,
importable from here too), S3's refusals being translated into them and nowhere else.

The bucket's lifecycle rules (``LIFECYCLE_RULES``) clean up what a crashed or failed
upload can leave behind: multipart uploads never completed, and staged copies under
``STAGING_PREFIX`` never moved to their final key. Not every server applies them, so the
gateways also sweep the staging area themselves (``producers.staging_sweep``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, BinaryIO, Protocol, TypeVar
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from photostream.clients import s3_client
from photostream.config import S3Settings
from photostream.signed_s3 import SignedS3
from photostream.store_errors import AlreadyExists as AlreadyExists
from photostream.store_errors import ConditionFailed as ConditionFailed
from photostream.store_errors import ObjectMissing as ObjectMissing
from photostream.store_errors import StoreError as StoreError
from photostream.store_errors import StoreUnavailable as StoreUnavailable
from photostream.store_errors import refusal

T = TypeVar("T")

_META = "x-amz-meta-"  # user metadata's header prefix

# Where an upload in progress is staged before its content, and so its final key, is known.
STAGING_PREFIX = "incoming/"
# S3 refuses to complete a multipart upload whose parts, all but the last, are smaller.
MIN_PART_BYTES = 5 * 1024 * 1024
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


def _translate(exc: Exception) -> StoreError:
    """The StoreError for what boto3 raised."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return refusal(status, str(error.get("Code", "")), str(error.get("Message", "")))
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


@dataclass(frozen=True)
class Leftover:
    """What lies under a prefix: an object, or a multipart upload still open (``upload``), and when it was written.

    Attributes:
        key: The object's key, or the key the open upload is for.
        written: When the object was last written, or when the upload was started (UTC).
        upload: The open multipart upload, for ``abort_multipart``; None for an object.
    """

    key: str
    written: datetime
    upload: MultipartUpload | None = None


class Store(Protocol):
    """One bucket of objects; every ``async`` method may raise ``StoreUnavailable``."""

    bucket: str
    """The bucket's name, as events name where an object lives."""

    async def close(self) -> None:
        """Release what the store holds (connections, threads)."""
        ...

    async def ping(self) -> None:
        """Raise StoreError unless the bucket answers."""
        ...

    async def put(
        self,
        key: str,
        body: bytes | bytearray | BinaryIO,
        *,
        content_type: str,
        if_none_match: bool = False,
        if_match: str | None = None,
        cache_control: str | None = None,
        sha256: bytes | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Store ``body`` (bytes, or a file read from where it stands) at ``key``, replacing what is there.

        Returns the new object's ETag.

        AlreadyExists with ``if_none_match`` when the key is taken; ConditionFailed with ``if_match``
        when the object's ETag is another (or there is none); StoreError (not retriable) when
        ``sha256`` is not the body's digest, and then nothing is stored. ``metadata`` keys come
        back lowercase from ``head``.
        """
        ...

    async def head(self, key: str) -> tuple[int, dict[str, str]]:
        """Return an object's size and user metadata; ObjectMissing if there is none."""
        ...

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        ...

    async def leftovers(self, prefix: str) -> list[Leftover]:
        """Every object and every open multipart upload under ``prefix``, with when each was written."""
        ...

    async def get(self, key: str) -> bytes:
        """Return the object's bytes; ObjectMissing if there is none."""
        ...

    async def read_into(self, key: str, write: Callable[[bytes], object], *, chunk_bytes: int = 1 << 20) -> int:
        """Stream an object to ``write`` in chunks of at most ``chunk_bytes``, off the event loop; return its size.

        ObjectMissing if there is none; an exception from ``write`` comes out as it is.
        """
        ...

    async def exists(self, key: str) -> bool:
        """Tell whether ``key`` exists."""
        ...

    async def delete(self, key: str) -> None:
        """Delete ``key``; no error if it is already gone."""
        ...

    async def copy(self, source_key: str, key: str) -> None:
        """Copy an object with its content type and metadata; ObjectMissing if the source is gone."""
        ...

    async def put_json(
        self, key: str, record: dict[str, Any], *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        """Store a small JSON record; returns its ETag (conditions as for ``put``)."""
        ...

    async def get_json(self, key: str) -> dict[str, Any]:
        """Read a small JSON record; ObjectMissing if there is none."""
        ...

    async def get_json_versioned(self, key: str) -> tuple[dict[str, Any], str]:
        """Read a small JSON record and its ETag, for a later ``put_json(if_match=...)``."""
        ...

    async def count(self, prefix: str) -> int:
        """Count the objects under ``prefix``."""
        ...

    async def start_multipart(self, key: str, *, content_type: str) -> MultipartUpload:
        """Open a multipart upload for ``key``; nothing is visible at ``key`` until it completes."""
        ...

    async def upload_part(self, upload: MultipartUpload, body: bytes | bytearray) -> MultipartUpload:
        """Store the next part; returns the upload with it recorded. ObjectMissing if the upload is gone."""
        ...

    async def complete_multipart(self, upload: MultipartUpload) -> None:
        """Make the object visible from its parts.

        ObjectMissing if the upload is gone; StoreError (not retriable) when a part other than
        the last is under ``MIN_PART_BYTES``.
        """
        ...

    async def abort_multipart(self, upload: MultipartUpload) -> None:
        """Drop an unfinished multipart upload and its parts."""
        ...

    def presign_get(self, key: str, expires_in: int) -> str:
        """A GET URL for ``key`` that expires in ``expires_in`` seconds (no request made)."""
        ...

    def presign_put(self, key: str, expires_in: int, *, size: int, sha256: bytes) -> tuple[str, dict[str, str]]:
        """A time-limited PUT URL for ``key`` and the headers the client must send with it.

        The length and the SHA-256 are signed: a server that checks (AWS S3, SeaweedFS, MinIO)
        refuses other bytes.
        """
        ...

    def presign_part(self, upload: MultipartUpload, number: int, expires_in: int) -> str:
        """A time-limited PUT URL for part ``number`` of ``upload``."""
        ...

    async def list_parts(self, upload: MultipartUpload) -> MultipartUpload:
        """``upload`` with the parts the store holds for it, in order; ObjectMissing if it is gone."""
        ...

    async def get_head(self, key: str, length: int) -> tuple[int, bytes]:
        """An object's size and its first ``length`` bytes, in one ranged GET; ObjectMissing if there is none."""
        ...


class ObjectStore(Store):
    """Async operations on one S3 bucket, for one event loop.

    A request for one small object (a record, a marker, a ranged read, a delete) goes out signed
    over aiohttp (``SignedS3``); the rest (originals spooled to disk, listings, copies, multipart
    uploads) through boto3 on a thread pool, never on the event loop.
    """

    def __init__(self, settings: S3Settings, *, max_workers: int = 32) -> None:
        """Create the clients and the thread pool boto3's blocking calls run on."""
        self.settings = settings
        self.bucket = settings.bucket
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="s3")
        self._client = s3_client(settings, max_pool_connections=max_workers)
        self._http = SignedS3(settings, connections=max_workers)

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc) from exc

    async def close(self) -> None:
        """Close the connections and release the thread pool."""
        await self._http.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def ping(self) -> None:
        """Raise StoreError unless the bucket answers."""
        await self._call(self._client.head_bucket, Bucket=self.bucket)

    async def put(
        self,
        key: str,
        body: bytes | bytearray | BinaryIO,
        *,
        content_type: str,
        if_none_match: bool = False,
        if_match: str | None = None,
        cache_control: str | None = None,
        sha256: bytes | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Store ``body`` at ``key``; returns its ETag.

        Args:
            key: The object key.
            body: The bytes, or a binary file read from its position to its end (in one PUT).
            content_type: Its media type.
            if_none_match: Fail with AlreadyExists if the key is taken.
            if_match: Fail with ConditionFailed unless the object there has this ETag.
            cache_control: The Cache-Control header to store with it.
            sha256: The body's SHA-256 digest: the server refuses the write if the bytes it got differ.
            metadata: User metadata (``x-amz-meta-*``), short ASCII strings.
        """
        if not isinstance(body, bytes | bytearray):
            return await self._put_file(
                key,
                body,
                content_type=content_type,
                if_none_match=if_none_match,
                if_match=if_match,
                cache_control=cache_control,
                sha256=sha256,
                metadata=metadata,
            )
        headers = {"Content-Type": content_type}
        if if_none_match:
            headers["If-None-Match"] = "*"
        if if_match is not None:
            headers["If-Match"] = if_match
        if cache_control:
            headers["Cache-Control"] = cache_control
        if sha256 is not None:
            headers["x-amz-checksum-sha256"] = base64.b64encode(sha256).decode()
        headers |= {f"{_META}{name}": value for name, value in (metadata or {}).items()}
        try:
            answer = await self._http.send("PUT", key, body=body, headers=headers, sha256=sha256)
        except ObjectMissing as exc:  # some servers answer If-Match on a missing key with 404
            raise ConditionFailed(str(exc)) from exc
        return answer.headers["ETag"]

    async def _put_file(
        self,
        key: str,
        body: BinaryIO,
        *,
        content_type: str,
        if_none_match: bool,
        if_match: str | None,
        cache_control: str | None,
        sha256: bytes | None,
        metadata: dict[str, str] | None,
    ) -> str:
        """``put`` of a file (an original spooled to disk): boto3 streams it, from a thread."""
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if if_none_match else {}
        if cache_control:
            extra["CacheControl"] = cache_control
        if sha256 is not None:
            extra["ChecksumSHA256"] = base64.b64encode(sha256).decode()
        if metadata:
            extra["Metadata"] = metadata
        if if_match is not None:
            extra["IfMatch"] = if_match
        try:
            answer = await self._call(
                self._client.put_object, Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **extra
            )
        except ObjectMissing as exc:
            raise ConditionFailed(str(exc)) from exc
        return str(answer["ETag"])

    async def head(self, key: str) -> tuple[int, dict[str, str]]:
        """Return an object's size and user metadata; ObjectMissing if there is none."""
        headers = (await self._http.send("HEAD", key)).headers
        metadata = {
            name[len(_META) :].lower(): value for name, value in headers.items() if name.lower().startswith(_META)
        }
        return int(headers["Content-Length"]), metadata

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""

        def list_all() -> list[str]:
            paginator = self._client.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

        return await self._call(list_all)

    async def leftovers(self, prefix: str) -> list[Leftover]:
        """Every object and every open multipart upload under ``prefix``, with when each was written."""

        def list_both() -> list[Leftover]:
            objects = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            found = [
                Leftover(item["Key"], item["LastModified"].astimezone(UTC))
                for page in objects
                for item in page.get("Contents", [])
            ]
            uploads = self._client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
            found += [
                Leftover(item["Key"], item["Initiated"].astimezone(UTC), MultipartUpload(item["Key"], item["UploadId"]))
                for page in uploads
                for item in page.get("Uploads", [])
            ]
            return found

        return await self._call(list_both)

    async def get(self, key: str) -> bytes:
        """Return the object's bytes (for small objects: records, not originals)."""
        return (await self._http.send("GET", key)).body

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
            await self._http.send("HEAD", key)
        except ObjectMissing:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Delete ``key`` (no error if it is already gone)."""
        await self._http.send("DELETE", key)

    async def copy(self, source_key: str, key: str) -> None:
        """Copy ``source_key`` to ``key`` inside the store (content type kept; up to 5 GB)."""
        await self._call(
            self._client.copy_object, Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source_key}
        )

    async def put_json(
        self, key: str, record: dict[str, Any], *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        """Store a small JSON record; returns its ETag."""
        body = _json_bytes(record)
        return await self.put(
            key, body, content_type="application/json", if_none_match=if_none_match, if_match=if_match
        )

    async def get_json(self, key: str) -> dict[str, Any]:
        """Read a small JSON record; ObjectMissing if there is none."""
        return json.loads(await self.get(key))

    async def get_json_versioned(self, key: str) -> tuple[dict[str, Any], str]:
        """Read a small JSON record and its ETag; ObjectMissing if there is none."""
        answer = await self._http.send("GET", key)
        return json.loads(answer.body), answer.headers["ETag"]

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

    def presign_put(self, key: str, expires_in: int, *, size: int, sha256: bytes) -> tuple[str, dict[str, str]]:
        """A time-limited PUT URL bound to the length and the SHA-256 (see ``Store.presign_put``)."""
        checksum = base64.b64encode(sha256).decode()
        url = self._client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentLength": size, "ChecksumSHA256": checksum},
            ExpiresIn=expires_in,
        )
        return url, {"Content-Length": str(size), "x-amz-checksum-sha256": checksum}

    def presign_part(self, upload: MultipartUpload, number: int, expires_in: int) -> str:
        """A time-limited PUT URL for one part of a multipart upload."""
        return self._client.generate_presigned_url(
            "upload_part",
            Params={"Bucket": self.bucket, "Key": upload.key, "UploadId": upload.upload_id, "PartNumber": number},
            ExpiresIn=expires_in,
        )

    async def list_parts(self, upload: MultipartUpload) -> MultipartUpload:
        """``upload`` with the parts the store holds for it, in order."""

        def list_all() -> tuple[dict[str, Any], ...]:
            pages = self._client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id
            )
            found = [part for page in pages for part in page.get("Parts", [])]
            return tuple(
                {"PartNumber": part["PartNumber"], "ETag": part["ETag"]}
                for part in sorted(found, key=lambda part: part["PartNumber"])
            )

        return MultipartUpload(upload.key, upload.upload_id, await self._call(list_all))

    async def get_head(self, key: str, length: int) -> tuple[int, bytes]:
        """An object's size (from ``Content-Range``) and its first ``length`` bytes."""
        answer = await self._http.send("GET", key, headers={"Range": f"bytes=0-{length - 1}"})
        total = answer.headers.get("Content-Range", "").rpartition("/")[2]
        return (int(total) if total.isdigit() else len(answer.body)), answer.body


@dataclass(frozen=True)
class StoredObject:
    """An object as ``MemoryObjectStore`` holds it: the bytes and what was stored with them."""

    body: bytes
    content_type: str
    cache_control: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # The SHA-256 the writer sent for the server to verify (S3 keeps it with the object).
    sha256: bytes | None = None
    written: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _OpenUpload:
    key: str
    content_type: str
    parts: dict[int, bytes] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


def _json_bytes(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), sort_keys=True).encode()


def _etag(body: bytes) -> str:
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


class MemoryObjectStore(Store):
    """A ``Store`` in memory, with the S3 adapter's semantics and errors, for tests.

    Every operation yields to the event loop once, as a request would, so concurrent callers
    interleave as they do against S3; ``read_into`` calls ``write`` on a worker thread, like
    the S3 adapter. ``fail_with`` makes operations raise an error of the store's tree (S3 down,
    throttling), and ``stored`` and ``open_uploads`` show what a test cannot ask through the
    ``Store`` interface.
    """

    _OPERATIONS = frozenset(
        {
            "ping",
            "put",
            "head",
            "list_keys",
            "leftovers",
            "get",
            "read_into",
            "exists",
            "delete",
            "copy",
            "count",
            "start_multipart",
            "upload_part",
            "complete_multipart",
            "abort_multipart",
            "list_parts",
            "get_head",
        }
    )

    def __init__(self, *, bucket: str = "memory", min_part_bytes: int = MIN_PART_BYTES) -> None:
        """An empty bucket; multipart parts but the last must be ``min_part_bytes`` or more, as in S3."""
        self.bucket = bucket
        self.closed = False
        self._min_part_bytes = min_part_bytes
        self._objects: dict[str, StoredObject] = {}
        self._uploads: dict[str, _OpenUpload] = {}
        self._failure: StoreError | None = None
        self._failing: frozenset[str] = frozenset()

    def fail_with(self, error: StoreError | None, *operations: str) -> None:
        """Raise ``error`` from the named operations (all of them when none is named); None heals.

        ``put_json`` and ``get_json`` fail with ``put`` and ``get``, which they are made of.
        """
        unknown = set(operations) - self._OPERATIONS
        if unknown:
            raise ValueError(f"no such operation: {sorted(unknown)}")
        self._failure = error
        self._failing = frozenset(operations) or self._OPERATIONS

    async def _enter(self, operation: str) -> None:
        await asyncio.sleep(0)
        if self._failure is not None and operation in self._failing:
            raise self._failure.with_traceback(None)  # raised again and again: keep no old frames

    def _object(self, key: str) -> StoredObject:
        try:
            return self._objects[key]
        except KeyError:
            raise ObjectMissing("NoSuchKey") from None

    def _upload(self, upload: MultipartUpload) -> _OpenUpload:
        try:
            return self._uploads[upload.upload_id]
        except KeyError:
            raise ObjectMissing("NoSuchUpload") from None

    def stored(self, key: str) -> StoredObject:
        """The object at ``key`` with what was stored with it; ObjectMissing if there is none."""
        return self._object(key)

    def open_uploads(self, prefix: str = "") -> list[str]:
        """The keys of multipart uploads under ``prefix`` neither completed nor aborted, sorted."""
        return sorted(upload.key for upload in self._uploads.values() if upload.key.startswith(prefix))

    async def close(self) -> None:
        """Nothing to release; the objects stay readable."""
        self.closed = True

    async def ping(self) -> None:
        """Raise the injected failure, if any."""
        await self._enter("ping")

    async def put(
        self,
        key: str,
        body: bytes | bytearray | BinaryIO,
        *,
        content_type: str,
        if_none_match: bool = False,
        if_match: str | None = None,
        cache_control: str | None = None,
        sha256: bytes | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Store a copy of ``body`` at ``key`` (see ``Store.put``)."""
        await self._enter("put")
        data = bytes(body) if isinstance(body, bytes | bytearray) else body.read()
        if sha256 is not None and hashlib.sha256(data).digest() != sha256:
            raise StoreError("S3 refused: 400 BadDigest")
        if if_none_match and key in self._objects:
            raise AlreadyExists("PreconditionFailed")
        if if_match is not None and (key not in self._objects or _etag(self._objects[key].body) != if_match):
            raise ConditionFailed("PreconditionFailed")
        lowered = {name.lower(): value for name, value in (metadata or {}).items()}
        self._objects[key] = StoredObject(data, content_type, cache_control, lowered, sha256)
        return _etag(data)

    async def head(self, key: str) -> tuple[int, dict[str, str]]:
        """Return an object's size and user metadata; ObjectMissing if there is none."""
        await self._enter("head")
        found = self._object(key)
        return len(found.body), dict(found.metadata)

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        await self._enter("list_keys")
        return sorted(key for key in self._objects if key.startswith(prefix))

    async def leftovers(self, prefix: str) -> list[Leftover]:
        """Every object and every open multipart upload under ``prefix``, with when each was written."""
        await self._enter("leftovers")
        found = [Leftover(key, stored.written) for key, stored in self._objects.items() if key.startswith(prefix)]
        found += [
            Leftover(upload.key, upload.started, MultipartUpload(upload.key, upload_id))
            for upload_id, upload in self._uploads.items()
            if upload.key.startswith(prefix)
        ]
        return found

    async def get(self, key: str) -> bytes:
        """Return the object's bytes; ObjectMissing if there is none."""
        await self._enter("get")
        return self._object(key).body

    async def read_into(self, key: str, write: Callable[[bytes], object], *, chunk_bytes: int = 1 << 20) -> int:
        """Call ``write`` with the object's chunks on a worker thread; return its size."""
        await self._enter("read_into")
        body = self._object(key).body

        def stream() -> int:
            for start in range(0, len(body), chunk_bytes):
                write(body[start : start + chunk_bytes])
            return len(body)

        return await asyncio.to_thread(stream)

    async def exists(self, key: str) -> bool:
        """Tell whether ``key`` exists."""
        await self._enter("exists")
        return key in self._objects

    async def delete(self, key: str) -> None:
        """Delete ``key``; no error if it is already gone."""
        await self._enter("delete")
        self._objects.pop(key, None)

    async def copy(self, source_key: str, key: str) -> None:
        """Copy an object with its content type and metadata; ObjectMissing if the source is gone."""
        await self._enter("copy")
        self._objects[key] = replace(self._object(source_key), written=datetime.now(UTC))

    async def put_json(
        self, key: str, record: dict[str, Any], *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        """Store a small JSON record, encoded as the S3 adapter encodes it; returns its ETag."""
        body = _json_bytes(record)
        return await self.put(
            key, body, content_type="application/json", if_none_match=if_none_match, if_match=if_match
        )

    async def get_json(self, key: str) -> dict[str, Any]:
        """Read a small JSON record; ObjectMissing if there is none."""
        record: dict[str, Any] = json.loads(await self.get(key))
        return record

    async def get_json_versioned(self, key: str) -> tuple[dict[str, Any], str]:
        """Read a small JSON record and its ETag; ObjectMissing if there is none."""
        body = await self.get(key)
        return json.loads(body), _etag(body)

    async def count(self, prefix: str) -> int:
        """Count the objects under ``prefix``."""
        await self._enter("count")
        return sum(1 for key in self._objects if key.startswith(prefix))

    async def start_multipart(self, key: str, *, content_type: str) -> MultipartUpload:
        """Open a multipart upload for ``key``."""
        await self._enter("start_multipart")
        upload_id = uuid.uuid4().hex
        self._uploads[upload_id] = _OpenUpload(key, content_type)
        return MultipartUpload(key=key, upload_id=upload_id)

    async def upload_part(self, upload: MultipartUpload, body: bytes | bytearray) -> MultipartUpload:
        """Store the next part; ObjectMissing if the upload is gone."""
        await self._enter("upload_part")
        data = bytes(body)
        number = len(upload.parts) + 1
        self._upload(upload).parts[number] = data
        part = {"PartNumber": number, "ETag": _etag(data)}
        return MultipartUpload(upload.key, upload.upload_id, (*upload.parts, part))

    async def complete_multipart(self, upload: MultipartUpload) -> None:
        """Make the object visible from the parts ``upload`` lists (see ``Store.complete_multipart``)."""
        await self._enter("complete_multipart")
        open_upload = self._upload(upload)
        bodies = []
        for part in upload.parts:
            body = open_upload.parts.get(part["PartNumber"])
            if body is None or _etag(body) != part["ETag"]:
                raise StoreError(f"S3 refused: 400 InvalidPart {part['PartNumber']}")
            bodies.append(body)
        if not bodies:
            raise StoreError("S3 refused: 400 MalformedXML (no parts)")
        if any(len(body) < self._min_part_bytes for body in bodies[:-1]):
            raise StoreError("S3 refused: 400 EntityTooSmall")
        del self._uploads[upload.upload_id]
        self._objects[open_upload.key] = StoredObject(b"".join(bodies), open_upload.content_type)

    async def abort_multipart(self, upload: MultipartUpload) -> None:
        """Drop an unfinished multipart upload and its parts (no error if it is gone already)."""
        await self._enter("abort_multipart")
        self._uploads.pop(upload.upload_id, None)

    def presign_get(self, key: str, expires_in: int) -> str:
        """A URL naming the bucket, the key and ``X-Amz-Expires``, as the S3 adapter's does; nothing serves it."""
        return f"memory://{self.bucket}/{quote(key)}?X-Amz-Expires={expires_in}"

    def presign_put(self, key: str, expires_in: int, *, size: int, sha256: bytes) -> tuple[str, dict[str, str]]:
        """A URL as ``presign_get``'s, and the headers the S3 adapter's would need; nothing serves it."""
        checksum = base64.b64encode(sha256).decode()
        url = f"memory://{self.bucket}/{quote(key)}?X-Amz-Expires={expires_in}"
        return url, {"Content-Length": str(size), "x-amz-checksum-sha256": checksum}

    def presign_part(self, upload: MultipartUpload, number: int, expires_in: int) -> str:
        """A URL naming the part, as ``presign_get``'s; nothing serves it."""
        return f"memory://{self.bucket}/{quote(upload.key)}?partNumber={number}&X-Amz-Expires={expires_in}"

    async def list_parts(self, upload: MultipartUpload) -> MultipartUpload:
        """``upload`` with the parts stored for it, in order."""
        await self._enter("list_parts")
        parts = self._upload(upload).parts
        listed = tuple({"PartNumber": number, "ETag": _etag(parts[number])} for number in sorted(parts))
        return MultipartUpload(upload.key, upload.upload_id, listed)

    async def get_head(self, key: str, length: int) -> tuple[int, bytes]:
        """An object's size and its first ``length`` bytes."""
        await self._enter("get_head")
        body = self._object(key).body
        return len(body), body[:length]
