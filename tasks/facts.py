"""What the decision needs from outside, gathered as it asks: the channel's
current records, the records kept by digest, which AMIs exist, and where
the source image points. One cache per run, shared by the threads that
build images at once.

A no-op costs one listing of the channel (with ETags), the GETs of records
that differ from the local copies, and one ``DescribeImages``; digest
records are fetched only where a current record does not match, in one
parallel batch per level of the tree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from . import decision
from .aws import Unreachable
from .errors import AmiError
from .records import Record, read_local, save_local

if TYPE_CHECKING:
    from .run import Run


@dataclass
class Facts:
    channel: str = ""
    records: dict[str, Record | None] = field(default_factory=dict)
    by_digest: dict[tuple[str, str], Record | None] = field(default_factory=dict)
    amis: dict[str, bool] = field(default_factory=dict)
    source: tuple[str, str] | None = None       # (AMI id, how it was found)
    offline: str | None = None                  # why AWS could not be asked
    txt_stale: list[str] = field(default_factory=list)
    pulled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # One lookup round at a time: builds deciding at once (77 leaves of a tree
    # whose parents just finished) would each fetch the same missing records.
    lookups: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def remember(self, record: Record) -> None:
        """A record this run made current."""
        with self.lock:
            self.records[record.image] = record
            self.amis[record.ami] = True


def pull(run: Run, *, offline_ok: bool = False) -> dict[str, str]:
    """Mirror the channel's current records into ``.amis/records`` and check
    that their AMIs exist. Returns image -> new, updated, same or absent.
    With ``offline_ok``, an unreachable AWS is noted (planning goes on from
    the local records) instead of raised."""
    facts = run.facts
    names = run.graph.names
    channel = run.channel()[0]
    local = {}
    for name in names:
        try:
            local[name] = run.record_path(name).read_bytes()
        except FileNotFoundError:
            pass
        except OSError as err:
            raise AmiError(f"{run.record_path(name)}: cannot read ({err.strerror})") from None
    try:
        if not run.settings.bucket and offline_ok:
            raise Unreachable("AMI_BUCKET is not set")
        pulled = run.registry.pull(channel, names, local)
    except Unreachable as err:
        if not offline_ok:
            raise
        records = {name: read_local(run.record_path(name)) for name in names}
        with facts.lock:
            facts.channel, facts.records, facts.offline = channel, records, str(err)
            facts.pulled = True
        return {}
    for name in names:
        path = run.record_path(name)
        if name in pulled.bodies:
            save_local(path, pulled.bodies[name])
        else:
            try:
                path.unlink(missing_ok=True)
            except OSError as err:
                raise AmiError(f"{path}: cannot remove ({err.strerror})") from None
    with facts.lock:
        facts.channel, facts.records = channel, dict(pulled.records)
        facts.txt_stale = list(pulled.txt_stale)
        facts.pulled = True
    _check_amis(run, [r.ami for r in pulled.records.values() if r is not None])
    return pulled.status


def _check_amis(run: Run, amis: list[str]) -> None:
    with run.facts.lock:
        unknown = sorted({a for a in amis if a not in run.facts.amis})
    if not unknown:
        return
    found = run.aws.existing_amis(run.graph.region, unknown)
    with run.facts.lock:
        run.facts.amis.update({a: a in found for a in unknown})


def _source(run: Run) -> None:
    facts = run.facts
    with facts.lock:
        if facts.source is not None:
            return
    spec = run.graph.source.spec(run.settings.sandbox)
    if "ami" in spec:
        found = (spec["ami"], "pinned")
    elif facts.offline:
        return
    else:
        found = run.aws.resolve_source(run.graph.source, run.graph.region)
    with facts.lock:
        facts.source = found


def known(run: Run) -> decision.Known:
    facts = run.facts
    with facts.lock:
        ami, how = facts.source or (None, "")
        return decision.Known(
            channel=facts.channel, records=dict(facts.records), by_digest=dict(facts.by_digest),
            amis=dict(facts.amis), source_ami=ami, source_how=how,
            source_spec=run.graph.source.spec(run.settings.sandbox),
            offline=facts.offline is not None, now=datetime.now(timezone.utc))


def decide(run: Run) -> decision.Decision:
    """The decision for every image, after looking up what it needs."""
    if not run.facts.pulled:
        pull(run)
    _source(run)
    manifests = {name: run.manifest(name) for name in run.graph.images}
    settings = {name: run.digest_settings(name) for name in run.graph.images}
    memo = run.once("digests", dict)
    for _ in range(len(run.graph.names) + 1):      # one round per level at most
        result = decision.decide(run.graph, known(run), manifests, settings, memo)
        if result.complete:
            return result
        amis = set(result.need_amis)
        with run.facts.lookups:
            with run.facts.lock:
                wanted = {p for p in result.need_digests if p not in run.facts.by_digest}
                amis |= {r.ami for p in result.need_digests
                         if (r := run.facts.by_digest.get(p)) is not None}
            if wanted:
                found = run.registry.by_digest(wanted)
                with run.facts.lock:
                    run.facts.by_digest.update(found)
                amis |= {r.ami for r in found.values() if r is not None}
            _check_amis(run, sorted(amis))
    raise AmiError("the decision did not settle: please report this as a bug")


def forget(run: Run, image: str, digest: str) -> None:
    """Look the digest record, and whether the AMIs that could be kept or
    reused exist, up again: under the lock, another agent may have built
    these inputs, or gc deleted what was to be reused."""
    with run.facts.lock:
        earlier = run.facts.by_digest.pop((image, digest), None)
        current = run.facts.records.get(image)
        for record in (earlier, current):
            if record is not None:
                run.facts.amis.pop(record.ami, None)
