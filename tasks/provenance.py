"""Where a build comes from: git commit and branch, Buildkite first."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterable

from .config import Settings, channel_for_branch

MAIN = "main"
DIRTY = "dirty"


def _git(root: Path, *args: str) -> str | None:
    try:
        # file names are bytes to git: decode them as Python names files (os.fsdecode)
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30,
                             encoding="utf-8", errors="surrogateescape")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(root: Path, inputs: Iterable[str] = ()) -> dict[str, object]:
    """Commit, branch, dirtiness and the Buildkite build URL. Buildkite checks
    out a detached HEAD, so its BUILDKITE_COMMIT / BUILDKITE_BRANCH win over
    what git says. The tree is dirty when a tracked file has uncommitted
    changes, or when an input is a file git does not have at HEAD (new,
    untracked or ignored): the AMI would hold something no commit does."""
    commit = os.environ.get("BUILDKITE_COMMIT") or _git(root, "rev-parse", "HEAD") or "unknown"
    branch = (os.environ.get("BUILDKITE_BRANCH")
              or _git(root, "rev-parse", "--abbrev-ref", "HEAD") or "unknown")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    at_head = _git(root, "ls-tree", "-r", "-z", "--name-only", "HEAD")
    committed = set(at_head.split("\0")) if at_head is not None else set()
    untracked = sorted(p for p in inputs if p not in committed)
    return {"commit": commit, "branch": branch, "dirty": bool(status or untracked),
            "untracked_inputs": untracked[:20],
            "build_url": os.environ.get("BUILDKITE_BUILD_URL") or None}


def channel(settings: Settings, git: dict[str, object]) -> tuple[str, str]:
    """The channel this run publishes to, and a note when it is not the
    obvious one. The default branch moves `main`; any other branch its own
    channel; a dirty tree never moves `main` unless AMI_ALLOW_DIRTY=1."""
    if settings.channel:
        name = settings.channel
    elif git["branch"] == settings.default_branch:
        name = MAIN
    else:
        name = channel_for_branch(str(git["branch"]))
    if name == MAIN and git["dirty"] and not settings.allow_dirty:
        untracked = git.get("untracked_inputs") or []
        more = ", ..." if len(untracked) > 3 else ""
        what = (f"inputs git does not have at HEAD ({', '.join(map(str, untracked[:3]))}{more})"
                if untracked else "uncommitted changes")
        return DIRTY, (f"the working tree has {what}: publishing to channel "
                       f"'{DIRTY}', not '{MAIN}' (commit them, or AMI_ALLOW_DIRTY=1)")
    return name, ""


def actor(root: Path) -> str:
    """Who is acting, for the promotion log."""
    return (os.environ.get("AMI_ACTOR") or os.environ.get("BUILDKITE_BUILD_CREATOR_EMAIL")
            or os.environ.get("BUILDKITE_BUILD_CREATOR") or _git(root, "config", "user.email")
            or os.environ.get("USER") or "unknown")
