"""Where a build comes from, as git says."""

from __future__ import annotations

import os
import subprocess

from support.project import commit


def test_a_committed_file_name_that_is_not_utf8_does_not_stop_provenance(tmp_path):
    from tasks.adapters.git import git_info
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    (tmp_path / os.fsdecode(b"\xff.txt")).write_text("x")
    (tmp_path / "a.txt").write_text("a")
    commit(tmp_path)
    info = git_info(tmp_path, ["a.txt", "new.txt"])
    assert info["dirty"] is True and info["untracked_inputs"] == ["new.txt"]
