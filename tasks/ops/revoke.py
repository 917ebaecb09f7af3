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
from typing import Callable

from ..adapters.aws import Identity
from ..adapters.console import Console
from ..adapters.ec2 import Ec2
from ..adapters.git import Git, actor
from ..adapters.registry import Registry, revoked_by
from ..core.clock import Clock
from ..core.errors import FAILED, AmiError
from ..core.graph import Graph
from ..core.records import Record
from ..core.settings import Settings
from ..state.checkout import Checkout
from .targets import chosen_ami


def descendants(records: list[Record], amis: set[str]) -> list[Record]:
    """Every record built on one of ``amis`` (an image's AMIs, in every
    region), or on what was built on those, parents first."""
    out, frontier, seen = [], set(amis), set(amis)
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
    say: Callable[[str], None]
    endpoint: str | None
    refused: list[str] = field(default_factory=list)
    lacking: set[str] = field(default_factory=set)       # calls the endpoint does not have

    def tell(self, call: Callable[[], str | None]) -> None:
        try:
            missing = call()
        except AmiError as err:
            self.refused.append(str(err))
            return
        if missing:
            self.lacking.add(missing)

    def finish(self, undone: str) -> None:
        """``undone``: what to say of EC2 when the endpoint lacks a call."""
        for name in sorted(self.lacking):
            self.say(f"{undone} in EC2: {self.endpoint} has no {name} (an emulator); the "
                     "registry, which plan, amis, verify and gc go by, is updated")
        if self.refused:
            more = f" (and {len(self.refused) - 1} more)" if len(self.refused) > 1 else ""
            raise AmiError(f"revoke: the registry is updated, but EC2 refused: "
                           f"{self.refused[0]}{more}; run the same command again to retry",
                           FAILED)


@dataclass
class Revoker:
    graph: Graph
    settings: Settings
    checkout: Checkout
    registry: Registry
    ec2: Ec2
    identity: Identity
    git: Git
    clock: Clock
    console: Console
    endpoint: Callable[[], str | None]

    def revoke(self, ami: str, image: str, reason: str, undo: bool, disable: bool) -> None:
        target = chosen_ami(self.registry, self.checkout, self.settings, "revoke", ami, image,
                            self.graph.names)
        reason = reason.strip()
        if not undo and not reason:
            raise AmiError("revoke: say why with --reason (it is recorded and shown by plan)")
        revoked = self.registry.revoked()
        if undo and target not in revoked:
            raise AmiError(f"revoke --undo: {target} is not revoked")
        who = {"by": actor(self.settings, self.git), "caller": self.identity.caller(),
               "at": self.clock.now().isoformat(timespec="seconds")}
        if undo:
            self._undo(target, revoked, who, reason)
            return
        told = _Ec2(self.console.say, self.endpoint())
        at = deprecate_at(self.clock.now())
        for region, each, name, why in self._chain(target, reason):
            note = revoked.get(each)
            if note is None:
                self.registry.revoke({"ami": each, "image": name, "region": region, **who,
                                      "reason": why, "with": target,
                                      **({"disabled": "true"} if disable else {})})
                self.console.say(f"revoked {each} ({name}, {region})" +
                                 ("" if why == reason else f": built on {target}"))
            elif why == reason and note.get("with") != target:
                # Revoked with another AMI, now on its own account: undoing that
                # other revocation must not restore this one.
                self.registry.revoke({**note, **who, "reason": why, "with": target,
                                      **({"disabled": "true"} if disable else {})})
                self.console.say(f"revoked {each} ({name}, {region}) on its own (it was revoked "
                                 f"with {note.get('with')})")
            else:
                self.console.say(f"{each} ({name}, {region}) was already {revoked_by(note)}")
                if disable and note.get("disabled") != "true":      # so --undo enables it
                    self.registry.revoke({**note, "disabled": "true"})
            told.tell(lambda: self.ec2.deprecate(region, each, at))
            if disable and self._state(region, each) == "available":
                told.tell(lambda: self.ec2.disable(region, each))
        told.finish("deprecation not set")

    def _chain(self, target: str, reason: str) -> list[tuple[str, str, str, str]]:
        """(region, AMI, image, why) of the target, in every region, and of
        everything built on it: found from the target's record whichever
        region's copy was named. A digest record that cannot be read is said
        and left out; it does not stop the rest being revoked."""
        problems: list[str] = []
        records = self.registry.digest_records(problems)
        for problem in problems:
            self.console.say(f"skipped {problem}")
        by_ami = {a: r for r in records for a in r.amis.values()}
        owner = by_ami.get(target)
        start = set(owner.amis.values()) if owner else {target}
        found = []
        for record in [owner] + descendants(records, start):
            amis = record.amis if record is not None else {self.graph.region: target}
            own = record is None or record.ami == target or target in record.amis.values()
            for region, each in sorted(amis.items()):
                found.append((region, each, record.image if record is not None else "?",
                              reason if own else f"built on {target}: {reason}"))
        return found

    def _state(self, region: str, ami: str) -> str:
        found = self.ec2.describe(region, [ami]).get(ami)
        return found.state if found else ""

    def _undo(self, target: str, revoked: dict[str, dict[str, str]], who: dict[str, str],
              reason: str) -> None:
        told = _Ec2(self.console.say, self.endpoint())
        undone = sorted((a for a, note in revoked.items()
                         if a == target or note.get("with") == target),
                        key=lambda a: (a != target, a))        # the AMI asked for first
        for each in undone:
            note = revoked[each]
            region = note.get("region") or self.graph.region
            self.registry.unrevoke(each, {"ami": each, "undo": "true", **who,
                                          "reason": reason or "undone"})
            self.console.say(f"restored {each} (revoked with {target})" if each != target
                             else f"restored {each}")
            told.tell(lambda: self.ec2.end_deprecation(region, each))
            if note.get("disabled") == "true" and self._state(region, each) == "disabled":
                told.tell(lambda: self.ec2.enable(region, each))
        told.finish("deprecation not ended")
