"""The walk over a template: every file its builders (sources),
provisioners and post-processors name, found through the registry of
kinds (``kinds``), each resolved as Packer would (``context``). What the
Ansible provisioners hand ansible-playbook is collected for ``ansible``."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace
from typing import Any

from ..core.diagnostics import Diagnostics
from ..core.errors import AmiError
from ..core.text import closest, did_you_mean
from .ansible.args import extra_argument_files, extra_vars
from .context import Context, glob_to_repo, to_repo
from .hcl.dynamic import expand
from .hcl.functions import file_calls
from .hcl.syntax import is_template, to_hcl_form
from .kinds import ANSIBLE, BUILDERS, NEEDS_COMMUNICATOR, POST_PROCESSORS, PROVISIONERS
from .repo import Found, Unresolved
from .template import Block, Template
from .where import located


@dataclass
class AnsibleUse:
    """One Ansible provisioner: what it hands ansible-playbook."""
    where: str
    type: str
    playbooks: list[str] = field(default_factory=list)
    galaxy_files: list[str] = field(default_factory=list)
    roles_paths: list[str] = field(default_factory=list)
    collections_paths: list[str] = field(default_factory=list)
    role_folders: list[str] = field(default_factory=list)
    config: str | None = None             # ANSIBLE_CONFIG from ansible_env_vars
    extra_vars: dict[str, str] = field(default_factory=dict)      # -e k=v
    hosts: frozenset[str] | None = None   # the inventory's host names (None: not known)


@dataclass
class Walk:
    found: Found = field(default_factory=Found)
    ansible: list[AnsibleUse] = field(default_factory=list)
    dropped_in_sandbox: list[str] = field(default_factory=list)
    problems: Diagnostics = field(default_factory=Diagnostics)


def walk(template: Template, ctx: Context) -> Walk:
    """Every file the template's builders, provisioners and post-processors
    name. A block with a problem is noted in ``problems``, and the walk goes on."""
    out = Walk()
    for f in template.files:
        with out.problems.collect():
            ctx.repo.inside(f)
            out.found.add(f, "template")
    if template.format == "hcl2":
        _file_calls(template, ctx, out)
    for block in template.blocks:
        with out.problems.collect():
            if block.each is None:
                _block(template, block, ctx, out)
                continue
            for key, config in expand(f"{located(ctx.repo, template, block)}: {block.label}",
                                      block.each, ctx.expand):
                with out.problems.collect():
                    _block(template, replace(block, config=config, via=f" [{key}]"), ctx, out)
    return out


def _block(template: Template, block: Block, ctx: Context, out: Walk) -> None:
    def at() -> str:
        return f"{located(ctx.repo, template, block)}: {block.label}"
    if block.kind in ("builder", "source"):
        fields = BUILDERS.get(block.type)
        if fields is None:
            raise AmiError(f"{at()}: only amazon-ebs {block.kind}s are supported: remove this one")
    elif block.kind == "provisioner":
        fields = PROVISIONERS.get(block.type)
        if fields is None and closest(block.type, PROVISIONERS):
            raise AmiError(f"{at()}: no provisioner type {block.type!r}"
                           f"{did_you_mean(block.type, PROVISIONERS)}")
        if fields is None:
            raise AmiError(f"{at()}: provisioner type {block.type!r} names files this tool "
                           "cannot track: use shell, shell-local, file, powershell or ansible "
                           "provisioners")
        if block.type in NEEDS_COMMUNICATOR and not block.via.startswith(" override"):
            out.dropped_in_sandbox.append(block.label)
    else:
        fields = POST_PROCESSORS.get(block.type)
        if fields is None:
            raise AmiError(f"{at()}: post-processor type {block.type!r} is not supported: use "
                           "manifest, checksum or shell-local")
    if block.type == "file" and (ctx.plain(block.config.get("direction")) == "download"
                                 or block.config.get("generated") in (True, "true")):
        return          # the source is on the instance, or made during the build
    use = AnsibleUse(f"{template.path} {block.label}", block.type,
                     hosts=_inventory_hosts(block, ctx)) if block.type in ANSIBLE else None
    for name, kind in fields.items():
        if name in block.config:
            _located_field(template, block, name, kind, ctx, out, use)
    if use is not None:
        out.ansible.append(use)


def _inventory_hosts(block: Block, ctx: Context) -> frozenset[str] | None:
    """The host names Ansible's inventory gives the instance, which pick its
    host_vars: Packer's ``host_alias`` ("default"), or ansible-local's
    127.0.0.1. None with an inventory file, or a name known only later."""
    if "inventory_file" in block.config:
        return None
    if block.type != "ansible":
        return frozenset({"127.0.0.1", "localhost"})
    alias = block.config.get("host_alias", "default")
    text, _, _ = ctx.resolve(alias) if isinstance(alias, str) else (None, "", "")
    return frozenset({text}) if text else None


def _located_field(template: Template, block: Block, name: str, kind: str, ctx: Context,
                   out: Walk, use: AnsibleUse | None) -> None:
    """One field, its problems and unresolved references named at its file and line."""
    before = len(out.found.unresolved)
    plain = f"{template.path} {block.label} {name}"

    def shown() -> str:
        return f"{located(ctx.repo, template, block, name)}: {block.label} {name}"
    try:
        _field(template, block, name, kind, block.config[name], ctx, out, use)
    except AmiError as err:
        at = shown()
        for problem in err.problems:
            out.problems.add(problem.replace(plain, at, 1))
    if len(out.found.unresolved) > before:
        at = shown()
        out.found.unresolved[before:] = [replace(u, where=u.where.replace(plain, at, 1))
                                         for u in out.found.unresolved[before:]]


def _file_calls(template: Template, ctx: Context, out: Walk) -> None:
    """HCL2 reads files with file(), templatefile(), fileset() and
    fileexists(): their paths are inputs wherever the calls are (Packer 1.6
    resolves a relative one from the template's folder)."""
    for doc in template.documents:
        data = to_hcl_form(doc.data) if doc.syntax == "json" else doc.data
        try:
            calls = list(file_calls(data))
        except AmiError as err:
            out.problems.add(f"{doc.path}: {err}")
            continue
        for function, argument in calls:
            with out.problems.collect():
                _ref(ctx, out, f"{doc.path} {function}()", argument if is_template(argument)
                     else f"${{{argument}}}", "file", None, base=template.dir)


def _strings(value: Any, where: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) for v in items):
        raise AmiError(f"{where}: must be a string or a list of strings")
    return items


