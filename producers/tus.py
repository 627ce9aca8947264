"""Resumable uploads: tus 1.0.0 (https://tus.io/protocols/resumable-upload) at ``/v1/tus/``.

    OPTIONS /v1/tus/        what the server speaks (no key needed)
    POST    /v1/tus/        create an upload of ``Upload-Length`` bytes (with its first bytes, optionally)
    HEAD    /v1/tus/{id}    how many bytes the server has
    PATCH   /v1/tus/{id}    the next bytes, from ``Upload-Offset``
    DELETE  /v1/tus/{id}    give up an upload

Extensions: creation, creation-with-upload, termination, checksum, expiration. A client whose
connection drops asks the offset with HEAD and goes on from there, on any gateway instance:
the state lives in the bucket, under ``tus/<photographer>/``::

    <tus id>.info                 the upload's state (JSON); replaced only if its ETag is unchanged
    <tus id>                      an S3 multipart upload of the full parts so far (started with the
                                  first), at the end the file
    <tus id>.tail-<start>-<size>  the bytes past the last full part

S3 parts, all but the last, must be 5 MiB or more, and tus chunks may be any size, so the bytes
past the last full part wait in a tail object, read back and completed by the next PATCH (as
tusd's S3 store does). A PATCH writes its parts and its new tail, then replaces the state with
``If-Match``: of two instances that raced on one upload, the later one gets 409 and the client
asks the offset again. Parts are numbered by offset, so the racers wrote the same bytes into a
part.

When the last byte arrives, the file goes where a POSTed one goes (``Gateway.accept_one``): the
same ``upload_id`` for the same content, the quota, ``UploadReceived``. Its SHA-256 was taken as
the bytes came, when they all came through this process (else the file is read back once). A
file smaller than one part is then still whole in memory and is stored at the original's key
directly; a larger one's parts become one object, copied there. If that fails (Kafka down), the state stays
complete and the next HEAD or PATCH tries again: a tus client that finds every byte there asks
nothing more. The state of a finished upload stays until it expires, so a client that lost the
final answer learns its ``upload_id`` from HEAD. Unfinished uploads expire ``tus_expiry_seconds``
after their last bytes (``Upload-Expires``); the gateway's sweep removes them and their parts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from photostream.logs import upload_context
from photostream.media import SNIFF_BYTES
from photostream.objectstore import ConditionFailed, MultipartUpload, ObjectMissing, Store, StoreError
from producers import problems
from producers.fields import clean_filename, parse_tags, parse_title
from producers.ingest import RejectedFile, StagedOriginal, StoredFile, content_type_of

if TYPE_CHECKING:
    from producers.gateway import Gateway

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "termination", "checksum", "expiration")
CHECKSUMS: dict[str, Callable[[], Any]] = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
TUS_PREFIX = "tus/"
ROUTE = "/v1/tus/"
_OCTETS = "application/octet-stream"
_TUS_ID = re.compile(r"[0-9a-f]{32}")
# A request for an upload that another request of this process is writing waits this long for it.
_LOCK_WAIT_SECONDS = 5.0


def _key(photographer_id: str, tus_id: str) -> str:
    return f"{TUS_PREFIX}{photographer_id}/{tus_id}"


@dataclass(frozen=True)
class TusUpload:
    """One tus upload's state, as stored in its ``.info`` object.

    Attributes:
        parts: The multipart upload's parts so far (``PartNumber``, ``ETag``), each ``part_bytes`` long.
        tail_key: The object with the bytes past the last part; None when there are none.
        upload_id: Set once the finished file was accepted: the image's id.
        existing: Whether that image existed before this upload.
    """

    tus_id: str
    photographer_id: str
    length: int
    offset: int
    metadata: str
    created_at: str
    expires_at: str
    part_bytes: int
    multipart_id: str | None = None
    parts: tuple[dict[str, Any], ...] = ()
    tail_key: str | None = None
    upload_id: str | None = None
    existing: bool = False

    @property
    def key(self) -> str:
        """Where the parts, then the whole file, are stored."""
        return _key(self.photographer_id, self.tus_id)

    @property
    def info_key(self) -> str:
        """Where this state is stored."""
        return f"{self.key}.info"

    @property
    def multipart(self) -> MultipartUpload | None:
        """The S3 multipart upload holding the full parts; None until the first part is full."""
        if self.multipart_id is None:
            return None
        return MultipartUpload(self.key, self.multipart_id, self.parts)

    @property
    def parts_end(self) -> int:
        """The offset where the last full part ends and the tail starts."""
        return len(self.parts) * self.part_bytes

    @property
    def complete(self) -> bool:
        """Every byte is here."""
        return self.offset == self.length

    @property
    def fields(self) -> dict[str, str]:
        """The decoded ``Upload-Metadata`` (checked when the upload was created)."""
        return parse_metadata(self.metadata)

    def expired(self, now: datetime) -> bool:
        """Past its expiry (a finished upload's state only lingers to answer HEAD)."""
        return datetime.fromisoformat(self.expires_at) <= now

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {**asdict(self), "parts": list(self.parts)}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> TusUpload:
        """Read the stored form."""
        return cls(**{**record, "parts": tuple(record["parts"])})


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (a key may have no value).

    Raises:
        ProblemError: 400 for a pair that is not ``key`` or ``key base64``.
    """
    metadata: dict[str, str] = {}
    for pair in (header or "").split(","):
        if not pair.strip():
            continue
        key, _, encoded = pair.strip().partition(" ")
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode("utf-8") if encoded.strip() else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise problems.bad_request(f"Upload-Metadata: {key!r} is not base64 of UTF-8 text") from exc
        metadata[key] = value
    return metadata


def _http_date(moment: str) -> str:
    return format_datetime(datetime.fromisoformat(moment), usegmt=True)


def _integer_header(request: web.Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None or not raw.isdigit():
        raise problems.bad_request(f"{name} must be a non-negative integer")
    return int(raw)


class _Locks:
    """One asyncio lock per tus upload in this process; forgotten when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, tus_id: str, wait: float) -> AsyncIterator[None]:
        lock, users = self._locks.get(tus_id, (asyncio.Lock(), 0))
        self._locks[tus_id] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout(wait):
                    await lock.acquire()
            except TimeoutError:
                raise problems.ProblemError(
                    problems.Problem("upload-locked", 423, "Upload in use", "another request is writing this upload")
                ) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[tus_id]
            if users == 1:
                del self._locks[tus_id]
            else:
                self._locks[tus_id] = (lock, users - 1)


