"""Channels: which pointer in the registry a run moves. The default branch
moves ``main``; any other branch its own channel; a dirty tree never moves
``main`` unless allowed."""

from __future__ import annotations

import hashlib
import re
from typing import Mapping

from .names import CHANNEL_RE
from .settings import Settings

MAIN = "main"
DIRTY = "dirty"


_RESERVED = frozenset({MAIN, DIRTY, "detached"})


def channel_for_branch(branch: str) -> str:
    """A branch's channel, one to one: a branch whose name is a channel name
    already ([a-z0-9_-], not main or dirty) keeps it; any other gets its
    lower-case slug and a hash of the exact name (``feature/Faster-Boot`` ->
    ``feature-faster-boot-3f2a9c1e``), so ``Main``, ``MAIN`` and ``main_`` never
    move main, and ``feature/x`` and ``feature-x`` never share a channel."""
    if CHANNEL_RE.fullmatch(branch) and branch not in _RESERVED:
        return branch
    slug = re.sub(r"[^a-z0-9_-]+", "-", branch.lower()).strip("-_")[:54] or "branch"
    return f"{slug}-{hashlib.sha256(branch.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def _some(paths: list) -> str:
    return ", ".join(map(str, paths[:3])) + (", ..." if len(paths) > 3 else "")


def choose(settings: Settings, git: Mapping[str, object]) -> tuple[str, str]:
    """The channel this run publishes to, and a note when it is not the
    obvious one."""
    if settings.channel:
        name = settings.channel
    elif git["branch"] == settings.default_branch:
        name = MAIN
    else:
        name = channel_for_branch(str(git["branch"]))
    if name == MAIN and git["dirty"] and not settings.allow_dirty:
        untracked = list(git.get("untracked_inputs") or [])     # type: ignore[call-overload]
        hidden = list(git.get("hidden_edits") or [])            # type: ignore[call-overload]
        modes = list(git.get("mode_changes") or [])             # type: ignore[call-overload]
        if git.get("not_buildkite_commit"):
            what = f"HEAD {str(git['commit'])[:12]}, not the commit Buildkite checked out " \
                   f"({str(git['not_buildkite_commit'])[:12]})"
        elif untracked:
            what = f"inputs git does not have at HEAD ({_some(untracked)})"
        elif hidden:
            what = f"edited inputs git does not show (assume-unchanged, skip-worktree or a " \
                   f"clean filter: {_some(hidden)})"
        elif modes:
            what = f"inputs whose executable bit is not HEAD's ({_some(modes)})"
        else:
            what = "uncommitted changes"
        return DIRTY, (f"the working tree has {what}: publishing to channel "
                       f"'{DIRTY}', not '{MAIN}' (commit them, or AMI_ALLOW_DIRTY=1)")
    return name, ""
