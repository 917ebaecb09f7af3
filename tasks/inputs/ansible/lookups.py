"""What Ansible reads on the build host through its templates: an allow-list.

A lookup runs where ansible-playbook runs, and what it returns goes into
the image, so a lookup is allowed only when what it reads is known before
the build and tracked:

- pure lookups and loops (``items``, ``dict``, ``sequence``, ``vars``, ...);
- ``file`` and ``template`` of a path written out, inside the repository
  (the walk tracks it), or outside it and declared under ``host_inputs:``;
- ``env`` of a variable written out and declared under ``env_inputs:``.

Every other lookup or ``with_*`` loop (``pipe``, ``lines``, ``url``,
``ini``, ``password``, ``fileglob`` outside the repository, ``unvault``,
a collection's lookups, ...) is refused, and so is any use of ``lookup``,
``query`` or ``q`` that is not a call with its name written out (an alias,
``lookup('en' ~ 'v')``). Templates are read as Jinja2 parses them, so no
spelling (``lookup ('env', ...)``, ``query``, ``q``) slips past.

Checked wherever Ansible evaluates templates: playbooks and task files,
role ``defaults/``, ``vars/``, ``meta/``, ``handlers/`` and ``templates/``,
``group_vars/`` and ``host_vars/``, vars files, and every ``.j2`` file.
Files under a ``files/`` folder are copied as they are, and ``!unsafe``
values are never templated: neither is read.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any, Iterator

from ...core.errors import AmiError
from ...core.files import read_text
from ..repo import Repo
from .loader import Unsafe, load

PURE = frozenset({"items", "indexed_items", "list", "dict", "nested", "together",
                  "subelements", "sequence", "cartesian", "flattened", "vars", "varnames",
                  "inventory_hostnames"})
FILES = frozenset({"file", "template", "fileglob"})       # a path written out, tracked
LOOKUP_NAMES = frozenset({"lookup", "query", "q"})
# Task keys whose value Ansible evaluates as a bare expression.
EXPRESSION_KEYS = frozenset({"when", "changed_when", "failed_when", "until", "that"})
_BUILTIN = ("ansible.builtin.", "ansible.legacy.")


@dataclass(frozen=True)
class Allowed:
    """What this image declares: environment variables and host files."""
    env: frozenset[str]
    host: frozenset[str]


def _environment() -> Any:
    import jinja2
    return jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])


def _calls(text: str) -> Iterator[tuple[str | None, list[Any], bool]]:
    """(lookup name or None, its literal arguments or None each, is a call)
    for each use of lookup/query/q in a Jinja2 template."""
    from jinja2 import nodes
    from jinja2.exceptions import TemplateSyntaxError
    try:
        tree = _environment().parse(text)
    except TemplateSyntaxError:
        if any(name in text for name in LOOKUP_NAMES):
            yield None, [], False           # cannot be read: refused, never guessed
        return
    called = set()
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name in LOOKUP_NAMES:
            called.add(id(call.node))
            args = [a.value if isinstance(a, nodes.Const) else None for a in call.args]
            name = args[0] if args and isinstance(args[0], str) else None
            yield name, args[1:], True
    for name in tree.find_all(nodes.Name):
        if name.name in LOOKUP_NAMES and id(name) not in called:
            yield None, [], False


def _problem(name: str | None, args: list[Any], allowed: Allowed, call: bool,
             folder: str) -> str | None:
    if not call:
        return "uses lookup/query/q other than as a call with its name written out"
    if name is None:
        return "calls a lookup whose name is not written out"
    short = name[len(next((p for p in _BUILTIN if name.startswith(p)), "")):]
    if short in PURE:
        return None
    if short in FILES:
        if not args or any(not isinstance(a, str) for a in args):
            return f"lookup('{name}') of a path known only during the build"
        outside = [a for a in args if (posixpath.normpath(a) not in allowed.host
                                       if a.startswith("/") else
                                       posixpath.normpath(posixpath.join(folder, a))
                                       .startswith(".."))]
        if outside:
            return (f"lookup('{name}', '{outside[0]}') reads the build host outside the "
                    "repository (declare it under host_inputs:, or copy it into the repository)")
        return None
    if short == "env":
        names = [a for a in args if isinstance(a, str)]
        if len(names) != len(args) or not names:
            return "lookup('env') of a variable named only during the build"
        undeclared = [n for n in names if n not in allowed.env]
        if undeclared:
            return (f"lookup('env', '{undeclared[0]}') reads the build host's environment "
                    "(declare it under env_inputs:, and its value's hash is in the digest)")
        return None
    return f"lookup('{name}') reads the build host or the network, which no digest sees"


def _strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, string) of every templated string of a YAML document."""
    if isinstance(node, Unsafe):
        return
    if isinstance(node, str):
        if key in EXPRESSION_KEYS:
            yield key, "{{ " + node + " }}"
        elif "{{" in node or "{%" in node:
            yield key, node
    elif isinstance(node, dict):
        for k, v in node.items():
            k = str(k)
            if k.startswith("with_"):
                yield k, "{{ lookup('" + k[len("with_"):] + "', " + _loop_args(v) + ") }}"
            yield from _strings(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)


def _loop_args(value: Any) -> str:
    """A ``with_<lookup>`` loop's terms as the call's arguments: literals
    stay literal, a template stays an expression."""
    terms = value if isinstance(value, list) else [value]
    parts = []
    for term in terms:
        if isinstance(term, str) and "{{" not in term and "{%" not in term:
            parts.append(repr(term))
        else:
            parts.append("__expression__")
    return ", ".join(parts) or "''"


def _evaluated(rel: str) -> str | None:
    """How Ansible reads a file it may template: "yaml", "jinja" or None."""
    parts = rel.split("/")
    if "files" in parts[:-1]:
        return None                     # copied as it is
    if rel.endswith(".j2") or "templates" in parts[:-1]:
        return "jinja"
    if rel.endswith((".yml", ".yaml")):
        return "yaml"
    return None


def check(repo: Repo, files: list[str], allowed: Allowed) -> None:
    """Refuse, in one line naming the file, what a lookup would read from
    the build host. ``files``: those an Ansible run reads."""
    for rel in sorted(files):
        kind = _evaluated(rel)
        if kind is None:
            continue
        if kind == "jinja":
            texts: list[tuple[str, str]] = [("", read_text(repo.path(rel), "template", rel))]
        else:
            # a file that is not YAML: Ansible fails on it if it reads it at all
            texts = list(_strings(load(repo, rel, "Ansible YAML", unparsable=True)))
        for key, text in texts:
            for name, args, call in _calls(text):
                problem = _problem(name, args, allowed, call, posixpath.dirname(rel))
                if problem:
                    shown = text.strip().replace("\n", " ")
                    raise AmiError(f"{rel}{' ' + key if key else ''}: {problem}: "
                                   f"{shown[:80]!r}: pass the value as a variable (a var "
                                   "file, or -e from a Packer variable)")
