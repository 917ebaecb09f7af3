"""The composition root: one run's settings (the environment, read once),
its image graph, and each service built from them on first use and handed
to the commands that use it. ``doit plan`` builds the lookup and not the
Packer runner; ``doit list`` builds nothing but the checkout; an AWS client
is made when a port first calls AWS.

Building services reads local files only: no network, no subprocess. Tests
hand in their own ports (a MemoryStore, FakeEc2, ScriptedPacker, ...)
through :func:`compose`.
"""

from __future__ import annotations

import functools
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from typing import TYPE_CHECKING

from ..adapters import emulator, signing
from ..adapters.aws import AwsSession, Identity
from ..adapters.console import Console, choose_view
from ..adapters.ec2 import BotoEc2, Ec2
from ..adapters.git import Git, GitRepo
from ..adapters.kms import BotoKms, Kms
from ..adapters.packer import PackerRunner, Packers
from ..adapters.registry import Registry
from ..adapters.s3 import S3Store, Store
from ..adapters.signals import Interrupts
from ..adapters.ssm import BotoSsm, Ssm
from ..adapters.tools import Subprocesses, Tools
from ..core.clock import Clock
from ..core.digest import Hasher
from ..core.graph import Graph, load_graph
from ..core.once import Once
from ..core.settings import Settings, load_settings
from ..state.attestations import Attestations
from ..state.checkout import Checkout
from ..state.locks import Locks, owner
from ..state.lookup import Lookup
from ..state.reports import Reports

if TYPE_CHECKING:       # each command's service is imported when it is first built
    from ..adapters.testrun import TestRunner
    from ..ops.acceptance import Acceptor
    from ..ops.attest import Attester
    from ..ops.build import Builder
    from ..ops.gc import Collector
    from ..ops.invocation import Stager
    from ..ops.prebuild import Prebuild
    from ..ops.promote import Promoter
    from ..ops.revoke import Revoker
    from ..ops.verify import Verifier

T = TypeVar("T")


def service(make: Callable[[Any], T]) -> T:
    """A property made on first use, once, even when threads ask at once."""
    name = f"_{make.__name__}"

    @functools.wraps(make)
    def get(self: Any) -> T:
        with self._building:
            if name not in self.__dict__:
                self.__dict__[name] = make(self)
            return self.__dict__[name]
    return property(get)  # type: ignore[return-value]


