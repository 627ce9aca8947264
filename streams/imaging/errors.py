"""The one error the image library raises on bad input.

    ImageError            the input cannot become an image; ``reason`` says why
      reason = corrupt             truncated, malformed, or too slow to decode
      reason = unsupported         not one of the accepted formats
      reason = too_many_pixels     over the configured pixel limit (decompression bombs)

Anything else escaping the library is a bug, and the caller reports it as ``internal``.
"""

from __future__ import annotations

from schemas.events import FailureReason


class ImageError(Exception):
    """The input cannot be processed; ``reason`` is the code a ``ProcessingFailed`` carries."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        """Create the error.

        Args:
            reason: The failure's reason code.
            detail: A human-readable explanation, safe to show to the photographer.
        """
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def __repr__(self) -> str:
        return f"ImageError({self.reason.value!r}, {self.detail!r})"
