"""``doit revoke``: mark an AMI revoked, and everything built on it.

A revocation is kept at ``revocations/<ami>.json`` (who, as the user and
as AWS's caller identity, when, why, and which revocation it came with),
and every revocation and undo is logged under ``revocations-log/``. The
lookup treats a revoked AMI as unusable: ``plan`` shows its image (and each
image built on it) as to be rebuilt, naming the revocation; ``amis`` never
keeps, reuses or builds on it; and ``verify`` refuses it. Descendants are
found from the records kept by digest (the same records ``explain`` walks).
Revoking a child leaves its parent alone.

The registry is what this tool goes by, so it is written first. EC2 is then
told too: each revoked AMI is deprecated (EnableImageDeprecation), and with
``--disable`` disabled (DisableImage); ``--undo`` reverses both. An emulator
that lacks the deprecation call is named in one line, and nothing is
claimed for it. A refused EC2 call fails the command once the rest is
done; running it again retries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..adapters.git import actor
from ..adapters.registry import revoked_by
from ..core.errors import FAILED, AmiError
from ..core.records import Record
from .run import Run
from .targets import chosen_ami


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


def deprecate_at(now: datetime) -> datetime:
    """A whole minute at least a minute ahead: EC2 rounds DeprecateAt to the
    nearest minute and refuses a time in the past."""
    return now.replace(second=0, microsecond=0) + timedelta(minutes=2)


@dataclass
class _Ec2:
    """What EC2 is told of each revoked AMI, and what it refused."""
    run: Run
    refused: list[str] = field(default_factory=list)
    lacking: set[str] = field(default_factory=set)       # calls the endpoint does not have

    def call(self, what: str, region: str, operation: str, **kwargs: object) -> bool:
        try:
            if self.run.aws.call_if_known(what, "ec2", region, operation, **kwargs):
                return True
            self.lacking.add(operation)
        except AmiError as err:
            self.refused.append(str(err))
        return False

    def finish(self, undone: str) -> None:
        """``undone``: what to say of EC2 when the endpoint lacks a call."""
        for operation in sorted(self.lacking):
            name = "".join(part.title() for part in operation.split("_"))
            self.run.say(f"{undone} in EC2: {self.run.aws.endpoint()} has no {name} "
                         "(an emulator); the registry, which plan, amis, verify and gc go "
                         "by, is updated")
        if self.refused:
            more = f" (and {len(self.refused) - 1} more)" if len(self.refused) > 1 else ""
            raise AmiError(f"revoke: the registry is updated, but EC2 refused: "
                           f"{self.refused[0]}{more}; run the same command again to retry",
                           FAILED)


def revoke(run: Run, ami: str, image: str, reason: str, undo: bool, disable: bool) -> None:
    target = chosen_ami(run, "revoke", ami, image, run.graph.names)
    reason = reason.strip()
    if not undo and not reason:
        raise AmiError("revoke: say why with --reason (it is recorded and shown by plan)")
    revoked = run.registry.revoked()
    if undo and target not in revoked:
        raise AmiError(f"revoke --undo: {target} is not revoked")
    who = {"by": actor(run.settings), "caller": run.aws.caller(run.graph.region),
           "at": run.clock.now().isoformat(timespec="seconds")}
    if undo:
        _undo(run, target, revoked, who, reason)
        return
    ec2 = _Ec2(run)
    at = deprecate_at(run.clock.now())
    for region, each, name, why in _chain(run, target, reason):
        note = revoked.get(each)
        if note is None:
            run.registry.revoke({"ami": each, "image": name, "region": region, **who,
                                 "reason": why, "with": target,
                                 **({"disabled": "true"} if disable else {})})
            run.say(f"revoked {each} ({name}, {region})" +
                    ("" if why == reason else f": built on {target}"))
        elif why == reason and note.get("with") != target:
            # Revoked with another AMI, now on its own account: undoing that
            # other revocation must not restore this one.
            run.registry.revoke({**note, **who, "reason": why, "with": target,
                                 **({"disabled": "true"} if disable else {})})
            run.say(f"revoked {each} ({name}, {region}) on its own (it was revoked with "
                    f"{note.get('with')})")
        else:
            run.say(f"{each} ({name}, {region}) was already {revoked_by(note)}")
            if disable and note.get("disabled") != "true":      # so --undo enables it
                run.registry.revoke({**note, "disabled": "true"})
        ec2.call(f"deprecating {each} ({region})", region, "enable_image_deprecation",
                 ImageId=each, DeprecateAt=at)
        if disable and _state(run, region, each) == "available":
            ec2.call(f"disabling {each} ({region})", region, "disable_image", ImageId=each)
    ec2.finish("deprecation not set")


def _chain(run: Run, target: str, reason: str) -> list[tuple[str, str, str, str]]:
    """(region, AMI, image, why) of the target, in every region, and of
    everything built on it."""
    records = run.registry.digest_records()
    by_ami = {a: r for r in records for a in r.amis.values()}
    found = []
    for record in [by_ami.get(target)] + descendants(records, target):
        amis = record.amis if record is not None else {run.graph.region: target}
        own = record is None or record.ami == target or target in record.amis.values()
        for region, each in sorted(amis.items()):
            found.append((region, each, record.image if record is not None else "?",
                          reason if own else f"built on {target}: {reason}"))
    return found


def _state(run: Run, region: str, ami: str) -> str:
    found = run.aws.describe_amis(region, [ami]).get(ami)
    return str(found.get("State", "")) if found else ""


def _undo(run: Run, target: str, revoked: dict[str, dict[str, str]], who: dict[str, str],
          reason: str) -> None:
    ec2 = _Ec2(run)
    undone = sorted((a for a, note in revoked.items() if a == target or note.get("with") == target),
                    key=lambda a: (a != target, a))        # the AMI asked for first
    for each in undone:
        note = revoked[each]
        region = note.get("region") or run.graph.region
        run.registry.unrevoke(each, {"ami": each, "undo": "true", **who,
                                     "reason": reason or "undone"})
        run.say(f"restored {each} (revoked with {target})" if each != target
                else f"restored {each}")
        ec2.call(f"ending the deprecation of {each} ({region})", region,
                 "disable_image_deprecation", ImageId=each)
        if note.get("disabled") == "true" and _state(run, region, each) == "disabled":
            ec2.call(f"enabling {each} ({region})", region, "enable_image", ImageId=each)
    ec2.finish("deprecation not ended")
