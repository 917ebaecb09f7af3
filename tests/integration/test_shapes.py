"""The shapes users bring (support/shapes.py), through doit in process."""

from __future__ import annotations

import re

import pytest

from support import shapes
from support.inproc import Tree
from support.project import CODE_FILES, copy_project, ok
from support.shapes import edits_rebuild_exactly_their_readers


@pytest.fixture
def zoo(tree, tmp_path) -> Tree:
    return Tree(copy_project(tmp_path / "zoo", CODE_FILES, shapes.zoo), tree.url)


def test_an_edit_rebuilds_exactly_the_images_that_read_the_file(zoo):
    ok(zoo.doit("amis"))
    assert sorted(zoo.packer_builds()) == ["app", "eks", "local", "shell"]
    zoo.reset_count()
    edits_rebuild_exactly_their_readers(zoo, shapes.READERS, shapes.UNREAD)


def test_doit_inputs_lists_each_input_and_why(zoo):
    out = ok(zoo.doit("inputs", "-i", "app")).stdout
    assert re.search(r"^ansible/extra\.yml\s+packer/app\.json provisioner 1 \(ansible\) "
                     r"extra_arguments --extra-vars$", out, re.M), out
    assert re.search(r"^ansible/requirements\.yml\s+packer/app\.json provisioner 1 \(ansible\) "
                     r"galaxy_file$", out, re.M), out
    assert "app: " in out and "(ansible; template packer/app.json, Packer runs in .)" in out
