"""HCL2 values as python-hcl2 keeps them: every value as its HCL source
text. ``"\\"t3.small\\""`` is a quoted template, ``"${var.region}"`` a bare
expression, numbers and booleans are themselves. This module reads and
writes that form: quoting, escapes, heredocs, and where interpolations
begin and end (outside brackets and strings)."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, Iterator

_OPEN = re.compile(r"\$\$\{|%%\{|\$\{|%\{")       # escapes first: $${ and %%{ are literal
_ESCAPES = MappingProxyType({"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"})


def unquote(text: str) -> str:
    """A quoted HCL template's text as HCL2's JSON syntax holds it: escapes
    undone in the literal parts only (``${...}`` and ``%{...}`` kept as
    written, and ``$${``); a heredoc's lines, each ending in a newline."""
    body = text[1:-1]
    if body.startswith("<<"):
        return _heredoc(body)
    return "".join(raw if interpolation else _unescape(raw) for raw, interpolation in _pieces(body))


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt in "uU":
                width = 4 if nxt == "u" else 8
                try:
                    out.append(chr(int(text[i + 2:i + 2 + width], 16)))
                    i += 2 + width
                    continue
                except ValueError:
                    pass
        out.append(c)
        i += 1
    return "".join(out)


def _pieces(template: str) -> Iterator[tuple[str, bool]]:
    """A template as written, in pieces: literal text (``$${`` and ``%%{``
    escapes kept) and whole ``${...}`` / ``%{...}`` interpolations. An
    interpolation that never closes is literal text."""
    i = 0
    for m in _OPEN.finditer(template):
        if m.start() < i or m.group() in ("$${", "%%{"):
            continue
        end = _closing(template, m.end())
        if end < 0:
            break
        if m.start() > i:
            yield template[i:m.start()], False
        yield template[m.start():end + 1], True
        i = end + 1
    if i < len(template):
        yield template[i:], False


def _heredoc(body: str) -> str:
    """``<<EOT`` / ``<<-EOT`` text as python-hcl2 keeps it: the lines between
    the markers, each with its newline; ``<<-`` takes off the common indent."""
    first, _, rest = body.partition("\n")
    lines = rest.split("\n")[:-1]
    if first.startswith("<<-"):
        indent = min((len(line) - len(line.lstrip(" \t")) for line in lines if line.strip()),
                     default=0)
        lines = [line[indent:] for line in lines]
    return "".join(line + "\n" for line in lines)


def quote(text: str) -> str:
    """Template text back into a quoted HCL template (what ``unquote`` undoes)."""
    return '"' + "".join(raw if interpolation else _escape(raw)
                         for raw, interpolation in _pieces(text)) + '"'


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def is_template(value: Any) -> bool:
    return isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"'


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}") \
        and _closing(value, 2) == len(value) - 1


def _closing(text: str, start: int) -> int:
    """Index of the ``}`` closing the interpolation opened before ``start``."""
    return end_of(text, start, "}")


def end_of(text: str, start: int, stops: str) -> int:
    """Index of the first of ``stops`` from ``start`` outside brackets and
    quoted strings; -1 if there is none."""
    depth, i, in_string = 0, start, False
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif depth == 0 and c in stops:
            return i
        elif c in "({[":
            depth += 1
        elif c in ")}]" and depth:
            depth -= 1
        i += 1
    return -1


def parts(template: str) -> Iterator[tuple[str, bool]]:
    """A template's literal text and its ``${...}`` interpolations, in order.
    A ``%{...}`` directive comes as an expression of its own (``%{if x}``),
    which nothing resolves."""
    literal = ""
    for raw, interpolation in _pieces(template):
        if not interpolation:
            literal += raw.replace("$${", "${").replace("%%{", "%{")
            continue
        if literal:
            yield literal, False
        literal = ""
        inner = raw[2:-1].strip()
        yield (inner if raw.startswith("$") else f"%{{{inner}}}"), True
    if literal:
        yield literal, False


def literal(value: Any) -> str | None:
    """A value's text when it is a literal string, number or bool; else None
    (an expression, a list, an object: not a path known before the build)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if is_template(value) and "${" not in value and "%{" not in value:
        return unquote(value)
    return None


def to_hcl_form(value: Any) -> Any:
    """A JSON-syntax value in python-hcl2's form: strings become quoted templates."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return [to_hcl_form(v) for v in value]
    if isinstance(value, dict):
        return {k: to_hcl_form(v) for k, v in value.items()}
    return value


def texts(value: Any) -> list[str]:
    """Every string in a value: itself, or the leaves of a list or map."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in texts(v)]
    return []
