"""One run of doit, composed: the settings (the environment, read once),
the image graph, and the services built from them once and handed down:
the checkout (inputs, hashes, git), the AWS clients, the registry, the
lookup that owns what the run has learned, the build locks, the Packer
runner, the console and the outcomes. Only ``cli`` and ``ops`` see the run;
everything below takes the services it uses.

Making a run reads local files only: no network, no subprocess.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..adapters import emulator, signing
from ..adapters.aws import Aws
from ..adapters.console import Console, choose_view
from ..adapters.packer import Packers
from ..adapters.registry import Registry
from ..adapters.s3 import S3Store, Store
from ..adapters.signals import Interrupts
from ..core.clock import Clock
from ..core.digest import Hasher
from ..core.graph import Graph, load_graph
from ..core.once import Once
from ..core.settings import Settings, load_settings
from ..state.checkout import Checkout
from ..state.locks import Locks, owner
from ..state.lookup import Lookup
from ..state.outcomes import Outcomes


@dataclass
class Run:
    settings: Settings
    graph: Graph
    checkout: Checkout
    aws: Aws
    registry: Registry
    lookup: Lookup
    locks: Locks
    interrupts: Interrupts
    packers: Packers
    outcomes: Outcomes
    clock: Clock
    signer: Once[Any]                   # AMI_SIGNING_KEY's signer, looked up once per run
    console: Console = field(default_factory=Console)

    @classmethod
    def load(cls, root: Path, env: Mapping[str, str] | None = None, *,
             interrupts: Interrupts | None = None, verbose: bool = False) -> "Run":
        """The run for the tree at ``root``: local files only, no network, no
        subprocess. ``env`` defaults to this process's environment;
        ``verbose`` shows Packer's output live (as AMI_VERBOSE=1 does)."""
        settings = load_settings(root, env)
        view = choose_view(sys.__stdout__, settings.buildkite.active, settings.term)
        return compose(settings, load_graph(root), interrupts=interrupts,
                       console=Console(view=view, verbose=verbose or settings.verbose))

    def say(self, text: str, image: str | None = None) -> None:
        self.console.say(text, image)

    def channel(self) -> tuple[str, str]:
        return self.checkout.channel()

    def record_path(self, image: str) -> Path:
        return self.settings.record_path(image)


def compose(settings: Settings, graph: Graph, *, interrupts: Interrupts | None = None,
            store: Store | None = None, console: Console | None = None,
            packers: Packers | None = None, aws_session: Any = None,
            clock: Clock | None = None) -> Run:
    """The services of one run. Tests hand in their own ``store`` (e.g. a
    MemoryStore), ``console``, Packer runner, boto3 session or clock."""
    def endpoint() -> str | None:
        """Where AWS calls go: AWS_ENDPOINT_URL, the sandbox's own emulator, or AWS."""
        if settings.endpoint or not settings.sandbox:
            return settings.endpoint
        return emulator.ensure(settings.root, settings.state)

    checkout = Checkout(settings, graph, Hasher())
    clock = clock or Clock()
    aws = Aws(settings, endpoint, aws_session, clock)
    store = store or S3Store(aws, settings.bucket, graph.region)
    registry = Registry(store, settings.prefix, settings.ssm_prefix, aws.put_ssm_ami, clock,
                        aws.delete_ssm)
    interrupts = interrupts or Interrupts()
    return Run(
        settings=settings, graph=graph, checkout=checkout, aws=aws, registry=registry,
        lookup=Lookup(graph, checkout, registry, aws, settings.records,
                      sandbox=settings.sandbox, bucket=settings.bucket),
        locks=Locks(store, settings.prefix, owner(settings.buildkite.job_id),
                    settings.lock_ttl, settings.lock_poll, interrupts.wait, clock.time),
        interrupts=interrupts,
        packers=packers or Packers(interrupts, settings.cleanup_timeout, settings.packer,
                                    settings.env),
        outcomes=Outcomes(settings.state / "last-run.json"), clock=clock,
        signer=Once(lambda: signing.signer(settings.signing_key, settings.root,
                                           aws.kms(graph.region), settings.sandbox)),
        console=console or Console())