class App:
    """The services of one run. ``given`` holds ports handed in (tests'
    fakes), by service name; the rest are the real adapters."""

    def __init__(self, settings: Settings, graph: Graph, *, interrupts: Interrupts | None = None,
                 console: Console | None = None, **given: Any) -> None:
        self._building = threading.RLock()     # one service made at a time, whichever thread asks
        self.settings = settings
        self.graph = graph
        self.interrupts = interrupts or Interrupts()
        self.console = console or Console()
        for name, port in given.items():
            if port is not None or name == "endpoint":      # no endpoint: AWS itself
                self.__dict__[f"_{name}"] = port

    @classmethod
    def load(cls, root: Path, env: Mapping[str, str] | None = None, *,
             interrupts: Interrupts | None = None, verbose: bool = False) -> "App":
        """The run for the tree at ``root``; ``env`` defaults to this process's
        environment; ``verbose`` shows Packer's output live (as AMI_VERBOSE=1)."""
        settings = load_settings(root, env)
        view = choose_view(sys.__stdout__, settings.buildkite.active, settings.term)
        return cls(settings, load_graph(root), interrupts=interrupts,
                   console=Console(view=view, verbose=verbose or settings.verbose))

    def say(self, text: str, image: str | None = None) -> None:
        self.console.say(text, image)

    def endpoint(self) -> str | None:
        """Where AWS calls go: AWS_ENDPOINT_URL, the sandbox's own emulator
        (started on first use), or AWS itself (None). Tests with fake ports
        may give it as ``endpoint``."""
        if "_endpoint" in self.__dict__:
            return self.__dict__["_endpoint"]
        return self.aws.endpoint()

    # -- the ports ------------------------------------------------------------

    @service
    def clock(self) -> Clock:
        return Clock()

    @service
    def aws(self) -> AwsSession:
        settings = self.settings

        def endpoint() -> str | None:
            if settings.endpoint or not settings.sandbox:
                return settings.endpoint
            return emulator.ensure(settings.root, settings.state, self.say)
        return AwsSession(settings, endpoint, self.__dict__.get("_aws_session"), self.clock)

    @service
    def ec2(self) -> Ec2:
        return BotoEc2(self.aws)

    @service
    def ssm(self) -> Ssm:
        return BotoSsm(self.aws)

    @service
    def kms(self) -> Kms:
        return BotoKms(self.aws, self.graph.region)

    @service
    def identity(self) -> Identity:
        return Identity(self.aws, self.graph.region)

    @service
    def store(self) -> Store:
        return S3Store(self.aws, self.settings.bucket, self.graph.region)

    @service
    def tools(self) -> Tools:
        return Subprocesses()

    @service
    def git(self) -> Git:
        return GitRepo(self.settings.root, self.tools)

    @service
    def packers(self) -> PackerRunner:
        return Packers(self.interrupts, self.settings.cleanup_timeout, self.settings.packer,
                       self.settings.env,
                       (self.settings.cache or self.settings.state) / "packer-version.json")

    # -- what the run learns and holds ----------------------------------------

    @service
    def checkout(self) -> Checkout:
        return Checkout(self.settings, self.graph, Hasher(), self.git)

    @service
    def registry(self) -> Registry:
        return Registry(self.store, self.settings.prefix, self.settings.ssm_prefix, self.ssm,
                        self.clock)

    @service
    def lookup(self) -> Lookup:
        settings = self.settings
        attestations = Attestations(self.registry, lambda: self.signer().public_key,
                                    settings.state / "attested.json") \
            if settings.signing_key else None
        return Lookup(self.graph, self.checkout, self.registry, self.ec2, self.clock,
                      settings.records, sandbox=settings.sandbox, bucket=settings.bucket,
                      attestations=attestations)

    @service
    def locks(self) -> Locks:
        settings = self.settings
        return Locks(self.store, settings.prefix, owner(settings.buildkite.job_id),
                     settings.lock_ttl, settings.lock_poll, self.interrupts.wait,
                     self.clock.time)

    @service
    def reports(self) -> Reports:
        return Reports(self.settings.state / "last-run.json")

    @service
    def signer(self) -> Once[Any]:
        """AMI_SIGNING_KEY's signer, looked up once per run (KMS GetPublicKey)."""
        settings = self.settings
        return Once(lambda: signing.signer(settings.signing_key, settings.root, self.kms,
                                           settings.sandbox))

    # -- the commands' services -----------------------------------------------

    @service
    def stager(self) -> Stager:
        from ..ops.invocation import Stager
        return Stager(self.graph, self.settings, self.checkout, self.packers, self.tools)

    @service
    def prebuild(self) -> Prebuild:
        from ..ops.prebuild import Prebuild
        return Prebuild(self.graph, self.settings, self.checkout, self.packers, self.tools,
                        self.stager)

    @service
    def attester(self) -> Attester:
        from ..ops.attest import Attester
        return Attester(self.settings, self.registry, self.ec2, self.signer,
                        lambda: self.checkout.channel()[0])

    @service
    def tests(self) -> TestRunner:
        from ..adapters.testrun import Pytest
        return Pytest()

    @service
    def stand_in(self) -> Callable[[str], Any] | None:
        """The sandbox's SSH server in the place of a test instance: the
        emulator runs no machine. None outside the sandbox."""
        if not self.settings.sandbox:
            return None

        def start(public_key: str) -> Any:
            from ..adapters.standin import StandIn      # asyncio: not on a no-op
            return StandIn(public_key).start()
        return start

    @service
    def acceptor(self) -> Acceptor:
        from ..ops.acceptance import Acceptor
        return Acceptor(self.graph, self.settings, self.checkout, self.prebuild, self.ec2,
                        self.tests, self.console, self.clock, self.interrupts, self.stand_in)

    @service
    def builder(self) -> Builder:
        from ..ops.build import Builder
        return Builder(graph=self.graph, settings=self.settings, checkout=self.checkout,
                       lookup=self.lookup, registry=self.registry, locks=self.locks,
                       packers=self.packers, stager=self.stager, prebuild=self.prebuild,
                       attester=self.attester, acceptor=self.acceptor, ec2=self.ec2,
                       ssm=self.ssm,
                       console=self.console, reports=self.reports, clock=self.clock,
                       interrupts=self.interrupts, endpoint=self.endpoint)

    @service
    def collector(self) -> Collector:
        from ..ops.gc import Collector
        return Collector(self.graph, self.settings, self.checkout, self.registry, self.ec2,
                         self.ssm, self.locks, self.console, self.clock, self.interrupts)

    @service
    def promoter(self) -> Promoter:
        from ..ops.promote import Promoter
        return Promoter(self.graph, self.settings, self.checkout, self.registry, self.ec2,
                        self.git, self.locks, self.console, self.identity)

    @service
    def revoker(self) -> Revoker:
        from ..ops.revoke import Revoker
        return Revoker(self.graph, self.settings, self.checkout, self.registry, self.ec2,
                       self.identity, self.git, self.clock, self.console, self.endpoint)

    @service
    def verifier(self) -> Verifier:
        from ..ops.verify import Verifier
        return Verifier(self.graph, self.settings, self.checkout, self.registry, self.ec2,
                        self.kms, self.git, self.clock, self.console)


def compose(settings: Settings, graph: Graph, **given: Any) -> App:
    """The services of one run, with ``given`` ports and services in place of
    the real ones: ``store``, ``ec2``, ``ssm``, ``kms``, ``identity``,
    ``tools``, ``git``, ``packers``, ``clock``, ``aws_session`` (a botocore
    Session to share), ``endpoint`` (where AWS is, with fake ports),
    ``interrupts``, ``console``."""
    interrupts = given.pop("interrupts", None)
    console = given.pop("console", None)
    return App(settings, graph, interrupts=interrupts, console=console, **given)
