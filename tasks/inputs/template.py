"""A Packer template as this tool sees it, JSON or HCL2: its files, its
variables and its blocks (builders or sources, provisioners,
post-processors). ``packer_json`` and ``hcl.config`` read the two formats
into it; ``formats`` chooses between them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .hcl.dynamic import Dynamic
from .hcl.parse import Document
from .repo import Repo

# A default read from the environment: {{env `X`}} (JSON) or ${env("X")} (HCL2).
# A value read at build time from a secret store: {{vault `p` `k`}}, vault("p", "k"),
# and aws_secretsmanager likewise.
_SECRET_STORE = re.compile(r"(?:\{\{\s*|\b)(vault|aws_secretsmanager|consul_key)"
                           r"(?:\s*\\?[`\"]|\s*\()")        # (searched in JSON text)
# An environment variable read anywhere in a value. HCL2: env("X"). Go
# templates (JSON templates and their var files): env in any action, in any
# spelling Go accepts ({{env `X`}}, {{- env "X" -}}, {{ (env `X`) }},
# {{ `X` | env }}, {{ print (env `X`) }}); a read whose name is not a literal
# is None. Every use of the name env counts, so no spelling goes unseen.
_LITERAL = r'(`[^`]*`|"(?:[^"\\]|\\.)*")'
_GO_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_GO_STRINGS = re.compile(_LITERAL)
_GO_ENV_ANY = re.compile(r"(?<![.$\w])env(?!\w)")
# env applied to a literal: env "X", or the whole action "X" | env
_GO_ENV_NAMED = re.compile(r"(?<![.$\w|])env\s+" + _LITERAL + r"|^[\s(-]*" + _LITERAL
                           + r"\s*\|\s*env[\s)-]*$")
_HCL_ENV_ANY = re.compile(r"(?<![.\w])env\s*\(")
_HCL_ENV_NAMED = re.compile(r'(?<![.\w])env\s*\(\s*"([^"$%]*)"\s*\)')


def env_names(text: str) -> list[str | None]:
    """The environment variables a value reads (HCL2's ``env()`` or a Go
    template's ``env``, anywhere in it); None for a read whose name is not
    a literal, which cannot be declared."""
    names: list[str | None] = []
    for action in _GO_ACTION.findall(text):
        found = [(a or b)[1:-1] for a, b in _GO_ENV_NAMED.findall(action)]
        uses = len(_GO_ENV_ANY.findall(_GO_STRINGS.sub('""', action)))
        names += found + [None] * max(uses - len(found), 0)
    outside = _GO_ACTION.sub("", text)
    found_hcl: list[str | None] = list(_HCL_ENV_NAMED.findall(outside))
    names += found_hcl + [None] * max(len(_HCL_ENV_ANY.findall(outside)) - len(found_hcl), 0)
    return names


_ENV_DEFAULT = re.compile(r"^(?:\{\{\s*env\s*`([^`]+)`\s*\}\}|\$\{env\(\"([^\"]+)\"\)\})$")


@dataclass(frozen=True)
class Block:
    """One builder, provisioner or post-processor of a template."""
    kind: str            # builder, provisioner, post-processor
    index: int           # 1-based, in the template's order
    type: str
    config: dict
    via: str = ""        # HCL2: " override <source>", the fields one source sees
    each: Dynamic | None = None     # HCL2: the dynamic block this is the content of
    name: str = ""       # a source's (type.name) or builder's name: what -only selects
    sources: tuple[str, ...] | None = None     # the sources it runs for (None: every one)

    @property
    def label(self) -> str:
        dynamic = "dynamic " if self.each is not None else ""
        return f"{dynamic}{self.kind} {self.index} ({self.type}){self.via}"


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
    documents: tuple[Document, ...] = field(repr=False, default=())   # HCL2: its files
    locals: dict[str, Any] = field(repr=False, default_factory=dict)
    required_version: str | None = None
    newer: tuple[tuple[str, str], ...] = ()  # (file, what) that needs Packer 1.7 or newer
    required: tuple[str, ...] = ()           # variables with no default: something must set them
    builds: tuple[tuple[str, ...], ...] = ()  # HCL2: each build block's sources (type.name)

    def env_reads(self) -> list[tuple[str, str | None]]:
        """(variable, environment variable) for each default read from the
        environment, anywhere in it (None: a name not known before the build)."""
        return [(name, env) for name, value in sorted(self.variables.items())
                if isinstance(value, str) for env in env_names(value)]

    def secret_stores(self) -> list[str]:
        """The secret-store functions the template calls (vault, aws_secretsmanager)."""
        text = "".join(json.dumps(d.data) for d in self.documents) + json.dumps(self.data)
        return sorted({m.group(1) for m in _SECRET_STORE.finditer(text)})

    @property
    def required_plugins(self) -> bool:
        return any(what.startswith("packer {") for _, what in self.newer)

    def provisioners(self) -> list[Block]:
        return [b for b in self.blocks if b.kind == "provisioner"]


# Reads one HCL2 file: (repository, path, image) -> its parsed form.
Parse = Callable[[Repo, str, str], Document]


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


def declared(template: Template, variables: dict[str, Any],
             var_files: Mapping[str, object]) -> dict[str, Any]:
    """Only the variables the template declares: HCL2 refuses others. A JSON
    template also reads ``{{user}}`` variables that only its var files set."""
    known = set(template.variables) | (set(var_files) if template.format == "json" else set())
    return {k: v for k, v in variables.items() if k in known}
