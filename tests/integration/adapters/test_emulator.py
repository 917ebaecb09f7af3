"""The sandbox's own emulator, started in the background once and stopped."""

from __future__ import annotations

import json
import time

from support.project import ROOT
from tasks.adapters import emulator


def test_the_sandbox_emulator_starts_once_and_stops(tmp_path):
    state = tmp_path / ".amis"
    said: list[str] = []
    url = emulator.ensure(ROOT, state, said.append)
    info = json.loads((state / "emulator.json").read_text())
    try:
        assert url == f"http://127.0.0.1:{info['port']}" and emulator.listening(info["port"])
        assert said == [f"started the sandbox's AWS emulator in the background on {url}; it "
                        "keeps the sandbox's AMIs and records between runs until "
                        "AMI_SANDBOX=1 ./doit sandbox_stop"]
        assert emulator.ensure(ROOT, state, said.append) == url    # reused, not started again
        assert len(said) == 1                                       # and not said again
    finally:
        stopped = emulator.stop(state)
    assert stopped == (f"stopped the sandbox emulator on port {info['port']}; its AMIs and "
                    "records are gone")
    assert not emulator.alive(info["pid"])
    deadline = time.monotonic() + 10                 # its last thread may outlive its leader
    while emulator.listening(info["port"]):
        assert time.monotonic() < deadline, "the stopped emulator still listens"
        time.sleep(0.05)
    assert emulator.stop(state) == "no sandbox emulator is running"
