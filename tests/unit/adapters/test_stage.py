"""The stage: exactly an image's inputs, at their repository paths, each
checked against the hash the digest was computed from."""

from __future__ import annotations

import hashlib

import pytest

from tasks.adapters import stage
from tasks.core.digest import Hasher
from tasks.core.errors import AmiError


def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "ansible/roles/web").mkdir(parents=True)
    (root / "ansible/web.yaml").write_text("- hosts: all\n")
    (root / "ansible/roles/web/main.yml").write_text("---\n")
    (root / "secret.txt").write_text("not an input\n")
    return root


def manifest(root, *paths):
    return {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in paths}


def test_the_stage_holds_exactly_the_inputs_and_is_removed(tmp_path):
    root = repo(tmp_path)
    files = manifest(root, "ansible/web.yaml", "ansible/roles/web/main.yml")
    with stage.staged(root, tmp_path / "stages", "web", files, Hasher()) as where:
        found = sorted(p.relative_to(where).as_posix() for p in where.rglob("*") if p.is_file())
        assert found == ["ansible/roles/web/main.yml", "ansible/web.yaml"]
        assert where.name.startswith("web-")
    assert not where.exists()


def test_an_input_changed_since_planning_stops_the_build(tmp_path):
    root = repo(tmp_path)
    files = manifest(root, "ansible/web.yaml")
    (root / "ansible/web.yaml").write_text("- hosts: other\n")
    with pytest.raises(AmiError, match="ansible/web.yaml: changed since the build was planned"):
        with stage.staged(root, tmp_path / "stages", "web", files, Hasher()):
            pass
    assert list((tmp_path / "stages").iterdir()) == []


def test_a_staged_file_is_replaced_without_touching_the_original(tmp_path):
    root = repo(tmp_path)
    files = manifest(root, "ansible/web.yaml")
    with stage.staged(root, tmp_path / "stages", "web", files, Hasher()) as where:
        stage.replace_file(where / "ansible/web.yaml", b"rewritten\n")
        assert (where / "ansible/web.yaml").read_text() == "rewritten\n"
    assert (root / "ansible/web.yaml").read_text() == "- hosts: all\n"


def test_a_stage_that_cannot_be_made_is_one_line(tmp_path):
    root = repo(tmp_path)
    blocked = tmp_path / "stages"
    blocked.write_text("a file, not a folder")
    with pytest.raises(AmiError, match="cannot stage the inputs of web"):
        with stage.staged(root, blocked, "web", manifest(root, "ansible/web.yaml"), Hasher()):
            pass