def _field(template: Template, block: Block, name: str, kind: str, value: Any, ctx: Context,
           out: Walk, use: AnsibleUse | None) -> None:
    where = f"{template.path} {block.label} {name}"
    value = ctx.expand(value)
    if kind == "args":
        args = [ctx.plain(v) for v in _strings(value, where)]
        if use is not None:
            known = [ctx.resolve(ctx.wrap(a))[0] for a in args]
            # A value holding a path of the repository's own ({{template_dir}}) stays unknown.
            use.extra_vars.update(extra_vars([k if k is not None and "\x00" not in k else a
                                              for k, a in zip(known, args)]))
        for flag, path in extra_argument_files(args):
            _ref(ctx, out, f"{where} {flag}", ctx.wrap(path), "file", use)
        return
    if kind == "env":
        for item in _strings(value, where):
            key, _, path = ctx.plain(item).partition("=")
            env_kind = {"ANSIBLE_CONFIG": "config", "ANSIBLE_ROLES_PATH": "roles_path",
                        "ANSIBLE_COLLECTIONS_PATH": "collections_path",
                        "ANSIBLE_COLLECTIONS_PATHS": "collections_path",
                        "ANSIBLE_LIBRARY": "file", "ANSIBLE_MODULE_UTILS": "file",
                        "ANSIBLE_FILTER_PLUGINS": "file", "ANSIBLE_LOOKUP_PLUGINS": "file",
                        "ANSIBLE_ACTION_PLUGINS": "file"}.get(key.strip())
            if env_kind:
                for part in path.split(":"):
                    if part:
                        _ref(ctx, out, f"{where} {key.strip()}", ctx.wrap(part), env_kind, use)
        return
    for item in _strings(value, where):
        if kind == "roles_path" or kind == "collections_path":
            for part in ctx.plain(item).split(":"):
                if part:
                    _ref(ctx, out, where, ctx.wrap(part), kind, use)
        else:
            _ref(ctx, out, where, item, {"files": "file", "playbooks": "playbook"}.get(kind, kind),
                 use)


def _ref(ctx: Context, out: Walk, where: str, raw: Any, kind: str,
         use: AnsibleUse | None, base: str | None = None) -> None:
    text, glob, why = ctx.resolve(raw)
    value = ctx.plain(raw)
    if text is not None and not text.strip():
        return              # an empty path (a variable defaulting to "") is no path
    if text is None:
        out.found.unresolved.append(Unresolved(where, value, why, glob_to_repo(ctx, glob, base)))
        return
    if kind == "file" and posixpath.isabs(text) and posixpath.normpath(text) in ctx.host_files:
        return          # a build host file the image declares: its hash is in the digest
    rel = to_repo(ctx, text, where, value, base)
    if kind in ("roles_path", "collections_path"):
        if use is not None:
            (use.roles_paths if kind == "roles_path" else use.collections_paths).append(rel)
        return
    if kind == "config":
        if use is not None:
            use.config = rel
        ctx.repo.add_file(out.found, rel, where, where, value)
        return
    ctx.repo.add_file(out.found, rel, where, where, value)
    if use is not None:
        {"playbook": use.playbooks, "galaxy": use.galaxy_files,
         "role_folders": use.role_folders}.get(kind, []).append(rel)
