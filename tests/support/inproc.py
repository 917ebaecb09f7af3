"""In-process runs of the tool: a tree in a git repository, the emulator
for EC2 (and S3, unless a MemoryStore stands in), the scripted Packer
runner and the scripted acceptance tests (a test instance is launched in
the emulator; its tests do not run: ``tests``), composed the way
``cli.compose`` composes a real run.

    tree = Tree.example(tmp_path, aws)       # the example tree, committed
    app, out = tree.run()                    # a run's services, and what it printed
    build_all(app)                           # every image, as `doit amis` acts
    result = tree.doit("amis")               # doit itself, in this process
    ok(result); tree.packer_builds()         # read as the subprocess runs are read
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.adapters.console import Console
from tasks.adapters.fakes import FakeStandIn, MemoryStore, ScriptedPacker, ScriptedTests
from tasks.adapters.signals import Interrupts
from tasks.core.clock import Clock
from tasks.core.graph import load_graph
from tasks.core.settings import load_settings
from tasks.cli.compose import App, compose

from .fakes import build_all  # noqa: F401  (one for both kinds of tree)
from .project import BUCKET, GIT, REGION, Files, commit, copy_project

SETTINGS = {"AMI_SANDBOX": "1", "AMI_BUCKET": BUCKET, "AMI_SKIP_VALIDATE": "1",
            "AMI_ALLOW_DIRTY": "1", "AMI_LOCK_POLL_SECONDS": "0.05", "AWS_REGION": REGION}


@dataclass
class Done:
    """An in-process doit run, read like a subprocess.CompletedProcess."""
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Tree(Files):
    path: Path
    url: str                                    # the emulator
    env: dict[str, str] = field(default_factory=dict)
    store: MemoryStore | None = None            # None: the emulator's S3
    packer: ScriptedPacker | None = None
    tests: Any = None                           # None: ScriptedTests; a real runner: Pytest()

    @classmethod
    def example(cls, dest: Path, url: str, **kwargs: Any) -> "Tree":
        return cls(copy_project(dest), url, **kwargs)

    clients: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    session: Any = field(default=None, repr=False)       # botocore's, shared by the tree's runs

    def __post_init__(self) -> None:
        self.env = {**SETTINGS, "AWS_ENDPOINT_URL": self.url, "HOME": str(self.path.parent),
                    **self.env}
        if self.session is None:
            import botocore.session
            self.session = botocore.session.get_session()
        if self.tests is None:
            self.tests = ScriptedTests()
        if self.packer is None:
            graph = load_graph(self.path)
            self.packer = ScriptedPacker(
                ec2=lambda region: self.client("ec2", region),
                regions={n: i.regions[1:] for n, i in graph.images.items()})

    def client(self, service: str, region: str = REGION) -> Any:
        """A boto3 client on the emulator (made once per tree)."""
        import boto3
        if (service, region) not in self.clients:
            self.clients[(service, region)] = boto3.client(
                service, endpoint_url=self.url, region_name=region,
                aws_access_key_id="test", aws_secret_access_key="test")
        return self.clients[(service, region)]

    # -- what happened ----------------------------------------------------------

    def packer_builds(self) -> list[str]:
        """Images the scripted Packer built since the last ``reset_count``, in order."""
        return [b.image for b in self.packer.builds]

    def reset_count(self) -> None:
        self.packer.builds.clear()

    def record(self, image: str) -> Path:
        return self.path / ".amis" / "records" / f"{image}.json"

    def objects(self) -> dict[str, bytes]:
        """Every object in the bucket, key -> body."""
        if self.store is not None:
            return dict(self.store.objects)
        s3 = self.client("s3")
        out = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        return out

    def digest(self, image: str) -> str:
        """The digest `doit amis` would build ``image`` with now (its parent
        must have an AMI)."""
        digest = self.run()[0].lookup.decision().verdicts[image].digest
        assert digest, f"{image} has no digest yet: its parent has no AMI"
        return digest

    def current(self, image: str, channel: str = "main") -> dict:
        """The record of ``image`` current in ``channel``."""
        return json.loads(self.objects()[f"channels/{channel}/{image}.json"])

    def run(self, env: dict[str, str | None] | None = None,
            interrupts: Interrupts | None = None,
            clock: Clock | None = None) -> tuple[App, io.StringIO]:
        """A run composed as doit's would be, and the stream it prints to."""
        out = io.StringIO()
        settings = load_settings(self.path, self.settings_env(env))
        run = compose(settings, load_graph(self.path), interrupts=interrupts,
                      store=self.store, console=Console(out), packers=self.packer,
                      aws_session=self.session, clock=clock, **self.acceptance())
        return run, out

    def commit(self, message: str = "change") -> None:
        commit(self.path, message)

    def git(self, *args: str) -> str:
        return subprocess.run(GIT + list(args), cwd=self.path, check=True, capture_output=True,
                              text=True).stdout

    def clone(self, dest: Path) -> "Tree":
        """A fresh clone: new folder, new mtimes, no records, no doit database."""
        subprocess.run(["git", "clone", "-q", str(self.path), str(dest)], check=True)
        return Tree(dest, self.url, dict(self.env), self.store, self.packer, self.tests,
                    self.clients, self.session)

    def settings_env(self, env: dict[str, str | None] | None) -> dict[str, str]:
        """The tree's settings with ``env`` over them (None removes a setting)."""
        merged = {**self.env, **(env or {})}
        return {k: v for k, v in merged.items() if v is not None}

    def doit(self, *args: str, env: dict[str, str | None] | None = None,
             timeout: float = 300) -> Done:
        """doit itself, in this process, on this tree: its task creators, its
        up-to-date checks and database, with the scripted Packer. A run that
        has not ended after ``timeout`` seconds fails the test."""
        settings = self.settings_env(env)
        return doit_in_process(self.path, args, lambda root, interrupts, verbose, out, err:
                               compose(load_settings(root, settings), load_graph(root),
                                       interrupts=interrupts, store=self.store,
                                       console=Console(out, err, verbose=verbose),
                                       packers=self.packer, aws_session=self.session,
                                       **self.acceptance()),
                               timeout)

    def acceptance(self) -> dict[str, Any]:
        """The acceptance stage's ports: scripted tests and a stand-in's
        address, or (``tests`` a real runner) the sandbox's real stand-in."""
        if isinstance(self.tests, ScriptedTests):
            return {"tests": self.tests, "stand_in": lambda key: FakeStandIn()}
        return {"tests": self.tests}


