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
    assert channel == "dirty" and "edited inputs git does not show (assume-unchanged, " \
        "skip-worktree or a clean filter: a.yml, b.yml)" in note


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


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_an_edit_a_local_clean_filter_hides_makes_the_tree_dirty(tmp_path):
    from tasks.adapters.git import GitRepo
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.yml").write_text("x: 1\n")
    commit(tmp_path)
    # A filter that cleans every edit away: git status sees nothing.
    (tmp_path / ".git/info/attributes").write_text("*.yml filter=hide\n")
    _git(tmp_path, "config", "filter.hide.clean", "git show HEAD:a.yml")
    _git(tmp_path, "config", "filter.hide.smudge", "cat")
    (tmp_path / "a.yml").write_text("x: 2\n")
    assert subprocess.run(["git", "status", "--porcelain"], cwd=tmp_path, capture_output=True,
                          text=True).stdout == ""
    info = GitRepo(tmp_path).info(["a.yml"])
    assert info["dirty"] is True and info["hidden_edits"] == ["a.yml"]


def test_a_filter_whose_checkout_is_the_file_leaves_the_tree_clean(tmp_path):
    # Git LFS's shape: HEAD holds a pointer, checkout writes the content.
    from tasks.adapters.git import GitRepo
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / ".gitattributes").write_text("*.bin filter=rev\n")
    _git(tmp_path, "config", "filter.rev.clean", "rev")
    _git(tmp_path, "config", "filter.rev.smudge", "rev")
    (tmp_path / "a.bin").write_text("abc\n")
    (tmp_path / "link.bin").symlink_to("a.bin")
    commit(tmp_path)
    assert GitRepo(tmp_path).info(["a.bin", "link.bin"])["dirty"] is False
    (tmp_path / "a.bin").write_text("abd\n")
    info = GitRepo(tmp_path).info(["a.bin"])
    assert info["dirty"] is True and "hidden_edits" not in info       # git status saw it


def test_a_submodule_role_is_tracked_by_its_commit(tmp_path):
    from tasks.adapters.git import GitRepo
    from tasks.inputs.repo import Found, Repo
    role = tmp_path / "role"
    (role / "tasks").mkdir(parents=True)
    _git(role, "init", "-q", "-b", "main")
    (role / "tasks/main.yml").write_text("- ansible.builtin.debug: {msg: hi}\n")
    commit(role)
    top = tmp_path / "top"
    top.mkdir()
    _git(top, "init", "-q", "-b", "main")
    _git(top, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(role),
         "roles/role")
    commit(top)
    found = Found()
    Repo(top).add_tree(found, "roles/role", "role")
    assert list(found.files) == ["roles/role/tasks/main.yml"]        # not its .git file
    inputs = list(found.files)
    assert GitRepo(top).info(inputs)["dirty"] is False
    (top / "roles/role/tasks/main.yml").write_text("- ansible.builtin.debug: {msg: bye}\n")
    assert GitRepo(top).info(inputs)["dirty"] is True
    commit(top / "roles/role")          # a commit in the submodule HEAD does not record
    info = GitRepo(top).info(inputs)
    assert info["dirty"] is True and info["untracked_inputs"] == []
    commit(top)
    assert GitRepo(top).info(inputs)["dirty"] is False
    (top / "roles/role/tasks/new.yml").write_text("- ansible.builtin.debug: {msg: new}\n")
    info = GitRepo(top).info([*inputs, "roles/role/tasks/new.yml"])
    assert info["dirty"] is True and info["untracked_inputs"] == ["roles/role/tasks/new.yml"]


def test_a_tag_named_like_the_branch_leaves_the_branch_name_alone(tmp_path):
    from tasks.adapters.git import GitRepo
    from tasks.core.channels import choose
    from tasks.core.settings import load_settings
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.yml").write_text("x: 1\n")
    commit(tmp_path)
    _git(tmp_path, "tag", "main")
    info = GitRepo(tmp_path).info(["a.yml"])
    assert info["branch"] == "main"
    assert choose(load_settings(tmp_path, env={"AMI_BUCKET": "test-amis"}), info)[0] == "main"


def test_content_put_in_place_by_git_replace_makes_the_tree_dirty(tmp_path):
    """`git replace` makes git show other content for HEAD's blob: an edit
    git is told not to look at then matches what HEAD seems to hold."""
    from tasks.adapters.git import GitRepo
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.yml").write_text("x: 1\n")
    commit(tmp_path)
    old = subprocess.run(["git", "rev-parse", "HEAD:a.yml"], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.strip()
    _git(tmp_path, "update-index", "--assume-unchanged", "a.yml")
    (tmp_path / "a.yml").write_text("x: 1\ninjected: true\n")
    new = subprocess.run(["git", "hash-object", "-w", "a.yml"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout.strip()
    _git(tmp_path, "replace", old, new)
    assert subprocess.run(["git", "show", "HEAD:a.yml"], cwd=tmp_path, capture_output=True,
                          text=True).stdout == "x: 1\ninjected: true\n"     # what git shows
    info = GitRepo(tmp_path).info(["a.yml"])
    assert info["dirty"] is True and info["hidden_edits"] == ["a.yml"]


def test_the_commit_recorded_is_heads_whatever_buildkite_variables_say(tmp_path):
    from tasks.adapters.git import GitRepo
    from tasks.core.channels import choose
    from tasks.core.settings import Buildkite, load_settings
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.yml").write_text("x: 1\n")
    commit(tmp_path)
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                           text=True, check=True).stdout.strip()
    (tmp_path / "a.yml").write_text("x: 2\n")
    commit(tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip()
    by_hand = GitRepo(tmp_path).info(["a.yml"], Buildkite(commit=first, branch="other"))
    assert (by_hand["commit"], by_hand["branch"], by_hand["dirty"]) == (head, "main", False)
    job = GitRepo(tmp_path).info(["a.yml"], Buildkite(active=True, commit=first, branch="main"))
    assert job["commit"] == head and job["dirty"] is True
    settings = load_settings(tmp_path, env={"AMI_BUCKET": "test-amis"})
    assert choose(settings, job) == ("dirty", (
        f"the working tree has HEAD {head[:12]}, not the commit Buildkite checked out "
        f"({first[:12]}): publishing to channel 'dirty', not 'main' (commit them, or "
        "AMI_ALLOW_DIRTY=1)"))
    agreed = GitRepo(tmp_path).info(["a.yml"], Buildkite(active=True, commit=head, branch="main"))
    assert agreed["dirty"] is False
