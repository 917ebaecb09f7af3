"""Console output that stays readable when images build in parallel.

Lines go straight to the process's real stdout under the run's lock, whole
and prefixed by the image's name. (doit swaps ``sys.stdout`` per Python
action, which is not safe across threads.)
"""

from __future__ import annotations

import sys
import threading


class Console:
    def __init__(self) -> None:
        self._lock = threading.Lock()

    def say(self, text: str, image: str | None = None) -> None:
        prefix = f"[{image}] " if image else ""
        out = sys.__stdout__
        with self._lock:
            for line in text.splitlines() or [""]:
                out.write(f"{prefix}{line}\n")
            out.flush()


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
