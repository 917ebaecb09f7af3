"""Packer templates, JSON or HCL2: read them, find every file they name,
and write the copy the runner hands Packer.

Paths resolve the way Packer resolves them: relative to the folder Packer
runs in (the image's ``packer_dir``); ``{{template_dir}}`` and
``${path.root}`` to the template's own folder; ``{{user `x`}}`` and
``var.x`` from the template's defaults, the image's var files, its ``vars``
in amis.yaml and the variables the runner passes. Values only known during
the build (``{{env}}``, ``{{timestamp}}``, the parent's AMI, ...) leave a
reference unresolved. HCL2 specifics live in ``hcl``.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from . import hcl
from .errors import AmiError
from .refs import Found, Repo, Unresolved, json_object, read_text

EBS_BUILDERS = frozenset({"amazon-ebs"})
# Provisioners that need a connection to the instance: the sandbox, whose
# emulator runs no instances, leaves them out.
NEEDS_COMMUNICATOR = frozenset({"shell", "file", "ansible", "ansible-local", "powershell",
                                "windows-shell", "windows-restart", "breakpoint"})
ANSIBLE = frozenset({"ansible", "ansible-local"})

# Per provisioner type, the fields that name local files: "file" (a file or
# a folder), "files" (a list of them), "args" (ansible extra_arguments),
# "env" (ansible_env_vars). A type not listed here cannot be tracked.
_FILE_FIELDS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "shell": {"script": "file", "scripts": "files"},
    "shell-local": {"script": "file", "scripts": "files"},
    "powershell": {"script": "file", "scripts": "files"},
    "windows-shell": {"script": "file", "scripts": "files"},
    "file": {"source": "file", "sources": "files"},
    "windows-restart": {},
    "breakpoint": {},
    "ansible": {"playbook_file": "playbook", "galaxy_file": "galaxy", "inventory_file": "file",
                "inventory_directory": "file", "roles_path": "roles_path",
                "collections_path": "collections_path", "extra_arguments": "args",
                "ansible_env_vars": "env"},
    "ansible-local": {"playbook_file": "playbook", "playbook_files": "playbooks",
                      "playbook_dir": "file", "playbook_paths": "files",
                      "role_paths": "role_folders", "group_vars": "file", "host_vars": "file",
                      "inventory_file": "file", "galaxy_file": "galaxy",
                      "extra_arguments": "args"},
})
_POST_PROCESSOR_FIELDS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "shell-local": {"script": "file", "scripts": "files"},
    "manifest": {},
    "checksum": {},
})
_BUILDER_FIELDS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "amazon-ebs": {"user_data_file": "file"}})
_STATIC = ("image", "region", "playbook", "parent_image")   # passed by the runner, known early


@dataclass(frozen=True)
class Block:
    """One builder, provisioner or post-processor of a template."""
    kind: str            # builder, provisioner, post-processor
    index: int           # 1-based, in the template's order
    type: str
    config: dict
    via: str = ""        # HCL2: " override <source>", the fields one source sees

    @property
    def label(self) -> str:
        return f"{self.kind} {self.index} ({self.type}){self.via}"


@dataclass(frozen=True)
class Template:
    path: str                                # repository path, as in amis.yaml
    format: str                              # "json" (legacy) or "hcl2"
    files: tuple[str, ...]                   # its own files
    dir: str                                 # what {{template_dir}} / ${path.root} is
    variables: dict[str, str | None]         # declared variables and their defaults
    sensitive: tuple[str, ...]
    blocks: tuple[Block, ...]
    secrets: tuple[str, ...] = ()            # HCL2: strings in sensitive list/map defaults
    data: dict = field(repr=False, default_factory=dict)          # JSON: the template
    documents: tuple[hcl.Document, ...] = field(repr=False, default=())   # HCL2: its files
    locals: dict[str, Any] = field(repr=False, default_factory=dict)
    required_version: str | None = None
    newer: tuple[tuple[str, str], ...] = ()  # (file, what) that needs Packer 1.7 or newer

    @property
    def required_plugins(self) -> bool:
        return any(what.startswith("packer {") for _, what in self.newer)

    def provisioners(self) -> list[Block]:
        return [b for b in self.blocks if b.kind == "provisioner"]


Parse = Callable[[Repo, str, str], hcl.Document]


def load(repo: Repo, path: str, image: str, parse: Parse = hcl.parse) -> Template:
    """The image's template: a JSON template (``*.json``), or an HCL2 file
    (``*.pkr.hcl``, ``*.pkr.json``) or folder of them."""
    if repo.is_dir(path) or hcl.is_hcl(path):
        return _load_hcl(repo, path, image, parse)
    where = f"{path} (image {image})"
    if not path.endswith(".json"):
        raise AmiError(f"{where}: a template's name ends in .pkr.hcl, .pkr.json or .json "
                       "(what Packer reads): rename it")
    data = json_object(read_text(repo.path(path), "template", where), where, "a JSON template")
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise AmiError(f"{where}: 'variables' must be an object")
    blocks = []
    for kind, key in (("builder", "builders"), ("provisioner", "provisioners"),
                      ("post-processor", "post-processors")):
        items = data.get(key) or []
        if not isinstance(items, list):
            raise AmiError(f"{where}: '{key}' must be a list")
        flat = []
        for item in items:     # a post-processor entry may be a sequence of them
            flat += item if kind == "post-processor" and isinstance(item, list) else [item]
        for i, item in enumerate(flat, 1):
            if isinstance(item, str):
                item = {"type": item}
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                raise AmiError(f"{where}: {kind} {i} has no 'type'")
            blocks.append(Block(kind, i, item["type"], item))
    if not any(b.kind == "builder" and b.type in EBS_BUILDERS for b in blocks):
        raise AmiError(f"{where}: no amazon-ebs builder: image {image} needs one")
    sensitive = data.get("sensitive-variables") or []
    return Template(path=path, format="json", files=(path,),
                    dir=posixpath.dirname(path) or ".",
                    variables={k: v if isinstance(v, str) else None for k, v in variables.items()},
                    sensitive=tuple(s for s in sensitive if isinstance(s, str)),
                    blocks=tuple(blocks), data=data)


def _load_hcl(repo: Repo, path: str, image: str, parse: Parse) -> Template:
    files = hcl.files_of(repo, path, image)
    documents = tuple(parse(repo, f, image) for f in files if f.endswith(hcl.SUFFIXES))
    found = hcl.shape(list(documents))
    blocks = [Block("source", i, kind, cfg) for i, (kind, _, cfg) in enumerate(found.sources, 1)]
    for i, (kind, cfg, overrides) in enumerate(found.provisioners, 1):
        blocks.append(Block("provisioner", i, kind, cfg))
        blocks += [Block("provisioner", i, kind, {**cfg, **hcl_override}, f" override {source}")
                   for source, hcl_override in sorted(overrides.items())]
    blocks += [Block("post-processor", i, kind, cfg)
               for i, (kind, cfg) in enumerate(found.post_processors, 1)]
    if not any(b.kind == "source" and b.type in EBS_BUILDERS for b in blocks):
        raise AmiError(f"{path} (image {image}): no amazon-ebs source: image {image} needs one")
    variables = dict(found.variables)
    for auto in (f for f in files if f.endswith(hcl.AUTO_VAR_FILES)):
        variables.update({k: v for k, v in hcl.var_file_values(repo, auto, image).items()
                          if k in variables})
    return Template(path=path, format="hcl2", files=tuple(files),
                    dir=path if repo.is_dir(path) else (posixpath.dirname(path) or "."),
                    variables=variables, sensitive=tuple(found.sensitive),
                    secrets=tuple(found.secrets),
                    blocks=tuple(blocks), documents=documents, locals=found.locals,
                    required_version=found.required_version, newer=tuple(found.newer))


def read_var_file(repo: Repo, path: str) -> dict[str, str | None]:
    """A var file's values: ``.pkrvars.hcl`` / ``.pkrvars.json`` (HCL2), else
    JSON; None for a value that is not a literal."""
    if path.endswith((".hcl",) + hcl.VAR_FILE_SUFFIXES):
        return hcl.var_file_values(repo, path)
    try:
        data = json.loads(repo.path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AmiError(f"{path}: cannot read the var file ({err}): fix it") from None
    if not isinstance(data, dict):
        raise AmiError(f"{path}: a var file must be a JSON object of variable values")
    return {k: v if isinstance(v, str) else None for k, v in data.items()}


# -- interpolation ------------------------------------------------------------

_ROOT = "/\x00repo"             # stands for the repository root while resolving
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_USER = re.compile(r"^\s*user\s+[`\"]([^`\"]+)[`\"]\s*$")
# A default read from the environment: {{env `X`}} (JSON) or ${env("X")} (HCL2).
_ENV_DEFAULT = re.compile(r"^(?:\{\{\s*env\s*`([^`]+)`\s*\}\}|\$\{env\(\"([^\"]+)\"\)\})$")


@dataclass(frozen=True)
class Context:
    """What a template's strings may refer to, as far as it is known before the build."""
    repo: Repo
    template_dir: str         # repository folders
    cwd: str
    values: dict[str, str | None]       # variable -> value; None: only known during the build
    format: str = "json"
    locals: dict[str, Any] = field(default_factory=dict)

    def plain(self, value: Any) -> str:
        """A string field's text as written (HCL2: the template, unquoted)."""
        return hcl.unquote(value) if self.format == "hcl2" and hcl.is_template(value) \
            else str(value)

    def expand(self, value: Any) -> Any:
        """HCL2: ``local.x`` holding a list stands for that list."""
        for _ in range(10):
            m = self.format == "hcl2" and hcl.is_expression(value) and \
                re.fullmatch(r"local\.([A-Za-z_][A-Za-z0-9_-]*)", value[2:-1].strip())
            if not m or m.group(1) not in self.locals:
                return value
            value = self.locals[m.group(1)]
        return value

    def wrap(self, text: str) -> Any:
        """Text back into the form ``resolve`` takes."""
        return hcl.quote(text) if self.format == "hcl2" else text

    def resolve(self, value: Any) -> tuple[str | None, str, str]:
        """(the text with everything filled in, or None; a glob with ``*`` for
        what is unknown; why it is unknown)."""
        if self.format == "hcl2":
            return hcl.Scope(self.values, self.locals, f"{_ROOT}/{self.template_dir}",
                             f"{_ROOT}/{self.cwd}").value(value)
        text, glob, unknown = [], [], []
        pos = 0
        for m in _ACTION.finditer(value):
            text.append(value[pos:m.start()])
            glob.append(value[pos:m.start()])
            pos = m.end()
            action = m.group(1).strip()
            user = _USER.match(action)
            if action == "template_dir":
                filled: str | None = f"{_ROOT}/{self.template_dir}"
            elif action == "pwd":
                filled = f"{_ROOT}/{self.cwd}"
            elif user:
                filled = self.values.get(user.group(1))
                if filled is None:
                    known = user.group(1) in self.values
                    unknown.append(f"user variable {user.group(1)} " +
                                   ("is only known during the build" if known else
                                    "is not declared"))
                elif "{{" in filled:
                    filled = None
                    unknown.append(f"user variable {user.group(1)} is a template itself")
            else:
                filled = None
                unknown.append(f"{{{{{action}}}}} is only known during the build")
            text.append(filled if filled is not None else "")
            glob.append(filled if filled is not None else "*")
        text.append(value[pos:])
        glob.append(value[pos:])
        return ("".join(text) if not unknown else None), "".join(glob), "; ".join(unknown)


