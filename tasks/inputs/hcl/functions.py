"""HCL2's functions that read files: ``file()``, ``templatefile()``,
``fileset()`` and ``fileexists()``. Wherever a call is, its path is an input."""

from __future__ import annotations

import re
from typing import Any, Iterator

from ...core.errors import AmiError
from .syntax import end_of, is_template, parts, unquote

_FILE_CALL = re.compile(r"\b(file|templatefile|fileset|fileexists)\s*\(")


def file_calls(raw: Any) -> Iterator[tuple[str, str]]:
    """(function, first argument) of every file(), templatefile(), fileset()
    and fileexists() call in a value: in its expressions, at any depth of a
    list or object, keys included."""
    if isinstance(raw, list):
        for item in raw:
            yield from file_calls(item)
    elif isinstance(raw, dict):
        for key, item in raw.items():
            yield from _calls_in(key if "${" in key else f"${{{key}}}")
            yield from file_calls(item)
    elif isinstance(raw, str):
        yield from _calls_in(raw)


def _calls_in(value: str) -> Iterator[tuple[str, str]]:
    text = unquote(value) if is_template(value) else value
    for expr, is_expr in parts(text):
        if not is_expr:
            continue
        for m in _FILE_CALL.finditer(expr):
            end = end_of(expr, m.end(), ",)")
            end = end if end >= 0 else len(expr)
            if m.group(1) == "fileset" and expr[end:end + 1] == ",":
                after = end_of(expr, end + 1, ",)")
                pattern = expr[end + 1:after if after >= 0 else len(expr)]
                if ".." in pattern:
                    raise AmiError(f"fileset({expr[m.end():end].strip()}, {pattern.strip()}): "
                                   "the pattern leaves the folder: put the folder in the "
                                   "first argument")
            yield m.group(1), expr[m.end():end].strip()
