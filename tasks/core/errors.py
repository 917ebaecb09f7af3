"""The one error type for failures the user can act on, and the exit codes
a run ends with (docs/reference/exit-codes.md)."""

from __future__ import annotations

from typing import Sequence

OK = 0
FAILED = 1          # a build or an operation failed: Packer, AWS, a lock wait
BUG = 2             # an unexpected error (a traceback): please report it
MISTAKE = 3         # the user's to fix: amis.yaml, a template, an option (doit's own code too)
REJECTED = 4        # an AMI failed its acceptance tests: not published
INTERRUPTED = 130   # Ctrl-C or SIGTERM


class AmiError(Exception):
    """A user-facing failure: its message is one line that names the file,
    image or key at fault and says what to do. Shown without a traceback.
    ``code`` is the exit code it ends the run with: MISTAKE unless the
    failure is not the user's input (FAILED, INTERRUPTED)."""

    def __init__(self, message: str, code: int = MISTAKE) -> None:
        super().__init__(message)
        self.code = code
        self.problems: tuple[str, ...] = (message,)

    @classmethod
    def of(cls, problems: Sequence[str], code: int = MISTAKE) -> AmiError:
        """One error naming several problems, a line each, so that a user
        fixes them all before running again."""
        if len(problems) == 1:
            return cls(problems[0], code)
        err = cls(f"{len(problems)} problems, fix them all, then run again:\n"
                  + "\n".join(f"  {n}. {p}" for n, p in enumerate(problems, 1)), code)
        err.problems = tuple(problems)
        return err
