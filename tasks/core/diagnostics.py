"""Problems collected, not thrown one at a time: a check that can go on
after a problem notes it and goes on, so that one run names every problem
a user has to fix, as Packer's ``hcl.Diagnostics`` does."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from .errors import AmiError


@dataclass
class Diagnostics:
    problems: list[str] = field(default_factory=list)

    def add(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Run a check: its AmiError is noted, and the run goes on after the block."""
        try:
            yield
        except AmiError as err:
            for problem in err.problems:
                self.add(problem)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def check(self) -> None:
        """Stop, naming every problem noted."""
        if self.problems:
            raise AmiError.of(self.problems)


def by_image(found: list[tuple[str, str]]) -> list[str]:
    """(image, problem) pairs as lines: a problem several images share (one
    template) is one line naming them all."""
    grouped: dict[str, list[str]] = {}
    for image, problem in found:
        if image not in grouped.setdefault(problem, []):
            grouped[problem].append(image)
    return [f"image {images[0]}: {problem}" if len(images) == 1
            else f"images {', '.join(images)}: {problem}"
            for problem, images in grouped.items()]
