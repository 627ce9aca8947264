"""`photostream upload`: send files and folders to the gateway, with progress, retries and a summary.

One request per file, several in parallel. A 429 or 503 (or a dropped connection) is retried
with backoff, honouring ``Retry-After``; sending the same file again is safe, because the
gateway answers the existing image for content it already has. ``wait`` then polls each
upload's status until it is completed or failed.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections import Counter
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import tenacity
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from photostream import media
from producers.direct_client import DirectSender
from producers.tus_client import ResumableSender, ResumeState, UploadRefused

# What a folder walk picks up; files named on the command line are sent whatever their name.
IMAGE_SUFFIXES = frozenset(f".{ext}" for fmt in media.ACCEPTED for ext in fmt.extensions)
_CHUNK = 256 * 1024
_RETRIED_STATUSES = {429, 502, 503, 504}


class RetryLater(Exception):
    """The gateway asked to come back later (429/503), or could not be reached."""

    def __init__(self, detail: str, after: float | None = None) -> None:
        """Remember the server's ``Retry-After``, if any."""
        super().__init__(detail)
        self.after = after


@dataclass
class Outcome:
    """What happened to one file."""

    path: Path
    bytes: int
    result: str  # accepted | existing | rejected | error
    upload_id: str | None = None
    problem: str | None = None
    detail: str | None = None
    final: dict[str, Any] = field(default_factory=dict)


