"""Where a build comes from, as git (and Buildkite) say: commit, branch,
dirtiness, and who is acting."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Iterable, Mapping

from ..core.settings import Buildkite, Settings


def _git(root: Path, *args: str, env: Mapping[str, str] | None = None,
         timeout: float = 30) -> str | None:
    """git's output, or None when it fails; ``env``: the whole environment
    to run it in (default: this process's)."""
    try:
        # file names are bytes to git: decode them as Python names files (os.fsdecode)
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                             timeout=timeout,
                             encoding="utf-8", errors="surrogateescape",
                             env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(root: Path, inputs: Iterable[str] = (),
             buildkite: Buildkite = Buildkite()) -> dict[str, object]:
    """Commit, branch, dirtiness and the Buildkite build URL. Buildkite checks
    out a detached HEAD, so its commit and branch win over what git says.
    The tree is dirty when a tracked file has uncommitted changes, when an
    input is a file git does not have at HEAD (new, untracked or ignored),
    or when an input git was told not to look at (assume-unchanged,
    skip-worktree) differs from HEAD: the AMI would hold something no
    commit does."""
    commit = buildkite.commit or _git(root, "rev-parse", "HEAD") or "unknown"
    branch = buildkite.branch or _git(root, "rev-parse", "--abbrev-ref", "HEAD") or "unknown"
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    at_head = _blobs_at_head(root)
    inputs = list(inputs)
    untracked = sorted(p for p in inputs if p not in at_head)
    tracked = [p for p in inputs if p in at_head]
    hidden = _hidden_edits(root, tracked, {p: blob for p, (_, blob) in at_head.items()})
    modes = _mode_changes(root, tracked, at_head)
    return {"commit": commit, "branch": branch,
            "dirty": bool(status or untracked or hidden or modes),
            "untracked_inputs": untracked[:20],
            **({"hidden_edits": hidden[:20]} if hidden else {}),
            **({"mode_changes": modes[:20]} if modes else {}),
            "build_url": buildkite.build_url or None}


def _mode_changes(root: Path, inputs: list[str], at_head: dict[str, tuple[str, str]]) -> list[str]:
    """Inputs whose executable bit differs from HEAD's (git may not look:
    core.fileMode=false): the bit is part of each input's digest entry."""
    changed = []
    for path in inputs:
        try:
            executable = bool(os.stat(root / path).st_mode & stat.S_IXUSR)
        except OSError:
            continue
        if executable != (at_head[path][0] == "100755"):
            changed.append(path)
    return sorted(changed)


def export(root: Path, commit: str, dest: Path, env: Mapping[str, str]) -> bool:
    """Write the files of ``commit`` under ``dest``, from git's objects,
    through a temporary index: the repository's own index and working tree
    are untouched. ``env``: the environment git runs in (the settings').
    False: this repository has no such commit."""
    if _git(root, "cat-file", "-e", f"{commit}^{{commit}}") is None:
        return False
    index = dest.parent / f"{dest.name}.index"
    env = {**env, "GIT_INDEX_FILE": str(index)}
    ok = _git(root, "read-tree", commit, env=env, timeout=300) is not None and _git(
        root, "checkout-index", "--all", "--force", f"--prefix={dest}/", env=env,
        timeout=600) is not None
    index.unlink(missing_ok=True)
    return ok


def _blobs_at_head(root: Path) -> dict[str, tuple[str, str]]:
    """Path -> (mode, blob id) of every file at HEAD."""
    out = _git(root, "ls-tree", "-r", "-z", "HEAD")
    blobs = {}
    for entry in (out or "").split("\0"):
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob":
            blobs[path] = (parts[0], parts[2])
    return blobs


def _hidden_edits(root: Path, inputs: list[str], at_head: dict[str, str]) -> list[str]:
    """Inputs flagged assume-unchanged or skip-worktree (``git status`` does
    not look at them) whose content is not HEAD's, judged by content."""
    listed = _git(root, "ls-files", "-v", "-z")
    wanted = set(inputs)
    flagged = [entry[2:] for entry in (listed or "").split("\0")
               if len(entry) > 2 and (entry[0].islower() or entry[0] == "S")
               and entry[2:] in wanted]
    if not flagged:
        return []
    try:
        hashed = subprocess.run(["git", "hash-object", "--stdin-paths"], cwd=root,
                                input="\n".join(flagged) + "\n", capture_output=True, text=True,
                                timeout=60, encoding="utf-8", errors="surrogateescape")
    except (OSError, subprocess.TimeoutExpired):
        return sorted(flagged)
    blobs = hashed.stdout.split() if hashed.returncode == 0 else []
    if len(blobs) != len(flagged):
        return sorted(flagged)          # cannot tell: dirty, never clean by guess
    return sorted(p for p, blob in zip(flagged, blobs) if at_head.get(p) != blob)


def actor(settings: Settings) -> str:
    """Who is acting, for the promotion log: AMI_ACTOR, Buildkite's build
    creator, git's user.email, $USER."""
    return (settings.actor or settings.buildkite.creator
            or _git(settings.root, "config", "user.email") or settings.user or "unknown")
