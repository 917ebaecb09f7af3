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

import os
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Iterator

from ...core.diagnostics import Diagnostics
from ...core.files import read_text
from ..repo import Repo
from .loader import Unsafe, load

PURE = frozenset({"items", "indexed_items", "list", "dict", "nested", "together",
                  "subelements", "sequence", "cartesian", "flattened", "vars", "varnames",
                  "inventory_hostnames"})
FILES = frozenset({"file", "template", "fileglob"})       # a path written out, tracked
LOOKUP_NAMES = frozenset({"lookup", "query", "q"})
# A template that names none of these cannot reach a lookup: it is not parsed.
_MAY_CALL = re.compile(r"\b(?:lookup|query|q|self)\b|\b_|\.\s*_")
# Task keys whose value Ansible evaluates as a bare expression.
EXPRESSION_KEYS = frozenset({"when", "changed_when", "failed_when", "until", "that", "var"})
_BUILTIN = ("ansible.builtin.", "ansible.legacy.")


@dataclass(frozen=True)
class Allowed:
    """What this image declares: environment variables and host files."""
    env: frozenset[str]
    host: frozenset[str]


# What a template's first line may set (Ansible's "#jinja2:" header): the
# delimiters change how the rest is read, so the check reads it the same way.
_HEADER_KEYS = frozenset({"variable_start_string", "variable_end_string",
                          "block_start_string", "block_end_string",
                          "comment_start_string", "comment_end_string",
                          "line_statement_prefix", "line_comment_prefix"})
DELIMITER_ARGS = frozenset(k for k in _HEADER_KEYS if k.endswith("_string"))
DELIMITERS = "\0delimiters"         # stands for a call's own delimiters among its arguments


def _environment(header: dict[str, str] | None = None) -> Any:
    import jinja2
    return jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
                              **(header or {}))


def _header(text: str) -> dict[str, str]:
    """The Jinja2 settings a ``#jinja2:`` first line gives the template."""
    first = text.split("\n", 1)[0]
    if not first.startswith("#jinja2:"):
        return {}
    found = {}
    for pair in first[len("#jinja2:"):].split(","):
        key, _, value = pair.partition(":")
        key, value = key.strip(), value.strip()
        if key in _HEADER_KEYS and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            found[key] = value[1:-1]
    return found


def _calls(text: str) -> Iterator[tuple[str | None, list[Any], bool]]:
    """(lookup name or None, its literal arguments or None each, is a call)
    for each use of lookup/query/q in a Jinja2 template. A call that passes
    its own delimiters (``variable_start_string=``) counts as an argument
    that is not known: what it renders is not read here."""
    if not _MAY_CALL.search(text):
        return                              # no name a lookup could be reached by
    from jinja2 import nodes
    from jinja2.exceptions import TemplateSyntaxError
    try:
        tree = _environment(_header(text)).parse(text)
    except (TemplateSyntaxError, TypeError, ValueError):
        if any(name in text for name in LOOKUP_NAMES):
            yield None, [], False           # cannot be read: refused, never guessed
        return
    called = set()
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name in LOOKUP_NAMES:
            called.add(id(call.node))
            args = [a.value if isinstance(a, nodes.Const) else None for a in call.args]
            name = args[0] if args and isinstance(args[0], str) else None
            if any(k.key in DELIMITER_ARGS for k in call.kwargs) or call.dyn_kwargs is not None:
                args.append(DELIMITERS)         # its own delimiters, or keywords made at run time
            yield name, args[1:], True
    for name in tree.find_all(nodes.Name):
        if name.name in LOOKUP_NAMES and id(name) not in called:
            yield None, [], False
    # Jinja2's own objects reach every global by a name made at run time
    # (self._TemplateReference__context['look' ~ 'up']): refused outright.
    # A variable may be called __x (a role's private variables, geerlingguy's
    # shape): a name is looked up among the variables, never as an attribute.
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if isinstance(node, nodes.Getattr):
            internal = node.attr.startswith("_")
        elif isinstance(node, nodes.Getitem):       # x['__class__'] falls back to getattr
            internal = isinstance(node.arg, nodes.Const) and str(node.arg.value).startswith("_")
        else:
            internal = node.name == "self"
        if internal:
            yield None, [], False


