"""The stage: exactly an image's inputs, at their repository paths, copied
and hashed as staged, isolated from the repository both ways."""

from __future__ import annotations

import os

import pytest

from tasks.adapters import stage
from tasks.core.digest import Hasher
from tasks.core.errors import AmiError


def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "ansible/roles/web").mkdir(parents=True)
    (root / "ansible/web.yaml").write_text("- hosts: all\n")
    (root / "ansible/web.yaml").chmod(0o644)          # whatever the umask the tests run under
    (root / "ansible/roles/web/main.yml").write_text("---\n")
    (root / "ansible/roles/web/run.sh").write_text("#!/bin/sh\n")
    (root / "ansible/roles/web/run.sh").chmod(0o755)
    (root / "secret.txt").write_text("not an input\n")
    return root


def manifest(root, *paths):
    return Hasher().manifest(root, list(paths))


def test_the_stage_holds_exactly_the_inputs_and_is_removed(tmp_path):
    root = repo(tmp_path)
    files = manifest(root, "ansible/web.yaml", "ansible/roles/web/main.yml")
    with stage.staged(root, tmp_path / "stages", "web", files) as where:
        found = sorted(p.relative_to(where).as_posix() for p in where.rglob("*") if p.is_file())
        assert found == ["ansible/roles/web/main.yml", "ansible/web.yaml"]
        assert where.name.startswith("web-")
    assert not where.exists()


def test_staged_files_are_read_only_copies_that_keep_the_executable_bit(tmp_path):
    root = repo(tmp_path)
    files = manifest(root, "ansible/web.yaml", "ansible/roles/web/run.sh")
    with stage.staged(root, tmp_path / "stages", "web", files) as where:
        script = where / "ansible/roles/web/run.sh"
        assert os.stat(script).st_ino != os.stat(root / "ansible/roles/web/run.sh").st_ino
        assert oct(script.stat().st_mode & 0o777) == "0o555"
        assert oct((where / "ansible/web.yaml").stat().st_mode & 0o777) == "0o444"


def test_an_editor_writing_in_place_does_not_reach_the_stage(tmp_path):
    root = repo(tmp_path)
    files = manifest(root, "ansible/web.yaml")
    with stage.staged(root, tmp_path / "stages", "web", files) as where:
        with open(root / "ansible/web.yaml", "r+") as f:      # vim, VS Code: same inode
            f.write("- hosts: evil\n")
        assert (where / "ansible/web.yaml").read_text() == "- hosts: all\n"
        assert stage.changed(where, files, set()) == []


def test_a_provisioner_writing_to_the_stage_is_seen_and_never_reaches_the_repository(tmp_path):
    root = repo(tmp_path)
    files = manifest(root, "ansible/web.yaml", "ansible/roles/web/main.yml",
                     "ansible/roles/web/run.sh")
    with stage.staged(root, tmp_path / "stages", "web", files) as where:
        target = where / "ansible/roles/web/main.yml"
        target.chmod(0o644)                                  # chmod, then >>
        with open(target, "a") as f:
            f.write("appended: 1\n")
        (where / "ansible/roles/web/run.sh").chmod(0o444)    # a mode-only change
        assert stage.changed(where, files, set()) == ["ansible/roles/web/main.yml",
                                                      "ansible/roles/web/run.sh"]
        assert stage.changed(where, files, {"ansible/roles/web/main.yml",
                                            "ansible/roles/web/run.sh"}) == []
    assert (root / "ansible/roles/web/main.yml").read_text() == "---\n"
    assert (root / "ansible/roles/web/run.sh").stat().st_mode & 0o777 == 0o755


def test_an_input_changed_since_planning_stops_the_build(tmp_path):
    root = repo(tmp_path)
    files = manifest(root, "ansible/web.yaml")
    (root / "ansible/web.yaml").write_text("- hosts: other\n")
    with pytest.raises(AmiError, match="ansible/web.yaml: changed since the build was planned"):
        with stage.staged(root, tmp_path / "stages", "web", files):
            pass
    assert list((tmp_path / "stages").iterdir()) == []


def test_a_staged_file_is_replaced_without_touching_the_original(tmp_path):
    root = repo(tmp_path)
    files = manifest(root, "ansible/web.yaml")
    with stage.staged(root, tmp_path / "stages", "web", files) as where:
        stage.replace_file(where / "ansible/web.yaml", b"rewritten\n")
        assert (where / "ansible/web.yaml").read_text() == "rewritten\n"
    assert (root / "ansible/web.yaml").read_text() == "- hosts: all\n"


def test_a_stage_that_cannot_be_made_is_one_line(tmp_path):
    root = repo(tmp_path)
    blocked = tmp_path / "stages"
    blocked.write_text("a file, not a folder")
    with pytest.raises(AmiError, match="cannot stage the inputs of web"):
        with stage.staged(root, blocked, "web", manifest(root, "ansible/web.yaml")):
            pass
