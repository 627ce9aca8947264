"""Programs outside Python that some tests need (node, npm, java, mvn), and their packages.

Where a program is missing the test skips, except under CI (``CI=true``), where `.ci/run`
checks that the machine has them: there a missing one fails the test, so a skip cannot hide a
test that never ran.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.corpus import UNDER_CI

ROOT = Path(__file__).resolve().parent.parent


def require(*programs: str) -> None:
    """Skip the calling test (fail it under CI) unless every program is on the PATH."""
    missing = [program for program in programs if shutil.which(program) is None]
    if not missing:
        return
    what = f"needs {', '.join(missing)} on the PATH"
    if UNDER_CI:
        pytest.fail(f"{what}: .ci/run checks that CI has it")
    pytest.skip(what)


def _installed(folder: Path) -> bool:
    # npm ci writes node_modules/.package-lock.json last, so it also marks a completed install.
    installed = folder / "node_modules" / ".package-lock.json"
    return installed.exists() and installed.stat().st_mtime >= (folder / "package-lock.json").stat().st_mtime


def npm_ci(folder: Path) -> None:
    """Install ``folder``'s locked npm packages, unless they are installed and newer than the lock."""
    require("node", "npm")
    if _installed(folder):
        return
    lock_path = Path(tempfile.gettempdir()) / f"photostream-npm-{os.getuid()}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest processes must not run npm ci in one folder at once
        if _installed(folder):
            return
        run = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=600,
            # An analytics ping some packages run at install; this machine's network refuses it anyway.
            env={**os.environ, "SCARF_ANALYTICS": "false"},
        )
    assert run.returncode == 0, f"npm ci in {folder} failed:\n{run.stdout}\n{run.stderr}"