def base_values(template: Template, var_files: dict[str, str], image_vars: dict[str, str],
                static: dict[str, str]) -> dict[str, str | None]:
    """Variable values in Packer's order: defaults, var files, -var. A value
    that is itself a template (``{{env `X`}}``) is unknown."""
    values: dict[str, str | None] = {}
    for source in (template.variables, var_files, image_vars, static):
        for key, value in source.items():
            values[key] = value
    dynamic = {"source_ami", "digest", "branch", "commit", "dirty", "build_url", "build_time",
               "packer_version"}
    return {k: (None if k in dynamic or (v is not None and ("{{" in v or "${" in v)) else v)
            for k, v in values.items()}


def to_repo(ctx: Context, text: str, where: str, value: str, base: str | None = None) -> str:
    """A filled-in path as a repository path; a relative one from ``base``
    (default: the folder Packer runs in)."""
    if text.startswith(_ROOT + "/") or text == _ROOT:
        return ctx.repo.rel(ctx.repo.root.as_posix() + text[len(_ROOT):], where, value)
    if _ROOT in text:
        raise AmiError(f"{where} {value!r}: a path may only begin with the template's folder "
                       "or the working folder: write it as ${path.root}/... or {{template_dir}}/...")
    return ctx.repo.join(base or ctx.cwd, text, where)


