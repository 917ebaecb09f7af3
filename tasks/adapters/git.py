"""Where a build comes from, as git (and Buildkite) say: commit, branch,
dirtiness, and who is acting."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterable

from ..core.settings import Buildkite, Settings


def _git(root: Path, *args: str) -> str | None:
    try:
        # file names are bytes to git: decode them as Python names files (os.fsdecode)
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30,
                             encoding="utf-8", errors="surrogateescape")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(root: Path, inputs: Iterable[str] = (),
             buildkite: Buildkite = Buildkite()) -> dict[str, object]:
    """Commit, branch, dirtiness and the Buildkite build URL. Buildkite checks
    out a detached HEAD, so its commit and branch win over what git says.
    The tree is dirty when a tracked file has uncommitted changes, or when
    an input is a file git does not have at HEAD (new, untracked or
    ignored): the AMI would hold something no commit does."""
    commit = buildkite.commit or _git(root, "rev-parse", "HEAD") or "unknown"
    branch = buildkite.branch or _git(root, "rev-parse", "--abbrev-ref", "HEAD") or "unknown"
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    at_head = _git(root, "ls-tree", "-r", "-z", "--name-only", "HEAD")
    committed = set(at_head.split("\0")) if at_head is not None else set()
    untracked = sorted(p for p in inputs if p not in committed)
    return {"commit": commit, "branch": branch, "dirty": bool(status or untracked),
            "untracked_inputs": untracked[:20],
            "build_url": buildkite.build_url or None}


def actor(settings: Settings) -> str:
    """Who is acting, for the promotion log: AMI_ACTOR, Buildkite's build
    creator, git's user.email, $USER."""
    return (settings.actor or settings.buildkite.creator
            or _git(settings.root, "config", "user.email") or settings.user or "unknown")
