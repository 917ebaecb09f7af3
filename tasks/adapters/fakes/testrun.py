"""The acceptance tests' port in memory: :class:`ScriptedTests` answers SSH
(or never does) and "runs" each image's tests as scripted, writing the
JUnit report pytest would; :class:`FakeStandIn` is a stand-in's address."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence
from xml.sax.saxutils import quoteattr

from ..testrun import STOPPED, TIMED_OUT


@dataclass
class Script:
    """One image's test run: ``failed`` test names fail, ``passed`` and
    ``skipped`` say how many others there are; ``code`` overrides pytest's."""
    passed: int = 3
    failed: tuple[str, ...] = ()
    skipped: int = 0
    code: int | None = None


@dataclass
class ScriptedTests:
    scripts: dict[str, Script] = field(default_factory=dict)     # image -> its run
    silent: set[str] = field(default_factory=set)      # hosts that never answer SSH
    hold: dict[str, threading.Event] = field(default_factory=dict)   # image -> released when set
    started: dict[str, threading.Event] = field(default_factory=dict)
    runs: list[tuple[str, list[str], dict[str, str]]] = field(default_factory=list)

    def answers(self, host: str, port: int) -> bool:
        return host not in self.silent

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path,
            timeout: float, stopped: Callable[[float], bool]) -> int:
        image = env.get("AMI_TEST_IMAGE", "")
        self.runs.append((image, list(argv), dict(env)))
        self.started.setdefault(image, threading.Event()).set()
        gate = self.hold.get(image)
        while gate is not None and not gate.is_set():
            if stopped(0.02):
                return STOPPED
        script = self.scripts.get(image, Script())
        if script.code == TIMED_OUT:
            return TIMED_OUT
        junit = next(a.split("=", 1)[1] for a in argv if a.startswith("--junitxml="))
        cases = [f'<testcase classname="tests.test_{image}" name="test_ok_{n}"/>'
                 for n in range(script.passed)]
        cases += [f'<testcase classname="tests.test_{image}" name={quoteattr(name)}>'
                  '<failure message="assert False"/></testcase>' for name in script.failed]
        cases += [f'<testcase classname="tests.test_{image}" name="test_skipped_{n}">'
                  '<skipped message="needs a real instance"/></testcase>'
                  for n in range(script.skipped)]
        Path(junit).write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest">'
                               + "".join(cases) + "</testsuite></testsuites>")
        log.write_text(f"{len(cases)} tests\n")
        return script.code if script.code is not None else (1 if script.failed else 0)


@dataclass
class FakeStandIn:
    port: int = 2222
    stopped: bool = False

    def stop(self) -> None:
        self.stopped = True
