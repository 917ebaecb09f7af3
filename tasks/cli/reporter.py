"""doit's own lines on stderr, and one line for what a failure held back.

doit writes `.  graph`, `-- ami:base` and failures to stdout; here they go
to stderr, so stdout holds only what the tasks print: `doit graph >
tree.mmd` or `doit graph --format dot | dot -Tpng` work as they read.
Where doit would print a block per task that did not run because a task it
needs failed, this prints one line naming them.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from doit.exceptions import UnmetDependency
from doit.reporter import ConsoleReporter


class Reporter(ConsoleReporter):
    """``at_end`` is called once, when the run is over (failed or not): the
    run's summary. (doit runs a teardown once per worker thread.)"""
    desc = "doit's console output, on stderr"

    def __init__(self, outstream: Any, options: dict,
                 at_end: Callable[[], None] | None = None) -> None:
        super().__init__(sys.stderr, options)
        self.held_back: list[str] = []
        self.at_end = at_end

    def add_failure(self, task: Any, fail: Any) -> None:
        if isinstance(fail, UnmetDependency):
            if task.actions:                    # not the aggregate `ami` and `amis`
                self.held_back.append(task.name)
            return
        super().add_failure(task, fail)

    def complete_run(self) -> None:
        if self.at_end is not None:
            self.at_end()
        super().complete_run()
        if self.held_back:
            shown = ", ".join(self.held_back[:8])
            more = f" and {len(self.held_back) - 8} more" if len(self.held_back) > 8 else ""
            self.write(f"not run, because a task they need failed: {shown}{more}\n")
