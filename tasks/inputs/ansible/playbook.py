"""Which files an Ansible run reads, found the way Ansible finds them: the
walk from a playbook through its plays, roles, tasks and the files they
read (see the package's docstring)."""

from __future__ import annotations

import os
import posixpath
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterator

from ...core.diagnostics import Diagnostics
from ...core.errors import AmiError
from ..repo import Found, Repo, Unresolved
from .config import Context
from ..where import with_line
from .loader import Positioned, load


_ROLE_CALLS = frozenset({"include_role", "import_role", "ansible.builtin.include_role",
                         "ansible.builtin.import_role", "ansible.legacy.include_role",
                         "ansible.legacy.import_role"})
_TASK_INCLUDES = frozenset({"include_tasks", "import_tasks", "include",
                            "ansible.builtin.include_tasks", "ansible.builtin.import_tasks",
                            "ansible.builtin.include"})
_PLAYBOOK_IMPORTS = frozenset({"import_playbook", "ansible.builtin.import_playbook"})
_VARS_INCLUDES = frozenset({"include_vars", "ansible.builtin.include_vars"})
# Modules whose `src` is a local file, and the role or playbook folder searched first.
_SHORT_SRC_MODULES = (("template", "templates"), ("copy", "files"), ("script", "files"),
                      ("unarchive", "files"), ("assemble", "files"))
_SRC_MODULES = MappingProxyType({
    **dict(_SHORT_SRC_MODULES), "win_template": "templates", "win_copy": "files",
    **{f"ansible.builtin.{k}": v for k, v in _SHORT_SRC_MODULES}})
_BLOCK_KEYS = ("block", "rescue", "always")
ROLE_MAIN = ("main.yml", "main.yaml", "main.json", "main")     # Ansible's order
# Beside a playbook, Ansible reads these by itself.
ADJACENT = ("group_vars", "host_vars", "files", "templates", "tasks", "vars", "handlers",
            "library", "module_utils", "action_plugins", "filter_plugins", "lookup_plugins",
            "callback_plugins", "test_plugins", "vars_plugins", "inventory_plugins")
_COLLECTION_METADATA = frozenset({"MANIFEST.json", "FILES.json", "galaxy.yml", "galaxy.yaml"})
_OUTSIDE_ROLES = ("~/.ansible/roles", "/usr/share/ansible/roles", "/etc/ansible/roles")
_OUTSIDE_COLLECTIONS = ("~/.ansible/collections", "/usr/share/ansible/collections")
_REQUIREMENTS = ("requirements.yml", "requirements.yaml", "roles/requirements.yml",
                 "roles/requirements.yaml", "collections/requirements.yml",
                 "collections/requirements.yaml")
_LOOKUP = re.compile(r"""(?:lookup|query|q)\(\s*['"](?:ansible\.(?:builtin|legacy)\.)?"""
                     r"""(file|template)['"]\s*,\s*['"]([^'"]+)['"]""")
_FILE_LOOPS = MappingProxyType({"with_file": "files", "with_template": "templates"})
_FQCN = re.compile(r"^([a-z0-9_]+)\.([a-z0-9_]+)\.([a-z0-9_]+)$")
_BUILTIN = frozenset({("ansible", "builtin"), ("ansible", "legacy")})


@dataclass
class Result:
    third_party: set[str] = field(default_factory=set)       # role folders not ours to lint
    roles: dict[str, str] = field(default_factory=dict)       # role name -> folder or requirement
    missing_roles: set[str] = field(default_factory=set)      # installed at build time
    templated: set[str] = field(default_factory=set)          # files a task renders
    variables: set[str] = field(default_factory=set)          # files loaded as variables
    problems: Diagnostics = field(default_factory=Diagnostics)    # each, and the walk goes on


def walk_playbook(ctx: Context, playbook: str, found: Found, result: Result,
                  why: str) -> None:
    _Walker(ctx, found, result).playbook(playbook, why, set())


