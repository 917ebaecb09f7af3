"""The programs a run starts besides Packer's builds: ``packer validate``,
``fmt`` and ``init``, ``ansible-playbook --syntax-check``, ``ansible-lint``,
``cloud-init schema``, ``buildkite-agent`` and git, all through one small
port, :class:`Tools`. :class:`Subprocesses` is the real runner;
``fakes.ScriptedTools`` answers from a script. Also: finding them, beside
this Python (the project's environment, activated or not) or on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from ..core.errors import AmiError


@dataclass(frozen=True)
class Ran:
    """What a program did: its exit code (127: it could not be started,
    124: it ran out of time) and its output, decoded as UTF-8 (bytes that
    are not, as Python names files: surrogate escapes)."""
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


class Tools(Protocol):
    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
            input: str | None = None, timeout: float | None = None) -> Ran:
        """Run a program to its end; ``env`` None: this process's environment."""


class Subprocesses:
    """The real runner: each program a subprocess, with no terminal input."""

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
            input: str | None = None, timeout: float | None = None) -> Ran:
        try:
            done = subprocess.run(list(argv), cwd=cwd, env=None if env is None else dict(env),
                                  input=input, capture_output=True, text=True,
                                  encoding="utf-8", errors="surrogateescape", timeout=timeout,
                                  **({} if input is not None else {"stdin": subprocess.DEVNULL}))
        except OSError as err:
            return Ran(127, "", f"cannot run {argv[0]}: {err.strerror or err}")
        except subprocess.TimeoutExpired:
            return Ran(124, "", f"{argv[0]} did not finish within {timeout:.0f} s")
        return Ran(done.returncode, done.stdout, done.stderr)


def with_tools(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with the tools beside this Python first on PATH:
    Packer runs ansible-playbook, and ansible-lint runs it too."""
    return {**env, "PATH": os.pathsep.join([os.path.dirname(sys.executable),
                                            env.get("PATH", "")])}


def find(name: str, env: Mapping[str, str]) -> str | None:
    """``name`` on the PATH the run was given (or a path itself), or None."""
    return shutil.which(name, path=env.get("PATH", os.defpath))


def tool(name: str, env: Mapping[str, str]) -> str:
    """A tool of the requirements: beside this Python, else on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or find(name, env)
    if not found:
        raise AmiError(f"{name} not found: install the requirements (bash .ci/install)")
    return found


def packer_executable(packer: str, env: Mapping[str, str]) -> str:
    """``packer`` (the PACKER setting) as a path, or one line saying how to get it."""
    found = find(packer, env)
    if not found:
        raise AmiError(f"Packer executable {packer!r} not found: install Packer "
                       "(Debian: apt-get install packer) or set PACKER to its path")
    return found
