"""Direct uploads: the client sends the bytes straight to S3, the gateway only signs and checks.

    POST /v1/uploads/direct                  {"filename", "size", "sha256", "title"?, "tags"?}
    POST /v1/uploads/{upload_id}/complete    once the bytes are in S3

The first answers a presigned PUT (``url`` and the ``headers`` to send with it) bound to the
declared length and SHA-256, so a server that checks signatures and checksums (AWS S3,
SeaweedFS, MinIO) refuses any other bytes. Those bytes can only be the content the upload's id
is derived from, so the URL is for the original's own key: nothing is copied afterwards. The
upload's pending marker is written first, as for every original, so the staging sweep removes
an original whose upload is never completed; the declaration is that marker's body, so declaring
costs one write and completing one read. A file over ``direct_put_max_bytes`` (S3's 5 GiB
single-PUT limit) gets one presigned URL per part of a multipart upload instead (``parts``);
parts are not bound to the file's hash, so they go to the staging area,
``incoming/<photographer>/<upload id>.direct``, and are copied to the original's key once
admitted. Their declaration waits beside them (``incoming/<photographer>/<upload id>.direct.json``):
admitting them writes the original's marker, empty, before the copy, and a retry after a failed
publish still needs the declaration.

``complete`` checks that the object is there with the declared size and that its first bytes
are an image (a ranged GET: the gateway never reads the whole file), then hands it to the path
every upload takes (``Gateway.accept_one``): same ``upload_id`` for the same content, the
quota, ``UploadReceived``. The event carries the declared SHA-256; the worker hashes the bytes
it reads anyway and fails the upload as ``checksum_mismatch`` when they differ, which is what
catches wrong bytes where the store did not (parts of a multipart upload are not bound to the
file's hash).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from photostream.logs import upload_context
from photostream.media import SNIFF_BYTES
from photostream.objectstore import MultipartUpload, ObjectMissing, Store, StoreError
from producers import problems
from producers.fields import clean_filename, parse_tags, parse_title, upload_id_in
from producers.ingest import RejectedFile, StagedOriginal, StoredFile, content_type_of
from producers.ledger import original_key, pending_key, staging_key, upload_id_for

if TYPE_CHECKING:
    from producers.gateway import Gateway

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _staged_key(photographer_id: str, upload_id: str) -> str:
    return staging_key(photographer_id, f"{upload_id}.direct")


def _declaration_key(photographer_id: str, upload_id: str, *, in_place: bool) -> str:
    """Where the declaration waits: in the original's pending marker for one PUT, beside the parts otherwise."""
    if in_place:
        return pending_key(photographer_id, upload_id)
    return f"{_staged_key(photographer_id, upload_id)}.json"


def _bytes_key(photographer_id: str, upload_id: str, *, in_place: bool) -> str:
    """Where the client puts the bytes: the original's key for one PUT, the staging area for parts."""
    if in_place:
        return original_key(photographer_id, upload_id)
    return _staged_key(photographer_id, upload_id)


def _conflict(code: str, title: str, detail: str) -> problems.ProblemError:
    return problems.ProblemError(problems.Problem(code, 409, title, detail))


