"""Galaxy requirements files: the roles and collections they pin. An entry
without a pinned version is refused: an unpinned requirement changes
under you."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import AmiError
from ..repo import Repo
from .loader import load


@dataclass
class Requirements:
    """Roles and collections pinned in requirements files: name -> the file."""
    roles: dict[str, str] = field(default_factory=dict)
    collections: dict[str, str] = field(default_factory=dict)
    read: set[str] = field(default_factory=set)
    # A collection from git names a repository, not the collection: the names
    # it may hold (the repository's, the path after #) -> the file pinning it.
    git_collections: list[tuple[frozenset[str], str]] = field(default_factory=list)

    def collection(self, name: str) -> str | None:
        """The requirements file pinning collection ``name`` (namespace.name),
        by name or as a git repository (or a path in one) named after its
        namespace or itself."""
        if name in self.collections:
            return self.collections[name]
        ns, _, short = name.partition(".")
        wanted = {name, ns, short, f"{ns}-{short}", f"ansible-collection-{short}",
                  f"{ns}.{short}"}
        return next((rel for names, rel in self.git_collections if names & wanted), None)

    def add_file(self, repo: Repo, rel: str) -> None:
        if rel in self.read:
            return
        self.read.add(rel)
        data = load(repo, rel, "requirements file")
        if isinstance(data, list):
            data = {"roles": data}
        if not isinstance(data, dict):
            raise AmiError(f"{rel}: a requirements file is a list of roles, or a mapping "
                           "with 'roles' and 'collections'")
        for entry in data.get("roles") or []:
            self.roles[_requirement(rel, entry, "role")] = rel
        for entry in data.get("collections") or []:
            name = _requirement(rel, entry, "collection")
            self.collections[name] = rel
            if _is_git(entry, name):
                self.git_collections.append((_git_names(name), rel))


def _is_git(entry: Any, name: str) -> bool:
    kind = entry.get("type") if isinstance(entry, dict) else None
    return kind == "git" or name.startswith(("git+", "git@")) or (
        "://" in name and (".git" in name or "#" in name))


def _git_names(url: str) -> frozenset[str]:
    """What a git requirement may be called: its repository's name and each
    part of the path after ``#`` (``…/ansible-collections.git#ch_collections``)."""
    url, _, path = url.removeprefix("git+").split(",")[0].partition("#")
    repo = re.sub(r"\.git$", "", url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    return frozenset({repo, *[p for p in path.split("/") if p]} - {""})


# A pin names one thing for ever: a release (1.2.3, v2.0.0-rc1) or a commit id.
# A branch (develop, main, feature/x) moves under you.
# (Two numbers at least: v2 and 2.x are moving majors.)
_PIN = re.compile(r"^(?:==\s*)?(?:v?\d+(?:\.\d+)+(?:[-+][0-9A-Za-z][0-9A-Za-z.]*)?|[0-9a-f]{7,40})$")


def _requirement(rel: str, entry: Any, kind: str) -> str:
    """An entry's name; an entry without a pinned version is refused."""
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict):
        raise AmiError(f"{rel}: a {kind} entry must be a name or a mapping")
    src = str(entry.get("src") or "")
    name = str(entry.get("name") or "")
    if not name:
        if kind == "role" and ("://" in src or src.startswith("git")):
            name = re.sub(r"\.git$", "", src.split(",")[0].rstrip("/").rsplit("/", 1)[-1])
        else:
            name = src
    if not name:
        raise AmiError(f"{rel}: a {kind} entry has neither 'name' nor 'src'")
    version = str(entry.get("version") or "").strip()
    if "," in src and not version:
        version = src.split(",", 1)[1].strip()
    archive = src.endswith((".tar.gz", ".tgz", ".zip"))
    if archive and not re.search(r"/(?:refs/)?heads/|/(?:main|master|develop)\.", src):
        return name
    if archive:
        raise AmiError(f"{rel}: {kind} {name!r} src {src!r} is a branch's archive, which moves "
                       "under you: point it at a release's or a commit's archive")
    if not version:
        raise AmiError(f"{rel}: {kind} {name!r} has no pinned version: set 'version:' to a "
                       "release or commit (an unpinned requirement changes under you)")
    if not _PIN.fullmatch(version):
        raise AmiError(f"{rel}: {kind} {name!r} version {version!r} is not a release tag or a "
                       "commit id (a branch or a range moves under you): pin a release such "
                       "as v1.2.0, or a commit")
    return name
