"""What an HCL2 expression means before the build: ``var.x`` from defaults,
var files and ``-var``, ``local.x``, ``path.root`` (the configuration's
folder) and ``path.cwd`` (the folder Packer runs in). Anything else is only
known during the build."""

from __future__ import annotations

import re
from typing import Any

from .syntax import is_expression, is_template, parts, unquote

_REF = re.compile(r"^(var|local|path)\.([A-Za-z_][A-Za-z0-9_-]*)$")


class Scope:
    """What an expression may refer to before the build."""

    def __init__(self, values: dict[str, str | None], locals_: dict[str, Any],
                 root: str, cwd: str) -> None:
        self.values = values
        self.locals = locals_
        self.paths = {"root": root, "cwd": cwd}
        self._depth = 0

    def value(self, raw: Any) -> tuple[str | None, str, str]:
        """(the text, or None if it is only known during the build; a glob
        with ``*`` for the unknown parts; why it is unknown)."""
        if isinstance(raw, bool):
            return str(raw).lower(), str(raw).lower(), ""
        if isinstance(raw, (int, float)):
            return str(raw), str(raw), ""
        if is_expression(raw):
            return self.expression(raw[2:-1].strip())
        if is_template(raw):
            return self.template(unquote(raw))
        return None, "*", ("a list or an object is not one path" if isinstance(raw, (list, dict))
                           else f"{raw!r} is only known during the build")

    def template(self, text: str) -> tuple[str | None, str, str]:
        out, glob, why = [], [], []
        for piece, expr in parts(text):
            if not expr:
                out.append(piece)
                glob.append(piece)
                continue
            value, g, w = self.expression(piece)
            out.append(value or "")
            glob.append(g)
            if value is None:
                why.append(w)
        return ("".join(out) if not why else None), "".join(glob), "; ".join(why)

    def expression(self, expr: str) -> tuple[str | None, str, str]:
        if is_template(expr):
            return self.template(unquote(expr))
        m = _REF.match(expr)
        if not m:
            shown = expr if expr.startswith("%{") else f"${{{expr}}}"
            return None, "*", f"{shown} is only known during the build"
        kind, name = m.groups()
        if kind == "path":
            if name in self.paths:
                return self.paths[name], self.paths[name], ""
            return None, "*", f"path.{name} is not known before the build"
        if kind == "var":
            if name not in self.values:
                return None, "*", f"variable {name} is not declared"
            value = self.values[name]
            return (value, value, "") if value is not None else \
                (None, "*", f"variable {name} is only known during the build")
        if name not in self.locals or self._depth > 10:
            return None, "*", f"local {name} is not known before the build"
        self._depth += 1
        try:
            return self.value(self.locals[name])
        finally:
            self._depth -= 1
