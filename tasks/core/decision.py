"""The one decision: for every image, keep its current AMI, reuse an earlier
build of exactly its inputs, or build, and why.

Pure: the graph, the records and what is known about AWS go in, a verdict
per image comes out. ``ami:<name>`` acts on it; ``plan``, ``graph``,
``pipeline`` and the annotation only print it, so a plan is an exact dry
run of the build.

Digests depend on the parent's AMI, which is only known once the parent's
verdict is, so one call decides as far down the tree as the facts reach
and says which digest records and AMIs it needs to go further
(:attr:`Decision.need_digests`, :attr:`Decision.need_amis`). The caller
looks them up, level by level, and decides again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

from . import acceptance
from .digest import changed_inputs, image_digest
from .graph import Graph, Image
from .records import Record

KEEP, REUSE, BUILD, RESOLVE = "keep", "reuse", "build", "resolve"
TEST, REJECT, SKIP = "test", "reject", "skip"    # acceptance: docs/concepts.md#acceptance

# What `plan` and `graph` call each verdict (a run then says up to date,
# reused, resolved, built: docs/concepts.md). Why is in the reason.
UP_TO_DATE = "up to date"
TO_REUSE = "reuse"
TO_RESOLVE = "resolve"
TO_BUILD = "build"
TO_TEST = "test"            # an AMI built earlier, to be tested (then published)
REJECTED = "rejected"       # its AMI failed these tests: change the image or its tests
BLOCKED = "blocked"         # its parent was rejected: nothing is built on it
STATUSES = (UP_TO_DATE, TO_REUSE, TO_RESOLVE, TO_BUILD, TO_TEST, REJECTED, BLOCKED)


# An AMI a record names, to be looked up: (region, AMI id, image, digest). It
# is usable when it exists in that region, is the account's own and carries
# the tags the runner gives every build (ManagedBy, Image, Digest).
AmiCheck = tuple[str, str, str, str]


def checks(record: Record) -> set[AmiCheck]:
    return {(region, ami, record.image, record.digest) for region, ami in record.amis.items()}


@dataclass(frozen=True)
class Known:
    """What is known before deciding. Absent keys mean "not looked up yet"."""
    channel: str
    records: Mapping[str, Record | None]                 # the channel's current records
    by_digest: Mapping[tuple[str, str], Record | None] = field(default_factory=dict)
    amis: Mapping[str, bool] = field(default_factory=dict)   # AMI id -> exists and is ours
    refused: Mapping[str, str] = field(default_factory=dict)  # AMI id -> why it is not usable
    source_ami: str | None = None         # what the source resolves to now; None: unknown
    source_how: str = ""                  # how: "pinned", or which filter match
    source_spec: Mapping[str, object] = field(default_factory=dict)   # as in amis.yaml
    offline: bool = False                 # AWS not asked: AMIs and digests unchecked
    now: datetime | None = None
    baseline: Mapping[str, Record] = field(default_factory=dict)   # main's, where none here
    baseline_channel: str = "main"
    rebuild: frozenset[str] = frozenset()     # images asked to build again (--rebuild)


@dataclass(frozen=True)
class Verdict:
    image: str
    action: str             # keep, reuse, build, test, reject, skip; the source: keep, resolve
    cause: str              # digest, promoted, offline, by-digest, missing, changed, gone,
                            # too-old, parent, moved, unresolved, tests, rejected
    reason: str             # why, for people
    ami: str | None         # its AMI after this (None: a build will tell)
    digest: str | None      # its digest now (None: its parent builds first)
    record: Record | None = None     # the record kept, reused or tested
    current: Record | None = None    # the channel's current record
    tests: str | None = None         # its tests' digest now (None: it has none)

    @property
    def builds(self) -> bool:
        return self.action == BUILD

    @property
    def works(self) -> bool:
        """Its ``ami:<name>`` has something to do: Packer runs, an AMI is
        tested, or it fails (rejected, or its parent was)."""
        return self.action in (BUILD, TEST, REJECT, SKIP)

    @property
    def status(self) -> str:
        return {KEEP: UP_TO_DATE, REUSE: TO_REUSE, RESOLVE: TO_RESOLVE, TEST: TO_TEST,
                REJECT: REJECTED, SKIP: BLOCKED}.get(self.action, TO_BUILD)


@dataclass
class Decision:
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    need_digests: set[tuple[str, str]] = field(default_factory=set)
    need_amis: set[AmiCheck] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return not self.need_digests and not self.need_amis

    def builds(self) -> list[str]:
        return [name for name, v in self.verdicts.items() if v.builds]


def too_old(record: Record | None, image: Image, now: datetime | None) -> bool:
    """Built longer ago than the image's max_age_days: rebuild for OS updates."""
    age = record.age_days(now) if record else None
    return bool(image.max_age_days and age is not None and age > image.max_age_days)


