"""Version numbers and constraints, as Packer writes them (``>= 1.7.0, < 2``)."""

from __future__ import annotations

import re


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3]) or (0,)


def satisfies(version: str, constraint: str) -> bool:
    """Whether a version meets a constraint such as ">= 1.7.0, < 2" or "~> 1.8"."""
    have = version_tuple(version)
    for part in constraint.split(","):
        m = re.match(r"\s*(>=|<=|!=|~>|>|<|=)?\s*v?([0-9][0-9.]*)\s*$", part)
        if not m:
            return False
        op, want_text = m.group(1) or "=", m.group(2)
        want = version_tuple(want_text)
        pad = max(len(have), len(want))
        h, w = have + (0,) * (pad - len(have)), want + (0,) * (pad - len(want))
        if op == "~>":
            fixed = want[:-1] if len(want) > 1 else want
            if not (h >= w and h[:len(fixed)] == fixed):
                return False
        elif not {"=": h == w, "!=": h != w, ">": h > w, ">=": h >= w, "<": h < w,
                  "<=": h <= w}[op]:
            return False
    return True
