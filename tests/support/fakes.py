"""The example tree run in process on the fakes shipped beside the
adapters: no emulator, no git, no Packer, no subprocess. What the unit
ring composes runs with.

    tree = FakeTree.example(tmp_path)        # the example tree's files
    app, out = tree.run()                    # a run's services, and what it printed
    build_all(app)                           # every image, as `doit amis` acts
    tree.ec2.images, tree.store.objects      # what AWS holds now
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.adapters.console import Console
from tasks.adapters.fakes import (FakeEc2, FakeGit, FakeIdentity, FakeKms, FakeSsm,
                                  FakeStandIn, MemoryStore, ScriptedPacker, ScriptedTests,
                                  ScriptedTools)
from tasks.adapters.signals import Interrupts
from tasks.cli.compose import App, compose
from tasks.core.clock import Clock
from tasks.core.graph import load_graph
from tasks.core.settings import load_settings

from .project import BUCKET, REGION, Files, copy_files

SETTINGS = {"AMI_SANDBOX": "1", "AMI_BUCKET": BUCKET, "AMI_SKIP_VALIDATE": "1",
            "AMI_LOCK_POLL_SECONDS": "0.05", "AWS_REGION": REGION, "PATH": "/usr/bin:/bin"}


@dataclass
class FakeTree(Files):
    path: Path
    env: dict[str, str] = field(default_factory=dict)
    store: MemoryStore = field(default_factory=MemoryStore)
    ec2: FakeEc2 = field(default_factory=FakeEc2)
    ssm: FakeSsm = field(default_factory=FakeSsm)
    kms: FakeKms = field(default_factory=FakeKms)
    identity: FakeIdentity = field(default_factory=FakeIdentity)
    git: FakeGit = field(default_factory=FakeGit)
    tools: ScriptedTools = field(default_factory=ScriptedTools)
    packer: ScriptedPacker | None = None
    tests: ScriptedTests = field(default_factory=ScriptedTests)

    @classmethod
    def example(cls, dest: Path, **kwargs: Any) -> "FakeTree":
        return cls(copy_files(dest), **kwargs)

    def __post_init__(self) -> None:
        self.env = {**SETTINGS, "HOME": str(self.path.parent), **self.env}
        self.git.commits.setdefault(self.git.commit, self.path)    # HEAD: the files as they are
        if self.packer is None:
            graph = load_graph(self.path)
            self.packer = ScriptedPacker(ec2=self.ec2.client,
                                         regions={n: i.regions[1:]
                                                  for n, i in graph.images.items()})

    def compose(self, root: Path, env: dict[str, str | None] | None, console: Console,
                interrupts: Interrupts | None = None, clock: Clock | None = None) -> App:
        """A run composed as doit's would be, on the fakes; ``env`` over the
        tree's settings (None removes one)."""
        merged = {k: v for k, v in {**self.env, **(env or {})}.items() if v is not None}
        return compose(load_settings(root, merged), load_graph(root), interrupts=interrupts,
                       console=console, store=self.store, ec2=self.ec2, ssm=self.ssm,
                       kms=self.kms, identity=self.identity, git=self.git, tools=self.tools,
                       packers=self.packer, tests=self.tests,
                       stand_in=lambda key: FakeStandIn(), endpoint=None, clock=clock)

    def run(self, env: dict[str, str | None] | None = None, *,
            interrupts: Interrupts | None = None,
            clock: Clock | None = None) -> tuple[App, io.StringIO]:
        """A run on the fakes, and what it printed."""
        out = io.StringIO()
        return self.compose(self.path, env, Console(out), interrupts, clock), out

    def doit(self, *args: str, env: dict[str, str | None] | None = None,
             timeout: float = 120) -> Any:
        """doit itself, in this process, on this tree and the fakes."""
        from .inproc import doit_in_process
        return doit_in_process(self.path, args, lambda root, interrupts, verbose, out, err:
                               self.compose(root, env, Console(out, err, verbose=verbose),
                                            interrupts), timeout)

    def packer_builds(self) -> list[str]:
        assert self.packer is not None
        return [b.image for b in self.packer.builds]


def build_all(app: App) -> None:
    """What `doit amis` does, without doit: pull, the source, every image in order."""
    app.builder.pull()
    app.builder.resolve_source()
    for name in app.graph.images:
        app.builder.bring_up_to_date(name)
