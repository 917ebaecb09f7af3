"""Finding the programs a run uses: Packer, and the tools installed beside
this Python (the project's .venv, activated or not): ansible-playbook and
ansible-lint."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Mapping

from ..core.errors import AmiError


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
