"""The unit ring runs in process: no emulator, no subprocess, no network.
Anything here that starts a program fails at once, naming what it ran;
tests of the real adapters against real programs live in integration/."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture(autouse=True)
def no_subprocess(monkeypatch):
    def refuse(self, args, *rest, **kwargs):
        raise AssertionError(f"a unit test started a program: {args!r}: use the fakes "
                             "(tasks/adapters/fakes.py), or move the test to integration/")
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture(scope="session")
def emulator_url():
    """Overrides the emulator of tests/conftest.py: not here."""
    raise AssertionError("a unit test asked for the AWS emulator: use the fakes "
                         "(tasks/adapters/fakes.py), or move the test to integration/")


@pytest.fixture
def tree(tmp_path):
    """Overrides the emulator's tree of tests/conftest.py: the example tree
    on the fakes (support/fakes.py)."""
    from support.fakes import FakeTree
    return FakeTree.example(tmp_path / "repo")
