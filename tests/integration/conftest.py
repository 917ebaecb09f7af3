"""Integration: doit itself, in this process, on a copy of the tree: its
task creators, up-to-date checks and database, with the scripted Packer
and the emulator (see support/inproc.py). Whole runs in seconds."""

from __future__ import annotations

import pytest

from support.inproc import Tree
from support.project import IMAGES, ok


@pytest.fixture
def built_tree(tree: Tree) -> Tree:
    """The example tree, built once by `doit amis`; the build count reset."""
    ok(tree.doit("amis"))
    assert sorted(tree.packer_builds()) == sorted(IMAGES)
    tree.reset_count()
    return tree