class _Walker:
    def __init__(self, ctx: Context, found: Found, result: Result) -> None:
        self.ctx = ctx
        self.repo = ctx.repo
        self.found = found
        self.result = result
        self.walked_roles: set[str] = set()
        self.walked_files: set[str] = set()
        self.base = ""                          # the top playbook's folder
        self.role_vars: dict[str, list[dict]] = {}   # role -> its vars, its defaults (read once)

    # playbooks

    def playbook(self, rel: str, why: str, seen: set[str]) -> None:
        if rel in seen:
            return
        seen.add(rel)
        if not self.base:
            self.base = posixpath.dirname(rel) or "."
            self._requirements_beside(self.base)
        self.found.add(rel, why)
        folder = posixpath.dirname(rel) or "."
        for adjacent in ADJACENT:
            path = posixpath.normpath(posixpath.join(folder, adjacent))
            if self.repo.is_dir(path):
                self._adjacent(path, adjacent, f"beside playbook {rel}")
        plays = load(self.repo, rel, "playbook")
        if plays is None:
            return
        if not isinstance(plays, list):
            raise AmiError(f"{rel}: a playbook must be a list of plays")
        for play in plays:
            if not isinstance(play, dict):
                raise AmiError(f"{rel}: every play must be a mapping")
            for key in _PLAYBOOK_IMPORTS & set(play):
                target = _free_form(play[key])
                with self._at(rel, play):
                    self._path(folder, target, f"{rel} {key}", f"playbook imported by {rel}",
                               lambda p: self.playbook(p, f"playbook imported by {rel}", seen))
            collections = [c for c in play.get("collections") or [] if isinstance(c, str)]
            for name in collections:
                with self._at(rel, play):
                    self._collection(name, f"{rel} collections")
            for entry in play.get("roles") or []:
                with self._at(rel, entry if isinstance(entry, dict) else play):
                    name = _role_name(entry)
                    if not name:
                        raise AmiError(f"{rel}: a 'roles' entry has no role name")
                    self.role(name, rel, folder, collections)
            for vf in _listish(play.get("vars_files")):
                for item in _listish(vf):
                    if isinstance(item, str):
                        with self._at(rel, play):
                            self._path(folder, item, f"{rel} vars_files",
                                       f"vars file of {rel}", self.result.variables.add)
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                self.tasks(play.get(key) or [], rel, folder, None, collections)

    def _adjacent(self, path: str, kind: str, why: str) -> None:
        """A folder beside a playbook: read whole, but host_vars only for the
        instance's own inventory names (when they are known)."""
        hosts = self.ctx.hosts
        if kind != "host_vars" or hosts is None:
            self.repo.add_tree(self.found, path, why)
            return
        for rel in self.repo.files_under(path):
            first = rel[len(path) + 1:].split("/")[0]
            name = first.rsplit(".", 1)[0] if first.endswith((".yml", ".yaml", ".json")) \
                else first
            if name in hosts:
                self.found.add(rel, why)

    # roles

    def role(self, name: str, used_by: str, folder: str, collections: list[str],
             parent_role: str | None = None) -> None:
        if "{{" in name:
            raise AmiError(f"{used_by}: role {name!r} cannot be resolved before the build: "
                           "name roles literally so their files can be tracked")
        key = name
        if key in self.walked_roles:
            return
        self.walked_roles.add(key)
        located = self._locate_role(name, used_by, folder, collections, parent_role)
        if located is None:
            return                                  # pinned in a requirements file
        self.result.roles[name] = located
        self.repo.add_tree(self.found, located, f"role {name} (named in {used_by})")
        if self.repo.is_file(posixpath.join(located, "meta/.galaxy_install_info")):
            self.result.third_party.add(located)
        meta_file = next((posixpath.join(located, "meta", m) for m in ROLE_MAIN
                          if self.repo.is_file(posixpath.join(located, "meta", m))), None)
        role_collections = list(collections)
        if meta_file:
            meta = load(self.repo, meta_file, "role meta") or {}
            if isinstance(meta, dict):
                role_collections += [c for c in meta.get("collections") or []
                                     if isinstance(c, str)]
                for c in meta.get("collections") or []:
                    if isinstance(c, str):
                        self._collection(c, f"{meta_file} collections")
                for dep in meta.get("dependencies") or []:
                    dep_name = _role_name(dep)
                    if dep_name:
                        self.role(dep_name, meta_file, folder, role_collections, located)
        for sub in ("tasks", "handlers"):
            subdir = posixpath.join(located, sub)
            if self.repo.is_dir(subdir):
                for f in self.repo.files_under(subdir):
                    if (f.endswith((".yml", ".yaml", ".json")) or f.endswith("/main")) \
                            and f not in self.walked_files:
                        self.walked_files.add(f)
                        self.tasks(load(self.repo, f, "role tasks") or [], f, folder, located,
                                   role_collections)

    def _locate_role(self, name: str, used_by: str, folder: str, collections: list[str],
                     parent_role: str | None) -> str | None:
        repo = self.repo
        fqcn = _FQCN.match(name)
        if fqcn:
            ns, coll, short = fqcn.groups()
            return self._collection_role(ns, coll, short, used_by)
        if "/" in name or name.startswith("."):
            rel = repo.join(folder, name, f"{used_by}: role")
            if repo.is_dir(rel):
                return rel
            raise AmiError(f"{used_by}: role path {name!r} not found ({rel}): fix the path")
        candidates = [posixpath.join(folder, "roles")]
        candidates += self.ctx.roles_paths
        candidates += [posixpath.dirname(f) or "." for f in self.ctx.role_folders]
        if parent_role:
            candidates.append(posixpath.dirname(parent_role) or ".")
        candidates.append(folder)
        for base in candidates:
            rel = posixpath.normpath(posixpath.join(base, name))
            if repo.is_dir(rel) and (rel in self.ctx.role_folders or base != folder
                                     or repo.is_dir(posixpath.join(rel, "tasks"))):
                return rel
        for c in collections:
            parts = c.split(".")
            if len(parts) == 2 and c not in ("ansible.builtin", "ansible.legacy"):
                located = self._collection_role(parts[0], parts[1], name, used_by, quiet=True)
                if located:
                    return located
        pinned = self.ctx.requirements.roles.get(name)
        if pinned:
            self.found.add(pinned, f"pins role {name}")
            self.result.roles[name] = pinned
            self.result.missing_roles.add(name)
            return None
        outside = [os.path.join(os.path.expanduser(p), name)
                   for p in [*self.ctx.outside_roles_paths, *_OUTSIDE_ROLES]]
        there = next((p for p in outside if os.path.isdir(p)), None)
        if there:
            raise AmiError(f"{used_by}: role {name!r} is only in {there}, outside the "
                           "repository: vendor it into the repository, or pin it in a "
                           "requirements file (galaxy_file)")
        looked = ", ".join(sorted({posixpath.normpath(c) + "/" for c in candidates[:-1]}))
        raise AmiError(f"{used_by}: role {name!r} not found in {looked}: create it, fix the "
                       "name, or pin it in a requirements file")

    def _collection_paths(self) -> list[str]:
        return [*self.ctx.collections_paths, posixpath.join(self.base or ".", "collections")]

    def _collection_dir(self, ns: str, coll: str) -> str | None:
        for base in self._collection_paths():
            rel = posixpath.normpath(posixpath.join(base, "ansible_collections", ns, coll))
            if self.repo.is_dir(rel):
                return rel
        return None

    def _collection(self, name: str, used_by: str) -> None:
        parts = name.split(".")
        if len(parts) != 2 or tuple(parts) in _BUILTIN:
            return
        key = f"collection {name}"
        if key in self.walked_roles:
            return
        self.walked_roles.add(key)
        located = self._collection_dir(*parts)
        if located:
            self._collection_files(located, key)
            return
        pinned = self.ctx.requirements.collection(name)
        if pinned:
            self.found.add(pinned, f"pins {key}")
            return
        raise AmiError(f"{used_by}: collection {name} is neither in the repository "
                       f"({', '.join(p + '/ansible_collections' for p in self._collection_paths())}) "
                       "nor pinned in a requirements file: vendor it or pin it")

    def _collection_files(self, located: str, key: str) -> None:
        """What any use of a vendored collection may read: its metadata
        (``MANIFEST.json``, ``galaxy.yml``, ``meta/``) and its plugins (a
        module named by its FQCN, a filter, their module_utils). Its roles
        are inputs as a play uses them, each walked as a role; its docs,
        tests and the roles no play uses are not."""
        for name in sorted(p.name for p in self.repo.path(located).iterdir()
                           if p.is_file() and p.name in _COLLECTION_METADATA):
            self.repo.add_file(self.found, posixpath.join(located, name), key, key, name)
        for sub in ("meta", "plugins"):
            if self.repo.is_dir(posixpath.join(located, sub)):
                self.repo.add_tree(self.found, posixpath.join(located, sub), key)

    def _collection_role(self, ns: str, coll: str, short: str, used_by: str,
                         quiet: bool = False) -> str | None:
        name = f"{ns}.{coll}"
        located = self._collection_dir(ns, coll)
        if located:
            role = posixpath.join(located, "roles", short)
            if not self.repo.is_dir(role):
                if quiet:
                    return None
                raise AmiError(f"{used_by}: role {ns}.{coll}.{short} not found in {located}/roles")
            self._collection(name, used_by)
            self.result.third_party.add(located)
            return role
        if quiet:
            return None
        self._collection(name, used_by)       # pinned (tracked by its file), or refused
        self.result.missing_roles.add(f"{ns}.{coll}.{short}")
        return None

    # tasks

    def tasks(self, tasks: Any, file: str, folder: str, role: str | None,
              collections: list[str]) -> None:
        for task in _task_list(tasks):
            with self._at(file, task):                  # a task's problem, and on to the next
                self._task(task, file, folder, role, collections)

    @contextmanager
    def _at(self, file: str, written: Any) -> Iterator[None]:
        """Collect a problem of a task or play in ``file``, at the line of
        what it quotes within the task or play, else where that starts."""
        try:
            yield
        except AmiError as err:
            span = (written.line, written.end) if isinstance(written, Positioned) else None
            for problem in err.problems:
                ours = problem.startswith((f"{file} ", f"{file}: "))
                self.result.problems.add(with_line(self.repo, problem, span)
                                         if span and ours else problem)

    def _task(self, task: dict, file: str, folder: str, role: str | None,
              collections: list[str]) -> None:
        for key in _BLOCK_KEYS:
            if isinstance(task.get(key), list):
                self.tasks(task[key], file, folder, role, collections)
        for string in _strings(task):
            for m in _LOOKUP.finditer(string):
                sub = "files" if m.group(1) == "file" else "templates"
                self._local(m.group(2), sub, file, folder, role, f"lookup('{m.group(1)}')")
        for loop, sub in _FILE_LOOPS.items():
            for item in _listish(task.get(loop)):
                if isinstance(item, str) and item:
                    self._local(item, sub, file, folder, role, loop)
        for key, value in task.items():
            if not isinstance(key, str):
                raise AmiError(f"{file}: a task has the key {key!r}, which is not a module or "
                               "keyword name: fix the task")
            if key in _ROLE_CALLS:
                name = _role_name(value) if not isinstance(value, str) else value
                if name and "{{" in name:
                    name = self._extra_var(name)
                if name and role and "{{" in name and self._role_value(role, name) == "":
                    name = ""           # a hook whose role is "" by default: none
                if name:
                    self.role(name, file, folder, collections, role)
            elif key in _TASK_INCLUDES:
                target = _free_form(value, "file")
                base = posixpath.join(role, "tasks") if role else posixpath.dirname(file) or "."
                self._path(base, target, f"{file} {key}", f"tasks included by {file}",
                           lambda p: self._included(p, file, folder, role, collections),
                           covered_by_role=role)
            elif key in _VARS_INCLUDES:
                target = _free_form(value, "file") or _free_form(value, "dir")
                if target:
                    self._local(target, "vars", file, folder, role, key)
            elif key in _SRC_MODULES or (key.startswith("ansible.windows.") and
                                         key.split(".")[-1] in _SRC_MODULES):
                args = _args(value)
                if str(args.get("remote_src", "")).lower() in ("true", "yes", "1"):
                    continue
                src = args.get("src") if key not in ("script", "ansible.builtin.script") \
                    else (args.get("cmd") or args.get("_raw", "").split(" ")[0] or None)
                sub = _SRC_MODULES.get(key, "files")
                for one in _each_item(src, self._loop(task, role)) \
                        if isinstance(src, str) and src else []:
                    self._local(one, sub, file, folder, role, key)
            else:
                self._module(key, file)

    def _included(self, rel: str, file: str, folder: str, role: str | None,
                  collections: list[str]) -> None:
        if rel in self.walked_files:
            return
        self.walked_files.add(rel)
        self.found.add(rel, f"tasks included by {file}")
        self.tasks(load(self.repo, rel, "tasks") or [], rel, folder, role, collections)

    def _module(self, key: str, file: str) -> None:
        m = _FQCN.match(key)
        if m and (m.group(1), m.group(2)) not in _BUILTIN:
            self._collection(f"{m.group(1)}.{m.group(2)}", f"{file} module {key}")

    # paths

    def _local(self, value: str, sub: str, file: str, folder: str, role: str | None,
               what: str) -> None:
        """A file a module or lookup reads: searched in the role's ``sub`` folder
        and the role, then the playbook's ``sub`` folder and the playbook's folder."""
        where = f"{file} {what}"
        bases = ([posixpath.join(role, sub), role] if role else []) + \
            [posixpath.join(folder, sub), folder]
        if "{{" in value:
            value = value.replace("{{ playbook_dir }}", folder).replace("{{playbook_dir}}", folder)
            if role:
                value = value.replace("{{ role_path }}", role).replace("{{role_path}}", role)
            value = self._extra_var(value)
            default = self._role_value(role, value) if role and "{{" in value else None
            if default and default.startswith("/"):
                value = default     # what it reads unless something unseen sets it: refused
        if not value.strip():
            return                  # -e name= (empty): no file
        if "{{" not in value:
            if value.startswith("~"):
                home = os.path.expanduser(value)       # Ansible expands it on the build host
                if home != value and posixpath.normpath(home) in self.ctx.host_files:
                    return
                raise AmiError(f"{where} {value!r}: ~ is a home folder of the build host, "
                               "outside the repository, which no digest sees: copy the file "
                               "into the repository (the role's files/ or templates/) and name "
                               "it relatively, or declare it under host_inputs: of the image")
            if value.startswith("/"):
                if posixpath.normpath(value) in self.ctx.host_files:
                    return          # declared: its content's hash is in the digest
                raise AmiError(f"{where} {value!r}: reads {value} from the build host, outside "
                               "the repository, which no digest sees: copy the file into the "
                               "repository (the role's files/ or templates/) and name it "
                               "relatively, or declare it under host_inputs: of the image")
            for base in bases:
                rel = posixpath.normpath(posixpath.join(base, value))
                if not rel.startswith("..") and self.repo.exists(rel):
                    self.repo.add_file(self.found, rel, f"read by {file}", where, value)
                    read_as = {"templates": self.result.templated,
                               "vars": self.result.variables}.get(sub)
                    if read_as is not None:
                        read_as.update(self.repo.files_under(rel) if self.repo.is_dir(rel)
                                       else [rel])
                    return
            raise AmiError(f"{where} {value!r}: not found in {', '.join(b + '/' for b in bases)}: "
                           "create it or fix the path")
        glob = re.sub(r"\{\{.*?\}\}", "*", value)
        if role and not glob.startswith(("/", "..", "*")) and ".." not in glob.split("/"):
            return                  # inside the role (all of it tracked) or the playbook folders
        self.found.unresolved.append(Unresolved(
            where, value, "a Jinja2 expression only known during the build",
            _repo_glob(bases[-1], glob)))

    def _extra_var(self, value: str) -> str:
        """``{{ name }}`` filled in from the provisioner's ``-e name=...``: extra
        variables win over every other source of a variable in Ansible."""
        name = _bare_variable(value)
        return self.ctx.extra_vars.get(name, value) if name else value

    def _loop(self, task: dict, role: str | None) -> Any:
        """The task's loop as a list where it is known before the build: written
        out, an ``-e`` list (extra variables win over all), or a list in the
        role's ``vars/`` (which only ``-e`` overrides). None: not known."""
        loops = [task[key] for key in ("loop", "with_items", "with_list") if key in task]
        if len(loops) != 1:
            return None
        if isinstance(loops[0], list):
            return loops[0]
        name = _bare_variable(loops[0]) if isinstance(loops[0], str) else None
        if name is None:
            return None
        if name in self.ctx.extra_vars:
            given = self.ctx.extra_vars[name].strip()
            return [] if given in ("", "[]") else None
        if role:
            self._role_value(role, "")                  # reads the role's vars once
            own = self.role_vars[role][0].get(name)     # vars/, not defaults/
            if isinstance(own, list):
                return own
        return None

    def _role_value(self, role: str, value: str) -> str | None:
        """The string a role's vars or defaults give ``{{ name }}``, if any: what
        the role reads unless a play, inventory or include sets it otherwise,
        so it is only used to refuse (an absolute path) and for hooks."""
        if role not in self.role_vars:
            self.role_vars[role] = [_role_file(self.repo, role, sub) for sub in ("vars", "defaults")]
        name = _bare_variable(value)
        if not name:
            return None
        for data in self.role_vars[role]:                       # vars win over defaults
            if isinstance(data.get(name), str):
                return data[name]
        return None

    def _path(self, base: str, value: str | None, where: str, why: str,
              then: Any = None, covered_by_role: str | None = None) -> None:
        if not value:
            return
        if "{{" in value:
            value = value.replace("{{ playbook_dir }}", self.base).replace("{{playbook_dir}}",
                                                                           self.base)
        if "{{" in value:
            glob = re.sub(r"\{\{.*?\}\}", "*", value)
            if covered_by_role and not glob.startswith(("/", "..", "*")):
                return
            self.found.unresolved.append(Unresolved(
                where, value, "a Jinja2 expression only known during the build",
                _repo_glob(base, glob)))
            return
        rel = self.repo.join(base, value, where)
        if not self.repo.exists(rel) and covered_by_role:
            # Ansible also looks in the role itself and the playbook's folder
            for alt in (covered_by_role, self.base):
                alt_rel = posixpath.normpath(posixpath.join(alt, value))
                if self.repo.exists(alt_rel):
                    rel = alt_rel
                    break
        self.repo.add_file(self.found, rel, why, where, value)
        if then is not None:
            then(rel)

    def _requirements_beside(self, folder: str) -> None:
        for name in _REQUIREMENTS:
            rel = posixpath.normpath(posixpath.join(folder, name))
            if self.repo.is_file(rel):
                self.ctx.requirements.add_file(self.repo, rel)


