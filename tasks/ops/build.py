"""What ``ami:<name>`` does: act on the image's verdict.

- keep: its current record stays, no Packer;
- reuse: an earlier build of exactly these inputs (another branch, a revert,
  another agent) is made current again, no Packer;
- build: the checks before Packer (``prebuild``), Packer in the image's
  stage (``invocation``), the checks of what it made (``postbuild``), the
  signature (``attest``); only a build that passed them all is published.

:class:`Builder` holds what building needs, handed in by the composition
root (``cli.compose``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..adapters import stage
from ..adapters.aws import packer_env
from ..adapters.console import BUILDING, TESTING, VALIDATING, Console, elapsed
from ..adapters.ec2 import Ec2
from ..adapters.packer import PackerRunner
from ..adapters.packer_output import PHASE_ORDER, Masker, Result, phase_of
from ..adapters.registry import Registry, revoked_by
from ..adapters.signals import Interrupts
from ..adapters.ssm import Ssm
from ..core.clock import Clock
from ..core import acceptance
from ..core.decision import KEEP, REJECT, REUSE, SKIP, TEST, Verdict
from ..core.digest import source_digest
from ..core.diagnostics import Diagnostics
from ..core.errors import AmiError, FAILED, INTERRUPTED, REJECTED
from ..core.graph import Graph
from ..core.names import MANAGED_BY, REGISTRY_TAG
from ..core.outcome import Outcome
from ..core.records import Record, save_local
from ..core.settings import Settings
from ..core.text import table
from ..inputs.template import sensitive_values
from ..state.checkout import Checkout
from ..state.locks import Locks
from ..state.lookup import Lookup
from ..state.reports import Report, Reports
from . import postbuild
from .acceptance import Acceptor
from .attest import Attester
from .invocation import Stager, build_variables
from .prebuild import Prebuild


def not_in_graph(channel: str, images: list[str]) -> str:
    """What ``plan`` and ``amis`` say of records the graph no longer has."""
    return (f"channel {channel} holds records of {', '.join(images)}, which amis.yaml no longer "
            "has (removed or renamed): `doit gc --apply` retires them, then their AMIs")


@dataclass
class Builder:
    graph: Graph
    settings: Settings
    checkout: Checkout
    lookup: Lookup
    registry: Registry
    locks: Locks
    packers: PackerRunner
    stager: Stager
    prebuild: Prebuild
    attester: Attester
    acceptor: Acceptor
    ec2: Ec2
    ssm: Ssm
    console: Console
    reports: Reports
    clock: Clock
    interrupts: Interrupts
    endpoint: Callable[[], str | None]      # where AWS calls go (None: AWS itself)

    def say(self, text: str, image: str | None = None) -> None:
        self.console.say(text, image)

    def channel(self) -> str:
        return self.checkout.channel()[0]

    def _publish(self, record: Record, *, new_build: bool) -> Record:
        """Make ``record`` current in this run's channel; returns what is current."""
        current = self.registry.publish(record, self.channel(), new_build=new_build)
        save_local(self.settings.record_path(current.image), current.body())
        self.lookup.remember(current)
        return current

    def pull(self) -> None:
        """The pre-task of every build run: mirror the channel, repair its
        plain-text ids, and say what will be rebuilt because its AMI is gone."""
        self.reports.start()
        try:
            status = self.lookup.pull()     # works out the channel as it lists it
        finally:
            self._say_channel_note()        # also when the pull failed: it says why this channel
        channel = self.channel()
        counts = {s: sum(1 for v in status.values() if v == s)
                  for s in sorted(set(status.values()))}
        self.say("pulled channel {} from {}: {}".format(
            channel, self.registry.url(self.settings.prefix),
            ", ".join(f"{n} {s}" for s, n in counts.items())))
        for name in self.lookup.facts.txt_stale:
            # A failed write (or a hand edit) left the plain-text id behind its record.
            record = self.lookup.record(name)
            assert record is not None
            if not self.lookup.usable(record):
                continue                # the build this run makes is published instead
            self.registry.write_id(channel, record)
            self.say(f"repaired {self.registry.url(self.registry.id_key(channel, name))}: it now "
                     f"says {record.ami}, as the record does", name)
        self._repair_ssm(channel)
        if self.lookup.facts.others:
            self.say(not_in_graph(channel, self.lookup.facts.others))
        if self.console.view == "live":
            # Only drawn live: deciding here costs a no-op a whole decision (0.9 s on 100 images).
            try:
                self.console.queue(self.lookup.decision().builds())
            except AmiError:
                pass                # the image's own task says why it cannot be decided
            self.console.start()

    def _say_channel_note(self) -> None:
        try:
            note = self.checkout.channel()[1]
        except AmiError:
            return                          # git's own failure is the pull's error
        if note:
            self.say(note)

    def _repair_ssm(self, channel: str) -> None:
        """A failed PutParameter (or a hand edit) left an SSM parameter behind its
        record: each run leaves SSM saying what the records say."""
        records = [r for name in self.graph.images
                   if (r := self.lookup.record(name)) is not None and self.lookup.usable(r)]
        wanted = {name: r for r in records
                  if (name := self.registry.ssm_name(channel, r.image))}
        if not wanted:
            return
        for region in sorted({r.region for r in wanted.values()}):
            names = sorted(n for n, r in wanted.items() if r.region == region)
            found = self.ssm.values(region, names)
            for name in names:
                record = wanted[name]
                if found.get(name) != record.ami:
                    self.registry.write_ssm(channel, record)
                    self.say(f"repaired SSM parameter {name}: it now says {record.ami}, as the "
                             "record does", record.image)

    def resolve_source(self) -> Report:
        """Record what the source image resolves to now; publish when it moved."""
        start = time.monotonic()
        name = self.graph.source.name
        verdict = self.lookup.decision().verdicts[name]
        if verdict.action == KEEP:
            return self.reports.add(Report(name, Outcome.UP_TO_DATE, verdict.ami or "-",
                                           time.monotonic() - start, verdict.reason))
        if verdict.ami is None:
            raise AmiError(f"source {name}: {verdict.reason}", code=FAILED)
        spec = self.graph.source.spec(self.settings.sandbox)
        how = self.lookup.source_how()
        stamp = self.clock.now().isoformat(timespec="seconds")
        record = Record(image=name, region=self.graph.region,
                        amis={self.graph.region: verdict.ami},
                        digest=source_digest(spec, verdict.ami),
                        source={**spec, "resolved": how}, git=self.checkout.git(),
                        build_started=stamp, build_finished=stamp)
        self._publish(record, new_build=True)
        self.console.done(name, Outcome.RESOLVED, f"resolved to {verdict.ami} ({how})")
        return self.reports.add(Report(name, Outcome.RESOLVED, verdict.ami,
                                       time.monotonic() - start, how))

    def settle(self, name: str) -> Report | None:
        """Keep or reuse image ``name`` as ``ami:<name>`` would, never running
        Packer; None when it needs a build after all."""
        verdict = self.lookup.decision().verdicts[name]
        if verdict.action not in (KEEP, REUSE):
            return None
        return self.bring_up_to_date(name, may_build=False)

    def bring_up_to_date(self, name: str, *, may_build: bool = True) -> Report | None:
        """Act on image ``name``'s verdict. Returns what happened (None: it
        needed a build, and ``may_build`` was False)."""
        start = time.monotonic()
        decision = self.lookup.decision()
        verdict = decision.verdicts[name]
        parent = decision.verdicts[self.graph.images[name].parent]
        if verdict.action == KEEP:
            return self._keep(verdict, start)
        if parent.ami is None or verdict.digest is None:
            raise AmiError(f"image {name}: parent {parent.image} has no AMI: build it first "
                           f"(doit ami:{parent.image})")
        if verdict.cause == "too-old":
            self.say(f"{verdict.reason}: rebuilding for OS updates", name)
        say = lambda text: self.say(text, name)      # noqa: E731
        if verdict.builds:
            self.say(f"build: {verdict.reason}", name)
        with self.locks.held(name, verdict.digest, say) as lock:
            # Under the lock, look again: another agent may have built these inputs
            # meanwhile, and what was to be reused may be gone (gc takes this lock too).
            self.lookup.forget(name, verdict.digest)
            again = self.lookup.decision().verdicts[name]
            if again.action == KEEP:
                return self._keep(again, start)
            if again.action == REUSE:
                return self._reuse(again, start)
            if again.action == REJECT:
                raise AmiError(f"image {name}: {again.reason}", REJECTED)
            if again.action == SKIP:
                raise AmiError(f"image {name}: {again.reason}", REJECTED)
            if again.action == TEST:
                return self._test_earlier(again, start)
            if not may_build:
                return None
            self.prebuild.preflight(name)
            if self.settings.signing_key:
                self.attester.signer()     # a key that cannot sign stops the build before Packer
            notes = [f"build {name}: {again.reason}"]
            timed = again.current or self.lookup.facts.baseline.get(name)
            self.console.expect(name, timed.seconds if timed else None)
            validating = time.monotonic()
            if self.settings.validate:
                def step(what: str) -> None:
                    self.console.phase(name, f"{VALIDATING}: {what}")
                problems = Diagnostics()        # lint runs too when validate fails
                checks: list[str] = []
                with problems.collect():
                    checks = self.prebuild.validate(name, say, step)
                step("ansible-lint")
                with problems.collect():
                    if self.prebuild.lint([name], say):
                        checks.append("ansible-lint")
                problems.check()
                notes.append(f"validated: {', '.join(checks)}")
                self.console.passed(name, f"validated: {', '.join(checks)} "
                                          f"({elapsed(time.monotonic() - validating)})")
            if self.checkout.tests(name):
                self.prebuild.test_settings(name)   # how it will be tested, known before Packer
            record = self._run_packer(name, parent, verdict.digest, notes,
                                      round(time.monotonic() - validating, 1))
            record = self._accept(name, record)
            published = self._publish(record, new_build=True)
        copies = "".join(f", {r}: {a}" for r, a in record.amis.items() if r != record.region)
        tested = f"; tests: {acceptance.counted(record.tests.counts)}" if record.tests else ""
        self.console.done(name, Outcome.BUILT, f"built {record.ami}{copies} in "
                          f"{elapsed(time.monotonic() - start)}{tested}")
        if published is not record:
            self.say(f"a build that started later ({published.ami}, commit "
                     f"{str(published.git.get('commit', '?'))[:12]}) is current; left it so"
                     + (" (this build had lost its lock)" if lock.lost else ""), name)
        return self.reports.add(Report(name, Outcome.BUILT, record.ami,
                                       time.monotonic() - start))

    def _accept(self, name: str, record: Record) -> Record:
        """``record`` with what its AMI passed, or, when its tests failed, a
        REJECTED error; either way the verdict is kept with the digest
        record, so these inputs and tests are never tested again. An image
        without tests is accepted as it is."""
        if not self.checkout.tests(name):
            return record
        self.console.phase(name, TESTING)
        tested = self.attester.sign_tests(record, self.acceptor.test(name, record))
        record = replace(record, tests=tested)
        self.registry.keep_build(record)
        self.lookup.remember_build(record)
        log = self.settings.logs / (tested.log or "")
        if tested.passed:
            self.console.detail(f"tests passed: {acceptance.counted(tested.counts)}", name)
            return record
        current = self.lookup.record(name)
        stays = f"channel {self.channel()} stays on {current.ami}" if current is not None \
            and current.ami != record.ami else f"nothing published to channel {self.channel()}"
        self.console.show_log(name, log)
        raise AmiError(f"image {name}: {record.ami} {acceptance.rejection(tested)}; {stays}; "
                       f"log: {self.settings.shown(log)}", REJECTED)

    def _test_earlier(self, verdict: Verdict, start: float) -> Report:
        """An AMI built earlier for these inputs, not yet tested with these
        tests: test it, and publish it when it passes. No Packer."""
        assert verdict.record is not None
        self.console.detail(f"test: {verdict.reason}", verdict.image)
        record = self._accept(verdict.image, verdict.record)
        self._publish(record, new_build=False)
        assert record.tests is not None
        self.console.done(verdict.image, Outcome.TESTED,
                          f"tested {record.ami} (built earlier): "
                          f"{acceptance.counted(record.tests.counts)}; published")
        return self.reports.add(Report(verdict.image, Outcome.TESTED, record.ami,
                                       time.monotonic() - start, "tests changed"))

    def _keep(self, verdict: Verdict, start: float) -> Report:
        assert verdict.record is not None
        self.console.detail(f"up to date: inputs unchanged (digest "
                            f"{str(verdict.digest)[:12]}), "
                            f"{verdict.record.ami}", verdict.image)
        self.console.done(verdict.image, Outcome.UP_TO_DATE,
                          f"up to date: {verdict.reason}" if verdict.cause == "promoted" else "")
        return self.reports.add(Report(verdict.image, Outcome.UP_TO_DATE, verdict.record.ami,
                                       time.monotonic() - start))

    def _reuse(self, verdict: Verdict, start: float) -> Report:
        assert verdict.record is not None
        earlier = verdict.record
        self._publish(earlier, new_build=False)
        built_on = earlier.git.get("branch") if earlier.git else None
        self.console.done(verdict.image, Outcome.REUSED,
                          f"reused {earlier.ami} by digest {earlier.digest[:12]}: an earlier build "
                          "has these inputs" + (f" (built on {built_on})" if built_on else ""))
        return self.reports.add(Report(verdict.image, Outcome.REUSED, earlier.ami,
                                       time.monotonic() - start, "by digest"))

    def _run_packer(self, name: str, parent: Verdict, digest: str,
                    notes: list[str], validated: float) -> Record:
        graph, settings = self.graph, self.settings
        image = graph.images[name]
        assert parent.ami is not None
        exe = self.packers.executable()
        env = packer_env(self.settings, self.endpoint())
        version = self.packers.version()
        git = self.checkout.git()
        started = self.clock.now()
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        variables = {**image.packer_vars(), **build_variables(
            name, graph.region, image.playbook, source_ami=parent.ami, parent_image=parent.image,
            digest=digest, git=git, build_time=stamp, packer_version=version)}
        tags = {"Image": name, "Digest": digest, "ManagedBy": MANAGED_BY,
                REGISTRY_TAG: self.registry.identity()}
        with self.stager.prepared(name, variables, sandbox=settings.sandbox,
                                  endpoint=self.endpoint(), tags=tags, env=env) as job:
            self.console.phase(name, BUILDING)
            notes.append(f"building on {parent.image} {parent.ami} with {image.template}")
            if job.dropped:
                notes.append(f"sandbox: left out {', '.join(job.dropped)} (they need an instance "
                             "to connect to)")
            for note in notes:
                self.console.detail(note, name)
            copying = f"copying to {', '.join(image.regions[1:])}" if image.regions[1:] else None
            reached = [-1]                      # how far through PHASE_ORDER the build is

            def echo(text: str) -> None:
                self.console.detail(text, name)
                phase = phase_of(text)
                if phase and PHASE_ORDER.index(phase) > reached[0]:
                    reached[0] = PHASE_ORDER.index(phase)
                    if phase != "copying" or copying:
                        self.console.phase(name, copying if phase == "copying" else phase)
            inputs = self.checkout.inputs()[name]
            mask = Masker(sensitive_values(
                inputs.template, {**inputs.var_values, **variables}, job.env))
            for attempt in range(settings.retries + 1):
                log = settings.logs / f"{name}-{stamp}{f'-retry{attempt}' if attempt else ''}.log"
                result = self.packers.run(
                    job.argv(exe, "build", "-machine-readable", "-color=false"), job.env,
                    job.cwd, log, echo, mask,
                    lambda instance: self.ec2.require_imdsv2(graph.region, instance),
                    timeout=image.build_timeout, header=notes)
                if result.ok or not result.transient or result.timed_out or \
                        attempt == settings.retries:
                    break
                delay = backoff(attempt, settings.retry_base)
                self.say(f"transient AWS error ({result.reason()}); trying again in "
                         f"{delay:.0f} s ({attempt + 2} of {settings.retries + 1}); log: {log}",
                         name)
                if self.interrupts.wait(delay):
                    raise AmiError(f"image {name}: interrupted while waiting to retry; "
                                   "nothing recorded", code=INTERRUPTED)
            changed = job.changed()
            made = [(r, a) for ids in (result.builds or {"": result.amis}).values()
                    for r, a in ids.items()]
            try:
                result.errors[:] = [stage.to_user(e, job.root, graph.root)
                                    for e in result.errors]
                _check_result(name, image.regions, result, log)
                if changed:
                    more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
                    raise AmiError(f"image {name}: {changed[0]}{more} changed in the stage "
                                   "while Packer ran (a step wrote to its inputs): the AMI is "
                                   f"not what its digest says; nothing published; log: {log}",
                                   FAILED)
                postbuild.vet(self.ec2, name, image.share_with, digest, started, result.amis)
                record = Record(
                    image=name, region=graph.region,
                    amis={r: result.amis[r] for r in image.regions}, digest=digest,
                    parent={"image": parent.image, "ami": parent.ami}, git=git,
                    settings=self.checkout.digest_settings(name), packer_version=version,
                    build_started=started.isoformat(timespec="seconds"),
                    build_finished=self.clock.now().isoformat(timespec="seconds"),
                    build_log=log.name, validated_seconds=validated,
                    inputs=self.checkout.manifest(name))
                if self.settings.signing_key:
                    self.console.phase(name, "signing")
                record = self.attester.sign(record, log, self.lookup.record(parent.image))
                # Looked at again just before publishing: revoked while this built?
                revoked = self.registry.revocation_of(parent.ami)
                if revoked is not None:
                    raise AmiError(f"image {name}: its parent {parent.image} {parent.ami} was "
                                   f"{revoked_by(revoked)} while {name} built; nothing "
                                   f"published: run again to build on its replacement", FAILED)
                try:
                    self.registry.keep_build(record)
                except AmiError as err:
                    raise AmiError(f"image {name}: its record could not be kept ({err}); "
                                   "nothing published", FAILED) from None
            except AmiError:
                try:
                    removed = postbuild.discard(self.ec2, name, digest, started, made)
                except AmiError as err:
                    removed = []
                    self.say(f"could not deregister what the failed build made "
                             f"({', '.join(f'{r}:{a}' for r, a in made)}): {err}: deregister "
                             "them by hand", name)
                if removed:
                    self.say(f"deregistered what the failed build made: {', '.join(removed)}",
                             name)
                self.console.show_log(name, log)
                raise
        return record

    def summary(self) -> str:
        rows = []
        for name in self.graph.names:
            record = self.lookup.record(name)
            outcome = self.reports.get(name)
            what = str(outcome.outcome) if outcome else \
                (Outcome.UP_TO_DATE if record else "not built")
            if outcome and outcome.note == "by digest":
                what = "reused by digest"
            took = elapsed(outcome.seconds) if outcome and outcome.outcome is Outcome.BUILT else ""
            rows.append([name, record.ami if record else "-", what, took])
        built = [record for name in self.graph.images
                 if (outcome := self.reports.get(name)) and outcome.outcome is Outcome.BUILT
                 and (record := self.lookup.record(name))]
        logs = [record.build_log for record in built if record.build_log]
        shown = table(rows, ["image", "ami", "this run", "took"])
        if logs:
            shown += f"\nbuild logs in {self.settings.shown(self.settings.logs)}/: " \
                     f"{', '.join(logs)}"
        signed = [record.image for record in built if record.provenance]
        if signed:
            shown += (f"\nsigned the provenance of {', '.join(signed)} with "
                      f"{self.settings.signing_key}: doit verify -i <image> checks one")
        return shown


def _check_result(name: str, regions: tuple[str, ...], result: Result, log: Path) -> None:
    if not result.ok:
        raise AmiError(f"image {name}: {result.reason()}; nothing published, the previous "
                       f"AMI stays current; log: {log}", code=FAILED)
    if len(result.builds) > 1:
        raise AmiError(f"image {name}: Packer ran {len(result.builds)} builds "
                       f"({', '.join(sorted(result.builds))}), each making an AMI, and an image "
                       f"records one: name its source with only: in amis.yaml; nothing "
                       f"published; log: {log}", code=FAILED)
    missing = [r for r in regions if r not in result.amis]
    if missing:
        raise AmiError(f"image {name}: Packer made no AMI in {', '.join(missing)}; "
                       f"nothing published; log: {log}", code=FAILED)


def backoff(attempt: int, base: float, cap: float = 600.0) -> float:
    """Seconds before retry number ``attempt`` (0-based): exponential, jittered."""
    return min(cap, base * 2 ** attempt) * random.uniform(0.5, 1.0)
