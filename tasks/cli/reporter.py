"""doit's side of the console: failures as one line, and the exit code.

doit writes `.  ami:base` per task and a block per failure
(`TaskFailed - taskid:ami:web` and the message). Here the run's own console
says what each image does, so doit's lines for the build tasks are left
out (shown with AMI_VERBOSE), a failure is its one line (``failed``), and a task that did
not run because a task it needs failed is ``skipped``, then named in one
closing line. A task that raised (a bug) keeps doit's traceback.

The run ends with the exit code of its worst failure (core/errors.py):
doit would end a build whose parent failed with 2, and ``doit ami:web``
with 1, for the same failure.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from doit.exceptions import TaskFailed, UnmetDependency
from doit.reporter import ConsoleReporter

from ..core.errors import BUG, FAILED, INTERRUPTED, MISTAKE, REJECTED

# Which failure a run's exit code reports when there are several.
_WORST = (INTERRUPTED, BUG, MISTAKE, REJECTED, FAILED)


class Failed(TaskFailed):
    """A task's user-facing failure, with the exit code it ends the run with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Reporter(ConsoleReporter):
    """``at_end`` is called once, when the run is over (failed or not): the
    run's summary. (doit runs a teardown once per worker thread.)"""
    desc = "the run's console: one line per failure, on stderr"

    def __init__(self, outstream: Any, options: dict,
                 at_end: Callable[[], None] | None = None,
                 failed: Callable[[str], None] | None = None,
                 skipped: Callable[[str], None] | None = None,
                 verbose: bool = False) -> None:
        super().__init__(sys.stderr, options)
        self.held_back: list[str] = []
        self.codes: set[int] = set()
        self.at_end = at_end
        self.on_failed = failed
        self.on_skipped = skipped
        self.verbose = verbose
        # `pull` failed (no bucket, no credentials): no build ran, and its one
        # line is all there is to say: no line per skipped image, no table.
        self.nothing_ran = False

    def _shown(self, task: Any) -> bool:
        """doit's `.  ami:web` line: the build's own console says more."""
        return self.verbose or not (task.name == "pull" or task.name.split(":")[0] == "ami")

    def execute_task(self, task: Any) -> None:
        # `.  plan` with -v: the task's own output follows. Never `.  pull` or
        # `.  ami:web`: the build's console says more, and says it better.
        if self.verbose and task.name != "pull" and task.name.split(":")[0] != "ami":
            super().execute_task(task)

    def skip_uptodate(self, task: Any) -> None:
        if self._shown(task):
            super().skip_uptodate(task)

    def add_failure(self, task: Any, fail: Any) -> None:
        if isinstance(fail, UnmetDependency):
            if task.actions and not self.nothing_ran:   # not the aggregate `ami` and `amis`
                self.held_back.append(task.name)
                if self.on_skipped:
                    self.on_skipped(task.name)
            return
        if isinstance(fail, Failed):
            self.nothing_ran = self.nothing_ran or task.name == "pull"
            self.codes.add(fail.code)
            self.failures.append({"task": task, "exception": fail})
            if self.on_failed:
                self.on_failed(fail.message)
            else:
                self.write(f"ERROR: {fail.message}\n")
            return
        self.codes.add(FAILED if isinstance(fail, TaskFailed) else BUG)
        super().add_failure(task, fail)

    def runtime_error(self, msg: str) -> None:
        self.codes.add(BUG)
        super().runtime_error(msg)

    def exit_code(self) -> int:
        return next((code for code in _WORST if code in self.codes), 0)

    def complete_run(self) -> None:
        if self.at_end is not None and not self.nothing_ran:
            self.at_end()
        super().complete_run()
        if self.held_back:
            shown = ", ".join(self.held_back[:8])
            more = f" and {len(self.held_back) - 8} more" if len(self.held_back) > 8 else ""
            self.write(f"skipped, because a task they need failed: {shown}{more}\n")
        code = self.exit_code()
        if code:
            raise SystemExit(code)
