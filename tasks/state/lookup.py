"""What the decision needs from outside, gathered as it asks: the channel's
current records, the records kept by digest, which AMIs exist, and where
the source image points. One :class:`Lookup` per run, shared by the
threads that build images at once; :meth:`Lookup.decision` is the one
decision (``core.decision``) with its facts looked up.

A no-op costs one listing of the channel (with ETags), one of the
revocations (which is also the bucket check; empty unless something was
revoked), the GETs of records that differ from the local copies, and one
``DescribeImages`` per region; digest records are fetched only where a
current record does not match, in one parallel batch per level of the tree.
git (which names the channel), S3 and EC2 are asked at once: the
``DescribeImages`` is of the AMIs the local records name, made while S3 is
listed; an AMI a pulled record names that it did not ask about is looked
up after.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..adapters.aws import Unreachable
from ..adapters.ec2 import Ec2
from ..adapters.registry import Registry, revoked_by
from ..core import decision
from ..core.clock import Clock
from ..core.cloud import Ami
from ..core.errors import AmiError, BUG, FAILED
from ..core.graph import Graph, Source
from ..core.channels import MAIN
from ..core.names import AMI_RE, MANAGED_BY, REGION_RE, REGISTRY_TAG
from ..core.records import Record, read_local, save_local
from .attestations import Attestations
from .checkout import Checkout


@dataclass
class Facts:
    """What has been learned so far. Absent keys mean "not looked up yet"."""
    channel: str = ""
    records: dict[str, Record | None] = field(default_factory=dict)
    by_digest: dict[tuple[str, str], Record | None] = field(default_factory=dict)
    amis: dict[str, bool] = field(default_factory=dict)          # AMI id -> usable
    refused: dict[str, str] = field(default_factory=dict)        # AMI id -> why not
    source: tuple[str, str] | None = None       # (AMI id, how it was found)
    offline: str | None = None                  # why AWS could not be asked
    mirror: str = ""                            # offline: whose local records were read
    txt_stale: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)   # held by the channel, not in the graph
    baseline: dict[str, Record] = field(default_factory=dict)   # main's, where ours has none
    revoked: dict[str, dict] = field(default_factory=dict)      # AMI id -> its revocation
    rebuild: set[str] = field(default_factory=set)    # asked to build again, not built yet
    pulled: bool = False


_ABSENT = "absent"
MIRROR = ".mirror"          # in the records folder (JSON): whose records it holds


def vetting_problem(check: decision.AmiCheck, image: Ami | None,
                    registry: str) -> str | None:
    """Why an AMI a record names is not usable (None: it is)."""
    region, ami, name, digest = check
    if image is None or not image.available:
        return _ABSENT
    tags = image.tags
    wrong = [f"{key}={tags.get(key)!r}" for key, want in
             (("ManagedBy", MANAGED_BY), ("Image", name), ("Digest", digest))
             if tags.get(key) != want]
    if wrong:
        return (f"AMI {ami} ({region}) is not what the record says (tags {', '.join(wrong)}): "
                "not this project's build of these inputs")
    built_for = tags.get(REGISTRY_TAG)
    if built_for is not None and built_for != registry:
        return (f"AMI {ami} ({region}) was built for registry {built_for}, not this one "
                f"({registry}): another team's AMI is never made current here")
    return None


def resolve_source(ec2: Ec2, source: Source, region: str, sandbox: bool) -> tuple[str, str]:
    """The source's AMI id and how it was found: pinned, or the newest of
    the images its filter selects."""
    spec = source.spec(sandbox)
    if "ami" in spec:
        return spec["ami"], "pinned"
    images = ec2.matching(region, spec["owners"], spec["name_pattern"])
    if not images:
        raise AmiError(f"source {source.name}: no image of owners {spec['owners']} matches "
                       f"{spec['name_pattern']!r} in {region}: fix the filter in amis.yaml")
    newest = max(images, key=lambda i: (i.created.isoformat() if i.created else "", i.id))
    return newest.id, f"newest of {spec['name_pattern']!r}: {newest.name}"


def _named_amis(bodies: Iterable[bytes]) -> dict[str, set[str]]:
    """Region -> the AMIs these local records name (ones that cannot be read
    name none: the pull reads them again, and says what is wrong)."""
    named: dict[str, set[str]] = {}
    for body in bodies:
        try:
            amis = json.loads(body).get("amis")
        except (ValueError, AttributeError):
            continue
        for region, ami in amis.items() if isinstance(amis, dict) else ():
            if isinstance(region, str) and REGION_RE.fullmatch(region) \
                    and isinstance(ami, str) and AMI_RE.fullmatch(ami):
                named.setdefault(region, set()).add(ami)
    return named


class Described:
    """The AMIs the local records name, described (the account's own) in the
    background while S3 is listed. On a no-op the channel's records are
    these, so the pull's one ``DescribeImages`` is done by the time it is
    asked for, and git, S3 and EC2 are waited for at once, not in turn."""

    def __init__(self, ec2: Ec2, named: dict[str, set[str]]) -> None:
        self._named = named
        self._found: dict[str, dict[str, Ami]] = {}
        self._unreachable: dict[str, Unreachable] = {}
        # Daemons, one per region: a run that stops (AWS unreachable) does not wait for them.
        self._threads = {region: threading.Thread(target=self._describe, args=(ec2, region),
                                                  daemon=True) for region in named}
        for thread in self._threads.values():
            thread.start()

    def _describe(self, ec2: Ec2, region: str) -> None:
        try:
            self._found[region] = ec2.describe(region, self._named[region], own=True)
        except Unreachable as err:      # its retries spent: asking again would wait as long
            self._unreachable[region] = err
        except Exception:           # asked again in the pull's own thread, which says why
            pass

    def found(self, region: str, amis: set[str]) -> dict[str, Ami] | None:
        """What it found of ``amis`` in ``region``; None when it did not ask
        about all of them (or could not). Raises when EC2 could not be reached."""
        if region not in self._threads or not amis <= self._named[region]:
            return None
        self._threads[region].join()
        if region in self._unreachable:
            raise self._unreachable[region]
        found = self._found.get(region)
        return None if found is None else {a: i for a, i in found.items() if a in amis}


class Lookup:
    def __init__(self, graph: Graph, checkout: Checkout, registry: Registry, ec2: Ec2,
                 clock: Clock, records: Path, *, sandbox: bool, bucket: str,
                 attestations: Attestations | None = None) -> None:
        self.graph = graph
        self.attestations = attestations        # with AMI_SIGNING_KEY: keep only what it proves
        self.bucket = bucket
        self.checkout = checkout
        self.registry = registry
        self.ec2 = ec2
        self.clock = clock
        self.records_dir = records
        self.sandbox = sandbox
        self.facts = Facts()
        self.lock = threading.Lock()
        # One lookup round at a time: builds deciding at once (77 leaves of a tree
        # whose parents just finished) would each fetch the same missing records.
        self._rounds = threading.Lock()
        self._digests: dict[tuple[str, str], str] = {}
        self._early: Described | None = None

    def record_path(self, image: str) -> Path:
        return self.records_dir / f"{image}.json"

    # -- what is known --------------------------------------------------------

    def record(self, image: str) -> Record | None:
        with self.lock:
            return self.facts.records.get(image)

    def usable(self, record: Record) -> bool:
        """Whether a record's AMIs exist and are this project's, as far as
        looked up (unknown: assumed)."""
        with self.lock:
            return all(self.facts.amis.get(ami, True) for ami in record.amis.values())

    def unusable(self, record: Record) -> str:
        return decision.unusable(record, self.known())

    def source_how(self) -> str:
        """How the source image was found (pinned, or which filter match)."""
        with self.lock:
            return self.facts.source[1] if self.facts.source else ""

    def rebuild(self, images: set[str]) -> None:
        """Build these again, even when up to date (``--rebuild``), once each
        in this run: the record a build makes current is then kept."""
        with self.lock:
            self.facts.rebuild = set(images)

    def asked_to_rebuild(self, image: str) -> bool:
        with self.lock:
            return image in self.facts.rebuild

    def remember(self, record: Record) -> None:
        """A record this run made current."""
        with self.lock:
            self.facts.rebuild.discard(record.image)
            self.facts.records[record.image] = record
            self.facts.amis.update({ami: True for ami in record.amis.values()})

    def remember_build(self, record: Record) -> None:
        """A digest record this run wrote (a build, and what it passed)."""
        with self.lock:
            self.facts.by_digest[(record.image, record.digest)] = record
            self.facts.amis.update({ami: True for ami in record.amis.values()})

    def forget(self, image: str, digest: str) -> None:
        """Look the digest record, and whether the AMIs that could be kept or
        reused exist, up again: under the lock, another agent may have built
        these inputs, or gc deleted what was to be reused."""
        with self.lock:
            earlier = self.facts.by_digest.pop((image, digest), None)
            current = self.facts.records.get(image)
            for record in (earlier, current):
                for ami in record.amis.values() if record is not None else ():
                    self.facts.amis.pop(ami, None)

    # -- looking up -----------------------------------------------------------

    def pull(self, *, offline_ok: bool = False) -> dict[str, str]:
        """Mirror the channel's current records into ``.amis/records`` and check
        that their AMIs exist. Returns image -> new, updated, same or absent.
        With ``offline_ok``, an unreachable AWS is noted (planning goes on from
        the local records) instead of raised."""
        names = self.graph.names
        local = {}
        for name in names:
            try:
                local[name] = self.record_path(name).read_bytes()
            except FileNotFoundError:
                pass
            except OSError as err:
                raise AmiError(f"{self.record_path(name)}: cannot read ({err.strerror})", code=FAILED) from None
        if self.bucket:
            self._early = Described(self.ec2, _named_amis(local.values()))
        try:
            if not self.bucket and offline_ok:
                raise Unreachable("AMI_BUCKET is not set")
            pulled = self.registry.pull(lambda: self.checkout.channel()[0], names, local)
        except Unreachable as err:
            if not offline_ok:
                raise
            channel = self.checkout.channel()[0]
            records = {name: read_local(self.record_path(name)) for name in names}
            with self.lock:
                self.facts.channel, self.facts.records = channel, records
                self.facts.offline, self.facts.mirror = str(err), self._mirrored(channel)
                self.facts.pulled = True
            return {}
        channel = self.checkout.channel()[0]
        for name in names:
            path = self.record_path(name)
            if name in pulled.bodies:
                save_local(path, pulled.bodies[name])
            else:
                try:
                    path.unlink(missing_ok=True)
                except OSError as err:
                    raise AmiError(f"{path}: cannot remove ({err.strerror})", code=FAILED) from None
        save_local(self.records_dir / MIRROR, json.dumps(
            {"registry": self.registry.identity(), "channel": channel}, sort_keys=True).encode())
        # A branch (or a dirty tree) whose channel has no record of an image yet
        # is compared with main's, so its plan names what changed since main.
        unbuilt = [n for n in self.graph.images if pulled.records.get(n) is None]
        baseline = self.registry.current(MAIN, unbuilt) if channel != MAIN and unbuilt else {}
        revoked = self.registry.revoked()
        with self.lock:
            self.facts.channel, self.facts.records = channel, dict(pulled.records)
            self.facts.txt_stale = list(pulled.txt_stale)
            self.facts.others = list(pulled.others)
            self.facts.baseline = baseline
            self.facts.revoked = revoked
            self.facts.pulled = True
        try:
            self._check_amis({c for r in pulled.records.values()
                              if r is not None and r.image in self.graph.images
                              for c in decision.checks(r)})
        finally:
            self._early = None          # later rounds ask EC2 anew
        return pulled.status

    def _mirrored(self, channel: str) -> str:
        """Whose records ``.amis/records`` holds, as the last pull wrote them
        there: planning offline says so (the sandbox's are not AWS's)."""
        try:
            mirror = json.loads((self.records_dir / MIRROR).read_text(encoding="utf-8"))
            registry, pulled = str(mirror["registry"]), str(mirror["channel"])
        except (OSError, ValueError, TypeError, KeyError):
            return "planned from local records whose registry is unknown (no pull has named it)"
        said = f"planned from the local records of channel {pulled} in {registry}"
        if self.bucket and registry != self.registry.identity():
            said += f", not this registry's ({self.registry.identity()})"
        if pulled != channel:
            said += f", not channel {channel}'s"
        return said

    def _check_amis(self, checks: set[decision.AmiCheck]) -> None:
        """Look up, per region in one call per 200, whether the AMIs exist,
        are the account's own and carry the tags of the build that made them:
        a record (rewritten, or naming a copy deregistered out of band) is
        trusted no further than its AMIs."""
        with self.lock:
            unknown = sorted(c for c in checks if c[1] not in self.facts.amis)
        regions = sorted({c[0] for c in unknown})
        if len(regions) > 1:                    # the regions are asked at once
            with ThreadPoolExecutor(max_workers=len(regions)) as pool:
                list(pool.map(lambda r: self._check_region(r, unknown), regions))
        elif regions:
            self._check_region(regions[0], unknown)

    def _check_region(self, region: str, unknown: list[decision.AmiCheck]) -> None:
        wanted = [c for c in unknown if c[0] == region]
        amis = {c[1] for c in wanted}
        early = self._early.found(region, amis) if self._early is not None else None
        found = early if early is not None else self.ec2.describe(region, amis, own=True)
        now = self.clock.now()
        results = {c[1]: vetting_problem(c, found.get(c[1]), self.registry.identity())
                   for c in wanted}
        if self.attestations is not None:
            for _, ami, name, digest in wanted:
                if results[ami] is None:
                    results[ami] = self.attestations.problem(
                        name, digest, ami, region, found[ami].tags.get("Provenance"))
        missing = sorted(a for a, why in results.items() if why == _ABSENT and a not in found)
        foreign = self.ec2.describe(region, missing) if missing else {}
        with self.lock:
            for ami, why in results.items():
                note = self.facts.revoked.get(ami)
                deprecated = found[ami].deprecated_at if ami in found else None
                if why is None and note is not None:
                    why = f"AMI {ami} ({region}) was {revoked_by(note, caller=False)}"
                elif why is None and deprecated is not None and deprecated <= now:
                    # revoke deprecates what it revokes: this may be a revocation
                    # deleted from the bucket
                    why = (f"AMI {ami} ({region}) is deprecated in EC2 since "
                           f"{deprecated.isoformat(timespec='seconds')}, and the registry "
                           "has no revocation of it")
                if ami in foreign:
                    why = (f"AMI {ami} ({region}) belongs to account "
                           f"{foreign[ami].owner}, not this one")
                self.facts.amis[ami] = why is None
                if why is not None and why != _ABSENT:
                    self.facts.refused[ami] = why

    def _source(self) -> None:
        with self.lock:
            if self.facts.source is not None:
                return
            offline = self.facts.offline
        spec = self.graph.source.spec(self.sandbox)
        if "ami" in spec:
            found = (spec["ami"], "pinned")
        elif offline:
            return
        else:
            found = resolve_source(self.ec2, self.graph.source, self.graph.region, self.sandbox)
        note = self.facts.revoked.get(found[0])
        if note is not None:                  # nothing may be built on it, and it cannot be rebuilt
            raise AmiError(f"source {self.graph.source.name}: {found[0]} ({found[1]}) was "
                           f"{revoked_by(note)}: point amis.yaml's source at another image",
                           FAILED)
        with self.lock:
            self.facts.source = found

    def known(self) -> decision.Known:
        with self.lock:
            facts = self.facts
            ami, how = facts.source or (None, "")
            return decision.Known(
                channel=facts.channel, records=dict(facts.records),
                by_digest=dict(facts.by_digest), amis=dict(facts.amis),
                refused=dict(facts.refused), source_ami=ami, baseline=dict(facts.baseline),
                source_how=how, source_spec=self.graph.source.spec(self.sandbox),
                offline=facts.offline is not None, now=self.clock.now(),
                rebuild=frozenset(facts.rebuild))

    def decision(self) -> decision.Decision:
        """The decision for every image, after looking up what it needs."""
        if not self.facts.pulled:
            self.pull()
        self._source()
        images = self.graph.images
        manifests = {name: self.checkout.manifest(name) for name in images}
        settings = {name: self.checkout.digest_settings(name) for name in images}
        tests = {name: self.checkout.tests(name) for name in images}
        for _ in range(len(self.graph.names) + 1):      # one round per level at most
            result = decision.decide(self.graph, self.known(), manifests, settings,
                                     self._digests, tests)
            if result.complete:
                return result
            amis = set(result.need_amis)
            with self._rounds:
                with self.lock:
                    wanted = {p for p in result.need_digests if p not in self.facts.by_digest}
                    amis |= {c for p in result.need_digests
                             if (r := self.facts.by_digest.get(p)) is not None
                             for c in decision.checks(r)}
                if wanted:
                    found = self.registry.by_digest(wanted)
                    with self.lock:
                        self.facts.by_digest.update(found)
                    amis |= {c for r in found.values() if r is not None
                             for c in decision.checks(r)}
                self._check_amis(amis)
        raise AmiError("the decision did not settle: please report this as a bug", code=BUG)
