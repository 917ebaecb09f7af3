"""Where a block of a template, or one of its fields, is written: the file
and line a problem names. Looked up only when there is a problem to name;
the parsers keep no positions, so this reads the files' text again."""

from __future__ import annotations

import os
import re
import stat
from types import MappingProxyType

from .repo import Repo
from .template import Block, Template

_HCL_BLOCK = re.compile(r'^\s*(source|build|provisioner|post-processor|post-processors|variable'
                        r'|locals|dynamic|packer|data)\b')
_MOST_BYTES = 4 * 1024 * 1024
_JSON_SECTION = MappingProxyType({"builder": "builders", "provisioner": "provisioners",
                                  "post-processor": "post-processors"})


def _lines(repo: Repo, path: str) -> list[str]:
    """A file's lines; none for what is not a regular file of a sane size (a
    FIFO among the inputs must not hang the naming of its own problem)."""
    try:
        st = os.stat(repo.path(path))
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MOST_BYTES:
            return []
        return repo.path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _field(lines: list[str], start: int, field: str, stop: re.Pattern[str] | None) -> int:
    """The line of ``field = …`` (or ``"field":``) from ``start`` on, before
    the next block; ``start`` when it is not found there."""
    pattern = re.compile(rf'^\s*"?{re.escape(field)}"?\s*[=:{{]')
    for n in range(start + 1, len(lines)):
        if stop is not None and stop.match(lines[n]):
            break
        if pattern.match(lines[n]):
            return n
    return start


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _json_field(lines: list[str], at: int, field: str) -> int:
    """The line of ``"field":`` in the JSON object whose ``"type"`` is on
    line ``at`` (keys of one object share an indentation); ``at`` if none."""
    depth = _indent(lines[at])
    start = next((n for n in range(at, -1, -1) if _indent(lines[n]) < depth), 0)
    end = next((n for n in range(at, len(lines)) if _indent(lines[n]) < depth), len(lines))
    key = re.compile(rf'^\s*"{re.escape(field)}"\s*:')
    return next((n for n in range(start, end)
                 if _indent(lines[n]) == depth and key.match(lines[n])), at)


def _hcl_header(block: Block) -> re.Pattern[str]:
    if block.each is not None:
        return re.compile(rf'^\s*dynamic\s+"{re.escape(block.kind)}"')
    if block.kind == "source":
        kind, _, name = block.name.partition(".")
        return re.compile(rf'^\s*source\s+"?{re.escape(kind)}"?\s+"?{re.escape(name)}"?')
    return re.compile(rf'^\s*{re.escape(block.kind)}\s+"')


def located(repo: Repo, template: Template, block: Block | None = None,
            field: str | None = None) -> str:
    """``file:line`` of the block (or of its field), or the template's path
    when the line cannot be found."""
    if block is None:
        return template.files[0] if len(template.files) == 1 else template.path
    if template.format == "json":
        lines = _lines(repo, template.path)
        section = next((n for n, line in enumerate(lines)
                        if re.match(rf'^\s*"{_JSON_SECTION.get(block.kind, "")}"\s*:', line)), None)
        if section is None:
            return template.path
        types = [n for n in range(section, len(lines)) if re.match(r'^\s*"type"\s*:', lines[n])]
        if len(types) < block.index:
            return template.path
        at = types[block.index - 1]
        if field:
            at = _json_field(lines, at, field)
        return f"{template.path}:{at + 1}"
    header = _hcl_header(block)
    wanted = 1 if block.kind == "source" and block.each is None else block.index
    for path in (f for f in template.files if f.endswith(".pkr.hcl")):
        lines = _lines(repo, path)
        for n, line in enumerate(lines):
            if header.match(line):
                wanted -= 1
                if wanted == 0:
                    return f"{path}:{(_field(lines, n, field, _HCL_BLOCK) if field else n) + 1}"
    return template.path


def located_text(repo: Repo, template: Template, pattern: str) -> str:
    """``file:line`` of the first line of the template's files that matches
    ``pattern`` (a regular expression), or the template's path."""
    found = re.compile(pattern)
    for path in (f for f in template.files if f.endswith((".pkr.hcl", ".json"))):
        for n, line in enumerate(_lines(repo, path)):
            if found.search(line):
                return f"{path}:{n + 1}"
    return template.path


def located_variable(repo: Repo, template: Template, name: str) -> str:
    """``file:line`` where the template declares variable ``name``."""
    if template.format == "json":
        return located_text(repo, template, rf'^\s*"{re.escape(name)}"\s*:')
    return located_text(repo, template, rf'^\s*variable\s+"?{re.escape(name)}"?')


_PROBLEM_PATH = re.compile(r"^([^\s:'\"]+?)(:?) (.*)$")
_QUOTED = re.compile(r"'([^']{3,})'|\"([^\"]{3,})\"")


def with_line(repo: Repo, problem: str, within: tuple[int, int] | None = None) -> str:
    """A problem that begins with a file of the repository (a playbook, a
    role's file), with the line it points at: the first line holding what
    it quotes, else the word after the path. ``within``: the lines (first,
    last) of what the problem is about, a task or a play, searched alone,
    and the first of them when nothing is found there. Unchanged when
    nothing is found."""
    m = _PROBLEM_PATH.match(problem)
    if not m or not repo.exists(m.group(1)) or repo.is_dir(m.group(1)):
        return problem
    path, rest = m.group(1), m.group(3)
    first, last = within or (1, None)
    lines = _lines(repo, path)[first - 1:last]
    needles = [a or b for a, b in _QUOTED.findall(rest)]
    needles += [w.strip("':") for w in rest.split()[:1]]
    for needle in needles:
        probe = needle.strip()[:40]
        if len(probe) < 3:
            continue
        for n, line in enumerate(lines, first):
            if probe in line:
                return f"{path}:{n}: {rest}"
    return f"{path}:{first}: {rest}" if within else problem
