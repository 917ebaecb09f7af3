"""Where a build comes from, as the real git says (the git port's adapter)."""

from __future__ import annotations

import os
import subprocess

from support.project import commit


def test_a_committed_file_name_that_is_not_utf8_does_not_stop_provenance(tmp_path):
    from tasks.adapters.git import GitRepo
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    (tmp_path / os.fsdecode(b"\xff.txt")).write_text("x")
    (tmp_path / "a.txt").write_text("a")
    commit(tmp_path)
    info = GitRepo(tmp_path).info(["a.txt", "new.txt"])
    assert info["dirty"] is True and info["untracked_inputs"] == ["new.txt"]


def test_an_edit_git_is_told_to_ignore_still_makes_the_tree_dirty(tmp_path):
    from tasks.adapters.git import GitRepo
    from tasks.core.channels import choose
    from tasks.core.settings import load_settings
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    for name in ("a.yml", "b.yml"):
        (tmp_path / name).write_text("x: 1\n")
    commit(tmp_path)
    for flag, name in (("--assume-unchanged", "a.yml"), ("--skip-worktree", "b.yml")):
        subprocess.run(["git", "update-index", flag, name], cwd=tmp_path, check=True)
    assert GitRepo(tmp_path).info(["a.yml", "b.yml"])["dirty"] is False      # flagged, unchanged
    (tmp_path / "a.yml").write_text("x: 2\n")
    (tmp_path / "b.yml").write_text("x: 3\n")
    info = GitRepo(tmp_path).info(["a.yml", "b.yml"])
    assert subprocess.run(["git", "status", "--porcelain"], cwd=tmp_path, capture_output=True,
                          text=True).stdout == ""        # what git itself says
    assert info["dirty"] is True and info["hidden_edits"] == ["a.yml", "b.yml"]
    settings = load_settings(tmp_path, env={"AMI_BUCKET": "test-amis"})
    channel, note = choose(settings, info)
    assert channel == "dirty" and "edited inputs git is told to ignore (assume-unchanged or " \
        "skip-worktree: a.yml, b.yml)" in note


def test_an_executable_bit_git_does_not_look_at_still_makes_the_tree_dirty(tmp_path):
    from tasks.adapters.git import GitRepo
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    subprocess.run(["git", "config", "core.fileMode", "false"], cwd=tmp_path, check=True)
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    subprocess.run(["git", "add", "--chmod=+x", "s.sh"], cwd=tmp_path, check=True)
    commit(tmp_path)
    assert GitRepo(tmp_path).info(["s.sh"])["dirty"] is False
    script.chmod(0o644)
    info = GitRepo(tmp_path).info(["s.sh"])
    assert info["dirty"] is True and info["mode_changes"] == ["s.sh"]


def test_export_writes_a_commit_from_git_objects_and_leaves_the_checkout_alone(tmp_path):
    from tasks.adapters.git import GitRepo
    repo = tmp_path / "repo"
    (repo / "roles").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / "roles" / "a.yml").write_text("x: 1\n")
    (repo / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(repo / "run.sh", 0o755)
    os.symlink("roles/a.yml", repo / "link.yml")
    commit(repo)
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                           text=True, check=True).stdout.strip()
    (repo / "roles" / "a.yml").write_text("x: 2\n")
    (repo / "new.yml").write_text("y\n")
    commit(repo)
    (repo / "roles" / "a.yml").write_text("x: 3 uncommitted\n")
    index = (repo / ".git" / "index").read_bytes()

    dest = tmp_path / "at-first"
    dest.mkdir()
    assert GitRepo(repo).export(first, dest, os.environ) is True
    assert (dest / "roles" / "a.yml").read_text() == "x: 1\n"
    assert not (dest / "new.yml").exists()                     # not in that commit
    assert os.stat(dest / "run.sh").st_mode & 0o100
    assert os.readlink(dest / "link.yml") == "roles/a.yml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["at-first", "repo"]   # no index left
    assert (repo / ".git" / "index").read_bytes() == index
    assert (repo / "roles" / "a.yml").read_text() == "x: 3 uncommitted\n"
    assert GitRepo(repo).export("0" * 40, tmp_path / "none", os.environ) is False
