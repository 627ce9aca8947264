"""Single small S3 requests over aiohttp, signed by botocore: the request path without boto3's per-call cost.

An upload's records, markers and sniffed first bytes are a handful of tiny requests each (eight
for a direct upload). Through boto3 each costs the caller about 1.2 ms of CPU in botocore's
pipeline (its event hooks, response parsing and blocking HTTP stack) and a hop to a thread; the
same request signed with botocore's own SigV4 signer and sent with aiohttp costs about 0.2 ms.
``ObjectStore`` sends single-object reads, small writes and deletes this way; transfers of
originals, listings and multipart uploads stay with boto3, where a call's cost is the bytes.

Retries follow boto3's standard mode: three attempts, on connection errors, timeouts, 5xx and
throttling (a retriable ``StoreError``), with jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
import tenacity
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDictProxy
from yarl import URL

from photostream.config import S3Settings
from photostream.store_errors import StoreError, StoreUnavailable, refusal

ATTEMPTS = 3
# A body up to this size is hashed for the signature on the event loop (some microseconds); a larger one on a thread.
_HASHED_INLINE_BYTES = 256 * 1024
_PAYLOAD_SHA256 = "photostream_payload_sha256"  # where _Signer finds the body's hash in the request's context
_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")


@dataclass(frozen=True)
class S3Answer:
    """A successful answer: its headers and whole body."""

    headers: CIMultiDictProxy[str]
    body: bytes


class _Signer(S3SigV4Auth):
    """botocore's S3 signer, handed the body's SHA-256 (``send`` has it, or hashes a large body on a thread)."""

    def payload(self, request: AWSRequest) -> str:
        return str(request.context[_PAYLOAD_SHA256])


def _payload(body: bytes | bytearray) -> io.BytesIO | None:
    """The body as aiohttp sends a large one without holding the event loop: in chunks, yielding between them."""
    return io.BytesIO(body) if body else None


class SignedS3:
    """Signed requests for single objects of one bucket, on one event loop (path-style addressing)."""

    def __init__(self, settings: S3Settings, *, connections: int) -> None:
        """Sign with the settings' credentials and region; keep up to ``connections`` connections open."""
        self._bucket_url = f"{settings.endpoint_url.rstrip('/')}/{quote(settings.bucket, safe='')}/"
        credentials = Credentials(settings.access_key_id, settings.secret_access_key.get_secret_value())
        self._signer = _Signer(credentials, "s3", settings.region)
        self._timeout = aiohttp.ClientTimeout(sock_connect=settings.connect_timeout, sock_read=settings.read_timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(lambda error: isinstance(error, StoreError) and error.retriable),
            stop=tenacity.stop_after_attempt(ATTEMPTS),
            wait=tenacity.wait_random_exponential(multiplier=0.1, max=5),
            reraise=True,
        )

    async def close(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        method: str,
        key: str,
        *,
        body: bytes | bytearray = b"",
        headers: dict[str, str] | None = None,
        sha256: bytes | None = None,
    ) -> S3Answer:
        """Send one request for ``key``; its answer, or the StoreError for S3's refusal or silence.

        The signature covers the body's SHA-256 (``sha256`` when the caller has it; else hashed
        here, off the event loop for a large body). Transient failures are tried again
        (``ATTEMPTS`` in all) before they are raised.
        """
        if sha256 is None:
            if len(body) > _HASHED_INLINE_BYTES:
                sha256 = await asyncio.to_thread(lambda: hashlib.sha256(body).digest())
            else:
                sha256 = hashlib.sha256(body).digest()
        answer: S3Answer = await self._retrying(self._send_once, method, key, body, headers or {}, sha256.hex())
        return answer

    async def _send_once(
        self, method: str, key: str, body: bytes | bytearray, headers: dict[str, str], payload_sha256: str
    ) -> S3Answer:
        url = self._bucket_url + quote(key, safe="/~")
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        request.context[_PAYLOAD_SHA256] = payload_sha256
        self._signer.add_auth(request)
        try:
            async with self._client().request(
                method,
                URL(url, encoded=True),
                data=_payload(body),
                headers=dict(request.headers.items()),
                allow_redirects=False,  # as boto3: a redirect is an answer, and the signature is for this URL
            ) as response:
                payload = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StoreUnavailable(f"S3 unreachable: {exc!r}") from exc
        if response.status >= 300:
            code = _CODE.search(payload)
            message = _MESSAGE.search(payload)
            raise refusal(
                response.status,
                code.group(1).decode() if code else str(response.status),
                message.group(1).decode() if message else "",
            )
        return S3Answer(response.headers, payload)

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections)
            # The stored bytes as they are, as boto3 reads them: nothing asks for or undoes a Content-Encoding.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
            )
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError("a store's S3 connections belong to the event loop that opened them: one store per loop")
        return self._session
