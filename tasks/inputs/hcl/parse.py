"""HCL2 configuration files: a ``.pkr.hcl`` file, a ``.pkr.json`` file
(HCL2's JSON syntax) or a folder of them (Packer's unit of configuration),
read and parsed. ``.pkr.hcl`` is parsed with python-hcl2; a run parses each
file once, and keeps the parsed form by content in ``.amis/hcl/``
(:class:`ParseCache`), so a no-op run needs no parser."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from ...core.errors import AmiError
from ...core.files import check_name, json_object, read_text, write_atomic
from ..repo import Repo
from .syntax import literal, to_hcl_form

SUFFIXES = (".pkr.hcl", ".pkr.json")
VAR_FILE_SUFFIXES = (".pkrvars.hcl", ".pkrvars.json")
AUTO_VAR_FILES = (".auto.pkrvars.hcl", ".auto.pkrvars.json")


def is_hcl(path: str) -> bool:
    return path.endswith(SUFFIXES)


@dataclass(frozen=True)
class Document:
    """One file of the configuration, parsed, in its own syntax."""
    path: str
    syntax: str                 # "hcl" or "json"
    data: dict


def files_of(repo: Repo, path: str, image: str) -> list[str]:
    """The configuration's files: the file itself, or a folder's *.pkr.hcl,
    *.pkr.json and *.auto.pkrvars.hcl / .json (Packer reads those by itself)."""
    if not repo.is_dir(path):
        return [path]
    names = sorted(p.name for p in repo.path(path).iterdir() if p.is_file())
    for name in names:
        check_name(f"{path}/{name}")
    found = [f"{path}/{n}" for n in names if n.endswith(SUFFIXES + AUTO_VAR_FILES)]
    for f in found:
        if f.endswith(".pkr.hcl") and json_name(f) in found:
            raise AmiError(f"{json_name(f)}: the name the build gives {f}'s JSON-syntax copy: "
                           "rename it")
    if not any(f.endswith(SUFFIXES) for f in found):
        raise AmiError(f"{path} (image {image}): a folder template needs *.pkr.hcl or *.pkr.json "
                       "files")
    return found


class Unreadable(AmiError):
    """An HCL2 file this tool's parser (python-hcl2) cannot read: a syntax
    mistake, or a construct it does not know. Packer's own parser decides
    which (``doit validate``)."""


def parse(repo: Repo, rel: str, image: str = "") -> Document:
    return parse_text(rel, *source(repo, rel, image))


def source(repo: Repo, rel: str, image: str = "") -> tuple[str, str]:
    """A configuration file's text, and how errors name it."""
    shown = f"{rel} (image {image})" if image else rel
    return read_text(repo.path(rel), "template", shown), shown


def parse_text(rel: str, text: str, shown: str) -> Document:
    if rel.endswith(".json"):
        return Document(rel, "json", json_object(text, shown, "an HCL2 JSON configuration"))
    import hcl2
    from hcl2.utils import SerializationOptions
    try:
        data = hcl2.loads(text.removeprefix("\ufeff"), serialization_options=SerializationOptions(
            preserve_heredocs=True, with_comments=False))
    except Exception as err:           # python-hcl2 raises lark's many error types
        found = syntax_error(text)
        if found:       # where Packer's parser would point, not where lark gave up
            line, what = found
            raise Unreadable(f"{rel}:{line}: {what}: fix it") from None
        # The file's own mistake: the same for every image that reads it, so named once.
        packer = "packer validate with -var-file=" + rel if rel.endswith(".pkrvars.hcl") \
            else "`doit validate`, which hands it to Packer's own parser,"
        raise Unreadable(f"{_where(rel, err)}: not valid HCL2, or a construct python-hcl2 "
                         f"cannot read{_near(err)}: {packer} says which; if Packer reads it, "
                         "write the construct another way") from None
    return Document(rel, "hcl", data)


def _where(rel: str, err: Exception) -> str:
    """``file:line`` where lark gave up (its exceptions carry line and column)."""
    line = getattr(err, "line", None)
    return f"{rel}:{line}" if isinstance(line, int) and line > 0 else rel


