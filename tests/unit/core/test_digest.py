"""Digest stability: contents, paths and the parent's id matter; order and mtimes do not."""

from __future__ import annotations

import os

from tasks.core import digest

SETTINGS = {"regions": ["eu-west-1"], "vars": {}, "sandbox": False}


def tree(tmp_path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return list(files)


def of(tmp_path, paths, parent="ami-11111111", settings=SETTINGS):
    return digest.image_digest(digest.Hasher().manifest(tmp_path, paths), parent, settings)


def test_order_of_files_does_not_matter(tmp_path):
    paths = tree(tmp_path, {"a.yml": "a", "b/c.yml": "c", "d.json": "d"})
    assert of(tmp_path, paths) == of(tmp_path, list(reversed(paths)))


def test_mtimes_do_not_matter(tmp_path):
    paths = tree(tmp_path, {"a.yml": "a", "b.yml": "b"})
    before = of(tmp_path, paths)
    for p in paths:
        os.utime(tmp_path / p, (1, 1))
    assert of(tmp_path, paths) == before


def test_contents_matter(tmp_path):
    paths = tree(tmp_path, {"a.yml": "a", "b.yml": "b"})
    before = of(tmp_path, paths)
    (tmp_path / "b.yml").write_text("b2")
    assert of(tmp_path, paths) != before


def test_paths_matter(tmp_path):
    before = of(tmp_path, tree(tmp_path, {"roles/x/a.yml": "same"}))
    after = of(tmp_path, tree(tmp_path, {"roles/y/a.yml": "same"}))
    assert before != after


def test_moving_content_between_files_matters(tmp_path):
    one = of(tmp_path, tree(tmp_path, {"a": "xy", "b": ""}))
    two = of(tmp_path, tree(tmp_path, {"a": "x", "b": "y"}))
    assert one != two


def test_parent_ami_and_settings_matter(tmp_path):
    paths = tree(tmp_path, {"a.yml": "a"})
    base = of(tmp_path, paths)
    assert of(tmp_path, paths, parent="ami-22222222") != base
    assert of(tmp_path, paths, settings={**SETTINGS, "regions": ["eu-west-1", "us-east-1"]}) != base
    assert of(tmp_path, paths, settings={**SETTINGS, "sandbox": True}) != base


def test_changed_inputs_lists_added_removed_and_changed():
    old = {"a": "1", "b": "2", "c": "3"}
    new = {"a": "1", "b": "9", "d": "4"}
    assert digest.changed_inputs(old, new) == ["b", "c", "d"]