def collect(paths: Iterable[Path]) -> list[Path]:
    """Files to send: named files as they are, folders walked recursively for image files (hidden ones skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    item
                    for item in path.rglob("*")
                    if item.is_file()
                    and item.suffix.lower() in IMAGE_SUFFIXES
                    and not any(part.startswith(".") for part in item.relative_to(path).parts)
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


class Uploader:
    """Sends files to one gateway with one API key."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        parallel: int = 4,
        attempts: int = 6,
        title: str | None = None,
        tags: str | None = None,
        console: Console | None = None,
        resume_state: ResumeState | None = None,
        direct: bool = False,
    ) -> None:
        """Create the uploader; ``attempts`` bounds the tries per file (retries on 429/503/network).

        With ``resume_state`` every file goes through tus (``/v1/tus/``), in chunks, and an
        interrupted one (this run's earlier try, or an earlier run) goes on from the server's offset.
        With ``direct`` every file goes straight to S3 through URLs the gateway signs.
        """
        if direct and resume_state is not None:
            raise ValueError("an upload is either resumable (tus) or direct (S3), not both")
        self._url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._parallel = parallel
        self._attempts = attempts
        self._title = title
        self._tags = tags
        self._resume_state = resume_state
        self._direct = direct
        self.console = console or Console(stderr=True)

    async def upload(self, files: Sequence[Path]) -> list[Outcome]:
        """Upload every file, showing files, bytes, rate and ETA; returns one outcome per file, in order."""
        sizes = [file.stat().st_size for file in files]
        limit = asyncio.Semaphore(self._parallel)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
        with Progress(*columns, console=self.console, transient=False) as progress:
            done = 0
            task = progress.add_task("uploading", total=sum(sizes), files=f"0/{len(files)} files")
            async with aiohttp.ClientSession(timeout=timeout, headers=self._headers) as session:

                async def one(path: Path, size: int) -> Outcome:
                    nonlocal done
                    async with limit:
                        outcome = await self._upload_one(session, path, size, progress, task)
                    done += 1
                    progress.update(task, files=f"{done}/{len(files)} files")
                    return outcome

                return list(await asyncio.gather(*(one(path, size) for path, size in zip(files, sizes, strict=True))))

    async def wait(self, outcomes: Sequence[Outcome], *, timeout: float = 600.0, every: float = 1.0) -> None:
        """Follow each accepted upload until it is completed or failed (or ``timeout`` passes).

        The gateway pushes the stages over its WebSocket (``/v1/ws``); a gateway without one, or a
        connection that breaks, is polled for what is left.
        """
        pending: dict[str, list[Outcome]] = {}
        for outcome in outcomes:
            if outcome.upload_id and outcome.result in {"accepted", "existing"}:
                pending.setdefault(outcome.upload_id, []).append(outcome)
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                await self._follow(pending)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            if pending:
                self.console.print(f"[dim]no live progress ({exc!r}); asking the status instead[/dim]")
        await self._poll(pending, deadline, every)

    async def _follow(self, pending: dict[str, list[Outcome]]) -> None:
        """Take the final stage of each pending upload from the gateway's WebSocket, removing it from ``pending``."""
        if not pending:
            return
        finals: dict[str, dict[str, Any]] = {upload_id: {} for upload_id in pending}
        async with (
            aiohttp.ClientSession(headers=self._headers) as session,
            session.ws_connect(f"{self._url}/v1/ws", heartbeat=30) as socket,
        ):
            await socket.send_json({"subscribe": list(pending)})
            with self.console.status(f"waiting for {len(pending)} uploads to be processed") as status:
                while pending:
                    message = await socket.receive_json()
                    upload_id = message.get("upload_id")
                    if upload_id not in pending:
                        continue
                    final = finals[upload_id]
                    if "error" in message and "stage" not in message:  # not found: leave it to the poll
                        raise ValueError(f"the gateway does not know {upload_id}")
                    if message["stage"] == "processed":
                        final["metadata"] = message.get("metadata")
                        if message.get("duplicate_of"):
                            final["duplicate_of"] = message["duplicate_of"]
                    elif message["stage"] in {"ready", "failed"}:
                        final["status"] = "completed" if message["stage"] == "ready" else "failed"
                        if message["stage"] == "failed":
                            final["error"] = message["error"]
                        for outcome in pending.pop(upload_id):
                            outcome.final = final
                        status.update(f"waiting for {len(pending)} uploads to be processed")

    async def _poll(self, pending: dict[str, list[Outcome]], deadline: float, every: float) -> None:
        """Poll the status of each pending upload until it is completed or failed (or ``deadline`` passes)."""
        if not pending:
            return
        async with aiohttp.ClientSession(headers=self._headers) as session:
            with self.console.status(f"waiting for {len(pending)} uploads to be processed") as status:
                while pending and time.monotonic() < deadline:
                    for upload_id, waiting in list(pending.items()):
                        try:
                            async with session.get(f"{self._url}/v1/uploads/{upload_id}") as response:
                                if response.status != 200:
                                    continue
                                body = await response.json()
                        except aiohttp.ClientError:
                            continue
                        if body.get("status") in {"completed", "failed"}:
                            for outcome in waiting:
                                outcome.final = body
                            del pending[upload_id]
                    status.update(f"waiting for {len(pending)} uploads to be processed")
                    if pending:
                        await asyncio.sleep(every)

    async def _upload_one(
        self, session: aiohttp.ClientSession, path: Path, size: int, progress: Progress, task: TaskID
    ) -> Outcome:
        sent = 0
        # Each file in flight has its own row under the total, gone once the file is.
        row = progress.add_task(path.name, total=size, files="")

        def reached(offset: int) -> None:
            nonlocal sent
            progress.advance(task, offset - sent)
            progress.update(row, completed=offset)
            sent = offset

        async def sender_attempt(sender: ResumableSender | DirectSender) -> dict[str, Any]:
            try:
                return {"uploads": [await sender.send(path, reached)]}
            except UploadRefused as refused:
                if refused.retriable:
                    raise RetryLater(str(refused), _retry_after(refused.retry_after)) from refused
                return refused.body
            except (TimeoutError, aiohttp.ClientConnectionError) as error:
                raise RetryLater(f"connection: {error!r}") from error

        async def attempt() -> dict[str, Any]:
            reached(0)  # a retry sends the file again

            async def chunks() -> AsyncGenerator[bytes]:
                with path.open("rb") as handle:
                    while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                        reached(sent + len(chunk))
                        yield chunk

            file_chunks = cast(types.AsyncGeneratorType[bytes, None], chunks())  # for its ag_running
            form = aiohttp.FormData(quote_fields=False)
            form.add_field("file", file_chunks, filename=path.name, content_type="application/octet-stream")
            if self._title:
                form.add_field("title", self._title)
            if self._tags:
                form.add_field("tags", self._tags)
            try:
                async with session.post(f"{self._url}/v1/uploads", data=form) as response:
                    if response.status in _RETRIED_STATUSES:
                        raise RetryLater(f"HTTP {response.status}", _retry_after(response.headers.get("Retry-After")))
                    body = await response.json(content_type=None)
                    body["http_status"] = response.status
                    return body
            except (TimeoutError, aiohttp.ClientConnectionError) as error:
                raise RetryLater(f"connection: {error!r}") from error
            finally:
                # A request cut mid-file leaves the file open, unless aiohttp's writer is still inside a read:
                # then closing is not ours to do (it raises), and aiohttp cancels that writer, which closes it.
                if not file_chunks.ag_running:
                    await file_chunks.aclose()

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(RetryLater),
            wait=_wait_for_server,
            stop=tenacity.stop_after_attempt(self._attempts),
            reraise=True,
        )
        try:
            if self._resume_state is not None:
                resumable = ResumableSender(session, self._url, self._resume_state, title=self._title, tags=self._tags)
                body: dict[str, Any] = await retrying(sender_attempt, resumable)
            elif self._direct:
                direct = DirectSender(session, self._url, title=self._title, tags=self._tags)
                body = await retrying(sender_attempt, direct)
            else:
                body = await retrying(attempt)
        except RetryLater as error:
            return Outcome(path, size, "error", detail=f"gave up after {self._attempts} tries: {error}")
        finally:
            progress.advance(task, size - sent)
            progress.remove_task(row)
        return _outcome(path, size, body)