def glob_to_repo(ctx: Context, glob: str, base: str | None = None) -> str | None:
    """A reference's glob as a repository glob, or None when it could be anything."""
    if glob.startswith(_ROOT + "/"):
        rel = posixpath.normpath(glob[len(_ROOT) + 1:])
    elif glob.startswith("/") or _ROOT in glob:
        return None
    else:
        rel = posixpath.normpath(posixpath.join(base or ctx.cwd, glob))
    if rel.startswith("..") or rel.strip("*/.") == "":
        return None
    return rel


# -- the walk -------------------------------------------------------------------

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


@dataclass
class Walk:
    found: Found = field(default_factory=Found)
    ansible: list[AnsibleUse] = field(default_factory=list)
    dropped_in_sandbox: list[str] = field(default_factory=list)


def walk(template: Template, ctx: Context) -> Walk:
    """Every file the template's builders, provisioners and post-processors name."""
    out = Walk()
    for f in template.files:
        out.found.add(f, "template")
    if template.format == "hcl2":
        _file_calls(template, ctx, out)
    for block in template.blocks:
        if block.kind in ("builder", "source"):
            fields = _BUILDER_FIELDS.get(block.type)
            if fields is None:
                raise AmiError(f"{template.path} {block.label}: only amazon-ebs "
                               f"{block.kind}s are supported: remove this one")
        elif block.kind == "provisioner":
            fields = _FILE_FIELDS.get(block.type)
            if fields is None:
                raise AmiError(f"{template.path} {block.label}: provisioner type "
                               f"{block.type!r} names files this tool cannot track: use shell, "
                               "shell-local, file, powershell or ansible provisioners")
            if block.type in NEEDS_COMMUNICATOR and not block.via:
                out.dropped_in_sandbox.append(block.label)
        else:
            fields = _POST_PROCESSOR_FIELDS.get(block.type)
            if fields is None:
                raise AmiError(f"{template.path} {block.label}: post-processor type "
                               f"{block.type!r} is not supported: use manifest, checksum or "
                               "shell-local")
        if block.type == "file" and (ctx.plain(block.config.get("direction")) == "download"
                                     or block.config.get("generated") in (True, "true")):
            continue        # the source is on the instance, or made during the build
        use = AnsibleUse(f"{template.path} {block.label}", block.type) \
            if block.type in ANSIBLE else None
        for name, kind in fields.items():
            if name in block.config:
                _field(template, block, name, kind, block.config[name], ctx, out, use)
        if use is not None:
            out.ansible.append(use)
    return out