def _near(err: Exception) -> str:
    """What lark stopped at, shortly: its token, else its message's first line."""
    token = getattr(err, "token", None)
    text = str(token) if token is not None else str(err)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not first:
        return ""
    column = getattr(err, "column", None)
    at = f"column {column}, " if isinstance(column, int) and column > 0 else ""
    return f" ({at}at {first[:40] + ('…' if len(first) > 40 else '')!r})"


def syntax_error(text: str) -> tuple[int, str] | None:
    """The first plain syntax mistake of an HCL2 file, at the line HCL's own
    parser names: a quoted string not closed on its line, a ``}`` that closes
    nothing, a block never closed (at its opening line). None: none of these
    (python-hcl2's own message is then all there is)."""
    stack: list[tuple[str, int]] = []     # open {, ${ / %{ and strings: (kind, line)
    heredoc: str | None = None
    lines = text.splitlines()
    n = 0
    while n < len(lines):
        line, i = lines[n], 0
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            n += 1
            continue
        while i < len(line):
            c, two = line[i], line[i:i + 2]
            in_string = bool(stack) and stack[-1][0] == '"'
            if in_string:
                if c == "\\":
                    i += 2
                    continue
                if two in ("${", "%{"):
                    stack.append(("${", n + 1))
                    i += 2
                    continue
                if c == '"':
                    stack.pop()
                i += 1
                continue
            if c == "#" or two == "//":
                break
            if two == "/*":
                end = line.find("*/", i + 2)
                while end < 0 and n + 1 < len(lines):
                    n += 1
                    line, end = lines[n], lines[n].find("*/")
                i = end + 2 if end >= 0 else len(line)
                continue
            if two == "<<" and (m := re.match(r"<<-?([A-Za-z_][A-Za-z0-9_]*)\s*$", line[i:])):
                heredoc = m.group(1)
                break
            if c == '"':
                stack.append(('"', n + 1))
            elif c == "{":
                stack.append(("{", n + 1))
            elif c == "}":
                if not stack:
                    return n + 1, "this } closes no block"
                stack.pop()
            i += 1
        if stack and stack[-1][0] == '"':
            return stack[-1][1], "a quoted string is not closed on its line"
        n += 1
    if stack:
        at = next((a for k, a in stack if k == "{"), stack[0][1])
        return at, "this block is never closed (a } is missing after it)"
    return None


def json_name(path: str) -> str:
    """Where the JSON-syntax copy of a ``.pkr.hcl`` file goes (beside it)."""
    return path[:-len(".pkr.hcl")] + ".hcl.pkr.json" if path.endswith(".pkr.hcl") else path


def var_file_values(repo: Repo, rel: str, image: str = "") -> dict[str, str | None]:
    """A ``.pkrvars.hcl`` (or ``.json``) var file's values: None for one that
    is not a literal (it is then only known during the build)."""
    doc = parse(repo, rel, image)
    values = doc.data if doc.syntax == "json" else {
        k: v for k, v in doc.data.items() if k != "__is_block__"}
    return {key: literal(to_hcl_form(value) if doc.syntax == "json" else value)
            for key, value in values.items()}


class ParseCache:
    """Parses each file once per run, and once per content on this machine:
    the parsed forms are kept in ``folder`` per python-hcl2 version."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.RLock()
        self._parsed: dict[str, Document] = {}

    def __call__(self, repo: Repo, rel: str, image: str = "") -> Document:
        with self._lock:
            if rel not in self._parsed:
                self._parsed[rel] = self._parse(repo, rel, image)
            return self._parsed[rel]

    def _parse(self, repo: Repo, rel: str, image: str) -> Document:
        text, shown = source(repo, rel, image)
        if rel.endswith(".json"):
            return parse_text(rel, text, shown)
        key = hashlib.sha256(f"{version('python-hcl2')}\0{text}".encode()).hexdigest()
        kept = self.folder / f"{key}.json"
        try:
            return Document(rel, "hcl", json.loads(kept.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass
        document = parse_text(rel, text, shown)
        write_atomic(kept, json.dumps(document.data).encode(), durable=False)
        return document