class DirectUploads:
    """The two direct-upload endpoints, bound to the gateway whose authentication and admission they use."""

    def __init__(self, gateway: Gateway) -> None:
        """Use ``gateway``'s settings, store and admission."""
        self.gateway = gateway
        self.settings = gateway.settings
        self.store: Store = gateway.services.store

    def add_routes(self, app: web.Application) -> None:
        """Serve the endpoints on ``app`` (before ``/v1/uploads/{upload_id}`` could match ``direct``)."""
        app.router.add_post("/v1/uploads/direct", self.create)
        app.router.add_post("/v1/uploads/{upload_id}/complete", self.complete)

    async def create(self, request: web.Request) -> web.Response:
        """Declare a file; answer where to PUT it (or that this content exists already)."""
        photographer_id = await self.gateway.photographer(request)
        with upload_context(photographer_id=photographer_id):
            declared = await self._declaration(request)
            upload_id = upload_id_for(photographer_id, declared["sha256"])
            with upload_context(upload_id=upload_id):
                if await self.gateway.services.ledger.find(upload_id) is not None:
                    return web.json_response(
                        {"upload_id": upload_id, "existing": True, "status_url": f"/v1/uploads/{upload_id}"}
                    )
                await self.gateway.refuse_over_quota(photographer_id)
                return await self._sign(photographer_id, upload_id, declared)

    async def _declaration(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise problems.bad_request("the body must be JSON: {filename, size, sha256, title?, tags?}") from exc
        if not isinstance(body, dict):
            raise problems.bad_request("the body must be a JSON object: {filename, size, sha256, title?, tags?}")
        filename = body.get("filename")
        size = body.get("size")
        sha256 = body.get("sha256")
        if not isinstance(filename, str) or not filename.strip():
            raise problems.bad_request("`filename` must be a non-empty string")
        name = clean_filename(filename)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise problems.bad_request("`size` must be the file's length in bytes")
        if size == 0:
            raise problems.ProblemError(problems.empty_file(name))
        if size > self.settings.max_file_bytes:
            raise problems.ProblemError(problems.file_too_large(name, self.settings.max_file_bytes))
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
            raise problems.bad_request("`sha256` must be the file's SHA-256 as 64 hex digits")
        title, tags = body.get("title"), body.get("tags")
        if title is not None and not isinstance(title, str):
            raise problems.bad_request("`title` must be a string")
        if tags is not None and not isinstance(tags, str | list):
            raise problems.bad_request("`tags` must be a comma-separated string or a list of strings")
        if isinstance(tags, list):
            tags = ",".join(str(tag) for tag in tags)
        return {
            "filename": name,
            "size": size,
            "sha256": sha256.lower(),
            "title": parse_title(title or ""),
            "tags": parse_tags(tags or ""),
        }

    async def _sign(self, photographer_id: str, upload_id: str, declared: dict[str, Any]) -> web.Response:
        now = datetime.now(UTC)
        expires_in = self.settings.direct_url_seconds
        in_place = declared["size"] <= self.settings.direct_put_max_bytes
        key = _bytes_key(photographer_id, upload_id, in_place=in_place)
        answer: dict[str, Any] = {
            "upload_id": upload_id,
            "method": "PUT",
            "expires_at": (now + timedelta(seconds=expires_in)).isoformat(),
            "complete_url": f"/v1/uploads/{upload_id}/complete",
        }
        multipart_id = None
        size = declared["size"]
        if in_place:
            url, headers = self.store.presign_put(key, expires_in, size=size, sha256=bytes.fromhex(declared["sha256"]))
            answer |= {"url": url, "headers": headers}
        else:
            multipart = await self.store.start_multipart(key, content_type="application/octet-stream")
            multipart_id = multipart.upload_id
            part = self.settings.part_bytes
            answer["parts"] = [
                {
                    "part_number": number,
                    "offset": offset,
                    "size": min(part, size - offset),
                    "url": self.store.presign_part(multipart, number, expires_in),
                }
                for number, offset in enumerate(range(0, size, part), start=1)
            ]
        record = {**declared, "created_at": now.isoformat(), "multipart_id": multipart_id, "in_place": in_place}
        # For one PUT this is the original's pending marker, written before the client has the URL: an original
        # whose upload is never completed is the sweep's.
        await self.store.put_json(_declaration_key(photographer_id, upload_id, in_place=in_place), record)
        log.info("direct upload of %s declared (%d bytes)", declared["filename"], size)
        return web.json_response(answer, status=201)

    async def complete(self, request: web.Request) -> web.Response:
        """The client says the bytes are in S3: check them, then accept the file as a POST would."""
        photographer_id = await self.gateway.photographer(request)
        upload_id = upload_id_in(request, kind="direct upload")
        with upload_context(photographer_id=photographer_id, upload_id=upload_id):
            declared = await self._declared(photographer_id, upload_id)
            if declared is None:
                if await self._acknowledged(photographer_id, upload_id):  # a retry of a complete that worked
                    return self._answer(upload_id, declared=None, existing=True)
                raise problems.not_found(f"no direct upload {upload_id}: declare it with POST /v1/uploads/direct first")
            in_place = bool(declared.get("in_place"))
            key = _bytes_key(photographer_id, upload_id, in_place=in_place)
            if declared["multipart_id"]:
                await self._assemble(MultipartUpload(key, declared["multipart_id"]))
            staged = await self._check(key, declared, _declaration_key(photographer_id, upload_id, in_place=in_place))
            try:
                result = await self.gateway.accept_one(
                    photographer_id,
                    staged,
                    StoredFile(self.store, key, in_place=in_place),
                    raw_name=declared["filename"],
                    received_at=datetime.fromisoformat(declared["created_at"]),
                    title=declared["title"],
                    tags=declared["tags"],
                )
            except problems.ProblemError as refused:
                if refused.problem.status < 500:  # refused for good (the quota): the sweep takes an original in place
                    await self._forget(photographer_id, upload_id, declared, refused=True)
                raise
            existing = bool(result.get("existing"))
            if existing or not in_place:  # an original in place published here was unmarked on its acknowledgement
                await self._forget(photographer_id, upload_id, declared)
            return self._answer(upload_id, declared=declared, existing=existing)

    async def _declared(self, photographer_id: str, upload_id: str) -> dict[str, Any] | None:
        """The declaration of an upload not yet completed, wherever it waits; None when there is none.

        An empty pending marker is an original's mark and nothing more: a POST or tus upload of the same
        content wrote it over the declaration, or a refused complete dropped the declaration from it.
        """
        for in_place in (True, False):
            try:
                body = await self.store.get(_declaration_key(photographer_id, upload_id, in_place=in_place))
            except ObjectMissing:
                continue
            if body:
                declared: dict[str, Any] = json.loads(body)
                return declared
        return None

    async def _acknowledged(self, photographer_id: str, upload_id: str) -> bool:
        record = await self.gateway.services.ledger.find(upload_id)
        return record is not None and record.photographer_id == photographer_id

    def _answer(self, upload_id: str, *, declared: dict[str, Any] | None, existing: bool) -> web.Response:
        body: dict[str, Any] = {"upload_id": upload_id, "status": "queued", "status_url": f"/v1/uploads/{upload_id}"}
        if declared is not None:
            body["filename"] = declared["filename"]
        if existing:
            body["existing"] = True
        return web.json_response(body, status=202)

    async def _assemble(self, multipart: MultipartUpload) -> None:
        """Complete a multipart direct upload from the parts the store holds."""
        try:
            listed = await self.store.list_parts(multipart)
        except ObjectMissing:
            return  # completed by an earlier try of this complete
        if not listed.parts:
            raise _conflict("object-missing", "Nothing uploaded", "no part was uploaded to the part URLs")
        try:
            await self.store.complete_multipart(listed)
        except ObjectMissing:
            return
        except StoreError as exc:
            if exc.retriable:
                raise
            raise _conflict("parts-rejected", "Parts refused", f"the store would not join the parts: {exc}") from exc

    async def _check(self, key: str, declared: dict[str, Any], declaration_key: str) -> StagedOriginal:
        """The object is there, of the declared size, and starts like an image."""
        try:
            size, head = await self.store.get_head(key, SNIFF_BYTES)
        except ObjectMissing:
            raise _conflict(
                "object-missing", "Nothing uploaded", "nothing is at the upload URL yet: PUT the file there first"
            ) from None
        if size != declared["size"]:
            await self.store.delete(key)
            again = "PUT the file again to the same URL"
            if declared["multipart_id"]:  # the parts were joined, so their URLs are spent
                await self._remove(declaration_key)
                again = "declare it again for new part URLs"
            raise _conflict(
                "size-mismatch",
                "Wrong size",
                f"the uploaded object has {size} bytes, not the {declared['size']} declared: {again}",
            )
        try:
            content_type = content_type_of(head)
        except RejectedFile as rejection:
            await self._remove(key)  # not an image: no upload can have acknowledged these bytes
            await self._remove(declaration_key)
            raise problems.ProblemError(self.gateway.rejection_problem(rejection, declared["filename"])) from None
        return StagedOriginal(content_type, size, declared["sha256"])

    async def _forget(
        self, photographer_id: str, upload_id: str, declared: dict[str, Any], *, refused: bool = False
    ) -> None:
        """Remove the declaration, and the staged bytes of a multipart upload (an original in place stays).

        The declaration of an original in place is its pending marker: one ``refused`` (the quota) stays
        a marker, emptied, so that the sweep removes the original and the client declares again (on
        the day it is let in, not the day it was refused on).
        """
        in_place = bool(declared.get("in_place"))
        key = _declaration_key(photographer_id, upload_id, in_place=in_place)
        if in_place and refused:
            try:
                await self.store.put(key, b"", content_type="text/plain")
            except StoreError as exc:
                log.warning("could not empty the pending marker %s: %s", key, exc)
            return
        await self._remove(key)
        if not in_place:
            await self._remove(_staged_key(photographer_id, upload_id))

    async def _remove(self, key: str) -> None:
        """Delete ``key``, best effort: the staging sweep gets what stays."""
        try:
            await self.store.delete(key)
        except StoreError as exc:
            log.warning("could not remove %s: %s", key, exc)