def _file_calls(template: Template, ctx: Context, out: Walk) -> None:
    """HCL2 reads files with file(), templatefile(), fileset() and
    fileexists(): their paths are inputs wherever the calls are (Packer 1.6
    resolves a relative one from the template's folder)."""
    for doc in template.documents:
        data = hcl.to_hcl_form(doc.data) if doc.syntax == "json" else doc.data
        try:
            calls = list(hcl.file_calls(data))
        except AmiError as err:
            raise AmiError(f"{doc.path}: {err}") from None
        for function, argument in calls:
            _ref(ctx, out, f"{doc.path} {function}()", argument if hcl.is_template(argument)
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
    if text is None:
        out.found.unresolved.append(Unresolved(where, value, why, glob_to_repo(ctx, glob, base)))
        return
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


def extra_argument_files(args: list[str]) -> list[tuple[str, str]]:
    """Files that ansible-playbook arguments name: ``-e @vars.yml``,
    ``--extra-vars=@f``, ``-i inventory``, ``-M library``."""
    found = []
    i = 0
    while i < len(args):
        arg = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else ""
        for flags in (("-e", "--extra-vars"), ("-i", "--inventory", "--inventory-file"),
                      ("-M", "--module-path")):
            for flag in flags:
                if arg == flag:
                    value = nxt
                    i += 1
                elif arg.startswith(flag + "=") or (len(flag) == 2 and arg.startswith(flag)
                                                    and len(arg) > 2):
                    value = arg[len(flag) + 1:] if arg.startswith(flag + "=") else arg[2:]
                else:
                    continue
                if flags[0] == "-e":
                    if value.startswith("@"):
                        found.append((flag, value[1:]))
                elif flags[0] == "-i" and "," in value:
                    pass                        # a host list, not a file
                else:
                    found.extend((flag, part) for part in value.split(":") if part)
                break
            else:
                continue
            break
        i += 1
    return found


# -- the copy Packer gets --------------------------------------------------------

def effective(template: Template, *, image: str, regions: tuple[str, ...], endpoint: str | None,
              sandbox: bool, tags: dict[str, str]) -> tuple[dict[str, bytes], list[str]]:
    """The template's files as Packer gets them, with what the tree decides
    filled in: copy regions, the EC2 endpoint, provenance tags and, in the
    sandbox, no communicator and no provisioner that needs one. Returns file
    -> content, and the provisioners left out."""
    if template.format == "hcl2":
        return hcl.effective(list(template.documents), regions=regions, endpoint=endpoint,
                             sandbox=sandbox, tags=tags,
                             drop=lambda kind: kind in NEEDS_COMMUNICATOR)
    data = json.loads(json.dumps(template.data))
    for builder in data.get("builders") or []:
        if not isinstance(builder, dict) or builder.get("type") not in EBS_BUILDERS:
            continue
        if len(regions) > 1:
            builder["ami_regions"] = list(regions[1:])
        if endpoint:
            builder["custom_endpoint_ec2"] = endpoint
            builder["skip_region_validation"] = True
        for key in ("tags", "snapshot_tags"):
            if isinstance(builder.get(key), dict) or key not in builder:
                builder[key] = {**(builder.get(key) or {}), **tags}
        if sandbox:
            builder["communicator"] = "none"
    dropped = []
    if sandbox:
        kept = []
        for block, raw in zip(template.provisioners(), data.get("provisioners") or []):
            if block.type in NEEDS_COMMUNICATOR:
                dropped.append(block.label)
            else:
                kept.append(raw)
        data["provisioners"] = kept
    return {template.path: (json.dumps(data, indent=2) + "\n").encode()}, dropped


def sensitive_values(template: Template, variables: dict[str, str],
                     env: dict[str, str]) -> list[str]:
    """Values of the template's sensitive variables: Packer 1.6 prints them
    unmasked in machine-readable output, so the runner masks them itself."""
    values = list(template.secrets)
    for name in template.sensitive:
        value = variables.get(name, template.variables.get(name))
        if isinstance(value, str):
            m = _ENV_DEFAULT.match(value.strip())
            value = env.get(m.group(1) or m.group(2), "") if m else value
        if value:
            values.append(str(value))
    return values


def declared(template: Template, variables: dict[str, str]) -> dict[str, str]:
    """Only the variables the template declares: HCL2 refuses others."""
    return {k: v for k, v in variables.items() if k in template.variables}