def _outcome(path: Path, size: int, body: dict[str, Any]) -> Outcome:
    items = body.get("uploads") or []
    if items:
        item = items[0]
        if item.get("status") == "rejected":
            problem = item.get("problem") or {}
            return Outcome(path, size, "rejected", problem=problem.get("code"), detail=problem.get("detail"))
        return Outcome(path, size, "existing" if item.get("existing") else "accepted", upload_id=item["upload_id"])
    return Outcome(path, size, "rejected", problem=body.get("code", str(body.get("status"))), detail=body.get("detail"))


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


_backoff = tenacity.wait_random_exponential(multiplier=0.5, max=30)


def _wait_for_server(state: tenacity.RetryCallState) -> float:
    """The server's Retry-After when it gave one, else exponential backoff with jitter."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RetryLater) and error.after is not None:
        return min(error.after, 60.0)
    return _backoff(state)


def summary(outcomes: Sequence[Outcome], seconds: float) -> str:
    """One line: files, bytes, time, and how many were accepted, duplicates, rejected (by reason) or failed."""
    counts = Counter(o.result for o in outcomes)
    reasons = Counter(o.problem for o in outcomes if o.result == "rejected")
    total = sum(o.bytes for o in outcomes)
    parts = [f"{counts['accepted']} accepted", f"{counts['existing']} duplicates (already uploaded)"]
    rejected = f"{counts['rejected']} rejected"
    if reasons:
        rejected += " (" + ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common()) + ")"
    parts.append(rejected)
    if counts["error"]:
        parts.append(f"{counts['error']} not sent (gateway unavailable)")
    return f"{len(outcomes)} files, {total / 1e6:.1f} MB in {seconds:.1f} s: " + ", ".join(parts)


def processed_summary(outcomes: Sequence[Outcome]) -> str:
    """One line after ``wait``: how many were completed, failed or are still queued."""
    finals = Counter(o.final.get("status", "queued") for o in outcomes if o.upload_id)
    return f"{finals['completed']} completed, {finals['failed']} failed, {finals['queued']} still queued"


def results_table(outcomes: Sequence[Outcome]) -> Table:
    """What became of each file once processed: status, size, duplicate or error."""
    table = Table("file", "upload id", "status", "size", "notes")
    for o in outcomes:
        final = o.final
        status = final.get("status") or o.result
        size = ""
        notes = o.detail or ""
        if final.get("metadata"):
            size = f"{final['metadata'].get('width')}x{final['metadata'].get('height')}"
        if final.get("duplicate_of"):
            notes = f"duplicate of {final['duplicate_of']}"
        if final.get("error"):
            notes = f"{final['error'].get('code')}: {final['error'].get('detail')}"
        table.add_row(o.path.name, o.upload_id or "", status, size, notes)
    return table
