"""Where the shared corpus of real camera and phone files lives, and how tests skip without it.

The corpus sits beside a developer's checkout (``../shared/corpus``) and is never copied into
the project; ``PHOTOSTREAM_CORPUS`` points elsewhere. A fresh clone has none, and the tests
that need it skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("PHOTOSTREAM_CORPUS", ROOT.parent / "shared" / "corpus"))


def corpus_files(pattern: str) -> list[Path]:
    """Return the corpus files matching a glob (e.g. ``jpg/orientation/*.jpg``), sorted; empty without a corpus."""
    return sorted(path for path in CORPUS.glob(pattern) if path.is_file()) if CORPUS.is_dir() else []


def require(pattern: str) -> list[Path]:
    """Return the corpus files matching ``pattern``, or skip the calling test when there are none."""
    files = corpus_files(pattern)
    if not files:
        pytest.skip(f"no {pattern} in the shared corpus ({CORPUS} is absent)")
    return files