class _Checksum:
    """``Upload-Checksum: <algorithm> <base64 digest>`` of one PATCH's body."""

    def __init__(self, header: str | None) -> None:
        self._hash: Any = None
        self._expected = b""
        if header is None:
            return
        algorithm, _, encoded = header.strip().partition(" ")
        if algorithm not in CHECKSUMS:
            raise problems.bad_request(f"Upload-Checksum: {algorithm!r} is not one of {', '.join(CHECKSUMS)}")
        try:
            self._expected = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error as exc:
            raise problems.bad_request("Upload-Checksum: the digest is not base64") from exc
        self._hash = CHECKSUMS[algorithm]()

    @property
    def given(self) -> bool:
        return self._hash is not None

    def update(self, chunk: bytes) -> None:
        if self._hash is not None:
            self._hash.update(chunk)

    def matches(self) -> bool:
        return self._hash is None or self._hash.digest() == self._expected


class _RunningDigests:
    """The SHA-256 of each upload's bytes so far, for uploads whose bytes all came through this process.

    When the last byte arrives here too, the file need not be read back from the store for its hash.
    An upload resumed on another instance, or after a restart, is read back instead. Bounded: the
    oldest entries are dropped first.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._digests: dict[str, tuple[int, Any, bytes]] = {}

    def resume(self, tus_id: str, offset: int) -> tuple[Any, bytearray] | None:
        """A copy of the digest (and the file's first bytes) covering exactly ``offset`` bytes, if held."""
        if offset == 0:
            return hashlib.sha256(), bytearray()
        held = self._digests.get(tus_id)
        if held is None or held[0] != offset:
            return None
        return held[1].copy(), bytearray(held[2])

    def keep(self, tus_id: str, offset: int, running: tuple[Any, bytearray] | None) -> None:
        """Remember the digest of the first ``offset`` bytes (forget the upload's when there is none)."""
        self._digests.pop(tus_id, None)
        if running is None:
            return
        if len(self._digests) >= self._limit:
            del self._digests[next(iter(self._digests))]
        self._digests[tus_id] = (offset, running[0], bytes(running[1]))

    def take(self, tus_id: str, length: int) -> tuple[str, bytes] | None:
        """The hex digest and first bytes of a whole file of ``length`` bytes, if held; forgotten either way."""
        held = self._digests.pop(tus_id, None)
        if held is None or held[0] != length:
            return None
        return held[1].hexdigest(), held[2]


class _BodyEnded(Exception):
    """The client's body stopped early (dropped connection, or a pause past the read timeout)."""


class TusUploads:
    """The tus handlers, bound to the gateway whose authentication and admission they use."""

    def __init__(self, gateway: Gateway) -> None:
        """Use ``gateway``'s settings, store and admission."""
        self.gateway = gateway
        self.settings = gateway.settings
        self.store: Store = gateway.services.store
        self._locks = _Locks()
        self._digests = _RunningDigests()

    def add_routes(self, app: web.Application) -> None:
        """Serve the tus endpoints on ``app``."""
        app.router.add_route("OPTIONS", ROUTE, self.options)
        app.router.add_post(ROUTE, self.create)
        app.router.add_route("OPTIONS", ROUTE + "{tus_id}", self.options)
        app.router.add_route("HEAD", ROUTE + "{tus_id}", self.head)
        app.router.add_patch(ROUTE + "{tus_id}", self.patch)
        app.router.add_delete(ROUTE + "{tus_id}", self.terminate)
        app.on_response_prepare.append(_tus_headers)

    # -- the protocol's requests ----------------------------------------------------------

    async def options(self, request: web.Request) -> web.Response:
        """What this server speaks; tus clients and browsers ask before anything else."""
        return web.Response(
            status=204,
            headers={
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": ",".join(EXTENSIONS),
                "Tus-Max-Size": str(self.settings.max_file_bytes),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
            },
        )

    async def create(self, request: web.Request) -> web.Response:
        """Start an upload of ``Upload-Length`` bytes; a body with it is its first bytes."""
        _require_tus(request)
        photographer_id = await self.gateway.photographer(request)
        with upload_context(photographer_id=photographer_id):
            if "Upload-Defer-Length" in request.headers:
                raise problems.bad_request("Upload-Defer-Length is not supported: send Upload-Length")
            length = _integer_header(request, "Upload-Length")
            metadata_header = request.headers.get("Upload-Metadata", "")
            filename = _filename(parse_metadata(metadata_header))
            if length == 0:
                raise problems.ProblemError(problems.empty_file(filename))
            if length > self.settings.max_file_bytes:
                raise problems.ProblemError(problems.file_too_large(filename, self.settings.max_file_bytes))
            await self.gateway.refuse_over_quota(photographer_id)
            tus_id = uuid.uuid4().hex
            now = datetime.now(UTC)
            upload = TusUpload(
                tus_id=tus_id,
                photographer_id=photographer_id,
                length=length,
                offset=0,
                metadata=metadata_header,
                created_at=now.isoformat(),
                expires_at=self._expiry(now),
                part_bytes=self.settings.part_bytes,
            )
            etag = await self.store.put_json(upload.info_key, upload.to_json(), if_none_match=True)
            log.info("tus upload %s created: %d bytes of %s", tus_id, length, filename)
            headers = {"Location": f"{ROUTE}{tus_id}", "Upload-Expires": _http_date(upload.expires_at)}
            if request.content_type == OFFSET_OCTET_STREAM and request.body_exists:
                async with self._locks.hold(tus_id, _LOCK_WAIT_SECONDS):
                    upload, _ = await self._receive(request, upload, etag)
                    headers |= await self._finish_if_complete(upload)
                headers["Upload-Offset"] = str(upload.offset)
                headers["Upload-Expires"] = _http_date(upload.expires_at)
            return web.Response(status=201, headers=headers)

    async def head(self, request: web.Request) -> web.Response:
        """The offset the server has; a complete upload not yet accepted is accepted now.

        It waits for a PATCH of this process writing the upload: one whose client was cut off saves
        what it took a moment later, and the client resuming at once must be told that offset.
        """
        _require_tus(request)
        photographer_id, tus_id = await self._named(request)
        await self._read(photographer_id, tus_id)  # another photographer's upload is a 404 at once, never a wait
        async with self._locks.hold(tus_id, _LOCK_WAIT_SECONDS):
            upload, _ = await self._read(photographer_id, tus_id)
            headers = await self._finish_if_complete(upload)
        headers |= {
            "Upload-Offset": str(upload.offset),
            "Upload-Length": str(upload.length),
            "Upload-Expires": _http_date(upload.expires_at),
            "Cache-Control": "no-store",
        }
        if upload.metadata:
            headers["Upload-Metadata"] = upload.metadata
        return web.Response(status=200, headers=headers)

    async def patch(self, request: web.Request) -> web.Response:
        """Append the body at ``Upload-Offset``; the last bytes hand the file to the pipeline."""
        _require_tus(request)
        if request.content_type != OFFSET_OCTET_STREAM:
            raise problems.ProblemError(
                problems.Problem(
                    "unsupported-media-type", 415, "Wrong content type", f"a PATCH body is {OFFSET_OCTET_STREAM}"
                )
            )
        offset = _integer_header(request, "Upload-Offset")
        photographer_id, tus_id = await self._named(request)
        async with self._locks.hold(tus_id, _LOCK_WAIT_SECONDS):
            upload, etag = await self._read(photographer_id, tus_id)
            with upload_context(photographer_id=upload.photographer_id):
                if offset != upload.offset:
                    raise _conflict(f"the upload is at offset {upload.offset}, not {offset}: send from there")
                upload, etag = await self._receive(request, upload, etag)
                headers = await self._finish_if_complete(upload)
        headers |= {"Upload-Offset": str(upload.offset), "Upload-Expires": _http_date(upload.expires_at)}
        return web.Response(status=204, headers=headers)

    async def terminate(self, request: web.Request) -> web.Response:
        """Give up the upload and remove its bytes (an image it already became stays)."""
        _require_tus(request)
        upload, _ = await self._load(request)
        async with self._locks.hold(upload.tus_id, _LOCK_WAIT_SECONDS):
            await remove(self.store, upload)
        log.info("tus upload %s terminated at %d of %d bytes", upload.tus_id, upload.offset, upload.length)
        return web.Response(status=204)

    # -- state --------------------------------------------------------------------------

    def _expiry(self, now: datetime) -> str:
        return (now + timedelta(seconds=self.settings.tus_expiry_seconds)).isoformat()

    async def _load(self, request: web.Request) -> tuple[TusUpload, str]:
        """The caller's upload named in the path, and its state's ETag; 404 for anything else."""
        return await self._read(*await self._named(request))

    async def _named(self, request: web.Request) -> tuple[str, str]:
        """The caller (authenticated) and the upload id in the path (404 when it cannot be one)."""
        photographer_id = await self.gateway.photographer(request)
        tus_id = request.match_info["tus_id"]
        if not _TUS_ID.fullmatch(tus_id):
            raise problems.not_found(f"no upload {tus_id!r}")
        return photographer_id, tus_id

    async def _read(self, photographer_id: str, tus_id: str) -> tuple[TusUpload, str]:
        """The state of one of the photographer's uploads and its ETag; 404 when there is none, or it expired."""
        try:
            record, etag = await self.store.get_json_versioned(f"{_key(photographer_id, tus_id)}.info")
        except ObjectMissing:
            raise problems.not_found(f"no upload {tus_id!r}") from None
        upload = TusUpload.from_json(record)
        if upload.expired(datetime.now(UTC)):
            raise problems.not_found(f"the upload {tus_id!r} expired")
        return upload, etag

    async def _save(self, before: TusUpload, etag: str, after: TusUpload) -> str:
        """Replace the state if nobody else has; then drop the tail it no longer names."""
        try:
            new_etag = await self.store.put_json(after.info_key, after.to_json(), if_match=etag)
        except ConditionFailed:
            if after.tail_key and after.tail_key != before.tail_key:
                with contextlib.suppress(StoreError):
                    await self.store.delete(after.tail_key)
            raise _conflict("another request changed this upload meanwhile: HEAD, then send from its offset") from None
        if before.tail_key and before.tail_key != after.tail_key:
            with contextlib.suppress(StoreError):  # an unreferenced tail goes with the upload's sweep
                await self.store.delete(before.tail_key)
        return new_etag

    # -- bytes --------------------------------------------------------------------------

    async def _receive(self, request: web.Request, upload: TusUpload, etag: str) -> tuple[TusUpload, str]:
        """Read the body into full parts and a new tail; save the state with what arrived.

        A body that breaks off keeps what arrived (the client resumes from there), also when the
        server cancels the handler of a dropped connection; but not one that carried a checksum,
        which a part of the body cannot be checked against.
        """
        checksum = _Checksum(request.headers.get("Upload-Checksum"))
        room = upload.length - upload.offset
        buffer = bytearray(await self.store.get(upload.tail_key) if upload.tail_key else b"")
        multipart = upload.multipart
        running = self._digests.resume(upload.tus_id, upload.offset)
        unhashed = 0  # bytes at the end of ``buffer`` not yet in ``running``
        received = 0
        try:
            async for chunk in self._body(request):
                received += len(chunk)
                if received > room:
                    raise problems.bad_request(f"the body goes past Upload-Length ({upload.length} bytes)")
                checksum.update(chunk)
                buffer += chunk
                unhashed += len(chunk)
                while len(buffer) >= upload.part_bytes:
                    hashed = len(buffer) - unhashed  # the bytes at the front that ``running`` has seen
                    part = bytes(buffer[: upload.part_bytes])
                    del buffer[: upload.part_bytes]
                    fresh = part[min(hashed, len(part)) :]
                    unhashed -= len(fresh)
                    if multipart is None:  # started with the first full part: a small file needs none
                        multipart = await self.store.start_multipart(upload.key, content_type=_OCTETS)
                    _, multipart = await asyncio.gather(
                        _digest(running, fresh), self.store.upload_part(multipart, part)
                    )
        except (_BodyEnded, asyncio.CancelledError) as ended:
            if checksum.given:
                raise
            await _digest(running, bytes(buffer[len(buffer) - unhashed :]) if unhashed else b"")
            kept = self._keep(upload, etag, multipart, buffer, upload.offset + received)
            upload, etag = await asyncio.shield(kept)  # saved even when the handler is cancelled
            self._digests.keep(upload.tus_id, upload.offset, running)
            log.info(
                "tus upload %s broke off at %d of %d bytes: %s", upload.tus_id, upload.offset, upload.length, ended
            )
            if isinstance(ended, asyncio.CancelledError):
                raise
            raise problems.ProblemError(
                problems.Problem("request-timeout", 408, "Request timeout", f"{ended}; resume from {upload.offset}")
            ) from ended
        await _digest(running, bytes(buffer[len(buffer) - unhashed :]) if unhashed else b"")
        if not checksum.matches():
            raise problems.ProblemError(
                problems.Problem(
                    "checksum-mismatch",
                    460,
                    "Checksum Mismatch",
                    "the body does not match Upload-Checksum; send it again",
                )
            )
        if upload.offset + received == upload.length and multipart is None:
            # The whole file is in ``buffer``: accepted from memory, with no part, no copy, no read-back.
            return await self._accept_whole(upload, etag, bytes(buffer))
        upload, etag = await self._keep(upload, etag, multipart, buffer, upload.offset + received)
        self._digests.keep(upload.tus_id, upload.offset, running)
        return upload, etag

    async def _keep(
        self, upload: TusUpload, etag: str, multipart: MultipartUpload | None, buffer: bytearray, offset: int
    ) -> tuple[TusUpload, str]:
        """Store the bytes past the last part (as the last part when the file is whole) and save the state."""
        if upload.length == offset and buffer and multipart is not None:
            multipart = await self.store.upload_part(multipart, bytes(buffer))  # the last part may be short
            buffer = bytearray()
        parts = multipart.parts if multipart is not None else ()
        tail_key = None
        if buffer:
            tail_key = f"{upload.key}.tail-{len(parts) * upload.part_bytes}-{len(buffer)}"
            if tail_key != upload.tail_key:
                await self.store.put(tail_key, buffer, content_type=_OCTETS)
        after = replace(
            upload,
            offset=offset,
            multipart_id=multipart.upload_id if multipart is not None else None,
            parts=parts,
            tail_key=tail_key,
            expires_at=self._expiry(datetime.now(UTC)),
        )
        return after, await self._save(upload, etag, after)

    async def _accept_whole(self, upload: TusUpload, etag: str, data: bytes) -> tuple[TusUpload, str]:
        """Accept a file that arrived whole in memory (no full part): straight to the original's key.

        If it cannot be accepted now (Kafka down), the bytes are kept as the upload's tail and its
        state says complete, for the next try (``_accept``) to read back.
        """
        sha256 = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        try:
            staged = StagedOriginal(content_type_of(data[:SNIFF_BYTES]), len(data), sha256)
        except RejectedFile as rejection:
            await remove(self.store, upload)
            raise problems.ProblemError(self.gateway.rejection_problem(rejection, _filename(upload.fields))) from None
        try:
            result = await self._admit(upload, staged, _BytesFile(self.store, data, staged.content_type))
        except problems.ProblemError as refused:
            if refused.problem.status < 500:
                await remove(self.store, upload)
                raise
            await self._keep(upload, etag, None, bytearray(data), upload.length)
            raise
        except BaseException:
            await asyncio.shield(self._keep(upload, etag, None, bytearray(data), upload.length))
            raise
        accepted = replace(
            upload,
            offset=upload.length,
            tail_key=None,
            upload_id=result["upload_id"],
            existing=bool(result.get("existing")),
            expires_at=self._expiry(datetime.now(UTC)),
        )
        return accepted, await self._save(upload, etag, accepted)

    async def _body(self, request: web.Request) -> AsyncIterator[bytes]:
        while True:
            try:
                async with asyncio.timeout(self.settings.read_timeout):
                    chunk = await request.content.readany()
            except TimeoutError as exc:
                raise _BodyEnded("the client stopped sending") from exc
            except (ConnectionError, OSError) as exc:
                raise _BodyEnded(f"the connection broke: {exc}") from exc
            if not chunk:
                if not request.content.is_eof():
                    raise _BodyEnded("the body ended early")
                return
            yield chunk

    async def _finish_if_complete(self, upload: TusUpload) -> dict[str, str]:
        """Once every byte is here: make the file, and accept it as a POST would; its ids as headers."""
        if not upload.complete:
            return {}
        if upload.upload_id is None:
            upload = await self._accept(upload)
        headers = {
            "Photostream-Upload-Id": str(upload.upload_id),
            "Photostream-Status-Url": f"/v1/uploads/{upload.upload_id}",
        }
        if upload.existing:
            headers["Photostream-Existing"] = "true"
        return headers

    async def _accept(self, upload: TusUpload) -> TusUpload:
        """Accept a complete upload whose bytes are in the store: its parts, or (a small file) its tail."""
        if upload.multipart is not None and upload.tail_key is None:
            with contextlib.suppress(ObjectMissing):  # completed by an earlier try that failed later
                await self.store.complete_multipart(upload.multipart)
        source = upload.key if upload.multipart is not None else str(upload.tail_key)
        filename = _filename(upload.fields)
        try:
            held = self._digests.take(upload.tus_id, upload.length)
            if held is None:
                staged = await self._read_back(upload, source)
            else:
                staged = StagedOriginal(content_type_of(held[1]), upload.length, held[0])
        except RejectedFile as rejection:
            await remove(self.store, upload)
            raise problems.ProblemError(self.gateway.rejection_problem(rejection, filename)) from None
        try:
            result = await self._admit(upload, staged, StoredFile(self.store, source))
        except problems.ProblemError as refused:
            if refused.problem.status < 500:  # refused for good (the quota): the upload goes
                await remove(self.store, upload)
            raise
        accepted = replace(upload, tail_key=None, upload_id=result["upload_id"], existing=bool(result.get("existing")))
        with contextlib.suppress(StoreError):  # the image exists whatever happens to these
            await self.store.put_json(accepted.info_key, accepted.to_json())
            await self.store.delete(source)  # kept until now: a failed try reads it again
        return accepted

    async def _admit(self, upload: TusUpload, staged: StagedOriginal, original: Any) -> dict[str, Any]:
        """Hand the finished file to the path every upload takes (``Gateway.accept_one``)."""
        fields = upload.fields
        return await self.gateway.accept_one(
            upload.photographer_id,
            staged,
            original,
            raw_name=_filename(fields),
            received_at=datetime.fromisoformat(upload.created_at),
            title=parse_title(fields.get("title", "")),
            tags=parse_tags(fields.get("tags", "")),
        )

    async def _read_back(self, upload: TusUpload, source: str) -> StagedOriginal:
        """The file's type from its first bytes, and its SHA-256, read from the store once."""
        digest = hashlib.sha256()
        head = bytearray()

        def take(chunk: bytes) -> None:
            if len(head) < SNIFF_BYTES:
                head.extend(chunk[: SNIFF_BYTES - len(head)])
            digest.update(chunk)

        size = await self.store.read_into(source, take)
        if size != upload.length:
            raise StoreError(f"tus upload {upload.tus_id} holds {size} bytes, not {upload.length}")
        return StagedOriginal(content_type_of(bytes(head)), size, digest.hexdigest())


async def _digest(running: tuple[Any, bytearray] | None, data: bytes) -> None:
    """Add ``data`` to a running digest (and the file's first bytes) off the event loop."""
    if running is None or not data:
        return
    digest, head = running
    if len(head) < SNIFF_BYTES:
        head.extend(data[: SNIFF_BYTES - len(head)])
    await asyncio.to_thread(digest.update, data)


@dataclass(frozen=True)
class _BytesFile:
    """A whole small file in memory, stored at the original's key by ``commit`` (see ``Committable``)."""

    store: Store
    data: bytes
    content_type: str
    in_place: bool = False

    async def commit(self, key: str) -> None:
        await self.store.put(key, self.data, content_type=self.content_type)

    async def abort(self) -> None:
        """Nothing was stored."""


async def remove(store: Store, upload: TusUpload) -> None:
    """Remove an upload's parts, tail, file and state (the state last: a failure can be retried)."""
    if upload.multipart is not None:
        with contextlib.suppress(ObjectMissing):
            await store.abort_multipart(upload.multipart)
    for key in await store.list_keys(f"{upload.key}."):
        if key != upload.info_key:
            await store.delete(key)
    await store.delete(upload.key)
    await store.delete(upload.info_key)


async def sweep_expired(store: Store, *, now: datetime | None = None, older_than: timedelta) -> int:
    """Remove expired uploads, and multipart uploads older than ``older_than`` that no state names.

    Returns:
        How many uploads were removed.
    """
    now = now or datetime.now(UTC)
    removed = 0
    named: set[str] = set()
    for key in await store.list_keys(TUS_PREFIX):
        if not key.endswith(".info"):
            continue
        try:
            upload = TusUpload.from_json(await store.get_json(key))
        except ObjectMissing:
            continue
        if upload.expired(now):
            await remove(store, upload)
            removed += 1
        elif upload.multipart_id is not None:
            named.add(upload.multipart_id)
    for leftover in await store.leftovers(TUS_PREFIX):
        if leftover.upload and leftover.upload.upload_id not in named and leftover.written < now - older_than:
            with contextlib.suppress(ObjectMissing):
                await store.abort_multipart(leftover.upload)
    return removed


def _conflict(detail: str) -> problems.ProblemError:
    return problems.ProblemError(problems.Problem("offset-conflict", 409, "Offset conflict", detail))


def _require_tus(request: web.Request) -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise problems.ProblemError(
            problems.Problem("tus-version", 412, "Unsupported tus version", f"send Tus-Resumable: {TUS_VERSION}"),
            {"Tus-Version": TUS_VERSION},
        )


def _filename(metadata: dict[str, str]) -> str:
    # tus clients send ``filename``; Uppy sends ``name`` too.
    return clean_filename(metadata.get("filename") or metadata.get("name"))


async def _tus_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(ROUTE):
        response.headers["Tus-Resumable"] = TUS_VERSION
