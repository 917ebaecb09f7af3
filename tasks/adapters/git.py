"""The git port: where a build comes from (commit, branch, dirtiness), a
commit's files written out for ``doit verify``, and who is acting.
:class:`GitRepo` asks git through the tool runner; ``fakes.FakeGit``
answers from what a test says."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Blob:
    mode: str           # "100644", "100755", "120000"
    oid: str
    repo: str           # the repository it is in: "." or a submodule's path
    spec: str           # "<rev>:<path>" there


class GitRepo:
    def __init__(self, root: Path, tools: Tools | None = None) -> None:
        self.root = root
        self.tools = tools or Subprocesses()

    def _git(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 30,
             input: str | None = None) -> str | None:
        """git's output, or None when it fails; ``env``: the whole environment
        to run it in (default: this process's)."""
        # Replace refs (`git replace`) would show a commit's files as other content.
        done = self.tools.run(["git", "--no-replace-objects", *args], cwd=self.root, env=env,
                              input=input,
                              timeout=timeout)
        return done.stdout.strip() if done.ok else None

    def info(self, inputs: Iterable[str] = (),
             buildkite: Buildkite = Buildkite()) -> dict[str, object]:
        """Buildkite checks out a detached HEAD, so its commit and branch win
        over what git says. The tree is dirty when a tracked file has
        uncommitted changes, when an input is a file git does not have at
        HEAD (new, untracked or ignored), or when an input's bytes are not
        what HEAD checks out though git says nothing (assume-unchanged,
        skip-worktree, a clean filter): the AMI would hold something no
        commit does. A submodule's files are tracked by the commit HEAD
        records for it."""
        head, status = self._status()
        if not buildkite.active:
            buildkite = Buildkite()             # BUILDKITE_* set by hand is not Buildkite's
        commit = head.get("branch.oid") or buildkite.commit or "unknown"
        branch = buildkite.branch or head.get("branch.head") or "unknown"
        # What is built is HEAD: a job whose HEAD is not the commit Buildkite
        # names would record a commit that does not hold its inputs.
        elsewhere = buildkite.commit if re.fullmatch(r"[0-9a-f]{40}", buildkite.commit) \
            and head.get("branch.oid") and buildkite.commit != commit else ""
        inputs = list(inputs)
        at_head = self._blobs_at_head(inputs)
        untracked = sorted(p for p in inputs if p not in at_head)
        tracked = [p for p in inputs if p in at_head]
        hidden = [] if status else self._unseen_edits(tracked, at_head)
        modes = self._mode_changes(tracked, at_head)
        return {"commit": commit, "branch": branch,
                "dirty": bool(status or untracked or hidden or modes or elsewhere),
                **({"not_buildkite_commit": elsewhere} if elsewhere else {}),
                "untracked_inputs": untracked[:20],
                **({"hidden_edits": hidden[:20]} if hidden else {}),
                **({"mode_changes": modes[:20]} if modes else {}),
                "build_url": buildkite.build_url or None}

    def _status(self) -> tuple[dict[str, str], bool]:
        """HEAD's commit and branch (as ``rev-parse HEAD`` and ``--abbrev-ref
        HEAD`` name them: a detached HEAD is ``HEAD``), and whether a tracked
        file has changes: one ``git status``."""
        out = self._git("status", "--porcelain=v2", "--branch", "--untracked-files=no",
                        "--ignore-submodules=none")
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

    def _mode_changes(self, inputs: list[str], at_head: dict[str, _Blob]) -> list[str]:
        """Inputs whose executable bit differs from HEAD's (git may not look:
        core.fileMode=false): the bit is part of each input's digest entry."""
        changed = []
        root = os.fspath(self.root)
        for path in inputs:
            try:
                executable = bool(os.stat(os.path.join(root, path)).st_mode & stat.S_IXUSR)
            except OSError:
                continue
            if executable != (at_head[path].mode == "100755"):
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

    def _blobs_at_head(self, inputs: list[str]) -> dict[str, _Blob]:
        """Path -> blob of every file at HEAD, and of every file of a
        submodule some input is in, at the commit HEAD records for it."""
        return self._tree(".", "HEAD", inputs)

    def _tree(self, repo: str, rev: str, inputs: list[str]) -> dict[str, _Blob]:
        out = self._git("-C", repo, "ls-tree", "-r", "-z", "--full-tree", rev)
        prefix = "" if repo == "." else repo + "/"
        blobs: dict[str, _Blob] = {}
        for entry in (out or "").split("\0"):
            meta, _, path = entry.partition("\t")
            parts = meta.split()
            if len(parts) != 3:
                continue
            if parts[1] == "blob":
                blobs[prefix + path] = _Blob(parts[0], parts[2], repo, f"{rev}:{path}")
            elif parts[1] == "commit" and any(p.startswith(f"{prefix}{path}/") for p in inputs):
                blobs.update(self._tree(prefix + path, parts[2], inputs))
        return blobs

    def _unseen_edits(self, inputs: list[str], at_head: dict[str, _Blob]) -> list[str]:
        """Inputs whose bytes differ from what HEAD checks out for them, judged
        by content: hashed as they are (no filters), then, where that is not
        HEAD's blob, compared with the blob as checkout writes it (through
        the smudge filter and end-of-line rules, as for Git LFS)."""
        links = [p for p in inputs if at_head[p].mode == "120000"]
        files = [p for p in inputs if at_head[p].mode != "120000"]
        differ = [(p, "-") for p in links if _link_oid(self.root / p, at_head[p].oid)
                  != at_head[p].oid]
        if files:
            hashed = self._git("hash-object", "--no-filters", "--stdin-paths",
                               input="\n".join(files) + "\n", timeout=120)
            raw = hashed.split() if hashed is not None else []
            if len(raw) != len(files):
                return sorted(inputs)           # cannot tell: dirty, never clean by guess
            differ += [(p, oid) for p, oid in zip(files, raw) if at_head[p].oid != oid]
        if not differ:
            return []
        checked_out = self.tools.run(
            ["sh", "-c", 'while IFS= read -r repo && IFS= read -r spec; do '
             'git --no-replace-objects -C "$repo" cat-file --filters "$spec" | '
             'git hash-object --no-filters --stdin '
             '|| echo -; done'],
            cwd=self.root, timeout=300,
            input="".join(f"{at_head[p].repo}\n{at_head[p].spec}\n" for p, _ in differ))
        smudged = checked_out.stdout.split() if checked_out.ok else []
        if len(smudged) != len(differ):
            return sorted(p for p, _ in differ)
        return sorted(p for (p, oid), want in zip(differ, smudged) if oid != want)

    def user_email(self) -> str | None:
        return self._git("config", "user.email")


def _link_oid(path: Path, like: str) -> str:
    """The blob id git gives a symbolic link (its target), in the hash of
    ``like``; "-" when it is not a link."""
    try:
        target = os.fsencode(os.readlink(path))
    except OSError:
        return "-"
    digest = hashlib.sha1 if len(like) == 40 else hashlib.sha256
    return digest(b"blob %d\0" % len(target) + target).hexdigest()


def actor(settings: Settings, git: Git) -> str:
    """Who is acting, for the promotion and revocation logs: AMI_ACTOR,
    Buildkite's build creator, git's user.email, $USER."""
    return (settings.actor or settings.buildkite.creator
            or git.user_email() or settings.user or "unknown")
