"""Console output that stays readable when images build in parallel.

Lines go to the process's real stdout (or the stream given) under one
lock, whole and prefixed by the image's name. (doit swaps ``sys.stdout``
per Python action, which is not safe across threads.)
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO


class Console:
    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()

    def say(self, text: str, image: str | None = None) -> None:
        prefix = f"[{image}] " if image else ""
        out = self._out or sys.__stdout__
        with self._lock:
            for line in text.splitlines() or [""]:
                out.write(f"{prefix}{line}\n")
            out.flush()
