"""The small adapters: the console, the tools a run finds, who is acting,
and the sandbox's own emulator."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time

import pytest

from support.project import ROOT, write_script
from tasks.adapters import emulator
from tasks.adapters.console import Console
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


def test_the_actor_is_the_setting_else_buildkite_else_git(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "config", "user.email", "dana@example.com"], cwd=tmp_path, check=True)
    both = {"AMI_ACTOR": "alice", "BUILDKITE_BUILD_CREATOR": "Bob", "USER": "carol"}
    assert actor(load_settings(tmp_path, both)) == "alice"
    assert actor(load_settings(tmp_path, {**both, "AMI_ACTOR": ""})) == "Bob"
    assert actor(load_settings(tmp_path, {"USER": "carol"})) == "dana@example.com"


def test_the_sandbox_emulator_starts_once_and_stops(tmp_path):
    state = tmp_path / ".amis"
    url = emulator.ensure(ROOT, state)
    info = json.loads((state / "emulator.json").read_text())
    try:
        assert url == f"http://127.0.0.1:{info['port']}" and emulator.listening(info["port"])
        assert emulator.ensure(ROOT, state) == url                 # reused, not started again
    finally:
        said = emulator.stop(state)
    assert said == (f"stopped the sandbox emulator on port {info['port']}; its AMIs and "
                    "records are gone")
    assert not emulator.alive(info["pid"])
    deadline = time.monotonic() + 10                 # its last thread may outlive its leader
    while emulator.listening(info["port"]):
        assert time.monotonic() < deadline, "the stopped emulator still listens"
        time.sleep(0.05)
    assert emulator.stop(state) == "no sandbox emulator is running"