def _problem(name: str | None, args: list[Any], allowed: Allowed, call: bool,
             folder: str) -> str | None:
    if not call:
        return ("uses lookup/query/q other than as a call with its name written out, or "
                "Jinja2's internals (self, ._name, ['_name'])")
    if name is None:
        return "calls a lookup whose name is not written out"
    short = name[len(next((p for p in _BUILTIN if name.startswith(p)), "")):]
    if short in PURE:
        return None
    if DELIMITERS in args:
        return (f"lookup('{name}') with Jinja2 delimiters of its own (variable_start_string, "
                "...), or keywords made during the build (**), which this check cannot follow")
    if short in FILES:
        if not args or any(not isinstance(a, str) for a in args):
            return f"lookup('{name}') of a path known only during the build"
        outside = [a for a in args if (posixpath.normpath(os.path.expanduser(a))
                                       not in allowed.host if a.startswith(("/", "~")) else
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


_ITEM = re.compile(r"(?<![.\w'\"])item(?![\w'\"])")
_NESTED_TASKS = frozenset({"block", "rescue", "always"})


def _literal_loop(task: dict) -> list[str] | None:
    """A task's loop when it is a list of plain names written out."""
    loops = [task[k] for k in ("loop", "with_items", "with_list") if k in task]
    if len(loops) == 1 and isinstance(loops[0], list) and loops[0] and all(
            isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", v) for v in loops[0]):
        return loops[0]
    return None


def _strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, string) of every templated string of a YAML document, keys too
    (``set_fact: {"{{ ... }}": 1}`` names a fact by what it renders)."""
    if isinstance(node, Unsafe):
        return
    if isinstance(node, str):
        if key in EXPRESSION_KEYS:
            yield key, "{{ " + node + " }}"
        elif "{{" in node or "{%" in node:
            yield key, node
    elif isinstance(node, dict):
        items = _literal_loop(node)
        for k, v in node.items():
            if isinstance(k, str) and not isinstance(k, Unsafe) and ("{{" in k or "{%" in k):
                yield k, k
            k = str(k)
            if k.startswith("with_"):
                yield k, "{{ lookup('" + k[len("with_"):] + "', " + _loop_args(v) + ") }}"
            if items is None or k in _NESTED_TASKS:
                yield from _strings(v, k)
                continue
            # A loop of names written out: item is each of them (lookup('env', item)
            # then reads variables known before the build, which env_inputs: declares).
            for text_key, text in _strings(v, k):
                for one in items:
                    yield text_key, _ITEM.sub(repr(one), text)
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
            parts.append("an_expression")
    return ", ".join(parts) or "''"


def _evaluated(rel: str, templated: frozenset[str], variables: frozenset[str]) -> str | None:
    """How Ansible reads a file it may template: "yaml", "jinja" or None.
    ``templated`` and ``variables``: files a task renders (``template``,
    ``lookup('template')``) or loads as variables (``include_vars``,
    ``vars_files``), wherever they are."""
    if rel in templated:
        return "jinja"
    if rel in variables:
        return "yaml"
    parts = rel.split("/")
    if "group_vars" in parts[:-1] or "host_vars" in parts[:-1]:
        return "yaml"                   # .yml, .yaml, .json or no extension: all loaded
    if "files" in parts[:-1]:
        return None                     # copied as it is
    if "." not in parts[-1] and len(parts) > 1 and parts[-2] in _ROLE_YAML:
        return "yaml"                   # a role's tasks/main, vars/main, ...: Ansible loads them
    if rel.endswith(".j2") or "templates" in parts[:-1]:
        return "jinja"
    if rel.endswith((".yml", ".yaml", ".json")):
        return "yaml"
    return None


_ROLE_YAML = frozenset({"tasks", "handlers", "vars", "defaults", "meta"})
_ROLE_UNREAD = ("tests", "molecule")     # a role's test playbooks (ansible-galaxy init's)

# Where a task or a play runs: only on the instance Packer built. A
# connection or host other than that runs on the build host (or elsewhere),
# which no digest sees.
_CONNECTIONS = frozenset({"ssh", "paramiko", "smart", "winrm", "psrp",
                          "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh"})
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _elsewhere(node: Any) -> tuple[str, Any] | None:
    """The first key of a YAML document that makes Ansible run something
    on another host than the instance: (key, value)."""
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending += item
            continue
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            if key == "local_action":
                return key, value
            if key == "delegate_to" and str(value).replace(" ", "") != "{{inventory_hostname}}":
                return key, value
            if key in ("connection", "ansible_connection") and isinstance(value, str) \
                    and value not in _CONNECTIONS:
                return key, value
            if key in ("hosts", "ansible_host") and any(
                    "{{" in str(h) or str(h).strip() in _LOCAL_HOSTS
                    for h in (value if isinstance(value, list) else
                              str(value).replace(",", ":").split(":"))):
                return key, value
            pending.append(value)
    return None


def _keys(node: Any, wanted: frozenset[str]) -> str | None:
    """The first of ``wanted`` used as a key anywhere in a YAML document."""
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            hit = next((k for k in item if k in wanted), None)
            if hit:
                return hit
            pending += item.values()
        elif isinstance(item, list):
            pending += item
    return None


def check(repo: Repo, files: list[str], allowed: Allowed,
          templated: frozenset[str] = frozenset(),
          variables: frozenset[str] = frozenset(),
          roles: frozenset[str] = frozenset()) -> None:
    """Refuse, in one line naming the file, what a lookup would read from
    the build host, and a task or play that would run anywhere but on the
    instance. ``files``: those an Ansible run reads. Every problem is named."""
    problems = Diagnostics()
    unread = tuple(f"{role}/{sub}/" for role in roles for sub in _ROLE_UNREAD)
    for rel in sorted(files):
        if rel.startswith(unread) and rel not in templated and rel not in variables:
            continue                    # a role's own tests: no play of a build reads them
        kind = _evaluated(rel, templated, variables)
        if kind is None:
            continue
        if kind == "jinja":
            texts: list[tuple[str, str]] = [("", read_text(repo.path(rel), "template", rel))]
        else:
            # a file that is not YAML: Ansible fails on it if it reads it at all
            data = load(repo, rel, "Ansible YAML", unparsable=True)
            delimiters = _keys(data, DELIMITER_ARGS)
            if delimiters:
                problems.add(f"{rel}: {delimiters}: changes Jinja2's delimiters for a "
                             "template, which this check cannot follow: keep Ansible's "
                             "{{ }} and {% %}")
                continue
            there = _elsewhere(data)
            if there:
                problems.add(f"{rel}: {there[0]}: {str(there[1])[:60]!r} runs on another "
                             "host than the instance Packer built (the build host, for "
                             "localhost), which no digest sees: do it on the instance, or in a "
                             "shell-local provisioner whose inputs are declared")
            texts = list(_strings(data))
        for key, text in texts:
            for name, args, call in _calls(text):
                problem = _problem(name, args, allowed, call, posixpath.dirname(rel))
                if problem:
                    shown = text.strip().replace("\n", " ")
                    problems.add(f"{rel}{' ' + key if key else ''}: {problem}: "
                                 f"{shown[:80]!r}: pass the value as a variable (a var "
                                 "file, or -e from a Packer variable)")
    problems.check()
