"""Which files an image is built from.

An image's inputs are its Packer template, its playbook, every file of
every role that playbook uses (found by reading the playbook, the roles'
``meta/main.yml`` dependencies and their ``include_role``/``import_role``
calls), the group/host vars next to the playbook, and the var files and
extra inputs declared in ``amis.yaml``. Nothing here touches the network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from .errors import AmiError
from .graph import Graph, Image, load_yaml

_ROLE_CALLS = frozenset({"include_role", "import_role",
               "ansible.builtin.include_role", "ansible.builtin.import_role"})
_PLAYBOOK_IMPORTS = frozenset({"import_playbook", "ansible.builtin.import_playbook"})
_ADJACENT_DIRS = ("group_vars", "host_vars")


def _files_under(root: Path, folder: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            if not f.startswith(".") and not f.endswith((".pyc", ".retry")):
                out.append((Path(dirpath) / f).relative_to(root).as_posix())
    return out


def _role_name(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        name = entry.get("role") or entry.get("name")
        return name if isinstance(name, str) else None
    return None


def _role_calls(node: Any) -> Iterator[str]:
    """Names of roles that tasks include or import, at any depth (blocks too)."""
    if isinstance(node, list):
        for item in node:
            yield from _role_calls(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _ROLE_CALLS:
                name = _role_name(value)
                if name:
                    yield name
            elif isinstance(value, (list, dict)):
                yield from _role_calls(value)


class _Resolver:
    def __init__(self, root: Path, roles_dir: Path):
        self.root = root
        self.roles_dir = roles_dir
        self.roles: dict[str, None] = {}
        self.files: set[str] = set()

    def role(self, name: str, used_by: str) -> None:
        if name in self.roles:
            return
        if "{{" in name or "/" in name or name.startswith("."):
            raise AmiError(f"{used_by}: role {name!r} cannot be resolved statically: "
                           "name roles literally so their files can be tracked")
        short = name.split(".")[-1] if name.count(".") == 2 else name   # ns.collection.role
        folder = self.roles_dir / short
        if not folder.is_dir():
            raise AmiError(f"{used_by}: role {name!r} not found in "
                           f"{self.roles_dir.relative_to(self.root)}/: create it or fix the name")
        self.roles[name] = None
        self.files.update(_files_under(self.root, folder))
        meta = folder / "meta" / "main.yml"
        where = meta.relative_to(self.root).as_posix()
        if meta.is_file():
            data = load_yaml(meta, "role meta") or {}
            for dep in (data.get("dependencies") or []) if isinstance(data, dict) else []:
                dep_name = _role_name(dep)
                if dep_name:
                    self.role(dep_name, where)
        for sub in ("tasks", "handlers"):
            for yml in sorted((folder / sub).glob("*.y*ml")):
                for called in _role_calls(load_yaml(yml, "role tasks")):
                    self.role(called, yml.relative_to(self.root).as_posix())

    def playbook(self, path: Path, seen: set[Path]) -> None:
        if path in seen:
            return
        seen.add(path)
        rel = path.relative_to(self.root).as_posix()
        self.files.add(rel)
        plays = load_yaml(path, "playbook")
        if not isinstance(plays, list):
            raise AmiError(f"{rel}: a playbook must be a list of plays")
        for play in plays:
            if not isinstance(play, dict):
                raise AmiError(f"{rel}: every play must be a mapping")
            for key in _PLAYBOOK_IMPORTS & set(play):
                self.playbook((path.parent / str(play[key])).resolve(), seen)
            for entry in play.get("roles") or []:
                name = _role_name(entry)
                if not name:
                    raise AmiError(f"{rel}: a 'roles' entry has no role name")
                self.role(name, rel)
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                for name in _role_calls(play.get(key) or []):
                    self.role(name, rel)
            for vf in play.get("vars_files") or []:
                if isinstance(vf, str) and "{{" not in vf:
                    vpath = path.parent / vf
                    if not vpath.is_file():
                        raise AmiError(f"{rel}: vars_files entry {vf} does not exist")
                    self.files.add(vpath.resolve().relative_to(self.root).as_posix())


def image_inputs(graph: Graph, image: Image) -> list[str]:
    """Every input file of ``image``, repository-relative, sorted."""
    root = graph.root
    playbook = root / image.playbook
    resolver = _Resolver(root, playbook.parent / "roles")
    resolver.playbook(playbook.resolve(), set())
    files = set(resolver.files)
    files.add(image.template)
    files.update(image.var_files)
    for folder in _ADJACENT_DIRS:
        if (playbook.parent / folder).is_dir():
            files.update(_files_under(root, playbook.parent / folder))
    for pattern in image.extra_inputs:
        matches = [p for p in sorted(root.glob(pattern)) if p.is_file()]
        if not matches:
            raise AmiError(f"{graph.file.name}: image {image.name}: extra_inputs {pattern!r} "
                           "matches no file: fix the path or remove it")
        files.update(m.relative_to(root).as_posix() for m in matches)
    return sorted(files)
