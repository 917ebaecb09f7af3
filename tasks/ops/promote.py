"""``doit promote``: point a channel at another channel's AMI of an image
(or of every image), checked for every image before any moves, logged.

Each image moves under the lock of the AMI's image and digest, the lock gc
takes before it deletes an AMI: the AMI is looked up again under it, so a
promotion never points a channel at an AMI gc deregistered meanwhile."""

from __future__ import annotations

from dataclasses import dataclass

from ..adapters.aws import Identity
from ..adapters.console import Console
from ..adapters.ec2 import Ec2
from ..adapters.git import Git, actor
from ..adapters.registry import Registry
from ..core.channels import channel_for_branch
from ..core.errors import AmiError
from ..core.graph import Graph
from ..core.names import CHANNEL_RE
from ..core.records import save_local
from ..core.settings import Settings
from ..core.text import did_you_mean
from ..state.checkout import Checkout
from ..state.locks import Locks


@dataclass
class Promoter:
    graph: Graph
    settings: Settings
    checkout: Checkout
    registry: Registry
    ec2: Ec2
    git: Git
    locks: Locks
    console: Console
    identity: Identity

    def _who(self) -> str:
        """Who promotes; on a machine that names no user, AWS's word on who
        acts (asked once the bucket has answered), else unknown."""
        who = actor(self.settings, self.git)
        if who != "unknown":
            return who
        try:
            return self.identity.caller()
        except AmiError:
            return who          # a name for the log is not worth failing the promotion for

    def promote(self, image: str, source: str, target: str) -> None:
        channels = []
        for what, name in (("--from", source), ("--to", target)):
            if not name:
                raise AmiError(f"promote {what}: give a channel or a branch name")
            channel = name if CHANNEL_RE.fullmatch(name) else channel_for_branch(name)
            if channel != name:
                self.console.say(f"promote {what} {name}: branch {name} publishes to channel "
                                 f"{channel}")
            channels.append(channel)
        source, target = channels
        graph = self.graph
        images = graph.names if image == "all" else [image]
        if image != "all" and image not in graph.names:
            raise AmiError(f"promote --image={image!r}: no such image in amis.yaml"
                           f"{did_you_mean(image, graph.names)} (one of "
                           f"{', '.join(graph.names)}, or all)")
        if source == target:
            raise AmiError(f"promote: --from and --to are both channel {source}: nothing to "
                           "promote; name the channel to promote to with --to")
        active = self.checkout.channel()[0]
        registry = self.registry
        records = [registry.record_at(registry.current_key(source, n), n) for n in images]
        existing = self._existing({r.ami for r in records if r})
        who = self._who()
        plans = {name: registry.promotion_plan(name, source, target, existing)[0]
                 for name in images}            # every image checked before any moves
        for name in images:
            record = plans[name]
            with self.locks.held(name, record.digest,
                                 lambda text: self.console.say(text, name)):
                there = registry.record_at(registry.current_key(target, name), name)
                if there is not None and (there.ami, there.digest) == (record.ami, record.digest):
                    self.console.say(f"channel {target}: already at {record.ami}, as channel "
                                     f"{source} is: nothing to promote", name)
                    continue
                if there is not None and (there.build_finished or "") > \
                        (record.build_finished or ""):
                    self.console.say(
                        f"note: channel {target}'s {there.ami} was built later "
                        f"({there.build_finished}, commit "
                        f"{str(there.git.get('commit', '?'))[:12]}) than {record.ami} "
                        f"({record.build_finished}, commit "
                        f"{str(record.git.get('commit', '?'))[:12]}): {target} moves back "
                        "to older inputs", name)
                existing = self._existing({record.ami})        # gc may have been first
                promoted, replaced, current = registry.promote(name, source, target, who,
                                                               existing)
            if target == active:
                save_local(self.settings.record_path(name), current.body())
            self.console.say(f"channel {target}: {replaced.ami if replaced else 'nothing'} -> "
                             f"{promoted.ami} (from {source}, by {who})", name)

    def _existing(self, amis: set[str]) -> set[str]:
        found = self.ec2.describe(self.graph.region, amis)
        return {ami for ami, image in found.items() if image.available}
