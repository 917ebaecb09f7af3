"""The acceptance stage: before an AMI becomes current, one instance of it
is launched, it answers SSH, and the image's testinfra tests run against
it. Whatever happens (the tests pass or fail, the instance never answers,
Ctrl-C, AWS failing mid-way) the instance, the temporary key pair and
security group, and the key's file are removed before the stage returns;
what cannot be removed is said, and ``doit gc --apply`` removes it later
(everything the stage makes is named ``amis-test-…`` and tagged
``Purpose=amis-test``).

Only a test run that finished decides: its JUnit report's failures reject
the AMI. An instance that never answers, a run that crashes or times out,
fails the stage without judging the AMI, and the next run tries again.

In the sandbox the emulator runs no machine, so the tests run over SSH
against a stand-in on loopback (``adapters.standin``): see ``SANDBOX_NOTE``.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..adapters.console import Console, elapsed
from ..adapters.ec2 import Ec2
from ..adapters.registry import Registry
from ..adapters.signals import Interrupts
from ..adapters.testrun import STOPPED, TIMED_OUT, TestRunner
from ..core import acceptance
from ..core.clock import Clock
from ..core.cloud import Launch, SecurityGroup
from ..core.errors import AmiError, FAILED, INTERRUPTED, MISTAKE, REJECTED
from ..core.graph import Graph
from ..core.names import MANAGED_BY
from ..core.records import Record, Tested
from ..core.settings import Settings
from ..core.text import did_you_mean
from ..state.checkout import Checkout
from .prebuild import Prebuild

if TYPE_CHECKING:                       # the sandbox's stand-in imports asyncio: not on a no-op
    from ..adapters.standin import StandIn

PURPOSE = "amis-test"                   # names and Purpose tags of what the stage makes
PLUGIN = Path(__file__).resolve().parent.parent / "adapters" / "testinfra_plugin.py"
STAND_IN = "AMI_TEST_STAND_IN"          # set for the tests when they run on the stand-in
SANDBOX_NOTE = ("sandbox: each image's tests run over SSH against a stand-in on this machine "
                "(127.0.0.1), not on the instance: this proves the launch, the SSH transport "
                "with the run's key, the gate and the clean-up, not the AMI's content")
POLL = 2.0                              # seconds between looks at the instance and SSH
TERMINATE_WAIT = 180.0                  # seconds for an instance to end before its group goes


@dataclass
class _Made:
    """What this test run made, to remove."""
    region: str
    key_name: str | None = None
    key_dir: Path | None = None
    group: SecurityGroup | None = None
    instance: str | None = None
    stand_in: StandIn | None = None
    stage: Path | None = None
    left: list[str] = field(default_factory=list)


@dataclass
class Acceptor:
    graph: Graph
    settings: Settings
    checkout: Checkout
    prebuild: Prebuild
    ec2: Ec2
    runner: TestRunner
    console: Console
    clock: Clock
    interrupts: Interrupts
    stand_in: Callable[[str], StandIn] | None = None   # the sandbox's: public key -> server
    _sandbox_said: bool = field(default=False, init=False, repr=False)
    _said_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def test(self, name: str, record: Record) -> Tested:
        """Run image ``name``'s tests on an instance of ``record``'s AMI."""
        manifest = self.checkout.tests(name)
        digest = acceptance.tests_digest(manifest)
        assert digest is not None, f"image {name} has no tests"
        spec = self.prebuild.test_settings(name)
        image = self.graph.images[name]
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%SZ")
        self.settings.logs.mkdir(parents=True, exist_ok=True)
        log = self.settings.logs / f"{name}-{stamp}-tests.log"
        junit = log.with_suffix(".xml")
        made = _Made(record.region)
        started = time.monotonic()
        deadline = started + image.test_timeout
        say = lambda text: self.console.detail(text, name)      # noqa: E731
        try:
            tags = {"Name": f"{PURPOSE}-{name}", "Purpose": PURPOSE, "Image": name,
                    "Digest": record.digest, "ManagedBy": MANAGED_BY}
            key = self._key_pair(made, name, stamp, tags)
            groups = (spec.security_group,) if spec.security_group else (
                self._group(made, name, stamp, spec.subnet, tags).id,)
            made.instance = self.ec2.launch(record.region, Launch(
                ami=record.ami, instance_type=spec.instance_type, key_name=str(made.key_name),
                tags=tags, subnet=spec.subnet, security_groups=groups))
            say(f"testing {record.ami}: launched {made.instance} ({spec.instance_type}) in "
                f"{record.region}")
            host, port = self._reachable(made, name, key, deadline)
            say(f"{made.instance} answers SSH after {elapsed(time.monotonic() - started)}")
            made.stage = self._stage(name, manifest)
            code = self.runner.run(
                [sys.executable, "-m", "pytest", "-p", "amis_acceptance", "-p",
                 "no:cacheprovider", "-c", "pytest.ini", "--rootdir", ".", "-q", "-rs",
                 f"--junitxml={junit}", f"--hosts=paramiko://{spec.user}@{host}:{port}",
                 f"--ssh-identity-file={made.key_dir}/key",
                 f"--ssh-config={made.key_dir}/ssh_config", *sorted(manifest)],
                cwd=made.stage, env=self._env(name, record, made), log=log,
                timeout=max(deadline - time.monotonic(), 1.0),
                stopped=self.interrupts.wait)
            return self._verdict(name, digest, manifest, code, junit, log, image.test_timeout)
        except AmiError as err:
            if str(err).startswith(f"image {name}:"):
                raise
            raise AmiError(f"image {name}: testing {record.ami}: {err}; nothing published",
                           err.code) from None
        finally:
            self._clean(made, name)

    # -- the steps ------------------------------------------------------------------

    def _key_pair(self, made: _Made, name: str, stamp: str, tags: dict[str, str]) -> str:
        """A new key pair in EC2; its private key in a folder only we can
        read. Returns its public key (an OpenSSH line)."""
        from cryptography.hazmat.primitives import serialization
        made.key_name = f"{PURPOSE}-{name}-{stamp}-{uuid.uuid4().hex[:6]}"
        material = self.ec2.create_key_pair(made.region, made.key_name, tags)
        made.key_dir = Path(tempfile.mkdtemp(prefix=f"{PURPOSE}-"))
        keyfile = made.key_dir / "key"
        fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as f:
            f.write(material)
        (made.key_dir / "ssh_config").write_text(
            "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n")
        private = serialization.load_ssh_private_key(material.encode(), None) \
            if "OPENSSH" in material else serialization.load_pem_private_key(material.encode(),
                                                                             None)
        return private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                 serialization.PublicFormat.OpenSSH).decode()

    def _group(self, made: _Made, name: str, stamp: str, subnet: str | None,
               tags: dict[str, str]) -> SecurityGroup:
        made.group = self.ec2.create_security_group(
            made.region, f"{PURPOSE}-{name}-{stamp}-{uuid.uuid4().hex[:6]}", subnet, tags)
        return made.group

    def _reachable(self, made: _Made, name: str, public_key: str,
                   deadline: float) -> tuple[str, int]:
        """Where SSH answers: the instance once it runs, or in the sandbox
        the stand-in. Waits, within the image's test_timeout."""
        assert made.instance is not None
        while True:
            found = self.ec2.instance(made.region, made.instance)
            state = found.state if found else "unknown"
            if state == "running" and found and (found.address or self.stand_in):
                break
            if state in ("shutting-down", "terminated", "stopping", "stopped"):
                raise AmiError(f"image {name}: the test instance {made.instance} is {state} "
                               "before it answered: the AMI may not boot; nothing published",
                               FAILED)
            self._wait(deadline, name, f"{made.instance} to run (it is {state})")
        if self.stand_in is not None:
            made.stand_in = self.stand_in(public_key)
            with self._said_lock:           # once a run, not once an image
                said, self._sandbox_said = self._sandbox_said, True
            if not said:
                self.console.say(SANDBOX_NOTE)
            self.console.detail(f"tests: the stand-in listens on 127.0.0.1:{made.stand_in.port}",
                                name)
            host, port = "127.0.0.1", made.stand_in.port
        else:
            host, port = found.address, 22
        while not self.runner.answers(host, port):
            self._wait(deadline, name, f"{made.instance} ({host}) to answer SSH")
        return host, port

    def _wait(self, deadline: float, name: str, what: str) -> None:
        if time.monotonic() + POLL > deadline:
            raise AmiError(f"image {name}: waited {elapsed(self.graph.images[name].test_timeout)} "
                           f"(test_timeout) for {what}: the AMI may not boot, or SSH cannot "
                           "reach it (check test_subnet and test_security_group); nothing "
                           "published", FAILED)
        if self.interrupts.wait(POLL):
            raise AmiError(f"image {name}: interrupted while testing; nothing published",
                           INTERRUPTED)

    def _stage(self, name: str, manifest: dict[str, str]) -> Path:
        """The test files, copied as hashed, and a pytest configuration of
        our own: the repository's pytest.ini and conftest.py play no part."""
        stage = self.settings.state / "stage" / f"{name}-tests"
        shutil.rmtree(stage, ignore_errors=True)
        for rel in manifest:
            dest = stage / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.graph.root / rel, dest)          # with its mode
        if self.checkout.hasher.manifest(stage, list(manifest)) != manifest:
            raise AmiError(f"image {name}: a test file changed while it was staged: run again",
                           FAILED)
        (stage / "pytest.ini").write_text("[pytest]\naddopts =\n")
        shutil.copyfile(PLUGIN, stage / "amis_acceptance.py")
        return stage

    def _env(self, name: str, record: Record, made: _Made) -> dict[str, str]:
        """What the tests see: no AWS credentials or other secrets of the
        build, only where they run and what they test."""
        env = {k: v for k, v in self.settings.env.items()
               if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM")}
        env.update({"AMI_TEST_IMAGE": name, "AMI_TEST_AMI": record.ami,
                    "AMI_TEST_REGION": record.region, "PYTHONDONTWRITEBYTECODE": "1"})
        if made.stand_in is not None:
            env[STAND_IN] = f"127.0.0.1:{made.stand_in.port}"
        return env

    def _verdict(self, name: str, digest: str, manifest: dict[str, str], code: int,
                 junit: Path, log: Path, timeout: float) -> Tested:
        shown = self.settings.shown(log)
        if code == STOPPED:
            raise AmiError(f"image {name}: interrupted while testing; nothing published",
                           INTERRUPTED)
        if code == TIMED_OUT:
            raise AmiError(f"image {name}: its tests did not finish within test_timeout "
                           f"({elapsed(timeout)}); nothing published; log: {shown}", FAILED)
        if code == 5:
            raise AmiError(f"image {name}: pytest collected no tests from its tests: in "
                           f"{self.graph.file.name}: name test_*.py files there; log: {shown}",
                           MISTAKE)
        if code not in (0, 1) or not junit.is_file():
            raise AmiError(f"image {name}: the test run failed (pytest exit {code}) before "
                           f"judging the AMI; nothing published; log: {shown}", FAILED)
        counts, failures = acceptance.summary(junit.read_text(encoding="utf-8",
                                                              errors="replace"), shown)
        passed = code == 0 and not failures
        for reason in acceptance.skipped_reasons(junit.read_text(encoding="utf-8",
                                                                 errors="replace")):
            self.console.detail(f"skipped: {reason}", name)
        return Tested(digest=digest, files=dict(manifest), passed=passed, counts=counts,
                      failures=tuple(failures), at=self.clock.now().isoformat(timespec="seconds"),
                      log=log.name)

    def _clean(self, made: _Made, name: str) -> None:
        """Remove what the run made, each step whatever the others did."""
        region = made.region
        steps: list[tuple[str, Callable[[], None]]] = []
        if made.instance:
            steps.append((f"instance {made.instance}", lambda: self._end(made)))
        if made.group:
            group = made.group
            steps.append((f"security group {group.id}",
                          lambda: self.ec2.delete_security_group(region, group)))
        if made.key_name:
            key_name = made.key_name
            steps.append((f"key pair {key_name}",
                          lambda: self.ec2.delete_key_pair(region, key_name)))
        removed, left = [], []
        for what, step in steps:
            try:
                step()
                removed.append(what)
            except AmiError as err:
                left.append(f"{what} ({err})")
        if made.stand_in is not None:
            made.stand_in.stop()
        for folder in (made.key_dir, made.stage):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        if removed:
            self.console.detail(f"removed the test's {', '.join(removed)}", name)
        if left:
            self.console.say(f"could not remove the test's {'; '.join(left)}: `doit gc --apply` "
                             "removes test leftovers older than --leftover-hours", name)

    def _end(self, made: _Made) -> None:
        """Terminate the instance; with a security group of our own to
        delete, wait until it has ended (EC2 refuses to delete a group in use)."""
        assert made.instance is not None
        self.ec2.terminate(made.region, made.instance)
        if made.group is None:
            return
        until = time.monotonic() + TERMINATE_WAIT
        while time.monotonic() < until:
            try:
                found = self.ec2.instance(made.region, made.instance)
            except AmiError:
                return              # terminating: the group's removal says if it is not done
            if found is None or found.state == "terminated":
                return
            time.sleep(POLL)


def retest(graph: Graph, registry: Registry, checkout: Checkout, acceptor: Acceptor,
           console: Console, image: str) -> None:
    """``doit test``: the tests of ``image`` (or all) on the current AMI of
    the channel this branch publishes to, for a nightly check. Nothing moves
    and nothing is recorded; a failure is the run's error (exit 4)."""
    names = list(graph.images) if image == "all" else [image]
    unknown = [n for n in names if n not in graph.images]
    if unknown:
        raise AmiError(f"test -i {unknown[0]}: no such image in {graph.file.name}"
                       + (did_you_mean(unknown[0], graph.images) or
                          f": images are {', '.join(graph.images)}"))
    channel = checkout.published_channel()
    failed = []
    for name in names:
        if not checkout.tests(name):
            console.say(f"no tests (tests: in {graph.file.name})", name)
            continue
        record = registry.record_at(registry.current_key(channel, name), name)
        if record is None:
            raise AmiError(f"test: channel {channel} has no record of {name}: build it first "
                           f"(doit ami:{name})")
        tested = acceptor.test(name, record)
        counts = acceptance.counted(tested.counts)
        if tested.passed:
            console.say(f"{record.ami} passed: {counts}; log: .amis/logs/{tested.log}", name)
        else:
            console.say(f"{record.ami} failed: {counts}: {', '.join(tested.failures[:3])}; "
                        f"log: .amis/logs/{tested.log}", name)
            failed.append(name)
    if failed:
        raise AmiError(f"test: the current AMI of {', '.join(failed)} in channel {channel} "
                       "failed its tests (nothing moved): fix the image and rebuild, or revoke "
                       "it (doit revoke)", REJECTED)
