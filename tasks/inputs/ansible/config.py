"""Where one Ansible run looks for things: ``ansible.cfg`` (the
provisioner's ANSIBLE_CONFIG, else the one in the folder ansible-playbook
runs in) and the provisioner's own paths."""

from __future__ import annotations

import configparser
import os
import posixpath
import re
from dataclasses import dataclass, field
from types import MappingProxyType

from ...core.errors import AmiError
from ..repo import Found, Repo
from .requirements import Requirements

_CFG_PATHS = MappingProxyType({"roles_path": "roles", "collections_path": "collections",
              "collections_paths": "collections", "library": "file", "module_utils": "file",
              "action_plugins": "file", "filter_plugins": "file", "lookup_plugins": "file",
              "callback_plugins": "file", "test_plugins": "file", "vars_plugins": "file",
              "inventory": "file"})


@dataclass
class Context:
    """Where this Ansible run looks for things (repository folders)."""
    repo: Repo
    cwd: str                                  # where ansible-playbook runs
    roles_paths: list[str] = field(default_factory=list)
    collections_paths: list[str] = field(default_factory=list)
    role_folders: list[str] = field(default_factory=list)    # ansible-local role_paths
    requirements: Requirements = field(default_factory=Requirements)
    config: str | None = None
    outside_roles_paths: list[str] = field(default_factory=list)   # looked in, then refused
    host_files: frozenset[str] = frozenset()  # absolute paths the image declares (host_inputs)
    extra_vars: dict[str, str] = field(default_factory=dict)      # -e k=v
    hosts: frozenset[str] | None = None     # the instance's inventory names (None: any)


def configure(ctx: Context, found: Found, cfg: str | None) -> None:
    """Read ``ansible.cfg`` (the provisioner's ANSIBLE_CONFIG, else the one in
    the folder ansible-playbook runs in): roles, collections and plugin paths."""
    repo = ctx.repo
    if cfg is None:
        candidate = posixpath.normpath(posixpath.join(ctx.cwd, "ansible.cfg"))
        cfg = candidate if repo.is_file(candidate) else None
    if cfg is None:
        return
    ctx.config = cfg
    repo.inside(cfg)
    found.add(cfg, "ansible.cfg")
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(repo.path(cfg).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error) as err:
        raise AmiError(f"{cfg}: cannot read ({err}): fix it") from None
    base = posixpath.dirname(cfg) or "."
    for key, kind in _CFG_PATHS.items():
        raw = parser.get("defaults", key, fallback=None) if parser.has_section("defaults") \
            else None
        if not raw:
            continue
        for part in re.split(r"[:,]", raw) if kind != "file" or key != "inventory" \
                else raw.split(","):
            part = part.strip()
            if not part:
                continue
            where = f"{cfg} [defaults] {key}"
            expanded = os.path.expandvars(os.path.expanduser(part))
            inside = expanded.startswith(repo.root.as_posix() + "/")
            if kind == "roles" and expanded.startswith("/") and not inside:
                ctx.outside_roles_paths.append(expanded)
                continue            # looked in, and refused if a role is found only there
            if inside:
                part = os.path.relpath(expanded, repo.path(base))
            if "{{" in part or part.startswith(("~", "$")):
                if kind == "collections":
                    continue
                raise AmiError(f"{where} {part!r}: outside the repository or not known "
                               "before the build: point it into the repository")
            rel = repo.join(base, part, where)
            if kind == "roles":
                ctx.roles_paths.append(rel)
            elif kind == "collections":
                ctx.collections_paths.append(rel)
            elif repo.exists(rel):
                repo.add_file(found, rel, where, where, part)
