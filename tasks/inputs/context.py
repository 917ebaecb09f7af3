"""What a template's strings mean before the build, in either format.

Paths resolve the way Packer resolves them: relative to the folder Packer
runs in (the image's ``packer_dir``); ``{{template_dir}}`` and
``${path.root}`` to the template's own folder; ``{{user `x`}}`` and
``var.x`` from the template's defaults, the image's var files, its ``vars``
in amis.yaml and the variables the runner passes. Values only known during
the build (``{{env}}``, ``{{timestamp}}``, the parent's AMI, ...) leave a
reference unresolved.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import AmiError
from . import packer_json
from .hcl.scope import Scope
from .hcl.syntax import is_expression, is_template, quote, unquote
from .repo import Repo
from .template import Template

_ROOT = "/\x00repo"             # stands for the repository root while resolving


@dataclass(frozen=True)
class Context:
    """What a template's strings may refer to, as far as it is known before the build."""
    repo: Repo
    template_dir: str         # repository folders
    cwd: str
    values: dict[str, str | None]       # variable -> value; None: only known during the build
    format: str = "json"
    locals: dict[str, Any] = field(default_factory=dict)
    host_files: frozenset[str] = frozenset()    # absolute paths the image declares (host_inputs)

    def plain(self, value: Any) -> str:
        """A string field's text as written (HCL2: the template, unquoted)."""
        return unquote(value) if self.format == "hcl2" and is_template(value) \
            else str(value)

    def expand(self, value: Any) -> Any:
        """HCL2: ``local.x`` holding a list stands for that list."""
        for _ in range(10):
            m = self.format == "hcl2" and is_expression(value) and \
                re.fullmatch(r"local\.([A-Za-z_][A-Za-z0-9_-]*)", value[2:-1].strip())
            if not m or m.group(1) not in self.locals:
                return value
            value = self.locals[m.group(1)]
        return value

    def wrap(self, text: str) -> Any:
        """Text back into the form ``resolve`` takes."""
        return quote(text) if self.format == "hcl2" else text

    def resolve(self, value: Any) -> tuple[str | None, str, str]:
        """(the text with everything filled in, or None; a glob with ``*`` for
        what is unknown; why it is unknown)."""
        root, cwd = f"{_ROOT}/{self.template_dir}", f"{_ROOT}/{self.cwd}"
        if self.format == "hcl2":
            return Scope(self.values, self.locals, root, cwd).value(value)
        return packer_json.resolve(value, root, cwd, self.values)


def base_values(template: Template, var_files: dict[str, str],
                image_vars: dict[str, str | None],
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
    """A reference's glob as a repository glob, or None when it could be
    anything: a path whose beginning is unknown (``pathexpand(...)``,
    ``var.x``) may be absolute, outside the repository."""
    if glob.startswith("*"):
        return None
    if glob.startswith(_ROOT + "/"):
        rel = posixpath.normpath(glob[len(_ROOT) + 1:])
    elif glob.startswith("/") or _ROOT in glob:
        return None
    else:
        rel = posixpath.normpath(posixpath.join(base or ctx.cwd, glob))
    if rel.startswith("..") or rel.strip("*/.") == "":
        return None
    return rel
