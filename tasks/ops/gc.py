"""``doit gc``: old AMIs of this project, and what a killed Packer left.

First, the run's channel is rid of images ``amis.yaml`` no longer has
(removed or renamed): their record, plain-text id and SSM parameter are
retired, so their AMIs are no longer "current" there.

Then the facts are gathered (:func:`Collector.gather`: every AMI with the
ManagedBy tag in the regions the tree uses, every channel's current
records, revocations, what launches each AMI, who it is shared with), the
pure retention decision (``core.retention``) judges each AMI, and the
judgement is printed, or applied with ``--apply``: at most a bounded
number of AMIs per run are deregistered, with their snapshots, each under
its image's lock after looking again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..adapters.console import Console
from ..adapters.ec2 import Ec2
from ..adapters.registry import Registry, revoked_by
from ..adapters.signals import Interrupts
from ..adapters.ssm import Ssm
from ..core import retention
from ..core.clock import Clock
from ..core.cloud import Ami
from ..core.errors import AmiError, FAILED, INTERRUPTED
from ..core.graph import Graph
from ..core.names import REGISTRY_TAG
from ..core.retention import (DEFAULTS, Candidate, Facts, Judgement, Policy, Retention,
                              hours_since)
from ..core.records import Record
from ..core.settings import Settings
from ..core.text import table
from ..state.checkout import Checkout
from ..state.locks import Locks
from .acceptance import PURPOSE

# What a killed Packer (its own names) or test stage (ours) leaves behind.
LEFTOVERS = ("packer_", f"{PURPOSE}-")

SSM_REFERENCE = "resolve:ssm:"
_LONG_AGO = datetime(1970, 1, 1, tzinfo=timezone.utc)     # an AMI EC2 gives no creation date


def candidate(image: Ami) -> Candidate:
    return Candidate(ami=image.id, region=image.region, image=image.tags.get("Image", "?"),
                     created=image.created or _LONG_AGO, parent=image.tags.get("ParentAmi"),
                     digest=image.tags.get("Digest", ""), snapshots=image.snapshots,
                     registry=image.tags.get(REGISTRY_TAG))


@dataclass
class Collector:
    graph: Graph
    settings: Settings
    checkout: Checkout
    registry: Registry
    ec2: Ec2
    ssm: Ssm
    locks: Locks
    console: Console
    clock: Clock
    interrupts: Interrupts
    _records: dict[tuple[str, str], Record | None] = field(default_factory=dict)  # read once

    def say(self, text: str, image: str | None = None) -> None:
        self.console.say(text, image)

    def regions(self) -> list[str]:
        return sorted({r for image in self.graph.images.values() for r in image.regions})

    # -- the channel ----------------------------------------------------------

    def retire(self, apply: bool) -> tuple[list[str], dict[str, list[str]]]:
        """Images the run's channel holds and the graph no longer has, retired
        with ``apply``; and, per other channel, those it holds that this graph
        lacks (another branch's images, or promotions of retired ones), left be."""
        channel = self.checkout.channel()[0]
        names = set(self.graph.names)
        held = self.registry.held()
        gone = sorted(held.get(channel, set()) - names)
        for image in gone:
            if apply:
                record = self.registry.retire(channel, image)
                self.settings.record_path(image).unlink(missing_ok=True)
                ami = f" ({record.ami})" if record else ""
            else:
                ami = ""
            self.say(f"{'retired' if apply else 'would retire'} {image}{ami} from channel "
                     f"{channel}: its record, plain-text id and SSM parameter (amis.yaml no "
                     "longer has it)")
        others = {c: sorted(images - names) for c, images in sorted(held.items())
                  if c != channel and images - names}
        return gone, others

    def current_amis(self, image: str | None = None,
                     retired: frozenset[str] = frozenset()) -> dict[str, str]:
        """AMI id -> channel, for the current record of every image (or of
        ``image``) in every channel, but the run channel's ``retired`` ones."""
        prefix = self.registry.key("channels") + "/"
        skip = {self.registry.current_key(self.checkout.channel()[0], i) for i in retired}
        found: dict[str, str] = {}
        wanted = f"/{image}.json" if image else ".json"
        for key in sorted(k for k in self.registry.listing(prefix) if k.endswith(wanted)):
            record = None if key in skip else self.registry.record_at(key)
            if record:
                channel = key[len(prefix):].split("/")[0]
                found.update({ami: channel for ami in record.amis.values()})
        return found

    # -- the facts ------------------------------------------------------------

    def recorded(self, candidates: tuple[Candidate, ...]) -> dict[str, str]:
        """AMI -> the image this registry records it built it as: under
        ``built/`` (each marker read, since a tag writer can change an AMI's
        Image tag), or (built before it kept that) named by the digest record
        of the image and digest it is tagged with. A record that cannot be
        read proves nothing."""
        ours = [c for c in candidates if c.registry == self.registry.identity()]
        built = self.registry.built() if ours else set()
        markers = self.registry.built_as({c.ami for c in ours if c.ami in built})
        found = self._digest_records(ours)
        out = {ami: image for ami, image in markers.items() if image}
        out.update({c.ami: c.image for c in ours if c.ami not in built
                    and (record := found.get((c.image, c.digest))) is not None
                    and c.ami in record.amis.values()})
        return out

    def _digest_records(self, candidates: list[Candidate]) -> dict[tuple[str, str], Record | None]:
        """The digest record of each candidate's tags (image, digest), read once."""
        wanted = {(c.image, c.digest) for c in candidates if c.digest} - set(self._records)
        if wanted:
            self._records.update(self.registry.by_digest(wanted, lenient=True))
        return self._records

    def rejected(self, candidates: tuple[Candidate, ...]) -> frozenset[str]:
        """AMIs whose digest record says they failed their tests."""
        found = self._digest_records([c for c in candidates
                                      if c.registry == self.registry.identity()])
        return frozenset(c.ami for c in candidates
                         if (record := found.get((c.image, c.digest))) is not None
                         and c.ami in record.amis.values()
                         and record.tests is not None and not record.tests.passed)

    def _in_use(self, region: str) -> tuple[dict[str, str], list[str]]:
        """AMI id -> what launches it (instances, launch template versions,
        launch configurations), and what could not be looked up: while
        anything is in doubt, no AMI of the region can be proved unused."""
        used: dict[str, str] = {}
        doubts: list[str] = []

        def listed(what: str, lookup):
            try:
                return lookup(region)
            except AmiError as err:
                doubts.append(f"listing {what} in {region} failed ({err})")
                return []

        for instance in listed("instances", self.ec2.instances):
            used.setdefault(instance.ami, f"used by instance {instance.id}")
        for version in listed("launch templates", self.ec2.launch_template_versions):
            by = f"launch template {version.template} v{version.version}"
            image = version.image
            if image.startswith(SSM_REFERENCE):
                # What EC2 launches: the latest value, or the version (name:3) or
                # label (name:golden) it names, which GetParameter takes as they are.
                try:
                    image = self.ssm.value(region, image[len(SSM_REFERENCE):])
                except AmiError as err:
                    doubts.append(f"{by} says {image}, and reading the parameter failed "
                                  f"({err})")
                    continue
            if image:
                used.setdefault(image, f"referenced by {by}")
        for launcher in listed("launch configurations, Spot requests and fleets", self.ec2.launchers):
            used.setdefault(launcher.image, f"referenced by {launcher.kind} {launcher.name}")
        return used, doubts

    def gather(self, retired: frozenset[str] = frozenset(),
               elsewhere: frozenset[str] = frozenset()) -> Facts:
        """What the retention decision needs, as it stands once ``retired``
        are out of the run's channel. ``elsewhere``: images other channels
        hold that the graph lacks (see :meth:`retire`)."""
        regions = self.regions()
        candidates = tuple(candidate(image) for region in regions
                           for image in self.ec2.managed(region))
        used: dict[str, str] = {}
        doubts: dict[str, tuple[str, ...]] = {}
        for region in regions:
            found, doubted = self._in_use(region)
            used.update(found)
            doubts[region] = tuple(doubted)
        shared = {c.ami: tuple(g.who for g in self.ec2.launch_grants(c.region, c.ami))
                  + tuple(f"{g.who} (snapshot {snapshot})" for snapshot in c.snapshots
                          for g in self.ec2.volume_grants(c.region, snapshot))
                  for c in candidates}
        for region in regions:
            mine = {c.ami: c for c in candidates if c.region == region}
            users = self.ec2.snapshot_users(region, {s for c in mine.values()
                                                     for s in c.snapshots}) if mine else {}
            for c in mine.values():
                others = sorted({a for s in c.snapshots for a in users.get(s, ())} - {c.ami})
                if others:
                    used.setdefault(c.ami, f"its snapshots also back {', '.join(others)}")
        recorded = self.recorded(candidates)
        return Facts(candidates=candidates, now=self.clock.now(),
                     registry=self.registry.identity(), recorded=frozenset(recorded),
                     recorded_as=recorded, rejected=self.rejected(candidates),
                     current=self.current_amis(retired=retired),
                     held=frozenset(self.graph.names) | elsewhere,
                     revoked=frozenset(self.registry.revoked()), used=used, doubts=doubts,
                     shared={ami: who for ami, who in shared.items() if who})

    # -- applying -------------------------------------------------------------

    def delete(self, judged: Retention) -> tuple[list[Judgement], dict[str, Judgement]]:
        """Deregister what the decision dooms, and their snapshots. Returns
        what went, and what was kept after all (by AMI).

        Each goes under the lock of its image and digest, the lock a reuse of
        it takes, and is checked again there: one that became current
        meanwhile (a revert reused it) or that a build or reuse is holding now
        stays, and so do its parents. Children go first, so a parent is
        decided knowing them."""
        gone: list[Judgement] = []
        spared: dict[str, Judgement] = {}
        kept = {j.ami for j in judged.judgements if j.keep}
        for j in sorted(judged.doomed, key=lambda j: j.candidate.created, reverse=True):
            if self.interrupts.interrupted():
                break                   # after the AMI in hand: collect says what is left
            c = j.candidate
            children = [o.ami for o in judged.judgements
                        if o.candidate.parent == c.ami and o.ami in kept]
            if children:
                spared[c.ami] = retention.kept(j, "parent of kept " + ", ".join(sorted(children)))
                kept.add(c.ami)
                continue
            with self.locks.held_if_free(c.image, c.digest or "untagged",
                                         lambda text: self.say(text, c.image)) as (lock, holder):
                if lock is None:
                    spared[c.ami] = retention.kept(j, f"in use by {holder}, who holds its lock")
                elif c.ami in (current := self.current_amis(c.image)):
                    spared[c.ami] = retention.kept(
                        j, f"became current in channel {current[c.ami]} meanwhile")
                else:
                    self.ec2.deregister(c.region, c.ami, c.snapshots)
                    gone.append(j)
                    continue
            kept.add(c.ami)
        return gone, spared

    def leftovers(self, hours: float, apply: bool, now: datetime | None = None) -> list[str]:
        """Instances, key pairs and security groups that a killed Packer
        (``packer_*``) or a killed test stage (``amis-test-*``) left behind,
        older than ``hours``. Returns what was (or would be) removed."""
        now = now or self.clock.now()
        said = []
        for region in self.regions():
            live_groups: set[str] = set()
            young_packer = False
            old_instances = []
            for inst in self.ec2.instances(region):
                live_groups |= set(inst.security_groups)
                packer = (inst.key_name.startswith(LEFTOVERS)
                          or any(g.startswith(LEFTOVERS) for g in inst.security_groups)
                          or inst.tags.get("Purpose") == PURPOSE)
                if packer and inst.launched and hours_since(inst.launched, now) > hours:
                    old_instances.append(inst.id)
                elif packer:
                    young_packer = True
            for instance in old_instances:
                said.append(f"{region}: instance {instance}")
                if apply:
                    self.ec2.terminate(region, instance)
            for pair in self.ec2.key_pairs(region):
                if pair.name.startswith(LEFTOVERS) and \
                        hours_since(pair.created or now, now) > hours:
                    said.append(f"{region}: key pair {pair.name}")
                    if apply:
                        self.ec2.delete_key_pair(region, pair.name)
            if young_packer:
                continue    # a build is running: its security group may be new and unused yet
            for group in self.ec2.security_groups(region):
                if group.name.startswith(LEFTOVERS) and group.name not in live_groups:
                    said.append(f"{region}: security group {group.name}")
                    if apply:
                        self.ec2.delete_security_group(region, group)
        return said

    # -- doit gc --------------------------------------------------------------

    def collect(self, apply: bool, keep: int, days: float, most: int,
                leftover_hours: float) -> None:
        """Say what goes and why the rest stays; with ``apply``, delete."""
        if keep < 1 or not (0 <= days < math.inf and 0 <= most and
                            0 <= leftover_hours < math.inf):
            raise AmiError("gc: --keep must be at least 1; --days, --max and --leftover-hours "
                           "must be numbers, not negative (nor nan or inf)")
        self.registry.store.check()
        retired, others = self.retire(apply)
        for channel, images in others.items():
            self.say(f"channel {channel} holds records of {', '.join(images)}, which this "
                     f"amis.yaml does not have; left as they are (to retire them there: "
                     f"AMI_CHANNEL={channel} doit gc --apply)")
        facts = self.gather(frozenset(retired),
                            frozenset(i for images in others.values() for i in images))
        judged = retention.decide(facts, Policy(keep, days, most))
        revoked = self.registry.revoked()
        gone, spared = self.delete(judged) if apply else (list(judged.doomed), {})
        going = {j.ami for j in gone}
        stopped = apply and self.interrupts.interrupted()
        unfinished = {j.ami for j in judged.doomed} - going - set(spared) if stopped else set()
        rows = []
        for j in judged.judgements:
            j = spared.get(j.ami, j)
            c = j.candidate
            action = (("deleted" if apply else "would delete") if c.ami in going
                      else "not deleted (interrupted)" if c.ami in unfinished
                      else ("keep" if j.keep else "later (over --max)"))
            why = "; ".join(j.keep) or (
                revoked_by(revoked[c.ami], caller=False) if c.ami in revoked else
                f"older than {days:g} days, " + (
                    f"{c.image} is retired (not in amis.yaml, in no channel)" if j.orphan
                    else f"not among the newest {keep}"))
            rows.append([c.image, c.region, c.ami, c.created.strftime("%Y-%m-%d %H:%M"),
                         action, why])
        self.say(table(rows, ["image", "region", "ami", "created", "action", "why"],
                       self.console.width())    # on a terminal, why is cut to fit
                 if rows else "no AMIs built by this project")
        left = self.leftovers(leftover_hours, apply and not stopped)
        for item in left:
            self.say(f"{'removed' if apply else 'would remove'} leftover: {item}")
        doubted = [j for j in judged.judgements if j.doubt and j.ami not in going]
        if stopped:
            raise AmiError(f"gc: interrupted: deleted {len(gone)} AMI(s) "
                           f"({', '.join(j.ami for j in gone) or 'none'}), {len(unfinished)} "
                           "not deleted, no leftovers removed; run gc --apply again to "
                           "go on", code=INTERRUPTED)
        if apply:
            snapshots = sum(len(j.candidate.snapshots) for j in gone)
            self.say(f"deleted {len(gone)} AMI(s) and {snapshots} snapshot(s), removed "
                     f"{len(left)} leftover(s); {len(judged.judgements) - len(gone)} AMI(s) "
                     "kept")
            if doubted:
                raise AmiError(f"gc: kept {len(doubted)} AMI(s) that could not be proved unused "
                               f"({doubted[0].doubt}): fix the access or the fault and run gc "
                               "again", code=FAILED)
        else:
            given = {"keep": keep, "days": days, "max": most, "leftover-hours": leftover_hours}
            options = "".join(f" --{name} {value:g}" for name, value in given.items()
                              if value != DEFAULTS[name])
            self.say(f"dry run: {len(gone)} AMI(s) and {len(left)} leftover(s) would go; "
                     f"run `doit gc{options} --apply` to delete them")
