"""doit's own lines on stderr.

doit writes `.  graph`, `-- ami:base` and failures to stdout; here they go
to stderr, so stdout holds only what the tasks print: `doit graph >
tree.mmd` or `doit graph --format dot | dot -Tpng` work as they read.
"""

from __future__ import annotations

import sys
from typing import Any

from doit.reporter import ConsoleReporter


class Reporter(ConsoleReporter):
    desc = "doit's console output, on stderr"

    def __init__(self, outstream: Any, options: dict) -> None:
        super().__init__(sys.stderr, options)
