"""Where the shared corpus of real camera and phone files lives, and how tests skip without it.

The corpus sits beside a checkout (``shared/corpus`` in the checkout's parent, or in a directory above it) and
is never copied into the project; ``PHOTOSTREAM_CORPUS`` points elsewhere. A fresh clone elsewhere has none, and
the tests that need it skip, except under CI (``CI=true``), where the corpus is always present: there a missing
corpus fails the test, so that a skip cannot hide a test that never ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _find_corpus() -> Path:
    if "PHOTOSTREAM_CORPUS" in os.environ:
        return Path(os.environ["PHOTOSTREAM_CORPUS"])
    candidates = [directory / "shared" / "corpus" for directory in ROOT.parents]
    return next((path for path in candidates if path.is_dir()), candidates[0])


CORPUS = _find_corpus()
UNDER_CI = os.environ.get("CI", "").lower() == "true"


def corpus_files(pattern: str) -> list[Path]:
    """Return the corpus files matching a glob (e.g. ``jpg/orientation/*.jpg``), sorted; empty without a corpus."""
    return sorted(path for path in CORPUS.glob(pattern) if path.is_file()) if CORPUS.is_dir() else []


def require(pattern: str) -> list[Path]:
    """Return the corpus files matching ``pattern``; without any, skip the calling test (fail it under CI)."""
    files = corpus_files(pattern)
    if not files:
        missing(f"no {pattern} in the shared corpus ({CORPUS})")
    return files


def missing(what: str) -> None:
    """Skip the calling test, or, under CI (where the corpus always is), fail it; at collection, its module."""
    if UNDER_CI:
        pytest.fail(f"{what}: CI always has the corpus, so this test must run (PHOTOSTREAM_CORPUS points to it)")
    pytest.skip(what)
