"""Programs without running them: :class:`ScriptedTools` answers each
command from a script and records what was asked; :class:`FakeGit` says
where a build comes from as a test wants it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from ...core.settings import Buildkite
from ..tools import Ran

Answer = Ran | Callable[[list[str], Path], Ran]


@dataclass
class ScriptedTools:
    """``script[name]`` answers a program by its file name (``packer``,
    ``ansible-lint``, ...): a Ran, or a function of the command line and the
    folder it runs in. A program not in the script succeeds silently."""
    script: dict[str, Answer] = field(default_factory=dict)
    calls: list[tuple[list[str], Path]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
            input: str | None = None, timeout: float | None = None) -> Ran:
        argv = list(argv)
        self.calls.append((argv, cwd))
        answer = self.script.get(Path(argv[0]).name, Ran(0))
        return answer(argv, cwd) if callable(answer) else answer

    def ran(self, name: str) -> list[list[str]]:
        """The command lines of every run of program ``name``."""
        return [argv for argv, _ in self.calls if Path(argv[0]).name == name]


@dataclass
class FakeGit:
    """A repository as a test says it is: its commit, branch and whether
    it is dirty; ``commits`` maps a commit to a folder holding its files
    (what ``export`` writes out)."""
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    branch: str = "main"
    dirty: bool = False
    email: str | None = "tester@example.com"
    commits: dict[str, Path] = field(default_factory=dict)

    def info(self, inputs: Iterable[str] = (),
             buildkite: Buildkite = Buildkite()) -> dict[str, object]:
        return {"commit": buildkite.commit or self.commit, "branch": buildkite.branch or self.branch,
                "dirty": self.dirty, "untracked_inputs": [],
                "build_url": buildkite.build_url or None}

    def export(self, commit: str, dest: Path, env: Mapping[str, str]) -> bool:
        if commit not in self.commits:
            return False
        shutil.copytree(self.commits[commit], dest, symlinks=True, dirs_exist_ok=True)
        return True

    def user_email(self) -> str | None:
        return self.email
