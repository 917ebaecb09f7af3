"""Where a build comes from: git commit and branch, Buildkite first."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=None)
def git_info(root: Path) -> dict[str, object]:
    """Commit, branch, dirtiness and the Buildkite build URL. Buildkite checks
    out a detached HEAD, so its BUILDKITE_COMMIT / BUILDKITE_BRANCH win over
    what git says."""
    commit = os.environ.get("BUILDKITE_COMMIT") or _git(root, "rev-parse", "HEAD") or "unknown"
    branch = (os.environ.get("BUILDKITE_BRANCH")
              or _git(root, "rev-parse", "--abbrev-ref", "HEAD") or "unknown")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "branch": branch, "dirty": bool(status),
            "build_url": os.environ.get("BUILDKITE_BUILD_URL") or None}