def decide(graph: Graph, known: Known, manifests: Mapping[str, dict[str, str]],
           settings: Mapping[str, dict],
           digests: dict[tuple[str, str], str] | None = None,
           tests: Mapping[str, dict[str, str]] | None = None) -> Decision:
    """Verdicts for the source and every image whose parent's AMI is known.
    ``manifests``: image -> its inputs' hashes; ``settings``: image -> the
    build settings that are part of its digest; ``digests``: a memo of
    (image, parent AMI) -> digest, kept by a caller that decides often;
    ``tests``: image -> its test files' hashes (none: it has no tests)."""
    decision = Decision()
    memo = {} if digests is None else digests
    source = _source(graph, known)
    decision.verdicts[source.image] = source
    for name, image in graph.images.items():
        parent = decision.verdicts.get(image.parent)
        if parent is None:
            continue                                    # waits for facts about its parent
        key = (name, parent.ami or "")
        if parent.ami is not None and key not in memo:
            memo[key] = image_digest(manifests[name], parent.ami, settings[name])
        verdict = _image(image, parent, known, manifests[name], settings[name], decision,
                         memo.get(key), (tests or {}).get(name) or {})
        if verdict is not None:
            decision.verdicts[name] = verdict
    return decision


def _source(graph: Graph, known: Known) -> Verdict:
    name = graph.source.name
    current = known.records.get(name)
    if known.source_ami is None:
        if current is not None:
            return Verdict(name, KEEP, "offline", "offline: newest match not checked",
                           current.ami, current.digest, current, current)
        return Verdict(name, RESOLVE, "unresolved", "not recorded, and its filter could not "
                       "be resolved offline", None, None, None, None)
    if current is not None and current.ami == known.source_ami \
            and current.source == {**known.source_spec, "resolved": known.source_how}:
        return Verdict(name, KEEP, "digest", known.source_how, current.ami, current.digest,
                       current, current)
    if current is None:
        why = f"not recorded in channel {known.channel} yet; resolves to {known.source_ami} " \
              f"({known.source_how})"
    else:
        why = f"source moved: {current.ami} -> {known.source_ami} ({known.source_how})"
    return Verdict(name, RESOLVE, "moved", why, known.source_ami, None, None, current)


