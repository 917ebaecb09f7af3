"""End to end: ``doit`` as a subprocess in a copy of the repository, the
real Packer (behind a wrapper that counts builds) against the emulator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.project import Project, copy_project, sandbox_env, write_script


def _need_packer() -> str:
    real = shutil.which("packer")
    if not real:
        pytest.fail("packer is not installed: run .ci/install (Debian package 'packer')")
    return real


@pytest.fixture
def counting_packer(tmp_path) -> tuple[Path, Path]:
    """$PACKER: logs each build's image, then runs the real packer."""
    real = _need_packer()
    runs = tmp_path / "packer-runs.txt"
    script = write_script(tmp_path / "packer-wrapper", f"""#!/bin/sh
if [ "$1" = build ]; then
  for a in "$@"; do case "$a" in
    image=*) echo "${{a#image=}}" >> "{runs}";;
    -var-file=*.amis-variables.pkrvars.json)      # the runner's own variables
      sed -n 's/^ *"image": "\\(.*\\)",*$/\\1/p' "${{a#-var-file=}}" >> "{runs}";;
  esac; done
fi
exec "{real}" "$@"
""")
    return script, runs


@pytest.fixture
def project(tmp_path, aws, counting_packer) -> Project:
    """The example tree in a fresh repo, in the sandbox, on the test emulator."""
    script, runs = counting_packer
    return Project(copy_project(tmp_path / "repo"), sandbox_env(tmp_path, aws.url, script), runs)
