"""What a run did with each image, in the words the console, the table and
the annotation use (``plan`` speaks of what would happen: see
``decision.STATUSES``)."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    UP_TO_DATE = "up to date"      # its AMI stays: inputs unchanged
    REUSED = "reused"              # an earlier build of these inputs made current again
    RESOLVED = "resolved"          # the source image, looked up
    BUILT = "built"
    TESTED = "tested"              # an earlier build passed changed tests and was made current
    REJECTED = "rejected"          # its new AMI failed its tests: not published
    FAILED = "failed"
    INTERRUPTED = "interrupted"    # Ctrl-C or SIGTERM stopped its build: nothing recorded
    SKIPPED = "skipped"            # an image it is built on did not build
