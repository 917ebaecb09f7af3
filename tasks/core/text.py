"""Text as every command prints it: plain-text tables, and the nearest name to a typo."""

from __future__ import annotations

from typing import Iterable


def table(rows: list[list[str]], header: list[str], width: int | None = None) -> str:
    """``width``: a terminal's; the last column is cut to fit it (with "…"),
    keeping at least 20 of its characters."""
    if width is not None and rows:
        others = sum(max(len(str(r[i])) for r in [header, *rows]) + 2
                     for i in range(len(header) - 1))
        room = max(width - others - 1, 20)
        rows = [[*r[:-1], _cut(str(r[-1]), room)] for r in rows]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[:room - 1] + "…"


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions
    and swaps of two neighbouring characters (the typo ``us-esat-1``) each 1."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice a typo most likely meant (at most 2 edits away), if any;
    of those as near, one as long as the typo (``amsi``: amis, not ami)."""
    ranked = sorted((_edits(word, c), abs(len(c) - len(word)), c) for c in choices)
    return ranked[0][2] if ranked and ranked[0][0] <= 2 else None


def did_you_mean(word: str, choices: Iterable[str], form: str = ": did you mean {}?") -> str:
    """``form`` filled with the choice a typo most likely meant, else ""."""
    near = closest(word, choices)
    return form.format(near) if near else ""


def some(items: Iterable[str], most: int = 3) -> str:
    """The first ``most`` of ``items``, and how many more: a cell that stays
    readable however many there are."""
    listed = list(items)
    shown = ", ".join(listed[:most])
    return shown + (f" and {len(listed) - most} more" if len(listed) > most else "")
