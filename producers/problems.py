"""RFC 9457 problem details: every error the gateway answers, as application/problem+json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from photostream import media
from photostream.http import PROBLEM_CONTENT_TYPE, problem_body, problem_response

CONTENT_TYPE = PROBLEM_CONTENT_TYPE


@dataclass(frozen=True)
class Problem:
    """One problem: a stable ``code`` (the type URI's last part), HTTP status, title and detail."""

    code: str
    status: int
    title: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The RFC 9457 members plus our extensions."""
        return problem_body(self.code, self.status, self.title, self.detail, **self.extra)

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        """This problem as an HTTP response."""
        return problem_response(self.code, self.status, self.title, self.detail, headers=headers, **self.extra)


class ProblemError(Exception):
    """Raised inside a handler to answer with a problem; the middleware renders it."""

    def __init__(self, problem: Problem, headers: dict[str, str] | None = None) -> None:
        """Carry the problem and any extra headers (Retry-After, WWW-Authenticate)."""
        super().__init__(problem.detail)
        self.problem = problem
        self.headers = headers or {}


def unauthorized(detail: str) -> ProblemError:
    """401: missing or unknown API key."""
    return ProblemError(
        Problem("unauthorized", 401, "Missing or unknown API key", detail),
        {"WWW-Authenticate": 'Bearer realm="photostream"'},
    )


def bad_request(detail: str) -> ProblemError:
    """400: the request is not what the API takes."""
    return ProblemError(Problem("bad-request", 400, "Malformed request", detail))


def not_found(detail: str) -> ProblemError:
    """404: no such resource for this photographer."""
    return ProblemError(Problem("not-found", 404, "Not found", detail))


def too_many_requests(detail: str, retry_after: int) -> ProblemError:
    """429: over the photographer's daily quota."""
    return ProblemError(
        Problem("quota-exceeded", 429, "Daily upload quota exceeded", detail), {"Retry-After": str(retry_after)}
    )


def too_many_auth_failures(detail: str, retry_after: int) -> ProblemError:
    """429: this client address sent too many missing or unknown API keys lately."""
    return ProblemError(
        Problem("too-many-auth-failures", 429, "Too many failed authentications", detail),
        {"Retry-After": str(retry_after)},
    )


def unavailable(detail: str, retry_after: int) -> ProblemError:
    """503: a dependency (Kafka, S3) is down; the client should retry later."""
    return ProblemError(
        Problem("unavailable", 503, "Service temporarily unavailable", detail), {"Retry-After": str(retry_after)}
    )


def file_too_large(filename: str, limit: int) -> Problem:
    """413 for one file over the size limit."""
    return Problem("file-too-large", 413, "File too large", f"{filename!r} is over the {limit} byte limit")


def unsupported_media(filename: str) -> Problem:
    """415 for one file that is not a supported image, judged from its bytes."""
    return Problem(
        "unsupported-media-type",
        415,
        "Not a supported image",
        f"{filename!r} is not {media.ACCEPTED_LABELS} (judged from its bytes)",
    )


def empty_file(filename: str) -> Problem:
    """400 for a file part with no bytes."""
    return Problem("empty-file", 400, "Empty file", f"{filename!r} has no bytes")


def too_many_files(limit: int) -> Problem:
    """413 for a file past the per-request limit."""
    return Problem(
        "too-many-files",
        413,
        "Too many files in one request",
        f"at most {limit} files per request; send the rest again",
    )


def over_quota(filename: str, photographer_id: str, quota: int) -> Problem:
    """429 for one file past the photographer's daily quota (the files before it were accepted)."""
    return Problem(
        "quota-exceeded",
        429,
        "Daily upload quota exceeded",
        f"{filename!r} is past {photographer_id}'s daily quota of {quota} uploads",
    )
