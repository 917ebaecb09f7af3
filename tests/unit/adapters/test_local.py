"""The small adapters: the console, the tools a run finds, who is acting
(the sandbox's own emulator: integration/adapters/test_emulator.py)."""

from __future__ import annotations

import io
import threading

import pytest

from support.project import write_script
from tasks.adapters.console import Console
from tasks.adapters.fakes import FakeGit
from tasks.adapters.git import actor
from tasks.adapters.tools import find, tool, with_tools
from tasks.core.errors import AmiError
from tasks.core.settings import load_settings


def test_console_lines_are_whole_and_prefixed_even_from_threads():
    out = io.StringIO()
    console = Console(out)
    workers = [threading.Thread(target=console.say, args=(f"one {i}\ntwo {i}", f"img{i}"))
               for i in range(20)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 40
    for i in range(20):
        first = lines.index(f"[img{i}] one {i}")
        assert lines[first + 1] == f"[img{i}] two {i}"       # a message is never split
    console.say("")
    assert out.getvalue().endswith("\n\n")


def test_tools_are_found_on_the_path_the_run_was_given(tmp_path):
    write_script(tmp_path / "buildkite-agent", "#!/bin/sh\n")
    assert find("buildkite-agent", {"PATH": str(tmp_path)}) == str(tmp_path / "buildkite-agent")
    assert find("buildkite-agent", {"PATH": str(tmp_path / "empty")}) is None
    assert tool("ansible-lint", {}).endswith("ansible-lint")          # beside this Python
    with pytest.raises(AmiError, match="no-such-tool not found: install the requirements"):
        tool("no-such-tool", {"PATH": str(tmp_path)})
    assert with_tools({"PATH": "/x"})["PATH"].endswith(":/x")


def test_the_actor_is_the_setting_else_buildkite_else_git_else_the_user(tmp_path):
    git = FakeGit(email="dana@example.com")
    both = {"AMI_ACTOR": "alice", "BUILDKITE_BUILD_CREATOR": "Bob", "USER": "carol"}
    assert actor(load_settings(tmp_path, both), git) == "alice"
    assert actor(load_settings(tmp_path, {**both, "AMI_ACTOR": ""}), git) == "Bob"
    assert actor(load_settings(tmp_path, {"USER": "carol"}), git) == "dana@example.com"
    assert actor(load_settings(tmp_path, {"USER": "carol"}), FakeGit(email=None)) == "carol"