def _each_item(src: str, loop: Any) -> list[str]:
    """``src: '{{ item }}'`` over a loop of strings, or ``'{{ item.src }}'``
    (``item['src']``) over one of mappings, is each of them (an empty loop
    reads nothing); anything else is read as written."""
    m = re.fullmatch(r"\{\{\s*item(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([A-Za-z_][A-Za-z0-9_]*)"
                     r"['\"]\s*\])?\s*\}\}", src.strip())
    if not m or not isinstance(loop, list):
        return [src]
    field = m.group(1) or m.group(2)
    values = [one.get(field) if field and isinstance(one, dict) else None if field else one
              for one in loop]
    if all(isinstance(v, str) and v and "{{" not in v for v in values):
        return values
    return [src]


def _listish(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _task_list(tasks: Any) -> Iterator[dict]:
    for task in _listish(tasks):
        if isinstance(task, dict):
            yield task


def _role_file(repo: Repo, role: str, sub: str) -> dict:
    """A role's ``vars/main.yml`` or ``defaults/main.yml`` (or ``.yaml``,
    ``.json``, or no extension, as Ansible looks), as a mapping."""
    for file in ROLE_MAIN:
        rel = posixpath.join(role, sub, file)
        if repo.is_file(rel):
            data = load(repo, rel, "role variables")
            return data if isinstance(data, dict) else {}
    return {}


def _repo_glob(base: str, glob: str) -> str | None:
    """The repository files an unresolved path may name, or None when it may
    name any file at all: one that begins with an expression may be absolute,
    and then no ``extra_inputs`` pattern covers it."""
    if glob.startswith(("/", "*")):
        return None
    rel = posixpath.normpath(posixpath.join(base, glob))
    return None if rel.startswith("..") or rel.strip("*/.") == "" else rel


def _bare_variable(value: str) -> str | None:
    m = re.fullmatch(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", value.strip())
    return m.group(1) if m else None


def _role_name(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        name = entry.get("role") or entry.get("name")
        return name if isinstance(name, str) else None
    return None


def _args(value: Any) -> dict[str, Any]:
    """A module's arguments, from a mapping or a free-form ``k=v`` string."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return {}
    args: dict[str, Any] = {"_raw": value}
    for part in value.split():
        key, sep, val = part.partition("=")
        if sep:
            args[key] = val.strip("'\"")
    return args


def _free_form(value: Any, key: str = "file") -> str | None:
    if isinstance(value, str):
        return value.split()[0] if value.split() else None
    if isinstance(value, dict):
        found = value.get(key) or value.get("_raw_params")
        return found if isinstance(found, str) else None
    return None


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            if k not in _BLOCK_KEYS:
                yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
