"""The git port: where a build comes from (commit, branch, dirtiness), a
commit's files written out for ``doit verify``, and who is acting.
:class:`GitRepo` asks git through the tool runner; ``fakes.FakeGit``
answers from what a test says."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable, Mapping, Protocol

from ..core.settings import Buildkite, Settings
from .tools import Subprocesses, Tools


class Git(Protocol):
    def info(self, inputs: Iterable[str] = (),
             buildkite: Buildkite = Buildkite()) -> dict[str, object]:
        """Commit, branch, dirtiness and the Buildkite build URL (see :func:`GitRepo.info`)."""

    def export(self, commit: str, dest: Path, env: Mapping[str, str]) -> bool:
        """Write the files of ``commit`` under ``dest``; False: no such commit."""

    def user_email(self) -> str | None: ...


class GitRepo:
    def __init__(self, root: Path, tools: Tools | None = None) -> None:
        self.root = root
        self.tools = tools or Subprocesses()

    def _git(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 30,
             input: str | None = None) -> str | None:
        """git's output, or None when it fails; ``env``: the whole environment
        to run it in (default: this process's)."""
        done = self.tools.run(["git", *args], cwd=self.root, env=env, input=input,
                              timeout=timeout)
        return done.stdout.strip() if done.ok else None

    def info(self, inputs: Iterable[str] = (),
             buildkite: Buildkite = Buildkite()) -> dict[str, object]:
        """Buildkite checks out a detached HEAD, so its commit and branch win
        over what git says. The tree is dirty when a tracked file has
        uncommitted changes, when an input is a file git does not have at
        HEAD (new, untracked or ignored), or when an input git was told not
        to look at (assume-unchanged, skip-worktree) differs from HEAD: the
        AMI would hold something no commit does."""
        head, status = self._status()
        commit = buildkite.commit or head.get("branch.oid") or "unknown"
        branch = buildkite.branch or head.get("branch.head") or "unknown"
        at_head = self._blobs_at_head()
        inputs = list(inputs)
        untracked = sorted(p for p in inputs if p not in at_head)
        tracked = [p for p in inputs if p in at_head]
        hidden = self._hidden_edits(tracked, {p: blob for p, (_, blob) in at_head.items()})
        modes = self._mode_changes(tracked, at_head)
        return {"commit": commit, "branch": branch,
                "dirty": bool(status or untracked or hidden or modes),
                "untracked_inputs": untracked[:20],
                **({"hidden_edits": hidden[:20]} if hidden else {}),
                **({"mode_changes": modes[:20]} if modes else {}),
                "build_url": buildkite.build_url or None}

    def _status(self) -> tuple[dict[str, str], bool]:
        """HEAD's commit and branch (as ``rev-parse HEAD`` and ``--abbrev-ref
        HEAD`` name them: a detached HEAD is ``HEAD``), and whether a tracked
        file has changes: one ``git status``."""
        out = self._git("status", "--porcelain=v2", "--branch", "--untracked-files=no")
        head: dict[str, str] = {}
        changed = False
        for line in (out or "").splitlines():
            if line.startswith("# "):
                key, _, value = line[2:].partition(" ")
                head[key] = value
            elif line:
                changed = True
        if head.get("branch.oid") == "(initial)":
            head.pop("branch.oid")              # no commit yet
        if head.get("branch.head") == "(detached)":
            head["branch.head"] = "HEAD"
        return head, changed

    def _mode_changes(self, inputs: list[str], at_head: dict[str, tuple[str, str]]) -> list[str]:
        """Inputs whose executable bit differs from HEAD's (git may not look:
        core.fileMode=false): the bit is part of each input's digest entry."""
        changed = []
        root = os.fspath(self.root)
        for path in inputs:
            try:
                executable = bool(os.stat(os.path.join(root, path)).st_mode & stat.S_IXUSR)
            except OSError:
                continue
            if executable != (at_head[path][0] == "100755"):
                changed.append(path)
        return sorted(changed)

    def export(self, commit: str, dest: Path, env: Mapping[str, str]) -> bool:
        """Write the files of ``commit`` under ``dest``, from git's objects,
        through a temporary index: the repository's own index and working
        tree are untouched. ``env``: the environment git runs in (the
        settings'). False: this repository has no such commit."""
        if self._git("cat-file", "-e", f"{commit}^{{commit}}") is None:
            return False
        index = dest.parent / f"{dest.name}.index"
        env = {**env, "GIT_INDEX_FILE": str(index)}
        ok = self._git("read-tree", commit, env=env, timeout=300) is not None and self._git(
            "checkout-index", "--all", "--force", f"--prefix={dest}/", env=env,
            timeout=600) is not None
        index.unlink(missing_ok=True)
        return ok

    def _blobs_at_head(self) -> dict[str, tuple[str, str]]:
        """Path -> (mode, blob id) of every file at HEAD."""
        out = self._git("ls-tree", "-r", "-z", "HEAD")
        blobs = {}
        for entry in (out or "").split("\0"):
            meta, _, path = entry.partition("\t")
            parts = meta.split()
            if len(parts) == 3 and parts[1] == "blob":
                blobs[path] = (parts[0], parts[2])
        return blobs

    def _hidden_edits(self, inputs: list[str], at_head: dict[str, str]) -> list[str]:
        """Inputs flagged assume-unchanged or skip-worktree (``git status`` does
        not look at them) whose content is not HEAD's, judged by content."""
        listed = self._git("ls-files", "-v", "-z")
        wanted = set(inputs)
        flagged = [entry[2:] for entry in (listed or "").split("\0")
                   if len(entry) > 2 and (entry[0].islower() or entry[0] == "S")
                   and entry[2:] in wanted]
        if not flagged:
            return []
        hashed = self._git("hash-object", "--stdin-paths", input="\n".join(flagged) + "\n",
                           timeout=60)
        blobs = hashed.split() if hashed is not None else []
        if len(blobs) != len(flagged):
            return sorted(flagged)          # cannot tell: dirty, never clean by guess
        return sorted(p for p, blob in zip(flagged, blobs) if at_head.get(p) != blob)

    def user_email(self) -> str | None:
        return self._git("config", "user.email")


def actor(settings: Settings, git: Git) -> str:
    """Who is acting, for the promotion and revocation logs: AMI_ACTOR,
    Buildkite's build creator, git's user.email, $USER."""
    return (settings.actor or settings.buildkite.creator
            or git.user_email() or settings.user or "unknown")
