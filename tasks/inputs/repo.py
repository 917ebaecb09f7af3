"""References to files, as templates and playbooks make them, and what they
resolve to in the repository.

A reference either resolves to repository paths (a file, or every file of
a folder) or it does not: a path built from a value only known during the
build. An unresolved reference keeps a glob of the files it might read,
with ``*`` for the unknown parts; it is accepted only when the image
declares those files (``extra_inputs``), and refused otherwise.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Container

from ..core.errors import AmiError
from ..core.files import check_regular, check_name, not_regular
from ..core.text import closest

# Never content: version control, caches and leftovers of tools.
_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".pytest_cache"})
_SKIPPED_FILES = (".pyc", ".retry", ".DS_Store")


@dataclass(frozen=True)
class Unresolved:
    """A reference whose path is only known during the build."""
    where: str          # "packer/web.json provisioner 2 (shell) script"
    value: str          # as written
    why: str            # "user variable os has no value"
    glob: str | None    # repository glob of what it may read; None when it could be anything


@dataclass
class Found:
    """What a walk found: repository path -> why it is an input (the first reason)."""
    files: dict[str, str] = field(default_factory=dict)
    unresolved: list[Unresolved] = field(default_factory=list)

    def add(self, path: str, why: str) -> None:
        self.files.setdefault(path, why)


class Repo:
    """Paths inside one repository: normalised, checked, walked."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._top = self.root.as_posix()

    def rel(self, absolute: str, where: str, value: str) -> str:
        """A normalised absolute path as a repository path; outside it is refused."""
        norm = posixpath.normpath(absolute)
        root = self.root.as_posix()
        if norm != root and not norm.startswith(root + "/"):
            raise AmiError(f"{where} {value!r}: reads {norm}, outside the repository: move "
                           "the file into the repository (files outside it are not tracked)")
        return norm[len(root) + 1:] if norm != root else "."

    def join(self, base: str, value: str, where: str) -> str:
        """``value`` (relative to the repository folder ``base``, or absolute) as a
        repository path."""
        if posixpath.isabs(value):
            raise AmiError(f"{where} {value!r}: an absolute path cannot be tracked: write it "
                           "relative to the template ({{template_dir}}, ${path.root}) or the "
                           "playbook, or, for a file kept out of the repository on purpose, "
                           "declare it under host_inputs: of the image")
        if value.startswith("~"):
            raise AmiError(f"{where} {value!r}: ~ is a home folder of the build host, outside "
                           "the repository, which no digest sees: put the file in the "
                           "repository and name it relatively")
        return self.rel(posixpath.join(self.root.as_posix(), base, value), where, value)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def _os_path(self, rel: str) -> str:
        return f"{self._top}/{rel}"         # asked thousands of times a walk: no Path made

    def is_file(self, rel: str) -> bool:
        return os.path.isfile(self._os_path(rel))

    def is_dir(self, rel: str) -> bool:
        return os.path.isdir(self._os_path(rel))

    def exists(self, rel: str) -> bool:
        return os.path.exists(self._os_path(rel))

    def inside(self, rel: str) -> None:
        """A path whose symbolic links lead out of the repository is refused:
        what it reads is no file of the repository's (``/proc/self/environ``
        would hand the build its own environment)."""
        real = os.path.realpath(self._os_path(rel))
        root = self.root.as_posix()
        if real != root and not real.startswith(root + "/"):
            raise AmiError(f"{rel}: a symbolic link to {real}, outside the repository: put "
                           "the file itself in the repository (what is outside is not tracked)")

    def _nearest(self, rel: str) -> str:
        """ ": did you mean <sibling>?" for a typo in a file's name, else ""."""
        folder = self.path(posixpath.dirname(rel) or ".")
        try:
            names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        except OSError:
            return ""
        near = closest(posixpath.basename(rel), names)
        return f": did you mean {posixpath.join(posixpath.dirname(rel), near)}?" if near else ""

    def add_file(self, found: Found, rel: str, why: str, where: str, value: str) -> None:
        """A referenced file: it must be there, a regular file."""
        path = self.path(rel)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise AmiError(f"{where} {value!r}: {rel} does not exist"
                           f"{self._nearest(rel)}: create it or fix the reference") from None
        except OSError as err:
            raise AmiError(f"{where} {value!r}: {rel}: {err.strerror}: fix or remove it") from None
        self.inside(rel)
        check_name(rel)
        if stat.S_ISDIR(mode):
            self.add_tree(found, rel, why)
            return
        check_regular(rel, mode)
        found.add(rel, why)

    def add_tree(self, found: Found, rel: str, why: str) -> None:
        for f in self.files_under(rel):
            found.add(f, why)

    def files_under(self, rel: str, strict: bool = True) -> list[str]:
        """Every file under a folder, following links inside the repository (a
        link to a folder it is in is a loop, an error; so is a link out of the
        repository, and anything that is not a regular file). Version control,
        caches and tools' leftovers are never content: in a folder the build
        reads whole (``strict``) they are refused, as the build would read
        what no digest holds; a glob's walk skips them."""
        out: list[str] = []
        self.inside(rel)
        pending: list[tuple[str, str, frozenset[str]]] = [
            (self._os_path(rel), posixpath.normpath(rel), frozenset())]
        while pending:
            folder, here, above = pending.pop()
            real = os.path.realpath(folder)
            if real in above:
                raise AmiError(f"{here}: a symbolic link loop (back to {real}): remove the link")
            above = above | {real}
            check_name(here)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as err:
                raise AmiError(f"{here}: cannot list ({err.strerror}): check its "
                               "permissions") from None
            folders = []
            for entry in entries:
                f = f"{here}/{entry.name}" if here != "." else entry.name
                try:
                    is_dir = entry.is_dir()                 # follows links; cached for the rest
                    is_file = not is_dir and entry.is_file()
                except OSError as err:
                    raise AmiError(f"{f}: {err.strerror}: fix or remove it") from None
                if entry.is_symlink() and (is_dir or is_file):
                    self.inside(f)
                if entry.name == ".git" and is_file and _gitfile(entry.path):
                    continue                # a submodule's link to its repository
                skipped = entry.name in _SKIPPED_DIRS if is_dir else \
                    entry.name.endswith(_SKIPPED_FILES)
                if skipped and strict:
                    raise AmiError(f"{f}: inside {rel}, which the build reads whole, but never "
                                   "hashed (version control, a cache or a leftover): delete it, "
                                   "or name only the files the build needs")
                if skipped:
                    continue
                if is_dir:
                    folders.append((entry.path, f, above))
                elif is_file:
                    check_name(f)
                    out.append(f)
                elif entry.is_symlink() and not os.path.exists(entry.path):
                    raise AmiError(f"{f}: a symbolic link to nothing: remove it or fix its target")
                else:
                    raise not_regular(f)
            pending += reversed(folders)
        return out

    def glob(self, pattern: str) -> list[str]:
        """Repository files matching a glob (``**`` crosses folders; ``dir/**``
        is every file under ``dir``)."""
        literal = pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        start = literal.rsplit("/", 1)[0] if "/" in literal else "."
        if not self.is_dir(start):
            return []
        regex = _glob_regex(pattern)
        return [f for f in self.files_under(start, strict=False) if regex.fullmatch(f)]


def _gitfile(path: str) -> bool:
    """A ``.git`` file that points to a repository: a submodule (or worktree)
    root; git tracks the folder by a commit, and the file is no content."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"gitdir: "
    except OSError:
        return False


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts))


def covered(repo: Repo, glob: str, inputs: Container[str]) -> bool:
    """An unresolved reference is covered when the files it may read exist
    and every one of them is among ``inputs``."""
    matches = repo.glob(glob)
    return bool(matches) and all(m in inputs for m in matches)
