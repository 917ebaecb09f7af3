"""Which of this project's AMIs gc may delete, and why each other one stays.

Pure, as ``decision`` is: the facts gc gathered go in (``ops.gc.gather``),
a judgement per AMI comes out, and ``gc`` prints it or applies it, so the
dry run is exactly what ``--apply`` deletes (``--apply`` only ever keeps
more: it looks again, under each image's lock, before each delete).

Only what is proven this registry's may go: an AMI whose Registry tag is
this registry, and whose digest record in this registry names it. Any
other AMI with the ManagedBy tag (another team's registry in the same
account, a registry this run cannot read, an AMI built before the tag) is
kept and said.

Of this registry's AMIs, one survives, with the reasons said, when it is
among the newest K of its image (an image that amis.yaml has, or some
channel still holds), younger than D days, the current record of any
channel, launched by anything (an instance, a launch template version, a
launch configuration, a Spot or EC2 Fleet, ...), shared with another
account, or the parent of a survivor; or when something that could launch
it could not be looked up in its region. A revoked AMI, or one its tests
rejected, goes as soon as nothing uses it: no age, no newest K.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Mapping

from .text import some

# `doit gc`'s options and their defaults
DEFAULTS = MappingProxyType({"keep": 3, "days": 14, "max": 20, "leftover-hours": 6})


@dataclass(frozen=True)
class Candidate:
    """An AMI this project built (it carries the ManagedBy tag)."""
    ami: str
    region: str
    image: str
    created: datetime
    parent: str | None = None         # its ParentAmi tag
    digest: str = ""                  # its Digest tag: the lock a reuse of it takes
    snapshots: tuple[str, ...] = ()
    registry: str | None = None       # its Registry tag: the registry it was built for


@dataclass(frozen=True)
class Facts:
    candidates: tuple[Candidate, ...]
    now: datetime
    registry: str = ""                      # this registry, as its AMIs are tagged
    recorded: frozenset[str] = frozenset()  # AMIs this registry's digest records name
    recorded_as: Mapping[str, str] = field(default_factory=dict)   # AMI -> image it was built as
    current: Mapping[str, str] = field(default_factory=dict)   # AMI -> a channel holding it
    held: frozenset[str] = frozenset()      # images amis.yaml or some channel still has
    revoked: frozenset[str] = frozenset()
    rejected: frozenset[str] = frozenset()  # failed their acceptance tests: never published
    used: Mapping[str, str] = field(default_factory=dict)      # AMI -> what launches it
    doubts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # region -> failures
    shared: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # AMI -> with whom


@dataclass(frozen=True)
class Policy:
    keep: int = 3            # newest AMIs kept per image and region
    days: float = 14         # anything younger stays
    most: int = 20           # deleted per run at most


@dataclass(frozen=True)
class Judgement:
    candidate: Candidate
    keep: tuple[str, ...] = ()      # why it stays; empty: it may go
    doubt: str = ""                 # why it cannot be proved unused
    orphan: bool = False            # its image is in neither amis.yaml nor any channel

    @property
    def ami(self) -> str:
        return self.candidate.ami


@dataclass(frozen=True)
class Retention:
    judgements: tuple[Judgement, ...]       # every candidate, by image, region and age
    doomed: tuple[Judgement, ...]           # what goes this run: the unkept, oldest first

    def judged(self, ami: str) -> Judgement:
        return next(j for j in self.judgements if j.ami == ami)


def hours_since(then: datetime, now: datetime) -> float:
    """How long ago ``then`` was, in hours (compared as numbers: a --days
    of 1e300 is "keep everything", not an overflow)."""
    return (now - then).total_seconds() / 3600


def foreign(c: Candidate, facts: Facts) -> str | None:
    """Why an AMI is not proven this registry's (None: it is)."""
    if c.registry is None:
        return ("no Registry tag (built before this tool tagged its registry, or by another "
                "tool): not proven this registry's")
    if c.registry != facts.registry:
        return f"built for registry {c.registry}, not this one"
    if c.ami not in facts.recorded:
        return (f"no digest record of this registry names it (digests/{c.image}/"
                f"{c.digest or '?'}.json): not proven this registry's")
    built_as = facts.recorded_as.get(c.ami, c.image)
    if built_as != c.image:
        return (f"tagged Image={c.image}, but this registry built it as {built_as}: its tags "
                "were changed, so nothing about it is proven")
    return None


def decide(facts: Facts, policy: Policy) -> Retention:
    reasons: dict[str, list[str]] = {c.ami: [] for c in facts.candidates}
    doubt: dict[str, str] = {}
    orphans: set[str] = set()
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for c in facts.candidates:
        other = foreign(c, facts)
        if other:
            reasons[c.ami].append(other)
        else:
            groups.setdefault((c.image, c.region), []).append(c)
    for (image, _), group in groups.items():
        if image not in facts.held:
            orphans |= {c.ami for c in group}       # retired everywhere: nothing to roll back to
            continue
        standing = [c for c in group
                    if c.ami not in facts.revoked and c.ami not in facts.rejected]
        for rank, c in enumerate(sorted(standing, key=lambda c: c.created, reverse=True)):
            if rank < policy.keep:
                reasons[c.ami].append(f"among the newest {policy.keep} of {c.image}")
    for c in facts.candidates:
        why = reasons[c.ami]
        if c.ami not in facts.revoked and c.ami not in facts.rejected \
                and hours_since(c.created, facts.now) < policy.days * 24:
            why.append(f"younger than {policy.days:g} days")
        if c.ami in facts.current:
            why.append(f"current in channel {facts.current[c.ami]}")
        if c.ami in facts.used:
            why.append(facts.used[c.ami])
        elif facts.doubts.get(c.region) and not why:
            doubt[c.ami] = facts.doubts[c.region][0]
            why.append(f"cannot prove it unused: {doubt[c.ami]}")
        if facts.shared.get(c.ami):
            why.append("shared with " + some(facts.shared[c.ami]))
    # Parents of survivors survive, all the way up.
    by_ami = {c.ami: c for c in facts.candidates}
    kept_children: dict[str, set[str]] = {c.ami: set() for c in facts.candidates}
    changed = True
    while changed:
        changed = False
        for c in facts.candidates:
            parent = by_ami.get(c.parent or "")
            if (reasons[c.ami] or kept_children[c.ami]) and parent \
                    and c.ami not in kept_children[parent.ami]:
                kept_children[parent.ami].add(c.ami)
                changed = True
    for c in facts.candidates:
        if kept_children[c.ami]:
            reasons[c.ami].append("parent of kept " + some(sorted(kept_children[c.ami])))
    judgements = tuple(Judgement(c, tuple(reasons[c.ami]), doubt.get(c.ami, ""),
                                 c.ami in orphans)
                       for c in sorted(facts.candidates,
                                       key=lambda c: (c.image, c.region, c.created)))
    doomed = tuple(sorted((j for j in judgements if not j.keep),
                          key=lambda j: j.candidate.created)[:policy.most])
    return Retention(judgements, doomed)


def kept(judgement: Judgement, why: str) -> Judgement:
    """``judgement``, kept after all (``--apply`` found ``why`` under the lock)."""
    return replace(judgement, keep=(*judgement.keep, why))