def doit_in_process(path: Path, args: tuple[str, ...], load, timeout: float = 300) -> Done:
    """``doit <args>`` in this process, in ``path``, its run composed by
    ``load(root, interrupts, verbose, out, err)``; read like a subprocess."""
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from tasks.cli.creators import Creators, namespace

    out, err = io.StringIO(), io.StringIO()
    creators = Creators(path, argv=["doit", *args],
                        load=lambda root, interrupts, verbose: load(root, interrupts, verbose,
                                                                    out, err))
    codes: list[int] = []

    def main() -> None:
        # A run that failed, a task's --help and a command-line mistake end
        # in SystemExit, as in `doit` itself.
        try:
            loader = ModuleTaskLoader(namespace(creators, ["doit", *args]))
            codes.append(DoitMain(loader, config_filenames=()).run(list(args)))
        except SystemExit as stop:
            codes.append(int(stop.code or 0))

    here = os.getcwd()
    os.chdir(path)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            worker = threading.Thread(target=main, daemon=True)
            worker.start()
            worker.join(timeout)
    finally:
        os.chdir(here)
    assert codes, f"doit {' '.join(args)} did not end within {timeout:.0f} s:\n" \
                  f"{out.getvalue()}{err.getvalue()}"
    return Done(codes[0], out.getvalue(), err.getvalue())


def next_second() -> None:
    """The emulator stamps CreationDate to the second: an AMI made after this
    is newer than one made before it, as gc sees it."""
    now = int(time.time())
    while int(time.time()) == now:
        time.sleep(0.01)
