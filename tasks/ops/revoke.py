"""``doit revoke``: mark an AMI revoked, and everything built on it.

A revocation is kept at ``revocations/<ami>.json`` (who, when, why, and
which revocation it came with), and every revocation and undo is logged
under ``revocations-log/``. The lookup treats a revoked AMI as unusable:
``plan`` shows its image (and each image built on it) as to be rebuilt,
naming the revocation; ``amis`` never keeps, reuses or builds on it; and
``verify`` refuses it. Descendants are found from the records kept by
digest (the same records ``explain`` walks). Revoking a child leaves its
parent alone. With ``--disable`` each revoked AMI is also disabled in EC2
(DisableImage). EC2's deprecation (EnableImageDeprecation) is not called:
the emulator has no such call to show it against.
"""

from __future__ import annotations

from ..adapters.git import actor
from ..core.errors import AmiError
from ..core.names import AMI_RE
from ..core.records import Record
from .run import Run


def _records(run: Run) -> list[Record]:
    registry = run.registry
    found = []
    for key in registry.listing(registry.key("digests") + "/"):
        if key.endswith(".json") and not key.endswith(".dsse.json"):
            record = registry.record_at(key)
            if record is not None:
                found.append(record)
    return found


def descendants(records: list[Record], ami: str) -> list[Record]:
    """Every record built on ``ami``, or on what was built on it, parents first."""
    out, frontier, seen = [], {ami}, {ami}
    while frontier:
        children = [r for r in records if r.parent and r.parent.get("ami") in frontier
                    and r.ami not in seen]
        out += children
        frontier = {r.ami for r in children}
        seen |= frontier
    return out


def _target(run: Run, ami: str, image: str) -> str:
    if image:
        if image not in run.graph.names:
            raise AmiError(f"revoke --image={image!r}: no such image in amis.yaml")
        channel = run.channel()[0]
        record = run.registry.record_at(run.registry.current_key(channel, image), image)
        if record is None:
            raise AmiError(f"revoke --image={image}: channel {channel} has no record of {image}")
        return record.ami
    if not AMI_RE.fullmatch(ami):
        raise AmiError(f"revoke --ami={ami!r}: give an AMI id (ami-…) or --image")
    return ami


def revoke(run: Run, ami: str, image: str, reason: str, undo: bool, disable: bool) -> None:
    target = _target(run, ami, image)
    who = actor(run.settings)
    at = run.clock.now().isoformat(timespec="seconds")
    revoked = run.registry.revoked()
    if undo:
        undone = [a for a, note in revoked.items() if a == target or note.get("with") == target]
        if target not in revoked:
            raise AmiError(f"revoke --undo: {target} is not revoked")
        for each in sorted(undone):
            run.registry.unrevoke(each, {"ami": each, "undo": "true", "by": who, "at": at,
                                         "reason": reason or "undone"})
            run.say(f"restored {each} (revoked with {target})" if each != target
                    else f"restored {each}")
        return
    if not reason:
        raise AmiError("revoke: say why with --reason (it is recorded and shown by plan)")
    records = _records(run)
    by_ami = {a: r for r in records for a in r.amis.values()}
    chain = [by_ami.get(target)] + descendants(records, target)
    for record in chain:
        amis = record.amis if record is not None else {run.graph.region: target}
        for region, each in sorted(amis.items()):
            if each in revoked:
                continue
            name = record.image if record is not None else "?"
            note = {"ami": each, "image": name, "region": region, "by": who, "at": at,
                    "reason": reason if each == target or record is None or
                    record.ami == target else f"built on {target}: {reason}",
                    "with": target}
            run.registry.revoke(note)
            if disable:
                run.aws.call(f"disabling {each} ({region})", "ec2", region, "disable_image",
                             ImageId=each)
            run.say(f"revoked {each} ({name}, {region})" + ("" if each == target or
                    (record is not None and record.ami == target) else f": built on {target}"))
