"""The acceptance tests' port: whether an instance answers SSH, and
pytest with testinfra run against it, as a program of its own, its output
in a log. :class:`Pytest` is the real one; ``fakes.ScriptedTests``
answers from a script."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

TIMED_OUT = 124
STOPPED = 130
GRACE = 5.0             # seconds between SIGTERM and SIGKILL


class TestRunner(Protocol):
    def answers(self, host: str, port: int) -> bool:
        """Whether an SSH server greets on host:port now."""

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path,
            timeout: float, stopped: Callable[[float], bool]) -> int:
        """Run to the end; output to ``log``. Returns the exit code, or
        :data:`TIMED_OUT`, or :data:`STOPPED` when ``stopped(seconds)``
        (a wait that returns True on Ctrl-C or SIGTERM) said so."""


class Pytest:
    """The real runner: its own process group, so stopping it stops what
    it started (ssh, paramiko's threads die with it)."""

    def answers(self, host: str, port: int) -> bool:
        try:
            with socket.create_connection((host, port), timeout=5) as conn:
                conn.settimeout(5)
                return conn.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path,
            timeout: float, stopped: Callable[[float], bool]) -> int:
        deadline = time.monotonic() + timeout
        with open(log, "ab") as out:
            proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            try:
                while proc.poll() is None:
                    if time.monotonic() > deadline:
                        _stop(proc)
                        return TIMED_OUT
                    if stopped(0.2):
                        _stop(proc)
                        return STOPPED
                return proc.returncode
            finally:
                if proc.poll() is None:
                    _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, GRACE), (signal.SIGKILL, GRACE)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