def _image(image: Image, parent: Verdict, known: Known, manifest: dict[str, str],
           settings: dict, decision: Decision, digest: str | None,
           tests: dict[str, str]) -> Verdict | None:
    name = image.name
    current = known.records.get(name)
    tested = acceptance.tests_digest(tests)
    if parent.action in (REJECT, SKIP) and parent.ami is None:
        why = f"parent {image.parent} was rejected by its tests" if parent.action == REJECT \
            else f"parent {image.parent} is blocked"
        return Verdict(name, SKIP, "parent", f"{why}: nothing is built on it", None, None,
                       None, current, tested)
    if parent.ami is None or digest is None:
        why = f"parent {image.parent} builds first" if parent.action == BUILD else \
            f"parent {image.parent} is not resolved"
        own = next((known.refused[a] for a in current.amis.values() if a in known.refused),
                   None) if current is not None else None
        why += f"; {own}" if own else ""             # e.g. its own AMI was revoked with the parent
        return Verdict(name, BUILD, "parent", why, None, None, None, current, tested)
    if name in known.rebuild:
        return Verdict(name, BUILD, "rebuild", "asked to build again (--rebuild)", None, digest,
                       None, current, tested)

    def exists(record: Record) -> bool | None:
        """Whether the record's AMIs exist, in every region, and are this
        project's; None (and asked for) when not known yet."""
        if known.offline:
            return True
        unknown = {c for c in checks(record) if c[1] not in known.amis}
        if unknown:
            decision.need_amis.update(unknown)
            return None
        return all(known.amis[ami] for ami in record.amis.values())

    def verdict(action: str, cause: str, reason: str, record: Record | None) -> Verdict:
        ami = record.ami if record and action not in (BUILD, SKIP) else None
        return Verdict(name, action, cause, reason, ami, digest, record, current, tested)

    def earlier_build() -> Record | None | bool:
        """The digest record of these inputs (None: none; False: asked for)."""
        if known.offline:
            return None
        if (name, digest) not in known.by_digest:
            decision.need_digests.add((name, digest))
            return False
        return known.by_digest[(name, digest)]

    def accepted(record: Record, kept: Verdict) -> Verdict | None:
        """``kept`` when its AMI passed these tests; else test it, or say it
        was rejected (from the digest record, which keeps every verdict)."""
        if acceptance.state(record, tested) in (acceptance.NONE, acceptance.PASSED):
            return kept
        earlier = earlier_build()
        if earlier is False:
            return None
        if earlier is not None and earlier.ami == record.ami:
            state = acceptance.state(earlier, tested)
            if state == acceptance.REJECTED:
                assert earlier.tests is not None
                # The channel's AMI stays current (children keep building on it);
                # a new build that was rejected is nobody's parent.
                return Verdict(name, REJECT, "rejected", acceptance.rejection(earlier.tests)
                               + ": change the image or its tests",
                               record.ami if record is current else None, digest, record,
                               current, tested)
            if state == acceptance.PASSED:
                return verdict(REUSE, "tests", "passed these tests at "
                               f"{earlier.tests.at if earlier.tests else '?'}", earlier)
        return verdict(TEST, "tests", f"{acceptance.what_changed(record, tests)}; the AMI "
                       f"{record.ami} has these inputs", record)

    gone = False
    if current is not None and current.digest == digest:
        if too_old(current, image, known.now):
            return verdict(BUILD, "too-old", f"older than {image.max_age_days} days "
                                             f"({current.age_days(known.now):.0f})", None)
        there = exists(current)
        if there is None:
            return None
        if there:
            note = " (offline: AMI not checked)" if known.offline else ""
            return accepted(current, verdict(KEEP, "digest", f"digest {digest[:12]}{note}",
                                             current))
        gone = True
    promotion = current.promotion if current is not None else None
    if promotion is not None and not gone and promotion.replaced_digest == digest:
        if too_old(current, image, known.now):
            return verdict(BUILD, "too-old", f"older than {image.max_age_days} days "
                                             f"({current.age_days(known.now):.0f}), though "
                                             f"promoted from {promotion.from_channel}", None)
        there = exists(current)
        if there is None:
            return None
        if there:
            return verdict(KEEP, "promoted", f"promoted from {promotion.from_channel} by "
                                             f"{promotion.by} at {promotion.at}; holds until "
                                             f"{known.channel}'s inputs change", current)
        gone = True

    refused = ""
    found = earlier_build()
    if found is False:
        return None
    earlier = found or None
    if earlier is not None and not too_old(earlier, image, known.now) \
            and not (gone and earlier.ami == current.ami):
        there = exists(earlier)
        if there is None:
            return None
        if there:
            built_on = earlier.git.get("branch") if earlier.git else None
            return accepted(earlier, verdict(
                REUSE, "by-digest", f"an earlier build has these inputs: {earlier.ami}"
                + (f" (built on {built_on})" if built_on else "") + _replacing(promotion),
                earlier))
        if any(ami in known.refused for ami in earlier.amis.values()):
            refused = f"; not reusing the earlier build of these inputs: " \
                      f"{unusable(earlier, known)}"

    offline = " (offline: earlier builds not checked)" if known.offline else ""
    if gone:
        return verdict(BUILD, "gone", unusable(current, known) + refused, None)
    if current is None:
        since = known.baseline.get(name)
        if since is not None:
            why = _why(since, manifest, parent.ami, settings) + f" since {known.baseline_channel}"
            return verdict(BUILD, "missing", why + offline + refused, None)
        return verdict(BUILD, "missing", "never built" + offline + refused, None)
    return verdict(BUILD, "changed", _why(current, manifest, parent.ami, settings)
                   + _replacing(promotion) + offline + refused, None)


def unusable(record: Record, known: Known) -> str:
    """Why a record's AMIs cannot be kept: the first one that is not there."""
    for region, ami in record.amis.items():
        if not known.amis.get(ami, True):
            return known.refused.get(ami) or f"AMI {ami} ({region}) no longer exists"
    return f"AMI {record.ami} no longer exists"


def _replacing(promotion: object) -> str:
    return f"; replaces the AMI promoted from {promotion.from_channel}" if promotion else ""


def _shorten(paths: list[str], most: int = 3) -> str:
    more = f" (+{len(paths) - most} more)" if len(paths) > most else ""
    return ", ".join(paths[:most]) + more


def _why(record: Record, inputs: dict[str, str], parent_ami: str, settings: dict) -> str:
    """What differs from the build ``record`` holds (a promoted one's too:
    what differs from the build that was promoted)."""
    reasons = []
    changed = changed_inputs(record.inputs, inputs)
    if changed:
        reasons.append("changed " + _shorten(changed))
    if record.parent and record.parent.get("ami") != parent_ami:
        reasons.append(f"parent AMI {record.parent.get('ami')} -> {parent_ami}")
    if record.settings != settings:
        keys = sorted(k for k in set(record.settings) | set(settings)
                      if record.settings.get(k) != settings.get(k))
        reasons.append(f"build settings changed ({_shorten(keys)})")
    said = "; ".join(reasons) or "digest differs"
    if record.promotion is not None:
        return f"{said} since the promotion from {record.promotion.from_channel}"
    return said
